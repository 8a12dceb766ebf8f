"""The classic fraud scenarios of the reproducible card-fraud benchmark, on genuine rows.

Enabled by :attr:`replay.config.SimulationConfig.classic` (off by default: the demo keeps
its world). They relabel genuine rows in place, in this order:

1. ``classic_amount``: every transaction above ``high_amount`` (a quantile of the genuine
   amounts) is fraud — a rule a model must learn from the amount alone;
2. ``classic_terminal``: each day, Poisson(``terminal_rate`` x terminals) terminals are
   compromised and *every* transaction through them in the next ``terminal_days`` days is
   fraud — only terminal risk features that see matured labels can catch it;
3. ``classic_card``: each day, Poisson(``card_rate`` x customers) cards are compromised and
   over the next ``card_days`` days each of their transactions is, with probability
   ``card_share``, fraud with its amount multiplied by ``card_multiplier`` — card spending
   history (mean amounts) and the card's known frauds catch it.

With :attr:`~replay.config.SimulationConfig.label_delay_days` every fraud is known exactly
that long after its transaction: the conditions of the published benchmark (7 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # replay.config imports this module
    from replay.population import Population

Batch = dict[str, Any]  # replay.rows.Batch (not imported: replay.rows imports replay.config)

DAY_MS = 86_400_000


@dataclass(frozen=True)
class ClassicSpec:
    """Doses of the classic scenarios (defaults: the benchmark's, per terminal / card)."""

    high_amount_quantile: float = 0.999  # of genuine amounts; 1.0 turns scenario 1 off
    terminal_rate: float = 0.0002  # compromised terminals per terminal per day (2 / 10,000)
    terminal_days: float = 28.0
    card_rate: float = 0.0006  # compromised cards per customer per day (3 / 5,000)
    card_days: float = 14.0
    card_share: float = 1.0 / 3.0
    card_multiplier: float = 5.0

    def problems(self) -> list[str]:
        out = []
        if not 0.0 < self.high_amount_quantile <= 1.0:
            out.append("classic.high_amount_quantile must be within (0, 1]")
        if min(self.terminal_rate, self.card_rate, self.terminal_days, self.card_days) < 0:
            out.append("classic rates and days must be >= 0")
        if not 0.0 <= self.card_share <= 1.0 or self.card_multiplier <= 0:
            out.append("classic.card_share must be within [0, 1] and card_multiplier > 0")
        return out


def _mark(rows: Batch, hit: np.ndarray, scenario: str, incident: int) -> None:
    rows["is_fraud"][hit] = True
    rows["scenario"][hit] = scenario
    rows["incident"][hit] = incident


def classic(rng: np.random.Generator, spec: ClassicSpec, genuine: Batch, pop: Population,
            start_ms: int, days: int, incident: int) -> int:
    """Relabel ``genuine`` in place (see the module doc); returns the next incident id."""
    amount, ev = genuine["amount"], genuine["event_ms"]
    if spec.high_amount_quantile < 1.0 and len(amount):
        threshold = float(np.quantile(amount, spec.high_amount_quantile))
        high = np.flatnonzero(amount > threshold)
        if len(high):
            _mark(genuine, high, "classic_amount", incident)
            incident += 1
    term, cust = genuine["term"], genuine["cust"]
    by_term = np.argsort(term, kind="stable")
    by_cust = np.argsort(cust, kind="stable")
    n_terms, n_cust = len(pop.terminal_ids), len(pop.card_ids)
    for day in range(days):
        t0 = start_ms + day * DAY_MS
        for t in rng.choice(n_terms, rng.poisson(spec.terminal_rate * n_terms)).tolist():
            rows = by_term[np.searchsorted(term, t, sorter=by_term, side="left"):
                           np.searchsorted(term, t, sorter=by_term, side="right")]
            hit = rows[(ev[rows] >= t0) & (ev[rows] < t0 + spec.terminal_days * DAY_MS)]
            _mark(genuine, hit, "classic_terminal", incident)
            incident += 1
        for c in rng.choice(n_cust, rng.poisson(spec.card_rate * n_cust)).tolist():
            rows = by_cust[np.searchsorted(cust, c, sorter=by_cust, side="left"):
                           np.searchsorted(cust, c, sorter=by_cust, side="right")]
            rows = rows[(ev[rows] >= t0) & (ev[rows] < t0 + spec.card_days * DAY_MS)]
            hit = rows[rng.random(len(rows)) < spec.card_share]
            amount[hit] = np.round(amount[hit] * spec.card_multiplier, 2)
            _mark(genuine, hit, "classic_card", incident)
            incident += 1
    return incident
