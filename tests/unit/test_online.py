"""The River online model, its bounded join, snapshots, hot reload and the learner core."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from features.core import FEATURE_NAMES
from infra.errors import InvalidInput, ModelError
from infra.settings import Settings
from models.learner import Learner, LearnerCore
from models.online import CombineRule, OnlineModel, combine
from models.online_join import LabelJoin
from models.online_snapshot import OnlineModelHandle, SnapshotStore

NAMES = ("a", "b", "c")
H = 3_600_000


def trained(n: int = 600, seed: int = 0) -> OnlineModel:
    rng = np.random.default_rng(seed)
    model = OnlineModel(NAMES, negative_rate=0.5)
    for _ in range(n):
        x = rng.normal(size=3) * np.array([1.0, 100.0, 0.1])
        model.learn(x, bool(x[0] + rng.normal(scale=0.3) > 1.0))
    return model


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_vectorised_logits_equal_river() -> None:
    model = trained()
    rows = np.array([[0.3, 50.0, 0.0], [2.0, -1.0, 0.05], [-1.0, 1000.0, -0.2]])
    fast = model.raw_logits(rows)
    for row, z in zip(rows, fast, strict=True):
        p = model.pipeline.predict_proba_one(dict(zip(NAMES, row, strict=True)))[True]
        assert z == pytest.approx(math.log(p / (1 - p)), abs=1e-9)
    assert model.predict_many(rows)[1] > model.predict_many(rows)[2]


def test_model_is_deterministic_and_picklable() -> None:
    a, b = trained(seed=3), trained(seed=3)
    rows = np.random.default_rng(9).normal(size=(20, 3))
    assert np.array_equal(a.raw_logits(rows), b.raw_logits(rows))
    again = pickle.loads(pickle.dumps(a))  # noqa: S301 - our own object
    assert np.array_equal(again.raw_logits(rows), a.raw_logits(rows))
    with pytest.raises(ValueError, match="expected"):
        a.raw_logits(np.zeros((2, 4)))


def test_combine_only_raises_and_is_identity_before_warmup() -> None:
    xgb = np.array([0.01, 0.3, 0.95])
    lift = np.array([3.0, -2.0, 1.0])
    assert np.array_equal(combine(xgb, lift, 0.0), xgb)
    assert np.array_equal(combine(xgb, None, 1.0), xgb)
    out = combine(xgb, lift, 1.0)
    assert out[0] > 0.1 and out[1] == pytest.approx(0.3) and out[2] > 0.95
    rule = CombineRule(weight=0.8, warmup_frauds=50)
    assert rule.weight_for(49) == 0.0 and rule.weight_for(50) == 0.8


def test_join_label_after_and_before_its_decision() -> None:
    join = LabelJoin(negative_rate=1.0)
    assert join.add_decision("t1", vec(1, 2, 3), 0) == []
    [ex] = join.add_label("t1", True, 2 * H)
    assert (ex.transaction_id, ex.fraud, ex.explicit) == ("t1", True, True)
    assert join.add_label("t2", True, H) == [] and join.parked == 1  # decision not seen yet
    [ex] = join.add_decision("t2", vec(0, 0, 0), H - 1)
    assert ex.transaction_id == "t2" and join.parked == 0
    assert join.counts["joined"] == 2 and len(join) == 0


def test_unlabelled_decisions_expire_as_sampled_genuine() -> None:
    join = LabelJoin(ttl_ms=10 * H, negative_rate=1.0)
    join.add_decision("old", vec(1, 1, 1), 0)
    out = join.add_decision("new", vec(2, 2, 2), 11 * H)
    assert [(e.transaction_id, e.fraud, e.explicit) for e in out] == [("old", False, False)]
    assert join.add_label("old", True, 12 * H) == []  # its decision expired: parked ...
    join.add_decision("later", vec(0, 0, 0), 14 * H)  # ... and dropped past the grace period
    assert join.counts["unmatched"] == 1 and join.parked == 0


def test_join_state_is_bounded() -> None:
    join = LabelJoin(capacity=100, negative_rate=0.0, park_capacity=10)
    for i in range(1000):
        join.add_decision(f"t{i}", vec(0, 0, 0), i)
        join.add_label(f"future{i}", True, 10**9)
    assert len(join) == 100 and join.parked == 10
    assert join.counts["expired"] == 900 and join.counts["sampled_out"] == 900
    assert join.counts["unmatched"] == 990


def test_negative_sampling_is_deterministic_at_its_rate() -> None:
    a, b = LabelJoin(negative_rate=0.1, seed=1), LabelJoin(negative_rate=0.1, seed=1)
    kept = [a.keep_negative(f"t{i}") for i in range(20_000)]
    assert kept == [b.keep_negative(f"t{i}") for i in range(20_000)]
    assert 0.09 < sum(kept) / len(kept) < 0.11


def test_snapshots_are_versioned_checked_and_pruned(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=2)
    assert store.manifest() is None
    versions = [store.write(trained(50, seed=i), {"watermark_ms": i}) for i in range(4)]
    assert versions == [1, 2, 3, 4]
    manifest = store.manifest()
    assert manifest is not None and manifest["version"] == 4 and manifest["watermark_ms"] == 3
    assert sorted(p.name for p in tmp_path.glob("snapshot-*")) == [
        "snapshot-00000003.pkl", "snapshot-00000004.pkl"]
    assert store.read(manifest).frauds == trained(50, seed=3).frauds
    (tmp_path / manifest["file"]).write_bytes(b"tampered")
    with pytest.raises(ModelError, match="checksum"):
        store.read(manifest)


def test_handle_picks_up_new_snapshots_without_restart(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    now = [0.0]
    handle = OnlineModelHandle(store, CombineRule(1.0, 0), reload_seconds=5, clock=lambda: now[0])
    xgb, rows = np.array([0.2, 0.4]), np.zeros((2, 3))
    assert handle.maybe_reload() is False and handle.predict_many(rows) is None
    assert np.array_equal(handle.combine(xgb, rows)[0], xgb)
    store.write(trained(100))
    assert handle.maybe_reload() is False  # checked less than 5 s ago
    now[0] = 6.0
    assert handle.maybe_reload() is True and handle.version == "1"
    assert handle.predict_many(rows) is not None
    store.write(trained(200))
    (tmp_path / "snapshot-00000002.pkl").write_bytes(b"broken")  # a bad snapshot is skipped
    now[0] = 12.0
    assert handle.maybe_reload() is False and handle.version == "1"
    json.loads((tmp_path / "manifest.json").read_text())


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(state_dir=tmp_path, online_negative_rate=1.0, **kw)


def score_record(tid: str, t: str, x: float) -> dict[str, Any]:
    return {"transaction_id": tid, "event_time": t, "card_id": "c",
            "features": {n: x for n in FEATURE_NAMES}}


def test_learner_core_learns_from_joined_records(tmp_path: Path) -> None:
    core = LearnerCore.fresh(settings_for(tmp_path))
    core.on_score(score_record("t1", "2025-01-10T10:00:00Z", 5.0))
    core.on_score(score_record("t2", "2025-01-10T10:01:00Z", 0.0))
    assert core.on_label({"transaction_id": "t1", "card_id": "c", "label": "fraud",
                          "source": "analyst", "label_time": "2025-01-10T12:00:00Z"}) == 1
    assert core.model.frauds == 1 and len(core.join) == 1
    with pytest.raises(InvalidInput):
        core.on_label({"transaction_id": "t2", "label": "perhaps", "label_time": 0})
    with pytest.raises(InvalidInput):
        core.on_score({"transaction_id": "t3"})


@dataclass
class Msg:
    topic_: str
    offset_: int
    value_: bytes

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.offset_

    def value(self) -> bytes:
        return self.value_


def test_learner_checkpoints_model_join_and_offsets_together(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, online_snapshot_seconds=1.0)
    clock = [0.0]
    learner = Learner(settings, clock=lambda: clock[0])
    scores, labels = settings.topic_scores, settings.topic_labels
    learner.process([
        Msg(scores, 0, json.dumps(score_record("t1", "2025-01-10T10:00:00Z", 3.0)).encode()),
        Msg(scores, 1, b"not json"),
        Msg(labels, 0, json.dumps({"transaction_id": "t1", "card_id": "c", "label": "fraud",
                                   "label_time": "2025-01-10T11:00:00Z"}).encode()),
        Msg(scores, 2, json.dumps(score_record("t2", "2025-01-10T10:02:00Z", 0.0)).encode()),
    ])
    assert learner.maybe_snapshot() is None  # not due yet
    clock[0] = 2.0
    assert learner.maybe_snapshot() == 1
    text = learner.metrics.exposition().decode()
    assert 'fraudstream_online_updates_total{kind="explicit",label="fraud"} 1.0' in text
    assert 'fraudstream_online_join_total{outcome="invalid"} 1.0' in text
    restarted = Learner(settings)
    assert restarted.core.model.frauds == 1 and len(restarted.core.join) == 1
    assert restarted.core.offsets == {(scores, 0): 3, (labels, 0): 1}

    class Consumer:
        assigned: list[Any] = []

        def assign(self, partitions: list[Any]) -> None:
            self.assigned = partitions

    from confluent_kafka import TopicPartition

    consumer = Consumer()
    restarted._on_assign(consumer, [TopicPartition(scores, 0), TopicPartition(labels, 1)])
    assert [(tp.topic, tp.partition, tp.offset) for tp in consumer.assigned] == [
        (scores, 0, 3), (labels, 1, TopicPartition(labels, 1).offset)]
