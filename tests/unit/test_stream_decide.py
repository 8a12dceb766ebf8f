"""The stream stage's decisions with in-memory fakes (no Kafka, Redis or MLflow).

What the old scorer's unit tests held, now on the path that decides: :class:`Decider`
(policy, reason codes, score/alert records, the shadow alias, the online model, a model
failing on one row) and :meth:`StreamStage._transact` (one Kafka transaction per batch:
scores, alerts and dead letters of bad records produced, input offsets sent, committed once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from features.core import FEATURE_NAMES
from features.stream.decide import Decider
from features.stream.items import TxnItem, parse_txn_message
from features.stream.metrics import build_stage_metrics
from features.stream.redis_io import Writes
from features.stream.stage import StreamStage
from features.terminal import TerminalState
from infra.errors import ModelError
from infra.settings import Settings
from scoring.routing import arm_for
from streams.dlq import parse_dead_letter

N = len(FEATURE_NAMES)
T0 = 1_738_404_000_000  # 2025-02-01T10:00:00Z


@dataclass
class FakeModel:
    booster: Any
    version: str = "3"
    feature_names: tuple[str, ...] = FEATURE_NAMES
    metrics: dict[str, float] = field(default_factory=lambda: {"budget_threshold": 0.5})


@dataclass
class FakeRegistry:
    models: dict[str, FakeModel]
    share: float = 0.0
    down: bool = False  # the registry cannot be reached

    def load(self, alias: str = "champion") -> FakeModel:
        return self.models[alias]

    def alias_version(self, alias: str = "champion") -> str | None:
        if self.down:
            raise ModelError("registry unreachable")
        model = self.models.get(alias)
        return model.version if model else None

    def canary_share(self) -> float:
        if self.down:
            raise ModelError("registry unreachable")
        return self.share if "canary" in self.models else 0.0


class FakeOnline:
    """Raises every score to 0.8 once 'loaded' (stands in for the River snapshot handle)."""

    version: str | None = "17"

    def maybe_reload(self, force: bool = False) -> bool:
        return False

    def combine(self, batch: Any, matrix: Any) -> tuple[Any, Any]:
        return np.maximum(batch, 0.8), np.full(len(batch), 0.9)


class Fragile:
    """A booster that fails on any matrix holding ``-1`` (a model error on that row)."""

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster

    def inplace_predict(self, matrix: Any) -> Any:
        if (np.asarray(matrix) == -1).any():
            raise ValueError("cannot score this row")
        return self.booster.inplace_predict(matrix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.booster, name)


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    """Fraud iff the first feature ("amount") is above 1000."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, N))
    x[:, 0] = rng.uniform(0, 2000, size=len(x))
    y = (x[:, 0] > 1000).astype(int)
    data = xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES))
    params = {"objective": "binary:logistic", "nthread": 1, "max_depth": 3, "seed": 1}
    return xgb.train(params, data, num_boost_round=30)


def decider(booster: Any, shadow: FakeModel | None = None, online: Any = None,
            served: tuple[str, ...] = FEATURE_NAMES, errors: list[str] | None = None,
            **model: Any) -> Decider:
    models = {"champion": FakeModel(booster, **model)}
    if shadow is not None:
        models["shadow"] = shadow
    on_error = errors.append if errors is not None else None
    d = Decider(FakeRegistry(models), list(served), 3, (None, 0.9), online,
                on_shadow_error=on_error)
    d.start()
    return d


def record(tid: str, card: str = "C1", amount: float = 10.0, ms: int = T0) -> dict[str, Any]:
    return {"transaction_id": tid, "event_time": ms, "card_id": card, "merchant_id": "M1",
            "amount": amount, "currency": "EUR", "channel": "pos", "country": "FR",
            "mcc": "5411"}


def item(rec: dict[str, Any], offset: int = 0, key: bytes | None = None) -> Any:
    return parse_txn_message(rec["card_id"].encode() if key is None else key,
                             json.dumps(rec).encode(), ("transactions", 0, offset), 40,
                             16 * 1024)


def vec(amount: float = 0.0, second: float = 0.0) -> tuple[float, ...]:
    return (amount, second, *([0.0] * (N - 2)))


# -- Decider ---------------------------------------------------------------------------------
def test_every_vector_gets_one_score_and_risky_ones_an_alert(booster: xgb.Booster) -> None:
    items = [item(record(t), i) for i, t in enumerate(("t1", "t2", "t3"))]
    out, failed = decider(booster).decide(items, [vec(5), vec(1900), vec(5)], now_ms=140)
    assert failed == []
    assert [d.score["transaction_id"] for d in out] == ["t1", "t2", "t3"]
    assert [d.score["decision"] for d in out][0::2] == ["approve", "approve"]
    assert out[1].score["decision"] != "approve"
    assert [d.alert is not None for d in out] == [False, True, False]
    alert = out[1].alert
    assert alert is not None and alert["reasons"][0]["code"] == "amount"
    assert alert["model_version"] == {"batch": "3", "online": None}
    assert out[1].score["features"]["amount"] == 1900.0
    assert out[1].score["latency_ms"] == 100  # now - the message's publish time


def test_a_champion_whose_features_cannot_be_served_is_refused(booster: xgb.Booster) -> None:
    with pytest.raises(ModelError, match="expects features"):
        decider(booster, feature_names=("amount", "something_else"))


def other_booster() -> xgb.Booster:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, N))
    y = (x[:, 1] > 0.5).astype(int)  # the shadow looks at another feature entirely
    data = xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES))
    return xgb.train({"objective": "binary:logistic", "nthread": 1, "max_depth": 2}, data,
                     num_boost_round=20)


def test_a_shadow_model_is_scored_and_logged_but_never_decides(booster: xgb.Booster) -> None:
    d = decider(booster, shadow=FakeModel(other_booster(), version="9"))
    (out,), _ = d.decide([item(record("t1"))], [vec(5, 3.0)], now_ms=40)
    assert out.score["shadow"]["version"] == "9"
    assert out.score["shadow"]["decision"] != "approve"  # the shadow would have flagged it
    assert out.score["decision"] == "approve" and out.alert is None


def test_a_shadow_that_cannot_be_served_is_skipped(booster: xgb.Booster) -> None:
    errors: list[str] = []
    bad = FakeModel(other_booster(), version="9", feature_names=("amount", "unknown"))
    d = decider(booster, shadow=bad, errors=errors)
    (out,), _ = d.decide([item(record("t1"))], [vec(5)], now_ms=40)
    assert d.shadow is None and errors == ["ModelError"]
    assert "shadow" not in out.score and out.score["model_version"]["batch"] == "3"


def test_the_online_model_combines_and_leads_the_reasons(booster: xgb.Booster) -> None:
    (out,), _ = decider(booster, online=FakeOnline()).decide(
        [item(record("t1"))], [vec(5)], now_ms=40)
    assert out.score["model_version"] == {"batch": "3", "online": "17"}
    assert out.score["score"] == pytest.approx(0.8) and out.score["scores"]["online"] == 0.9
    assert out.score["scores"]["batch"] < 0.1 and out.score["decision"] == "review"
    assert out.alert is not None and out.alert["reasons"][0]["code"] == "online_model"


def test_a_row_the_model_fails_on_is_returned_and_the_rest_decided(
        booster: xgb.Booster) -> None:
    items = [item(record(t), i) for i, t in enumerate(("t1", "t2", "t3"))]
    out, failed = decider(Fragile(booster)).decide(
        items, [vec(5), vec(-1), vec(1900)], now_ms=40)
    assert failed == [1]
    assert [d.score["transaction_id"] for d in out] == ["t1", "t3"]


# -- canary routing --------------------------------------------------------------------------
def canary_decider(booster: Any, canary: FakeModel, share: float,
                   errors: list[str] | None = None) -> tuple[Decider, FakeRegistry]:
    registry = FakeRegistry({"champion": FakeModel(booster), "canary": canary}, share)
    d = Decider(registry, list(FEATURE_NAMES), 3, (None, 0.9),
                on_canary_error=errors.append if errors is not None else None)
    d.start()
    return d, registry


def cards_batch(n: int, amount: float = 5.0) -> tuple[list[Any], list[tuple[float, ...]]]:
    items = [item(record(f"t{i}", card=f"C{i}", ms=T0 + i), i) for i in range(n)]
    return items, [vec(amount)] * n


def test_the_canary_scores_its_share_of_cards_and_says_so(booster: xgb.Booster) -> None:
    inverted = FakeModel(Inverted(booster), version="8")
    d, _ = canary_decider(booster, inverted, 0.3)
    items, vectors = cards_batch(400)
    out, failed = d.decide(items, vectors, now_ms=T0)
    assert failed == []
    arms = [o.score["arm"] for o in out]
    want = [arm_for(f"C{i}", 0.3, "8") for i in range(400)]
    assert arms == want and 80 < arms.count("canary") < 160
    for o in out:
        versions, parts = o.score["model_version"], o.score["scores"]
        if o.score["arm"] == "canary":  # scored, decided and explained by the canary
            assert versions["batch"] == "8" and o.score["score"] > 0.9
            assert parts["champion"] < 0.1 and o.score["decision"] == "decline"
            assert o.alert is not None and o.alert["arm"] == "canary"
            assert o.alert["model_version"]["batch"] == "8"
        else:
            assert versions["batch"] == "3" and o.score["score"] < 0.1
            assert "champion" not in parts and o.alert is None
    assert "error" not in out[0].score


def test_a_card_keeps_its_arm_and_only_moves_to_the_canary_as_the_share_grows(
        booster: xgb.Booster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("features.stream.decide.MODEL_CHECK_SECONDS", 0.0)
    d, registry = canary_decider(booster, FakeModel(booster, version="8"), 0.01)
    items, vectors = cards_batch(300)
    arms = []
    for share in (0.01, 0.10, 0.50, 1.0):
        registry.share = share
        d.maybe_swap()
        assert d.canary_share == share
        out, _ = d.decide(items, vectors, now_ms=T0)
        arms.append({o.score["transaction_id"] for o in out if o.score["arm"] == "canary"})
    assert arms[0] <= arms[1] <= arms[2] <= arms[3] and len(arms[3]) == 300
    del registry.models["canary"]  # rolled back: every card on the champion again
    d.maybe_swap()
    out, _ = d.decide(items, vectors, now_ms=T0)
    assert d.canary is None and {o.score["arm"] for o in out} == {"champion"}


def test_a_registry_outage_keeps_the_canary_and_its_share(
        booster: xgb.Booster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("features.stream.decide.MODEL_CHECK_SECONDS", 0.0)
    errors: list[str] = []
    d, registry = canary_decider(booster, FakeModel(booster, version="8"), 0.5, errors)
    items, vectors = cards_batch(100)
    before, _ = d.decide(items, vectors, now_ms=T0)
    registry.down = True
    d.maybe_swap()  # logged; the models in use go on
    after, _ = d.decide(items, vectors, now_ms=T0)
    assert (d.canary is not None, d.canary_share, errors) == (True, 0.5, [])
    assert [o.score["arm"] for o in after] == [o.score["arm"] for o in before]
    assert {o.score["arm"] for o in after} == {"champion", "canary"}


def test_a_canary_that_cannot_be_served_is_skipped_and_counted(booster: xgb.Booster) -> None:
    errors: list[str] = []
    bad = FakeModel(booster, version="8", feature_names=("amount", "unknown"))
    d, _ = canary_decider(booster, bad, 0.5, errors)
    out, failed = d.decide(*cards_batch(50), now_ms=T0)
    assert d.canary is None and errors == ["ModelError"] and failed == []
    assert {o.score["arm"] for o in out} == {"champion"}
    assert {o.score["model_version"]["batch"] for o in out} == {"3"}


def test_rows_the_canary_fails_on_fall_back_to_the_champion_marked(
        booster: xgb.Booster) -> None:
    errors: list[str] = []
    d, _ = canary_decider(booster, FakeModel(Fragile(booster), version="8"), 1.0, errors)
    items = [item(record(f"t{i}", card=f"C{i}", ms=T0 + i), i) for i in range(3)]
    out, failed = d.decide(items, [vec(5), vec(-1), vec(1900)], now_ms=T0)
    assert failed == [] and errors == ["row"]
    assert [o.score["arm"] for o in out] == ["canary"] * 3
    assert [o.score.get("error", False) for o in out] == [False, True, False]
    assert out[1].score["model_version"]["batch"] == "3"  # the champion's score was used
    assert out[2].score["model_version"]["batch"] == "8" and out[2].alert is not None


class Inverted:
    """A booster scoring 1 - p: the deliberately bad canary."""

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster

    def inplace_predict(self, matrix: Any) -> Any:
        return 1.0 - self.booster.inplace_predict(matrix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.booster, name)


# -- the stage's transaction, with fake clients ----------------------------------------------
@dataclass
class FakeProducer:
    produced: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    offsets: list[Any] = field(default_factory=list)
    commits: int = 0

    def begin_transaction(self) -> None: ...

    def produce(self, topic: str, key: bytes | None = None, value: bytes = b"",
                partition: int = -1) -> None:
        self.produced.append((topic, key, value))

    def poll(self, timeout: float) -> int:
        return 0

    def send_offsets_to_transaction(self, offsets: Any, meta: Any, timeout: float) -> None:
        self.offsets.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def commit_transaction(self, timeout: float) -> None:
        self.commits += 1

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.produced if t == topic]


class FakeConsumer:
    def consumer_group_metadata(self) -> str:
        return "meta"


class FakeRedis:
    """The stage's Redis adapter in memory: id registry, rows, terminal states."""

    def __init__(self) -> None:
        self.registry: dict[str, bytes] = {}
        self.states: dict[str, TerminalState | None] = {}
        self.marks: dict[str, Any] = {}

    def read_ids(self, tids: list[str]) -> tuple[list[Any], dict[str, Any]]:
        return [self.registry.get(t) for t in tids], {}

    def write(self, terminals: list[str], compute: Any, overlap: Any = lambda: None) -> Writes:
        states = {t: self.states.get(t) for t in terminals}
        marks = {t: self.marks.get(t) for t in terminals}
        writes, _ = compute(states, marks)
        overlap()
        self.states.update(states)
        self.marks.update(marks)
        self.registry.update(writes.registry)
        return writes

    def close(self) -> None: ...


def stage(booster: Any) -> tuple[StreamStage, FakeProducer]:
    s = Settings()
    st = StreamStage(s, decider(booster), FakeRedis(), build_stage_metrics(),  # type: ignore[arg-type]
                     wall_ms=lambda: 1_000)
    producer = FakeProducer()
    st._producer, st._consumer = producer, FakeConsumer()  # type: ignore[assignment]
    st.cards.load_partition(0, {})  # as the assignment restores it (empty changelog)
    return st, producer


def test_bad_records_are_dead_lettered_and_the_batch_committed_once(
        booster: xgb.Booster) -> None:
    st, producer = stage(booster)
    good = [item(record("t1"), 0), item(record("t2", amount=1900, ms=T0 + 1), 3)]
    bad_json = parse_txn_message(b"C1", b"{not json", ("transactions", 0, 1), 40, 16 * 1024)
    bad_key = item(record("t9", ms=T0 + 2), 2, key=b"not-the-card")
    assert not isinstance(bad_json, TxnItem) and not isinstance(bad_key, TxnItem)
    st._transact({("transactions", 0): [good[0], bad_json, bad_key, good[1]]})
    scores = [json.loads(v) for v in producer.on("scores")]
    alerts = [json.loads(v) for v in producer.on("alerts")]
    letters = [parse_dead_letter(v) for v in producer.on(st.s.topic_dlq)]
    assert [s["transaction_id"] for s in scores] == ["t1", "t2"]
    assert [a["transaction_id"] for a in alerts] == ["t2"]
    assert sorted(d.offset for d in letters) == [1, 2]
    assert any("message key" in d.reason for d in letters)
    assert producer.commits == 1 and producer.offsets == [{("transactions", 0): 4}]
    counted = st.m.registry.get_sample_value(
        "fraudstream_stream_dead_letters_total", {"input": "transactions", "kind": "key"})
    assert counted == 1.0


def test_a_repeat_is_not_decided_again_and_a_conflict_is_dead_lettered(
        booster: xgb.Booster) -> None:
    st, producer = stage(booster)
    st._transact({("transactions", 0): [item(record("t1"), 0)]})
    repeat = item(record("t1"), 1)
    conflict = item(record("t1", amount=11.0), 2)
    st._transact({("transactions", 0): [repeat, conflict]})
    assert [json.loads(v)["transaction_id"] for v in producer.on("scores")] == ["t1"]
    (letter,) = [parse_dead_letter(v) for v in producer.on(st.s.topic_dlq)]
    assert "conflict" in letter.reason and letter.offset == 2
    assert producer.commits == 2 and producer.offsets[-1] == {("transactions", 0): 3}


def test_the_transactional_producer_retries_a_busy_coordinator_quickly(
        booster: xgb.Booster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction begun while the coordinator still writes the previous commit's markers
    is answered CONCURRENT_TRANSACTIONS and retried after ``retry.backoff.ms``; librdkafka's
    100 ms default stalled every such batch by 100+ ms (docs/features.md, Speed)."""
    made: dict[str, dict[str, Any]] = {}

    class Client:
        def __init__(self, kind: str, **config: Any) -> None:
            made[kind] = config

        def init_transactions(self, timeout: float) -> None: ...

        def subscribe(self, topics: list[str], **callbacks: Any) -> None: ...

    monkeypatch.setattr("features.stream.stage.make_producer",
                        lambda s, **kw: Client("producer", **kw))
    monkeypatch.setattr("features.stream.stage.make_consumer",
                        lambda s, group, **kw: Client("consumer", **kw))
    st, _ = stage(booster)
    st._open()
    assert made["producer"]["transactional_id"]
    assert made["producer"]["retry_backoff_ms"] <= 20  # the Java producer's 20 ms at most
