"""The scorer's micro-batch logic with in-memory fakes for Kafka and the feature store."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from features.core import FEATURE_NAMES
from infra.errors import ModelError
from infra.settings import Settings
from scoring.worker import Scorer
from streams.dlq import parse_dead_letter
from tests.fakes import FakeMessage


@dataclass
class FakeProducer:
    produced: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    pending: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    commits: int = 0
    offsets: list[Any] = field(default_factory=list)

    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None:
        self.pending = []

    def produce(self, topic: str, key: bytes | None = None, value: bytes = b"") -> None:
        self.pending.append((topic, key, value))

    def send_offsets_to_transaction(self, offsets: Any, meta: Any) -> None:
        self.offsets.append(offsets)

    def commit_transaction(self) -> None:
        self.produced += self.pending
        self.commits += 1

    def abort_transaction(self) -> None:
        self.pending = []

    def flush(self, timeout: float) -> int:
        return 0


class FakeConsumer:
    def __init__(self, batches: list[list[FakeMessage]], stop: threading.Event) -> None:
        self.batches, self.stop = batches, stop

    def subscribe(self, topics: list[str]) -> None: ...
    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        if not self.batches:
            self.stop.set()
            return []
        return self.batches.pop(0)

    def assignment(self) -> list[str]:
        return ["tp0"]

    def position(self, assignment: list[str]) -> list[str]:
        return assignment

    def consumer_group_metadata(self) -> str:
        return "meta"

    def close(self) -> None: ...


class FakeFeatures:
    def __init__(self, vectors: dict[str, tuple[float, ...]]) -> None:
        self.vectors, self.reads = vectors, 0

    def read(self, ids: Any) -> list[tuple[float, ...] | None]:
        self.reads += 1
        return [self.vectors.get(i) for i in ids]

    def served_features(self) -> list[str]:
        return list(FEATURE_NAMES)


@dataclass
class FakeModel:
    booster: Any
    version: str = "3"
    feature_names: tuple[str, ...] = FEATURE_NAMES
    metrics: dict[str, float] = field(default_factory=lambda: {"budget_threshold": 0.5})


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(FEATURE_NAMES)))
    y = (x[:, 0] > 1.0).astype(int)  # fraud iff the first feature ("amount") is large
    data = xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES))
    params = {"objective": "binary:logistic", "nthread": 1, "max_depth": 3, "seed": 1}
    return xgb.train(params, data, num_boost_round=30)


def _record(tid: str) -> bytes:
    return json.dumps(
        {
            "transaction_id": tid,
            "event_time": "2025-02-01T10:00:00Z",
            "card_id": "C1",
            "merchant_id": "M1",
            "amount": 10.0,
            "currency": "EUR",
            "channel": "pos",
            "country": "FR",
            "mcc": "5411",
            "ingest_ms": 1,
        }
    ).encode()


@dataclass
class FakeRegistry:
    models: dict[str, FakeModel]

    def load(self, alias: str = "champion") -> FakeModel:
        return self.models[alias]

    def alias_version(self, alias: str = "champion") -> str | None:
        model = self.models.get(alias)
        return model.version if model else None


def _run(
    booster: xgb.Booster,
    vectors: dict[str, tuple[float, ...]],
    batches: list[list[FakeMessage]],
    shadow: FakeModel | None = None,
    online: Any = None,
    metrics: Any = None,
    **model: Any,
) -> tuple[Scorer, FakeProducer]:
    stop = threading.Event()
    producer = FakeProducer()
    models = {"champion": FakeModel(booster, **model)}
    if shadow is not None:
        models["shadow"] = shadow
    scorer = Scorer(
        Settings(),
        FakeFeatures(vectors),
        FakeRegistry(models),
        producer=producer,  # type: ignore[arg-type]
        consumer=FakeConsumer(batches, stop),  # type: ignore[arg-type]
        wall_ms=lambda: 100,
        online_model=online,
        metrics=metrics,
    )
    scorer.run(stop)
    return scorer, producer


def test_every_record_gets_one_score_and_risky_ones_an_alert(booster: xgb.Booster) -> None:
    low = tuple([0.0] * len(FEATURE_NAMES))
    high = tuple([3.0] + [0.0] * (len(FEATURE_NAMES) - 1))
    vectors = {"t1": low, "t2": high, "t3": low}
    batch = [FakeMessage(_record(t), i) for i, t in enumerate(vectors)]
    scorer, producer = _run(booster, vectors, [batch])
    scores = [json.loads(v) for topic, _, v in producer.produced if topic == "scores"]
    alerts = [json.loads(v) for topic, _, v in producer.produced if topic == "alerts"]
    assert [s["transaction_id"] for s in scores] == ["t1", "t2", "t3"]
    assert {s["decision"] for s in scores if s["transaction_id"] != "t2"} == {"approve"}
    assert [a["transaction_id"] for a in alerts] == ["t2"]
    assert alerts[0]["reasons"][0]["code"] == "amount"
    assert alerts[0]["model_version"] == {"batch": "3", "online": None}
    assert scores[1]["features"]["amount"] == 3.0 and scores[1]["latency_ms"] == 99
    assert producer.commits == 1 and len(producer.offsets) == 1


def test_bad_records_and_missing_features_are_dead_lettered(booster: xgb.Booster) -> None:
    vectors = {"t1": tuple([0.0] * len(FEATURE_NAMES))}
    batch = [
        FakeMessage(b"{not json", 0),
        FakeMessage(_record("t1"), 1),
        FakeMessage(_record("gone"), 2),
    ]
    scorer, producer = _run(booster, vectors, [batch])
    dead = [
        parse_dead_letter(v) for topic, _, v in producer.produced if topic == "transactions.dlq"
    ]
    assert sorted(d.offset for d in dead) == [0, 2]
    assert any("features unavailable" in d.reason for d in dead)
    assert any("malformed" in d.reason for d in dead)
    assert scorer.stats.scored == 1 and scorer.stats.dead_lettered == 2


def test_a_message_of_several_records_dead_letters_only_its_bad_ones(
        booster: xgb.Booster) -> None:
    vectors = {t: tuple([0.0] * len(FEATURE_NAMES)) for t in ("t1", "t3")}
    records = [json.loads(_record(t)) for t in ("t1", "t2", "t3", "gone")]
    del records[1]["card_id"]
    batch = [FakeMessage(json.dumps(records).encode(), 7, key=b"")]
    scorer, producer = _run(booster, vectors, [batch])
    scores = [json.loads(v) for topic, _, v in producer.produced if topic == "scores"]
    dead = [parse_dead_letter(v) for topic, _, v in producer.produced
            if topic == "transactions.dlq"]
    assert [s["transaction_id"] for s in scores] == ["t1", "t3"]
    assert sorted((d.offset, json.loads(base64.b64decode(d.value_b64))["transaction_id"],
                   d.reason.split(" ")[0]) for d in dead) == [
        (7, "gone", "features"), (7, "t2", "featurized")]
    assert scorer.stats.scored == 2 and producer.commits == 1


def test_a_model_whose_features_cannot_be_served_is_refused(booster: xgb.Booster) -> None:
    with pytest.raises(ModelError, match="expects features"):
        _run(booster, {}, [], feature_names=("amount", "something_else"))


def test_a_shadow_model_is_scored_and_logged_but_never_decides(booster: xgb.Booster) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, len(FEATURE_NAMES)))
    y = (x[:, 1] > 0.5).astype(int)  # the shadow looks at another feature entirely
    data = xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES))
    other = xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "max_depth": 2}, data, num_boost_round=20
    )
    low = tuple([0.0, 3.0] + [0.0] * (len(FEATURE_NAMES) - 2))  # shadow: fraud; champion: not
    batch = [FakeMessage(_record("t1"), 0)]
    _, producer = _run(booster, {"t1": low}, [batch], shadow=FakeModel(other, version="9"))
    (score,) = [json.loads(v) for t, _, v in producer.produced if t == "scores"]
    assert score["shadow"]["version"] == "9"
    assert score["shadow"]["decision"] != "approve" and score["decision"] == "approve"
    assert not [v for t, _, v in producer.produced if t == "alerts"]


class FakeOnline:
    """Raises every score to 0.8 once 'loaded' (stands in for the River snapshot handle)."""

    version: str | None = None

    def maybe_reload(self, force: bool = False) -> bool:
        changed, self.version = self.version is None, "17"
        return changed

    def combine(self, xgb: Any, matrix: Any) -> tuple[Any, Any]:
        return np.maximum(xgb, 0.8), np.full(len(xgb), 0.9)


def test_the_online_model_combines_and_is_reported(booster: xgb.Booster) -> None:
    from scoring.metrics import build_metrics

    metrics = build_metrics()
    vectors = {"t1": tuple([0.0] * len(FEATURE_NAMES))}
    scorer, producer = _run(
        booster, vectors, [[FakeMessage(_record("t1"), 0)]], online=FakeOnline(), metrics=metrics
    )
    (score,) = [json.loads(v) for t, _, v in producer.produced if t == "scores"]
    (alert,) = [json.loads(v) for t, _, v in producer.produced if t == "alerts"]
    assert score["model_version"] == {"batch": "3", "online": "17"}
    assert score["score"] == pytest.approx(0.8) and score["scores"]["online"] == 0.9
    assert score["scores"]["batch"] < 0.1 and score["decision"] == "review"
    assert alert["reasons"][0]["code"] == "online_model"
    text = metrics.exposition().decode()
    assert 'fraudstream_decisions_total{decision="review",source="stream"} 1.0' in text
    assert 'role="online"' in text and 'version="17"' in text
