"""MLflow registry round trip on an embedded sqlite store (no external service needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infra.errors import ModelError
from infra.settings import Settings
from models import audit
from models.registry import ModelRegistry
from models.train import TrainConfig, TrainResult, train_model
from tests.integration.frames import TOY_FEATURES, toy_frame

pytestmark = pytest.mark.integration

FEATURES = TOY_FEATURES
NAME = "fraud-detector-test"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return toy_frame(3000)


@pytest.fixture(scope="module")
def results(frame: pd.DataFrame) -> tuple[TrainResult, TrainResult]:
    config = TrainConfig(num_boost_round=40)
    return (
        train_model(frame, FEATURES, config, seed=1),
        train_model(frame, FEATURES, config, seed=2),
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    # explicit: an exported FRAUDSTREAM_MLFLOW_TRACKING_URI must not redirect the test
    return ModelRegistry(Settings(state_dir=tmp_path / "state", mlflow_tracking_uri=None))


def test_register_alias_load_and_audit(
    registry: ModelRegistry, results: tuple[TrainResult, TrainResult], frame: pd.DataFrame
) -> None:
    first, second = results
    started = time.perf_counter()
    v1 = registry.log_and_register(
        first, NAME, "fraud_v1", alias="champion", extra_tags={"trigger": "test"}
    )
    elapsed = time.perf_counter() - started
    assert v1 == "1"
    assert elapsed < 20, f"log_and_register took {elapsed:.1f}s"  # ~1 s incl. sqlite set-up
    assert registry.alias_version("champion", NAME) == "1"

    model = registry.load("champion", NAME)
    assert (model.version, model.alias, model.feature_service) == ("1", "champion", "fraud_v1")
    assert model.feature_names == tuple(FEATURES)
    x = frame[FEATURES].to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(model.predict(x), first.booster.inplace_predict(x))
    shuffled = frame[FEATURES[::-1]]  # a frame is reordered to the signature
    np.testing.assert_array_equal(model.predict(shuffled), first.booster.inplace_predict(x))

    (line,) = audit.read(registry.audit_path)
    assert line["previous_version"] is None and line["new_version"] == "1"
    assert line["actor"] == "fraudstream.train" and line["alias"] == "champion"
    assert line["metrics"]["roc_auc"] == pytest.approx(first.metrics["roc_auc"])

    v2 = registry.log_and_register(second, NAME, "fraud_v1", alias=None)
    assert v2 == "2" and registry.alias_version("champion", NAME) == "1"
    record = registry.set_alias(
        NAME,
        "champion",
        v2,
        actor="analyst:jane",
        reason="challenger won on matured labels",
        metrics={"average_precision": 0.5, "recall_at_budget": np.nan},
    )
    assert record["previous_version"] == "1" and record["new_version"] == "2"
    lines = audit.read(registry.audit_path, model=NAME, alias="champion")
    assert [r["new_version"] for r in lines] == ["1", "2"]
    assert lines[-1]["actor"] == "analyst:jane" and lines[-1]["metrics"]["recall_at_budget"] is None
    assert registry.load("champion", NAME).version == "2"

    versions = registry.list_versions(NAME)
    assert [(v.version, v.aliases) for v in versions] == [("1", ()), ("2", ("champion",))]
    assert versions[0].metrics["roc_auc"] == pytest.approx(first.metrics["roc_auc"])
    assert versions[0].windows == first.windows and versions[0].feature_service == "fraud_v1"


def test_version_carries_signature_card_profile_and_pinned_requirements(
    registry: ModelRegistry, results: tuple[TrainResult, TrainResult], tmp_path: Path
) -> None:
    import mlflow

    version = registry.log_and_register(results[0], NAME, "fraud_v1", alias="challenger")
    mv = registry.client.get_model_version(NAME, version)
    assert json.loads(mv.tags["feature_names"]) == FEATURES
    assert mv.tags["window.test_start"] == results[0].windows["test_start"]
    assert mv.run_id is not None
    out = Path(registry.client.download_artifacts(mv.run_id, "", str(tmp_path / "run")))
    assert json.loads((out / "reference_profile.json").read_text()) == results[0].reference
    assert f"{NAME} v{version}" in (out / "model_card.md").read_text()
    assert json.loads((out / "feature_service.json").read_text())["feature_names"] == FEATURES

    info = mlflow.models.get_model_info(f"models:/{NAME}/{version}")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == FEATURES  # order is the contract
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{NAME}/{version}", dst_path=str(tmp_path / "model")
        )
    )
    # exactly what log_model was given (plus MLflow's own pin): no requirement inference ran
    requirements = sorted((model_dir / "requirements.txt").read_text().split())
    assert len(requirements) == 2 and requirements[0].startswith("mlflow==")
    assert requirements[1].startswith(("xgboost-cpu==", "xgboost=="))


def test_missing_alias_and_bad_version(
    registry: ModelRegistry, results: tuple[TrainResult, TrainResult]
) -> None:
    assert registry.alias_version("champion", NAME) is None  # nothing registered yet
    with pytest.raises(ModelError, match="alias 'champion'"):
        registry.load("champion", NAME)
    assert registry.list_versions(NAME) == []
    registry.log_and_register(results[0], NAME, "fraud_v1", alias=None)
    assert registry.alias_version("shadow", NAME) is None
    with pytest.raises(ModelError, match="alias 'shadow'"):
        registry.load("shadow", NAME)
    with pytest.raises(ModelError, match="cannot set"):
        registry.set_alias(NAME, "champion", "99", actor="test", reason="no such version")
    assert audit.read(registry.audit_path) == []


def test_scorer_can_refuse_features_it_cannot_serve(
    registry: ModelRegistry, results: tuple[TrainResult, TrainResult]
) -> None:
    registry.log_and_register(results[0], NAME, "fraud_v1")
    model = registry.load("champion", NAME)
    model.require_features([*FEATURES, "extra"])
    with pytest.raises(ModelError, match="merchant_risk"):
        model.require_features(FEATURES[:2])
    with pytest.raises(ModelError, match="expected"):
        model.predict(np.zeros((2, 2)))
