"""The pure feature core: ``update(state, event) -> (state, features)`` per card.

One implementation serves the stream worker, the historical backfill and the backtest, so
online and offline feature values for the same transaction are equal by construction. It
imports no I/O library and reads no clock: time is the event's own ``event_ms``.

Contract:
- Features for transaction T include T and every earlier event of its card.
- Memory per card is bounded: the 24 h window keeps only events younger than 24 h, the
  30-day aggregates are kept as at most 31 daily buckets, the "seen" sets expire after 30 days,
  and the redelivery cache holds the last :data:`DEDUP_SIZE` transactions.
- A redelivered event (same ``transaction_id`` as a recent one) does not change the state and
  gets exactly the features it got the first time, so at-least-once delivery never
  double-counts.
- Work per event is O(log n) in the 24 h window size (a bisect) plus amortised O(1) expiry.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, NamedTuple

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
LONG_WINDOW_DAYS = 30
DEDUP_SIZE = 16
NO_PREVIOUS_SECONDS = 30.0 * 86_400.0  # "time since previous" when the card has no history

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "amount_log",
    "is_night",
    "is_weekend",
    "is_ecom",
    "card_txn_count_1h",
    "card_txn_count_24h",
    "card_amount_sum_24h",
    "card_amount_mean_30d",
    "card_amount_ratio_30d",
    "card_seconds_since_prev",
    "card_distinct_merchants_24h",
    "card_distinct_countries_24h",
    "card_new_device_30d",
    "card_new_country_30d",
)

Features = tuple[float, ...]


class Event(NamedTuple):
    """The fields of a transaction that feature math reads."""

    transaction_id: str
    event_ms: int
    card_id: str
    merchant_id: str
    amount: float
    channel: str
    country: str
    device_id: str | None


@dataclass
class CardState:
    """Per-card state; JSON-serialisable through :meth:`to_dict` / :meth:`from_dict`."""

    times: list[int] = field(default_factory=list)  # event_ms of events in the last 24 h
    amounts: list[float] = field(default_factory=list)
    merchants: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    days: list[list[float]] = field(default_factory=list)  # [day, count, amount sum]
    last_ms: int | None = None
    devices: dict[str, int] = field(default_factory=dict)  # device -> last seen ms
    seen_countries: dict[str, int] = field(default_factory=dict)
    recent: list[list[Any]] = field(default_factory=list)  # [transaction_id, features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.times,
            "a": self.amounts,
            "m": self.merchants,
            "c": self.countries,
            "d": self.days,
            "l": self.last_ms,
            "dev": self.devices,
            "ctry": self.seen_countries,
            "r": self.recent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardState:
        return cls(
            times=list(data["t"]),
            amounts=list(data["a"]),
            merchants=list(data["m"]),
            countries=list(data["c"]),
            days=[list(d) for d in data["d"]],
            last_ms=data["l"],
            devices=dict(data["dev"]),
            seen_countries=dict(data["ctry"]),
            recent=[list(r) for r in data["r"]],
        )


def _expire(state: CardState, now_ms: int) -> None:
    cut = bisect_right(state.times, now_ms - DAY_MS)
    if cut:
        del state.times[:cut], state.amounts[:cut], state.merchants[:cut]
        del state.countries[:cut]
    first_day = now_ms // DAY_MS - LONG_WINDOW_DAYS
    while state.days and state.days[0][0] < first_day:
        state.days.pop(0)
    horizon = now_ms - LONG_WINDOW_DAYS * DAY_MS
    for seen in (state.devices, state.seen_countries):
        if len(seen) > 8:  # prune lazily: small maps are cheap to keep
            for key in [k for k, t in seen.items() if t < horizon]:
                del seen[key]


def _cached(state: CardState, transaction_id: str) -> Features | None:
    for tid, feats in state.recent:
        if tid == transaction_id:
            return tuple(feats)
    return None


def update(state: CardState | None, event: Event) -> tuple[CardState, Features]:
    """Fold ``event`` into the card's state and return the features of ``event``.

    The returned state is the same object as ``state`` when one was given (mutated in place).
    """
    if state is None:
        state = CardState()
    cached = _cached(state, event.transaction_id)
    if cached is not None:
        return state, cached

    now = event.event_ms
    _expire(state, now)
    horizon = now - LONG_WINDOW_DAYS * DAY_MS

    # history before this event (30-day buckets)
    prior_count = sum(d[1] for d in state.days)
    prior_sum = sum(d[2] for d in state.days)
    prior_mean = prior_sum / prior_count if prior_count else 0.0
    seconds_since_prev = (
        max(0.0, (now - state.last_ms) / 1000.0)
        if state.last_ms is not None
        else NO_PREVIOUS_SECONDS
    )
    device_seen = event.device_id is None or state.devices.get(event.device_id, -1) >= horizon
    country_seen = state.seen_countries.get(event.country, -1) >= horizon

    # include this event
    state.times.append(now)
    state.amounts.append(event.amount)
    state.merchants.append(event.merchant_id)
    state.countries.append(event.country)
    day = now // DAY_MS
    if state.days and state.days[-1][0] == day:
        state.days[-1][1] += 1
        state.days[-1][2] += event.amount
    else:
        state.days.append([day, 1, event.amount])
    state.last_ms = max(now, state.last_ms or now)
    if event.device_id is not None:
        state.devices[event.device_id] = now
    state.seen_countries[event.country] = now

    count_1h = len(state.times) - bisect_right(state.times, now - HOUR_MS)
    hour = (now // HOUR_MS) % 24
    weekday = (now // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    features: Features = (
        event.amount,
        math.log1p(event.amount),
        1.0 if hour < 6 else 0.0,
        1.0 if weekday >= 5 else 0.0,
        1.0 if event.channel == "ecom" else 0.0,
        float(count_1h),
        float(len(state.times)),
        float(sum(state.amounts)),
        prior_mean,
        event.amount / prior_mean if prior_mean > 0 else 1.0,
        seconds_since_prev,
        float(len(set(state.merchants))),
        float(len(set(state.countries))),
        0.0 if device_seen else 1.0,
        0.0 if country_seen or prior_count == 0 else 1.0,
    )
    state.recent.append([event.transaction_id, list(features)])
    if len(state.recent) > DEDUP_SIZE:
        del state.recent[0]
    return state, features
