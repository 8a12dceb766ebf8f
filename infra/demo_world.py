"""The demo's simulated world and the loop settings it runs with.

A small, fraud-heavy bank, so that a few simulated days hold enough frauds to judge a model:
compromised terminals and account takeovers throughout, and a **card-testing wave** (stolen
card numbers probed with tiny e-commerce payments, then large purchases) from
``shift_day``, which the first champion has never seen. Labels come back fast (70 % analyst
verdicts within 12 hours, chargebacks within 1-5 days).

The loop settings are shorter than the production defaults for the same reason (see
``docs/retraining.md``): a challenger learns the wave once its fit rows hold a day or two of
it, i.e. after ``maturity + eval + valid`` days. Each is applied only where the user has not
set the ``FRAUDSTREAM_*`` variable; the demo prints the values it runs with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drift.detect import CALENDAR_FEATURES
from features.core import FEATURE_NAMES
from infra.settings import Settings
from replay.config import ScenarioSpec, SimulationConfig

# label-delay features whose windows are still filling on the demo's live days (see above)
WARMING_UP = tuple(n for n in FEATURE_NAMES
                   if n.endswith("_delayed") or n == "term_fraud_count_known_long")

LOOP_SETTINGS: dict[str, Any] = {
    "retrain_train_days": 21.0,
    "retrain_eval_days": 1.5,
    "retrain_maturity_days": 0.5,
    "retrain_valid_days": 1.0,
    "retrain_budget": 0.03,
    "retrain_min_interval_days": 1.0,
    "retrain_min_matured_frauds": 20,
    "retrain_volume_frauds": 0,
    "promotion_min_improvement": 0.05,
    "promotion_min_frauds": 20,
    "drift_sustained_windows": 2,
    "drift_sustained_lookback": 3,
    # simulator artefacts, see docs/drift.md: no card is ever replaced (ages grow a day per
    # day) and the night-share profiles are still filling up; the label-delay windows reach
    # back 8 to 37 days, so in a world that starts on day 0 they are still filling up on the
    # live days (their per-terminal daily counts also swing with the weekday)
    "drift_skip_columns": (*CALENDAR_FEATURES, "card_age_days", "card_profile_night_share",
                           *WARMING_UP),
}


@dataclass(frozen=True)
class DemoWorld:
    """Sizes and calendar of the demo (days are 0-based from ``SimulationConfig.start``)."""

    customers: int = 700
    days: int = 41
    live_from: int = 30  # the first champion is trained at this midnight; live from here
    shift_day: int = 32  # the card-testing wave starts
    wave_share: float = 0.006  # card-testing rows / all rows (~3 % of a wave day)
    seed: int = 7

    def __post_init__(self) -> None:
        if not 0 < self.live_from < self.shift_day < self.days:
            raise ValueError("need 0 < live_from < shift_day < days")

    def simulation(self) -> SimulationConfig:
        return SimulationConfig(
            n_customers=self.customers, n_terminals=max(2, self.customers // 2),
            n_ecom_merchants=200, days=self.days, seed=self.seed,
            compromised_terminal=ScenarioSpec(0.005), account_takeover=ScenarioSpec(0.003),
            card_testing=ScenarioSpec(self.wave_share, start_day=self.shift_day),
            analyst_share=0.7, chargeback_days=(1.0, 5.0), genuine_maturity_days=7.0)


def loop_settings(settings: Settings) -> Settings:
    """``settings`` with :data:`LOOP_SETTINGS` wherever the user did not choose a value."""
    chosen = settings.model_fields_set
    return settings.model_copy(update={k: v for k, v in LOOP_SETTINGS.items()
                                       if k not in chosen})


def describe(settings: Settings) -> str:
    """The loop settings in force, as ``FRAUDSTREAM_*`` assignments."""
    values = {k: getattr(settings, k) for k in LOOP_SETTINGS if k != "drift_skip_columns"}
    return " ".join(f"{k.upper()}={v:g}" if isinstance(v, float) else f"{k.upper()}={v}"
                    for k, v in values.items())
