"""A small synthetic labeled frame for the registry and rollout tests (no simulator)."""

from __future__ import annotations

import numpy as np
import pandas as pd

TOY_FEATURES = ["amount_z", "velocity_1h", "merchant_risk"]


def toy_frame(n: int, days: int = 45, seed: int = 0, slices: bool = False) -> pd.DataFrame:
    """``n`` transactions over ``days`` with 6 % fraud that the three toy features separate;
    ``slices`` adds channel, country and mcc columns (drawn last, so the rest is the same)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-01", tz="UTC")
    event_time = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    fraud = rng.random(n) < 0.06
    frame = pd.DataFrame({
        "amount_z": rng.normal(0, 1, n) + 2.0 * fraud,
        "velocity_1h": rng.poisson(1 + 3 * fraud, n).astype(float),
        "merchant_risk": rng.random(n),
        "is_fraud": fraud,
        "event_time": event_time,
        "label_time": event_time + pd.to_timedelta(rng.uniform(0.5, 10, n), unit="D"),
        "amount": rng.gamma(2.0, 40.0, n),
        "card_id": rng.integers(0, 300, n).astype(str),
    })
    if slices:
        frame["channel"] = rng.choice(["pos", "ecom", "atm"], n)
        frame["country"] = rng.choice(["FR", "DE", "ES", "IT"], n)
        frame["mcc"] = rng.choice(["5411", "5812", "5999"], n)
    return frame
