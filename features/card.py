"""Per-card features: ``card_update(state, event) -> (state, card features)`` (pure).

Contract:
- The features of transaction T include T and every earlier transaction of its card
  ("history" features — mean, z-score, novelty, profile — describe the card *before* T).
- Sliding windows (10 min, 1 h, 24 h) are exact; 7 d and 30 d use daily UTC buckets
  (the current day and the 6 / 29 before).
- Memory per card is bounded: windows expire, the novelty maps and the
  transaction -> terminal map forget entries older than their horizon (pruned once per
  event day) and the latter is also capped at :data:`TXN_MAP_CAP` entries.
- Work per event is amortised O(1) (each event enters and leaves each window once).
- A repeated transaction (same id as one of the card's last :data:`DEDUP_SIZE`) leaves
  the state unchanged and returns ``None`` instead of features: it was applied already.
  (Redelivery after a crash never reaches a committed state: the stream stage rewinds to
  its last Kafka transaction and restores card states from their changelog
  (:mod:`features.stream.cards`); a redelivered id is recognised by the id registry, which
  keeps each id's Kafka position (:mod:`features.stream.ids`).)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from features.windows import DAY_MS, DayBuckets, Sliding

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
NOVELTY_DAYS = 30
TXN_MAP_DAYS = 60  # labels for older transactions are outside every terminal window
TXN_MAP_CAP = 4096
DEDUP_SIZE = 16
HALF_LIFE_MS = 14 * DAY_MS  # of the slow card profile
ZSCORE_STD_FLOOR = 0.05  # std below 5 % of the mean is treated as 5 % of the mean
ZSCORE_CAP = 50.0
# amount / mean of earlier amounts is clipped here: a mean of (near-)zero earlier amounts
# ($0 verifications, float residue of expired windows) must not make it overflow to inf.
RATIO_CAP = 1e6
NO_PREVIOUS_SECONDS = 30.0 * 86_400.0  # "time since previous" when the card has no history

CARD_FEATURE_NAMES: tuple[str, ...] = (
    "amount", "amount_log", "is_night", "is_weekend", "is_ecom", "is_atm",
    "card_txn_count_10m", "card_txn_count_1h", "card_txn_count_24h",
    "card_txn_count_7d", "card_txn_count_30d",
    "card_amount_sum_10m", "card_amount_sum_1h", "card_amount_sum_24h",
    "card_amount_sum_7d", "card_amount_sum_30d",
    "card_amount_mean_7d", "card_amount_mean_30d",
    "card_amount_zscore_30d", "card_amount_ratio_30d",
    "card_seconds_since_prev",
    "card_distinct_merchants_24h", "card_distinct_countries_24h", "card_distinct_devices_24h",
    "card_new_merchant_30d", "card_new_device_30d", "card_new_country_30d",
    "card_age_days", "card_profile_amount_ewm", "card_profile_ecom_share",
    "card_profile_night_share",
    # label-aware (see card_label / label_features): frauds of the card known before T
    "card_known_fraud_count_30d", "card_known_compromised",
)
KNOWN_FRAUD_DAYS = 30  # card_known_fraud_count_30d: known frauds among the last 30 days
COMPROMISED_DAYS = TXN_MAP_DAYS  # card_known_compromised: a known fraud in the last 60 days

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
    terminal_id: str | None = None


def terminal_key(terminal_id: str | None, merchant_id: str) -> str:
    """The terminal entity of a transaction: its terminal, or its merchant when it has none.

    >>> terminal_key("t-7", "m-1"), terminal_key(None, "m-1")
    ('t:t-7', 'm:m-1')
    """
    return f"t:{terminal_id}" if terminal_id else f"m:{merchant_id}"


def _days() -> DayBuckets:
    return DayBuckets((7, 30), 3)  # count, amount sum, amount sum of squares


@dataclass
class CardState:
    """Per-card state; JSON-serialisable through :meth:`to_dict` / :meth:`from_dict`."""

    w10m: Sliding = field(default_factory=lambda: Sliding(10 * MINUTE_MS))
    w1h: Sliding = field(default_factory=lambda: Sliding(HOUR_MS))
    w24h: Sliding = field(default_factory=lambda: Sliding(DAY_MS, 3))  # merchant/country/dev
    days: DayBuckets = field(default_factory=_days)
    first_ms: int | None = None
    last_ms: int | None = None
    pruned_day: int = -1
    seen: list[dict[str, int]] = field(default_factory=lambda: [{}, {}, {}])  # m / dev / ctry
    ewm: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # w, amt, ecom, nt
    txns: dict[str, list[Any]] = field(default_factory=dict)  # tid -> [terminal key, ms]
    recent: list[str] = field(default_factory=list)  # ids of the last DEDUP_SIZE transactions
    txns_sorted: bool = True  # ``txns`` is in event-time order (pruned from the front)
    # [partition, offset] of the last transaction the stream worker folded in (None offline)
    source: list[int] | None = None
    frauds: dict[str, int] = field(default_factory=dict)  # fraud-labeled tid -> event ms

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "w10m": self.w10m.to_list(), "w1h": self.w1h.to_list(),
            "w24h": self.w24h.to_list(), "d": self.days.to_list(), "f": self.first_ms,
            "l": self.last_ms, "p": self.pruned_day, "s": self.seen, "e": self.ewm,
            "x": self.txns, "r": self.recent, "xs": self.txns_sorted,
        }
        if self.source is not None:
            data["o"] = self.source
        if self.frauds:
            data["k"] = self.frauds
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardState:
        """The state of :meth:`to_dict`; without ``"x"`` (the REST API's snapshot) the
        transaction map is empty, which no feature reads."""
        return cls(
            w10m=Sliding.from_list(data["w10m"]), w1h=Sliding.from_list(data["w1h"]),
            w24h=Sliding.from_list(data["w24h"]), days=DayBuckets.from_list(data["d"]),
            first_ms=data["f"], last_ms=data["l"], pruned_day=data["p"],
            seen=[dict(s) for s in data["s"]], ewm=list(data["e"]), txns=dict(data.get("x", {})),
            recent=list(data["r"]), txns_sorted=bool(data.get("xs", False)),
            source=data.get("o"), frauds=dict(data.get("k", {})),
        )

    def transaction_terminal(self, transaction_id: str) -> tuple[str, int] | None:
        """``(terminal key, event_ms)`` of a recent transaction of this card, if known."""
        hit = self.txns.get(transaction_id)
        return (str(hit[0]), int(hit[1])) if hit else None


def _prune(state: CardState, now: int, day: int) -> None:
    """Once per event day: forget novelty entries and transactions past their horizon."""
    if day <= state.pruned_day:
        return
    state.pruned_day = day
    horizon = now - NOVELTY_DAYS * DAY_MS
    for seen in state.seen:
        for key in [k for k, t in seen.items() if t < horizon]:
            del seen[key]
    old = now - TXN_MAP_DAYS * DAY_MS
    txns = state.txns
    if state.txns_sorted:  # the usual case: only a prefix can be old
        dead = []
        for tid, hit in txns.items():
            if hit[1] >= old:
                break
            dead.append(tid)
        for tid in dead:
            del txns[tid]
        _prune_frauds(state, old)
        return
    _prune_frauds(state, old)
    for tid in [t for t, (_, ms) in txns.items() if ms < old]:
        del txns[tid]
    times = [hit[1] for hit in txns.values()]
    state.txns_sorted = all(a <= b for a, b in zip(times, times[1:], strict=False))


def _profile(state: CardState, now: int, event: Event, night: float) -> tuple[float, ...]:
    """Exponentially weighted (event-time decay) profile before T, then fold T in."""
    weight, amount, ecom, nights = state.ewm
    if state.last_ms is not None and now > state.last_ms:
        decay = 0.5 ** ((now - state.last_ms) / HALF_LIFE_MS)
        weight, amount, ecom, nights = weight * decay, amount * decay, ecom * decay, \
            nights * decay
    before = (amount / weight, ecom / weight, nights / weight) if weight > 0 else \
        (event.amount, 0.0, 0.0)
    is_ecom = 1.0 if event.channel == "ecom" else 0.0
    state.ewm = [weight + 1.0, amount + event.amount, ecom + is_ecom, nights + night]
    return before


def card_update(state: CardState | None, event: Event) -> tuple[CardState, Features | None]:
    """Fold ``event`` into its card's state; return T's card features (see module doc),
    or None for a redelivered transaction.

    The returned state is ``state`` itself when one was given (mutated in place).
    """
    if state is None:
        state = CardState()
    if event.transaction_id in state.recent:
        return state, None
    now, amount = event.event_ms, event.amount
    day = now // DAY_MS
    if day > state.pruned_day:
        _prune(state, now, day)
    days = state.days
    if day > days.day:
        days.advance(day)
    prior_n, prior_sum, prior_sq = days.totals[1]
    prior_mean = prior_sum / prior_n if prior_n > 0 else 0.0
    prior_std = math.sqrt(max(0.0, prior_sq / prior_n - prior_mean**2)) if prior_n > 2 else 0.0
    prior_std = max(prior_std, ZSCORE_STD_FLOOR * prior_mean)  # identical amounts: no 1e6
    hour = (now // HOUR_MS) % 24
    night = 1.0 if hour < 6 else 0.0
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    since_prev = (max(0.0, (now - state.last_ms) / 1000.0) if state.last_ms is not None
                  else NO_PREVIOUS_SECONDS)
    horizon = now - NOVELTY_DAYS * DAY_MS
    merchants, devices, countries = state.seen
    new_merchant = merchants.get(event.merchant_id, -1) < horizon
    new_device = event.device_id is not None and devices.get(event.device_id, -1) < horizon
    new_country = prior_n > 0 and countries.get(event.country, -1) < horizon
    profile = _profile(state, now, event, night)

    w10m, w1h, w24h = state.w10m, state.w1h, state.w24h
    w10m.push(now, amount)
    w1h.push(now, amount)
    w24h.push(now, amount, event.merchant_id, event.country, event.device_id)
    days.add_all(day, (1.0, amount, amount * amount))
    merchants[event.merchant_id] = now
    countries[event.country] = now
    if event.device_id is not None:
        devices[event.device_id] = now
    first_ms = state.first_ms = now if state.first_ms is None else min(state.first_ms, now)
    last_ms = state.last_ms = now if state.last_ms is None else max(state.last_ms, now)
    txns = state.txns
    if state.txns_sorted and (now < last_ms or event.transaction_id in txns):
        state.txns_sorted = False  # out of order (or a repeated id keeps its old place)
    txns[event.transaction_id] = [terminal_key(event.terminal_id, event.merchant_id), now]
    if len(txns) > TXN_MAP_CAP:
        del txns[next(iter(txns))]

    (n7, s7, _), (n30, s30, _) = days.totals
    distinct = w24h.distinct
    channel = event.channel
    features: Features = (
        amount, math.log1p(amount), night, 1.0 if weekday >= 5 else 0.0,
        1.0 if channel == "ecom" else 0.0, 1.0 if channel == "atm" else 0.0,
        float(len(w10m.items)), float(len(w1h.items)), float(len(w24h.items)), n7, n30,
        w10m.total, w1h.total, w24h.total, s7, s30,
        s7 / n7 if n7 > 0 else 0.0, s30 / n30 if n30 > 0 else 0.0,
        max(-ZSCORE_CAP, min(ZSCORE_CAP, (amount - prior_mean) / prior_std))
        if prior_std > 0 and prior_n > 2 else 0.0,
        min(RATIO_CAP, amount / prior_mean) if prior_mean > 0 else 1.0,
        since_prev,
        float(len(distinct[0])), float(len(distinct[1])), float(len(distinct[2])),
        1.0 if new_merchant and prior_n > 0 else 0.0, 1.0 if new_device else 0.0,
        1.0 if new_country else 0.0,
        (now - first_ms) / DAY_MS, *profile,
    )
    features += label_features(state, now)
    state.recent.append(event.transaction_id)
    if len(state.recent) > DEDUP_SIZE:
        del state.recent[0]
    return state, features


def card_label(state: CardState, transaction_id: str, label_ms: int, fraud: bool) -> CardState:
    """Fold a label of one of the card's transactions, known at ``label_ms``, into its state.

    The hook for label-aware card features (the card's own matured fraud history). It is
    applied, online and offline, at the same point as the terminal's label item: once the
    card has folded in every transaction before ``label_ms`` (see
    :meth:`features.core.FeatureCore.run`), so T's card features see exactly the labels with
    ``label_ms < T.event_ms``. Idempotent per (transaction, verdict); returns ``state``.

    A fraud verdict records the transaction (with its event time, from the card's id map;
    a transaction the map no longer holds is ignored); a genuine verdict withdraws it.
    """
    if fraud:
        hit = state.txns.get(transaction_id)
        if hit is not None and transaction_id not in state.frauds:
            state.frauds[transaction_id] = int(hit[1])
    else:
        state.frauds.pop(transaction_id, None)
    return state


def _prune_frauds(state: CardState, old: int) -> None:
    """Forget fraud labels of transactions before ``old`` (no feature reads them)."""
    frauds = state.frauds
    if frauds:
        for tid in [t for t, ms in frauds.items() if ms < old]:
            del frauds[tid]


def label_features(state: CardState, now: int) -> Features:
    """The card's known fraud history before T (labels folded in by :func:`card_label`).

    ``card_known_fraud_count_30d``: transactions of the card in ``(T - 30 d, T]`` whose
    fraud label was known before T; ``card_known_compromised``: 1.0 when any transaction of
    the card in ``(T - 60 d, T]`` was known fraud before T (the card is "already known
    compromised": under label delay it is the strongest card signal, since a stolen card
    keeps being used for days). Both depend only on the labels and event times, not on when
    the state was pruned.
    """
    frauds = state.frauds
    if not frauds:
        return (0.0, 0.0)
    recent = now - KNOWN_FRAUD_DAYS * DAY_MS
    compromised = now - COMPROMISED_DAYS * DAY_MS
    count, any_known = 0, False
    for ms in frauds.values():
        if ms > compromised:
            any_known = True
            if ms > recent:
                count += 1
    return (float(count), 1.0 if any_known else 0.0)

