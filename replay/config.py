"""What a simulation run is: sizes, calendar, seed and the fraud scenario mix.

A :class:`SimulationConfig` fully determines the output of
:func:`replay.simulator.simulate`: same config, same frame, byte for byte. There is no wall
clock anywhere; ``start`` is a calendar date and days begin at 00:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal, get_args

from infra.errors import ConfigurationError
from replay.classic import ClassicSpec

ScenarioName = Literal["card_testing", "compromised_terminal", "account_takeover"]
SCENARIOS: tuple[ScenarioName, ...] = get_args(ScenarioName)
GENUINE = "none"


@dataclass(frozen=True)
class ScenarioSpec:
    """One fraud scenario's dose.

    ``share`` is the target share of all rows labelled with this scenario (reached within
    one incident; any share > 0 yields at least one incident). ``start_day`` (0-based) is the
    first day an incident may begin: set it mid-run to simulate a new fraud pattern appearing
    in the stream.
    """

    share: float = 0.004
    start_day: int = 0


@dataclass(frozen=True)
class SimulationConfig:
    """Sizes, calendar, seed and fraud mix of one simulated history.

    Defaults give about 2.5 transactions per customer per day and about 1% fraud.
    Labels: fraud rows get an analyst verdict within ``analyst_hours`` with probability
    ``analyst_share`` (per card and incident), otherwise a chargeback ``chargeback_days``
    after the card's last fraudulent transaction of the incident. Genuine rows are labelled
    ``genuine`` with source ``matured`` ``genuine_maturity_days`` after their event: by then
    a chargeback would have arrived, so a silent transaction counts as confirmed genuine.
    """

    n_customers: int = 2000
    n_terminals: int = 1000
    n_ecom_merchants: int = 300
    days: int = 30
    start: date = date(2025, 1, 6)  # a Monday
    seed: int = 7
    card_testing: ScenarioSpec = field(default_factory=lambda: ScenarioSpec(0.004))
    compromised_terminal: ScenarioSpec = field(default_factory=lambda: ScenarioSpec(0.004))
    account_takeover: ScenarioSpec = field(default_factory=lambda: ScenarioSpec(0.002))
    terminal_fraud_fraction: float = 0.5  # of transactions through a compromised terminal
    terminal_misuse_prob: float = 0.5  # a card skimmed there is then misused elsewhere
    analyst_share: float = 0.3
    analyst_hours: tuple[float, float] = (0.5, 12.0)
    chargeback_days: tuple[float, float] = (2.0, 45.0)
    genuine_maturity_days: float = 30.0
    # every fraud known exactly this many days after its transaction (None: analyst /
    # chargeback timing above); see replay.labels
    label_delay_days: float | None = None
    classic: ClassicSpec | None = None  # the benchmark's scenarios (replay.classic); off
    id_prefix: str | None = None  # transaction ids are f"{prefix}{n:09d}"; default f"s{seed}-"

    def __post_init__(self) -> None:
        problems = []
        if self.n_customers < 1 or self.n_terminals < 2 or self.n_ecom_merchants < 1:
            problems.append("need n_customers >= 1, n_terminals >= 2, n_ecom_merchants >= 1")
        if self.days < 1:
            problems.append("days must be >= 1")
        for name in SCENARIOS:
            spec = self.scenario(name)
            if not 0.0 <= spec.share < 0.5 or not 0 <= spec.start_day < self.days:
                problems.append(f"{name}: need 0 <= share < 0.5 and 0 <= start_day < days")
        for prob in ("terminal_fraud_fraction", "terminal_misuse_prob", "analyst_share"):
            if not 0.0 <= getattr(self, prob) <= 1.0:
                problems.append(f"{prob} must be within [0, 1]")
        for span in ("analyst_hours", "chargeback_days"):
            lo, hi = getattr(self, span)
            if not 0.0 <= lo <= hi:
                problems.append(f"{span} must be (low, high) with 0 <= low <= high")
        if self.id_prefix is not None and not re.fullmatch(r"[A-Za-z0-9_.:\-]{0,40}",
                                                            self.id_prefix):
            problems.append("id_prefix may hold only letters, digits and _.:- (max 40)")
        if self.genuine_maturity_days < 0:
            problems.append("genuine_maturity_days must be >= 0")
        if self.label_delay_days is not None and self.label_delay_days < 0:
            problems.append("label_delay_days must be >= 0")
        if self.classic is not None:
            problems += self.classic.problems()
        if problems:
            raise ConfigurationError("invalid SimulationConfig: " + "; ".join(problems))

    def scenario(self, name: ScenarioName) -> ScenarioSpec:
        spec: ScenarioSpec = getattr(self, name)
        return spec

    def with_scenario(self, name: ScenarioName, *, share: float | None = None,
                      start_day: int | None = None) -> SimulationConfig:
        """A copy with one scenario changed, e.g. a new pattern from day 20."""
        old = self.scenario(name)
        spec = ScenarioSpec(old.share if share is None else share,
                            old.start_day if start_day is None else start_day)
        changes: dict[str, Any] = {name: spec}
        return replace(self, **changes)

    @classmethod
    def classic_world(cls, *, days: int = 100, n_customers: int = 2000,
                      n_terminals: int = 2000, seed: int = 7,
                      label_delay_days: float = 7.0) -> SimulationConfig:
        """The published benchmark's conditions on this simulator: only the classic
        scenarios (:mod:`replay.classic`) and every fraud known ``label_delay_days`` later."""
        none = ScenarioSpec(0.0)
        return cls(n_customers=n_customers, n_terminals=n_terminals, days=days, seed=seed,
                   card_testing=none, compromised_terminal=none, account_takeover=none,
                   classic=ClassicSpec(), label_delay_days=label_delay_days)

    @property
    def fraud_share(self) -> float:
        """Target overall fraud share (sum of the scenario shares)."""
        return sum(self.scenario(name).share for name in SCENARIOS)

    @property
    def transaction_prefix(self) -> str:
        return f"s{self.seed}-" if self.id_prefix is None else self.id_prefix
