"""Lineage, model card, robust aliases, promote/rollback and a canary on a local MLflow
(sqlite, local artifacts; no other service)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infra.errors import ModelError, ModelUnavailable
from infra.settings import Settings
from models import audit, rollout, rollout_canary
from models.card import slices_of_test_window
from models.lineage import data_lineage, frame_hash, git_commit
from models.registry import ModelRegistry
from models.reports import ArmEvidence
from models.train import TrainConfig, TrainResult, train_model
from tests.integration.frames import TOY_FEATURES, toy_frame

FEATURES = TOY_FEATURES
NAME = "fraud-detector-rollout"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return toy_frame(4000, slices=True)


@pytest.fixture(scope="module")
def results(frame: pd.DataFrame) -> list[TrainResult]:
    config = TrainConfig(num_boost_round=40, scale_pos_weight=1.0)  # comparable scores
    return [train_model(frame, FEATURES, config, seed=s) for s in (1, 2, 3)]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(Settings(state_dir=tmp_path / "state", mlflow_tracking_uri=None,
                                  model_name=NAME, seed=11))


def _artifacts(registry: ModelRegistry, version: str) -> Path:
    uri = registry.client.get_model_version_download_uri(NAME, version)
    return Path(uri.removeprefix("file://"))


def _register(registry: ModelRegistry, result: TrainResult, frame: pd.DataFrame,
              alias: str | None) -> str:
    return registry.log_and_register(result, NAME, "fs_test", alias=alias,
                                     data=data_lineage(frame, source="synthetic"),
                                     slices=slices_of_test_window(frame, result))


def test_lineage_and_model_card_read_back(
    registry: ModelRegistry, results: list[TrainResult], frame: pd.DataFrame, tmp_path: Path
) -> None:
    version = _register(registry, results[0], frame, "champion")
    shown = rollout.show_model(registry, version)
    lineage = shown["lineage"]
    assert lineage["git_commit"] == git_commit()[0] and len(lineage["git_commit"]) == 40
    assert lineage["data_hash"] == frame_hash(frame)
    times = pd.to_datetime(frame["event_time"], utc=True)
    assert lineage["data_start"] == times.min().isoformat()
    assert lineage["data_end"] == times.max().isoformat()
    assert int(lineage["rows"]) == len(frame)
    assert int(lineage["frauds"]) == int(frame["is_fraud"].sum())
    assert int(lineage["fit_frauds"]) == results[0].counts["fit_fraud"]
    assert lineage["seed"] == str(results[0].params["seed"])
    import numpy as _np
    import xgboost as _xgb

    assert lineage["package.numpy"] == _np.__version__
    assert lineage["package.xgboost"] == _xgb.__version__
    assert {"package.river", "package.feast"} <= set(lineage)

    slices = {(r["slice"], r["value"]): r for r in shown["slices"]}
    assert {s for s, _ in slices} == {"channel", "country", "amount_band", "card_age",
                                      "merchant_category"}
    test_rows = results[0].counts["test"]
    for name in ("channel", "country", "amount_band", "card_age", "merchant_category"):
        assert sum(r["n"] for (s, _), r in slices.items() if s == name) == test_rows
    card = shown["model_card"]
    for heading in ("## Intended use", "## Data", "## Metrics (test window)",
                    "## Metrics by slice", "## Known limits", "## Lineage"):
        assert heading in card
    assert frame_hash(frame) in card and "| channel | ecom |" in card
    assert shown["history"][0]["action"] == "register"


def test_optional_aliases_fail_with_one_error(
    registry: ModelRegistry, results: list[TrainResult], frame: pd.DataFrame
) -> None:
    _register(registry, results[0], frame, "champion")
    with pytest.raises(ModelUnavailable) as missing:
        registry.load("shadow", served=FEATURES)
    assert (missing.value.alias, missing.value.reason, missing.value.version) == (
        "shadow", "missing", None)

    v2 = _register(registry, results[1], frame, "shadow")
    with pytest.raises(ModelUnavailable) as unservable:
        registry.load("shadow", served=FEATURES[::-1])
    assert unservable.value.reason == "unservable" and unservable.value.version == v2

    shutil.rmtree(_artifacts(registry, v2))  # the version's artifacts are gone
    with pytest.raises(ModelUnavailable) as broken:
        registry.load("shadow", served=FEATURES)
    assert broken.value.reason == "broken" and "cannot be loaded" in str(broken.value)
    assert isinstance(broken.value, ModelError)
    assert registry.load("champion", served=FEATURES).version == "1"  # champion unaffected


def test_promote_and_rollback_from_the_audit_log(
    registry: ModelRegistry, results: list[TrainResult], frame: pd.DataFrame
) -> None:
    v1 = _register(registry, results[0], frame, "champion")
    v2 = _register(registry, results[1], frame, None)
    v3 = _register(registry, results[2], frame, None)
    with pytest.raises(ModelUnavailable, match="expects features"):
        rollout.promote(registry, v2, "champion", actor="ops", served=FEATURES[:2])
    assert registry.alias_version("champion") == v1
    rollout.promote(registry, v2, "champion", actor="ops", served=FEATURES)
    rollout.promote(registry, v3, "champion", actor="ops", served=FEATURES)

    record = rollout.rollback(registry, actor="ops:jane", served=FEATURES)
    assert (record["previous_version"], record["new_version"]) == (v3, v2)
    assert registry.alias_version("champion") == v2
    rollout.rollback(registry, actor="ops:jane", served=FEATURES)
    assert registry.alias_version("champion") == v1
    with pytest.raises(ModelError, match="no previous holder"):
        rollout.rollback(registry, actor="ops:jane", served=FEATURES)

    rollout.promote(registry, v3, "champion", actor="ops", served=FEATURES)
    shutil.rmtree(_artifacts(registry, v1))  # the rollback target no longer loads
    with pytest.raises(ModelError, match=f"back to v{v1}"):
        rollout.rollback(registry, actor="ops", served=FEATURES)
    assert registry.alias_version("champion") == v3  # a failed rollback moves nothing
    actions = [r["action"] for r in audit.read(registry.audit_path, alias="champion")]
    assert actions == ["register", "promote", "promote", "rollback", "rollback", "promote"]
    assert {r["actor"] for r in audit.read(registry.audit_path)} >= {"ops", "ops:jane"}


def _arm(scores: np.ndarray, labels: np.ndarray, threshold: float) -> ArmEvidence:
    return ArmEvidence(scores=scores, alerts=scores >= threshold, labels=labels.astype(float))


def test_canary_steps_to_champion_and_every_step_is_audited(
    registry: ModelRegistry, results: list[TrainResult], frame: pd.DataFrame
) -> None:
    v1 = _register(registry, results[0], frame, "champion")
    v2 = _register(registry, results[1], frame, None)
    rollout_canary.start_canary(registry, v2, actor="ops", served=FEATURES)
    assert registry.canary_share() == pytest.approx(0.01)
    x = frame[FEATURES].to_numpy(dtype=np.float64)
    y = frame["is_fraud"].to_numpy()
    champion_scores = results[0].booster.inplace_predict(x)
    canary_scores = results[1].booster.inplace_predict(x)
    threshold = float(np.quantile(champion_scores, 0.95))
    half = len(frame) // 2  # the arms see different transactions, as routing makes them
    champ = _arm(champion_scores[:half], y[:half], threshold)
    canary = _arm(canary_scores[half:], y[half:], threshold)
    shares = []
    for _ in range(4):
        decision, _records = rollout_canary.step_canary(registry, champ, canary, actor="ops")
        shares.append(decision.next_share)
        if decision.action == "complete":
            break
    assert shares == [0.10, 0.50, 1.0]
    assert registry.alias_version("champion") == v2 and registry.alias_version("canary") is None
    assert registry.canary_share() == 0.0
    canary_log = audit.read(registry.audit_path, alias="canary")
    assert [r["action"] for r in canary_log] == ["canary_start", "canary_step", "canary_step",
                                                 "canary_complete"]
    assert [r["extra"]["share_to"] for r in canary_log[1:]] == [0.10, 0.50, 1.0]
    assert json.dumps(canary_log)  # strict JSON
    assert rollout.rollback(registry, actor="ops", served=FEATURES)["new_version"] == v1
