"""Canaries on the running stream stage (real Kafka, Redis, MLflow; the stage its own process).

A good challenger is started as canary at 1 % (``fraudstream models canary start``) and
stepped 10 % -> 50 % -> champion by ``fraudstream models canary step``, the policy judging
live evidence (the ``scores`` records since the last step and the ``labels`` topic), with
the stage killed and restarted in the middle of a phase; ``fraudstream models rollback``
then takes the stage back to the previous champion in one command; an inverted model
started as canary is rolled back automatically at its first gate (exit 1). Every published
transaction is decided exactly once, by the arm its card is routed to, and the audit log
holds every step.

Traffic is chosen by card: each phase publishes the live transactions of cards not used
before, some routed to the canary at the current share and as many that stay on the
champion at any share below 100 % (with a few fraud cards in each), so a 1 % canary gets
enough decisions from a world of a few thousand cards without publishing all of them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.core import FEATURE_NAMES
from features.definitions import FEATURE_SERVICE_NAME
from features.stream.service import ensure_stream_topics
from infra.bootstrap import ensure_infrastructure
from infra.cli import main
from infra.settings import Settings
from infra.workers import settings_env
from models import audit
from models.pipeline import train_frame_from_history
from models.registry import ModelRegistry
from models.train import TrainConfig, train_model
from replay.config import ScenarioSpec
from replay.history import write_history
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate
from scoring.routing import bucket
from tests.integration.deployed import drain, split_days
from tests.integration.streamcheck import count_scores, publish_labels, stage

DAYS, LIVE_DAYS = 12, 3
CONFIG = TrainConfig(unknown_labels="genuine", test_days=2, delay_days=1, valid_days=2)
PER_ARM = 120  # cards per arm and phase (all there are on the canary at 1 %: ~40)


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    # three times the default fraud, so each arm's cards hold enough matured frauds for the
    # label gates (the steps to 50 % and to champion need them)
    frame = simulate(SimulationConfig(
        n_customers=4000, n_terminals=600, days=DAYS, seed=5,
        card_testing=ScenarioSpec(0.012), compromised_terminal=ScenarioSpec(0.012),
        account_takeover=ScenarioSpec(0.006)))
    return split_days(frame, DAYS - LIVE_DAYS)


@dataclass
class Traffic:
    """The live transactions by card; each phase sends the cards of unused ones."""

    settings: Settings
    live: pd.DataFrame
    sent: list[str] = field(default_factory=list)
    arm_of: dict[str, str] = field(default_factory=dict)  # transaction id -> expected arm

    def __post_init__(self) -> None:
        self.by_card = dict(iter(self.live.groupby("card_id")))
        self.fraud = set(self.live.loc[self.live["is_fraud"].astype(bool), "card_id"])
        self.unused = set(self.by_card)

    def pick(self, where: Callable[[str], bool], frauds: int, total: int) -> list[str]:
        pool = sorted(c for c in self.unused if where(c))
        bad = [c for c in pool if c in self.fraud][:frauds]
        return bad + [c for c in pool if c not in self.fraud][: total - len(bad)]

    def phase(self, salt: str, share: float, frauds: int = 10,
              during: Callable[[], None] | None = None) -> int:
        """Send cards on the canary at ``share`` and as many, with as many fraud cards,
        that stay on the champion at any share below 100 % (comparable arms)."""
        canary = self.pick(lambda c: bucket(c, salt) < share, frauds, PER_ARM) if share else []
        bad = sum(c in self.fraud for c in canary) if canary else frauds
        champion = self.pick(lambda c: bucket(c, salt) >= 0.5, bad, len(canary) or PER_ARM)
        arms = {**dict.fromkeys(champion, "champion"), **dict.fromkeys(canary, "canary")}
        return self.send(arms, during)

    def send(self, cards: dict[str, str], during: Callable[[], None] | None = None) -> int:
        """Publish the cards' transactions and labels and wait until all are decided;
        ``during`` runs once the first half is partly decided, before the second half."""
        frame = pd.concat([self.by_card[c] for c in cards]).sort_values("event_time")
        before = len(self.sent)
        self.unused -= set(cards)
        self.sent += frame["transaction_id"].tolist()
        self.arm_of.update(zip(frame["transaction_id"], frame["card_id"].map(cards),
                               strict=True))
        half = len(frame) // 2 if during is not None else len(frame)
        self._publish(frame.iloc[:half])
        if during is not None:
            assert wait_until(lambda: count_scores(self.settings) > before, 60, 0.1)
            during()
        self._publish(frame.iloc[half:])
        decided = wait_until(lambda: count_scores(self.settings) >= len(self.sent), 180)
        assert decided, f"{len(self.sent)} sent, {count_scores(self.settings)} decided"
        return len(frame)

    def _publish(self, frame: pd.DataFrame) -> None:
        if len(frame):
            publish_history(frame, self.settings, progress=None)
            publish_labels(frame, self.settings)


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return False


class Stage:
    """The stage process, its log watched for model changes (counting from the last wait),
    and a SIGKILL-and-restart in the middle of a phase."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.worker, self.seen = settings, stage(settings), 0

    def wait(self, marker: str, timeout: float = 60.0) -> None:
        def found() -> bool:
            text = self.worker.log_path.read_text(errors="replace")
            at = text.find(marker, self.seen)
            if at >= 0:
                self.seen = at + len(marker)
            return at >= 0

        assert wait_until(found, timeout, 0.2), f"no {marker!r}:\n{self.worker.log_tail(30)}"

    def crash(self, traffic: Traffic) -> Callable[[], None]:
        """A hook for :meth:`Traffic.send`: SIGKILL in the middle of a phase (half of it
        published and partly decided), then a new process (same instance) that must
        restore the cards and resume the canary as it was."""
        def hook() -> None:
            self.worker.kill()
            print(f"stage killed with {count_scores(self.settings)} of {len(traffic.sent)} "
                  "decisions committed")
            self.worker = stage(self.settings)
        return hook


@pytest.fixture
def deployed(settings: Settings, world: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
             ) -> Iterator[tuple[Settings, ModelRegistry, Traffic, Stage]]:
    """A champion (v1), a good challenger (v2) and an inverted one (v3); the stage running."""
    s = settings.model_copy(update={"mlflow_tracking_uri": None,
                                    "model_name": "fd-canary-stream",
                                    "canary_min_decisions": 100, "canary_min_frauds": 3})
    history, live = world
    ensure_infrastructure(s)
    ensure_stream_topics(s)
    frame, champion = train_frame_from_history(
        s, write_history(history, tmp_path / "history.parquet"), CONFIG)
    registry = ModelRegistry(s)
    other = replace(CONFIG, max_depth=4)  # as good, and ranks alike (Spearman ~0.8)
    # the bad one learns the labels inverted (all known at once, so both classes are fit)
    inverted = frame.assign(is_fraud=~frame["is_fraud"].astype(bool),
                            label_time=frame["event_time"])
    for result, alias in ((champion, "champion"),
                          (train_model(frame, FEATURE_NAMES, other, seed=3), None),
                          (train_model(inverted, FEATURE_NAMES, CONFIG, seed=3), None)):
        registry.log_and_register(result, s.model_name, FEATURE_SERVICE_NAME, alias=alias)
    running = Stage(s)
    try:
        running.wait("scoring with model version 1", 120)
        yield s, registry, Traffic(s, live.reset_index(drop=True)), running
    finally:
        assert running.worker.stop() == 0, running.worker.log_tail(40)


def step(registry: ModelRegistry) -> dict[str, Any]:
    """``fraudstream models canary step`` on the live topics; its audit record."""
    code = main(["models", "canary", "step", "--actor", "canary-test"])
    record = audit.read(registry.audit_path, alias="canary")[-1]
    print(record["reason"], {k: c["detail"] for k, c in record["extra"]["checks"].items()})
    assert code == (1 if record["action"] == "canary_rollback" else 0), record
    return record


def test_canary_on_the_stream_completes_rolls_back_and_decides_each_id_once(
    deployed: tuple[Settings, ModelRegistry, Traffic, Stage], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, registry, traffic, log = deployed  # log: the running stage
    started = time.monotonic()
    for key, value in settings_env(s).items():  # the commands below read these settings
        if key.startswith("FRAUDSTREAM_"):
            monkeypatch.setenv(key, value)

    # a good challenger: 1% -> 10% -> 50% -> champion, holding while labels are too few; the
    # stage is killed (SIGKILL) in the middle of the first 10% phase and restarted
    assert main(["models", "canary", "start", "2", "--actor", "canary-test"]) == 0
    log.wait("canary v2 at 1%")
    shares: list[tuple[float, str]] = []
    for _ in range(8):
        share = registry.canary_share()
        crash = share == 0.10 and all(s != 0.10 for s, _ in shares)
        traffic.phase("2", share, during=log.crash(traffic) if crash else None)
        record = step(registry)
        assert record["action"] != "canary_rollback", record["reason"]
        shares.append((share, record["action"].removeprefix("canary_")))
        if record["action"] == "canary_complete":
            break
        if record["action"] == "canary_step":
            log.wait(f"canary v2 at {record['extra']['share_to']:.0%}")
    moved = [share for share, action in shares if action in ("step", "complete")]
    assert moved == [0.01, 0.10, 0.50], shares
    log.wait("champion moved: 1 -> 2")

    # one command takes the running stage back to the previous champion
    traffic.phase("2", 0.0)  # scored by v2, the new champion
    assert main(["models", "rollback", "--actor", "ops:jane", "--reason", "test"]) == 0
    assert registry.alias_version("champion") == "1"
    log.wait("champion moved: 2 -> 1")
    after_rollback = set(traffic.sent)
    traffic.phase("2", 0.0)
    after_rollback = set(traffic.sent) - after_rollback

    # an inverted model is rolled back at the first gate
    assert main(["models", "canary", "start", "3", "--actor", "canary-test"]) == 0
    log.wait("canary v3 at 1%")
    bad_start = len(traffic.sent)
    traffic.phase("3", 0.01)
    record = step(registry)
    assert (record["action"], record["extra"]["share_from"]) == ("canary_rollback", 0.01)
    checks = record["extra"]["checks"]
    assert "score_distribution" in {k for k, c in checks.items() if c["passed"] is False}
    assert registry.alias_version("canary") is None
    assert registry.alias_version("champion") == "1"

    # every transaction decided once, by the arm its card was routed to, and by which version
    records = [json.loads(m.value() or b"{}") for m in
               drain(s, s.topic_scores, len(traffic.sent), timeout=60, settle=3)]
    counts = Counter(r["transaction_id"] for r in records)
    assert sorted(counts) == sorted(traffic.sent) and set(counts.values()) == {1}
    by_id = {r["transaction_id"]: r for r in records}
    assert all(r["arm"] == traffic.arm_of[t] for t, r in by_id.items())
    on_canary = [r for r in records if r["arm"] == "canary"]
    assert all("champion" in r["scores"] for r in on_canary)
    bad_ids = set(traffic.sent[bad_start:])
    assert {r["model_version"]["batch"] for r in on_canary
            if r["transaction_id"] in bad_ids} == {"3"}
    assert {by_id[t]["model_version"]["batch"] for t in after_rollback} == {"1"}
    assert not any(r.get("error") for r in records)

    canary_log = audit.read(registry.audit_path, alias="canary")
    actions = [r["action"] for r in canary_log]
    assert actions[0] == "canary_start" and actions[-3:] == [
        "canary_complete", "canary_start", "canary_rollback"]
    assert [r["extra"]["share_to"] for r in canary_log if r["action"] == "canary_step"] == [
        0.10, 0.50]
    assert set(actions[1:-3]) <= {"canary_step", "canary_hold"}
    champion_log = [r["action"] for r in audit.read(registry.audit_path, alias="champion")]
    assert champion_log == ["register", "canary_complete", "rollback"]
    print(f"canary stream test: {len(traffic.sent)} transactions, phases {shares}, "
          f"{time.monotonic() - started:.0f}s after deployment")
