"""``fraudstream models ...`` end to end on a local MLflow: promote, one-command rollback,
show, and a canary of an inverted model rolled back by ``canary step`` (exit 1); the same
operations over the API, audited under the key's name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.core import FEATURE_NAMES
from infra.cli import main
from infra.settings import Settings
from models import audit
from models.registry import ModelRegistry
from models.train import TrainConfig, train_model

NAME = "fd-cli"


def _frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-01", tz="UTC")
    event_time = start + pd.to_timedelta(np.sort(rng.uniform(0, 40 * 86400, n)), unit="s")
    fraud = rng.random(n) < 0.06
    features = {name: rng.normal(0, 1, n) for name in FEATURE_NAMES}
    features["amount"] = rng.gamma(2.0, 40.0, n) * (1 + 2 * fraud)
    features["card_txn_count_1h"] = rng.poisson(1 + 3 * fraud, n).astype(float)
    return pd.DataFrame({
        **features, "is_fraud": fraud, "event_time": event_time,
        "label_time": event_time + pd.to_timedelta(rng.uniform(0.5, 10, n), unit="D"),
        "card_id": rng.integers(0, 300, n).astype(str),
    })


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelRegistry:
    monkeypatch.delenv("FRAUDSTREAM_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("FRAUDSTREAM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FRAUDSTREAM_MODEL_NAME", NAME)
    registry = ModelRegistry(Settings())
    frame = _frame()
    config = TrainConfig(num_boost_round=30, scale_pos_weight=1.0)
    for seed, alias in ((1, "champion"), (2, None)):
        result = train_model(frame, FEATURE_NAMES, config, seed=seed)
        registry.log_and_register(result, NAME, "fs", alias=alias)
    return registry


def test_promote_rollback_show_and_a_failed_canary(
    registry: ModelRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "promote", "2", "--actor", "ops:jane", "--reason", "A/B won"]) == 0
    assert registry.alias_version("champion", NAME) == "2"
    assert main(["models", "rollback", "--actor", "ops:jane"]) == 0
    assert registry.alias_version("champion", NAME) == "1"
    assert "rolled back: v2 -> v1" in capsys.readouterr().out
    assert main(["models", "promote", "9"]) == 1  # no such version: runtime failure
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["aliases"]) for v in listed] == [("1", ["champion"]), ("2", [])]
    assert main(["models", "show", "1", "--card"]) == 0
    assert "## Intended use" in capsys.readouterr().out

    assert main(["models", "canary", "start", "2", "--actor", "ops"]) == 0
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2000):
        score = float(rng.beta(1, 20))
        arm = "canary" if i % 2 else "champion"
        if arm == "canary":
            score = 1.0 - score  # an inverted model
        lines.append(json.dumps({"transaction_id": f"t{i}", "arm": arm, "score": score,
                                 "decision": "review" if score > 0.2 else "approve"}))
    decisions = tmp_path / "scores.jsonl"
    decisions.write_text("\n".join(lines))
    capsys.readouterr()
    assert main(["models", "canary", "step", "--decisions", str(decisions)]) == 1
    out = capsys.readouterr().out
    assert "rollback: rolled back at 1%" in out and "FAIL  score_distribution" in out
    assert registry.alias_version("canary", NAME) is None
    assert registry.alias_version("champion", NAME) == "1"
    actions = [r["action"] for r in audit.read(registry.audit_path, alias="canary")]
    assert actions == ["canary_start", "canary_rollback"]
    assert main(["models", "report", "--decisions", str(decisions)]) == 0
    assert "canary" in capsys.readouterr().out


def test_the_api_runs_the_same_operations_audited_as_the_key(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    """The model routes on the real registry (MLflow, audit log): promote, show, rollback,
    canary start/status/abort, each audited under the calling key's name."""
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from scoring.api import create_app
    from scoring.api_models import RegistryOps
    from tests.unit.test_api import KEY, OPS, OPS_KEY, make_deps

    settings = registry.settings.model_copy(update={
        "api_keys": SecretStr(f"alice:{KEY},ops:{OPS_KEY}"), "online_reload_seconds": 60})
    deps = make_deps(settings, ops=RegistryOps(settings, ModelRegistry(settings)))
    with TestClient(create_app(settings, deps, console=False)) as client:
        promoted = client.post("/v1/models/2/alias", headers=OPS,
                               json={"alias": "champion", "reason": "won the A/B"})
        assert promoted.status_code == 200, promoted.text
        assert registry.alias_version("champion", NAME) == "2"
        shown = client.get("/v1/models/2").json()
        assert len(shown["lineage"]["git_commit"]) == 40 and "## Intended use" in \
            shown["model_card"]
        back = client.post("/v1/models/rollback", headers=OPS, json={"reason": "bad night"})
        assert back.status_code == 200 and back.json()["new_version"] == "1"
        assert registry.alias_version("champion", NAME) == "1"
        started = client.post("/v1/models/canary", headers=OPS, json={"version": "2"})
        assert started.status_code == 200, started.text
        assert client.get("/v1/models/canary").json() == {"version": "2", "share": 0.01,
                                                          "champion": "1"}
        again = client.post("/v1/models/canary", headers=OPS, json={"version": "2",
                                                                     "share": 0.1})
        assert again.status_code == 200  # the same version: its share is set again
        assert client.post("/v1/models/canary/abort", headers=OPS, json={}).status_code == 200
        assert client.post("/v1/models/canary/abort", headers=OPS).status_code == 409
    records = audit.read(registry.audit_path, model=NAME)
    assert [(r["action"], r["actor"]) for r in records[-5:]] == [
        ("promote", "ops"), ("rollback", "ops"), ("canary_start", "ops"),
        ("canary_start", "ops"), ("canary_abort", "ops")]
