"""When and how each simulated transaction's label becomes known.

A fraud incident is discovered per card: the card holder disputes, or an analyst reviews,
everything that happened to the card in that incident at once. So every fraudulent row of
one (incident, card) pair shares one label time, counted from the pair's *last* fraudulent
event, which keeps ``label_time >= event_time`` for every row:

- with probability ``analyst_share`` an analyst verdict ``analyst_hours`` later (uniform);
- otherwise a chargeback ``chargeback_days`` later (triangular, mode near the low end, since
  most disputes come within a couple of weeks and a few take over a month).

With ``config.label_delay_days`` set, every fraudulent row is instead labeled exactly that
long after its own event (source ``chargeback``): the fixed delay of the published benchmark.

Genuine rows never get a positive verdict; they *mature* as genuine ``genuine_maturity_days``
after their event (source ``matured``): the delay after which a missing chargeback is taken
as proof. Training and evaluation code must only use labels with ``label_time`` at or before
its own "now".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from replay.config import SimulationConfig

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

CHARGEBACK = "chargeback"
ANALYST = "analyst"
MATURED = "matured"
LABEL_SOURCES = (CHARGEBACK, ANALYST, MATURED)


def assign_labels(
    rng: np.random.Generator,
    config: SimulationConfig,
    event_ms: NDArray[np.int64],
    is_fraud: NDArray[np.bool_],
    cust: NDArray[np.int64],
    incident: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    """``(label_ms, label_source)`` for every row; rows must already be in final order."""
    label_ms = event_ms + int(round(config.genuine_maturity_days * DAY_MS))
    source = np.full(len(event_ms), MATURED, dtype=object)
    fraud = np.flatnonzero(is_fraud)
    if not len(fraud):
        return label_ms, source
    if config.label_delay_days is not None:
        label_ms[fraud] = event_ms[fraud] + int(round(config.label_delay_days * DAY_MS))
        source[fraud] = CHARGEBACK
        return label_ms, source
    key = incident[fraud] * (int(cust.max()) + 1) + cust[fraud]
    groups, inverse = np.unique(key, return_inverse=True)
    last = np.full(len(groups), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, inverse, event_ms[fraud])

    by_analyst = rng.random(len(groups)) < config.analyst_share
    a_lo, a_hi = config.analyst_hours
    analyst_delay = rng.uniform(a_lo, a_hi, len(groups)) * HOUR_MS
    c_lo, c_hi = config.chargeback_days
    if c_hi > c_lo:
        days = rng.triangular(c_lo, c_lo + 0.15 * (c_hi - c_lo), c_hi, len(groups))
    else:
        days = np.full(len(groups), c_lo)
    delay = np.where(by_analyst, analyst_delay, days * DAY_MS).astype(np.int64)

    label_ms[fraud] = (last + delay)[inverse]
    source[fraud] = np.where(by_analyst, ANALYST, CHARGEBACK)[inverse]
    return label_ms, source
