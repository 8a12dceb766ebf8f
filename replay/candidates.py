"""What a backtest compares: models (registered or trained in-process) x decision policies.

Models come from the MLflow registry exactly as the scorer loads them
(:meth:`models.registry.ModelRegistry.load` for an alias; a version number loads that
version with the same checks), or are trained in-process by :func:`models.train.train_model`
on the window before the test, with labels as known at the train window's end.

Policies (``--policy``):

* ``stream`` (default): what the scorer would use, :func:`scoring.policy.policy_for` with the
  settings' thresholds and the model's recorded alert-budget threshold;
* ``[name:]review=R[,decline=D]``: fixed thresholds (decline defaults to the settings');
* ``[name:]budget=B``: :meth:`Policy.from_alert_budget` on the model's scores over the
  ``calibration`` rows just before the test window (known at its start: no look-ahead).

For a model trained in-process the recorded budget threshold is also taken on those
calibration rows, not on the test window that :func:`train_model` evaluates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from infra.errors import ConfigurationError, ModelError
from infra.settings import Settings
from infra.timestamps import utc
from models.train import TrainConfig, train_model
from scoring.policy import Policy, policy_for


@dataclass(frozen=True)
class Model:
    """A booster with the identity the report shows (``label``) and its signature."""

    label: str
    version: str
    booster: Any
    feature_names: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    train_window: tuple[str, str] | None = None  # registered models: [train_start, train_end)

    def overlaps(self, test_start: pd.Timestamp, test_end: pd.Timestamp) -> bool:
        """Whether the model was trained on rows of ``[test_start, test_end)``: its scores
        there are in-sample, and the backtest flatters it."""
        if self.train_window is None:
            return False
        start, end = (utc(t) for t in self.train_window)
        return bool(start < test_end and test_start < end)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """``booster.inplace_predict`` on the features in signature order (as the scorer)."""
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            raise ModelError(f"model {self.label} needs features not computed: {missing}")
        matrix = frame[list(self.feature_names)].to_numpy(dtype=np.float64)
        return np.asarray(self.booster.inplace_predict(matrix))


@dataclass(frozen=True)
class PolicySpec:
    name: str
    review: float | None = None
    decline: float | None = None
    budget: float | None = None

    def build(self, model: Model, calibration_scores: np.ndarray,
              settings: Settings) -> Policy:
        if self.budget is not None:
            return Policy.from_alert_budget(calibration_scores.astype(np.float64), self.budget)
        decline = settings.decline_threshold if self.decline is None else self.decline
        review = settings.review_threshold if self.review is None else self.review
        return policy_for(review, decline, model.metrics.get("budget_threshold"))


STREAM_POLICY = PolicySpec("stream")


def parse_policy(spec: str) -> PolicySpec:
    """``stream`` | ``[name:]review=0.3[,decline=0.8]`` | ``[name:]budget=0.005``."""
    if spec.strip() == "stream":
        return STREAM_POLICY
    name, _, body = spec.rpartition(":")
    values: dict[str, float] = {}
    for part in body.split(","):
        key, sep, raw = part.partition("=")
        try:
            if not sep or key.strip() not in ("review", "decline", "budget"):
                raise ValueError
            values[key.strip()] = float(raw)
        except ValueError:
            raise ConfigurationError(
                f"--policy {spec!r}: expected stream, review=R[,decline=D] or budget=B"
            ) from None
    if "budget" in values and len(values) > 1:
        raise ConfigurationError(f"--policy {spec!r}: budget excludes review/decline")
    if "budget" not in values and "review" not in values:
        raise ConfigurationError(f"--policy {spec!r}: needs review= or budget=")
    return PolicySpec(name or body, values.get("review"), values.get("decline"),
                      values.get("budget"))


def registry_model(settings: Settings, spec: str) -> Model:
    """``champion``/``challenger``/any alias, or a version number (``3`` or ``v3``)."""
    from models.registry import ModelRegistry

    registry = ModelRegistry(settings)
    if re.fullmatch(r"v?\d+", spec):
        return _load_version(registry, spec.lstrip("v"))
    loaded = registry.load(spec)
    return Model(f"{spec}(v{loaded.version})", loaded.version, loaded.booster,
                 loaded.feature_names, loaded.metrics,
                 _train_window(registry, str(loaded.version)))


def _train_window(registry: Any, version: str) -> tuple[str, str] | None:
    """``(train_start, train_end)`` as recorded with the version (``window.*`` tags)."""
    try:
        mv = registry.client.get_model_version(registry.settings.model_name, version)
    except Exception:  # noqa: BLE001 - the window only feeds a warning
        return None
    tags = mv.tags or {}
    if "window.train_start" in tags and "window.train_end" in tags:
        return str(tags["window.train_start"]), str(tags["window.train_end"])
    return None


def _load_version(registry: Any, version: str) -> Model:
    """One registered version, loaded as :meth:`ModelRegistry.load` loads an alias's."""
    import mlflow.xgboost
    from mlflow.exceptions import MlflowException

    name = registry.settings.model_name
    try:
        mv = registry.client.get_model_version(name, version)
    except MlflowException as exc:
        raise ModelError(f"model {name!r} has no version {version}: {exc.message}") from None
    run = registry.client.get_run(mv.run_id) if mv.run_id else None
    raw = mv.tags.get("feature_names") or (run.data.tags.get("feature_names") if run else None)
    if raw is None:
        raise ModelError(f"{name} v{version} has no feature_names tag")
    metrics = {k.removeprefix("test_"): float(v) for k, v in
               (run.data.metrics if run else {}).items() if k.startswith("test_")}
    registry._activate()  # MLflow's loader only reads process-global URIs
    booster = mlflow.xgboost.load_model(f"models:/{name}/{version}")
    window = ((str(mv.tags["window.train_start"]), str(mv.tags["window.train_end"]))
              if "window.train_start" in mv.tags and "window.train_end" in mv.tags else None)
    return Model(f"v{version}", str(version), booster, tuple(json.loads(raw)), metrics,
                 window)


def trained_model(frame: pd.DataFrame, feature_names: tuple[str, ...], config: TrainConfig,
                  calibration: np.ndarray, settings: Settings, label: str = "trained"
                  ) -> Model:
    """Train on the window before the test (``config``'s windows); see the module doc."""
    return trained_models(frame, feature_names, config, calibration, settings, label)[0]


def trained_models(frame: pd.DataFrame, feature_names: tuple[str, ...], config: TrainConfig,
                   calibration: np.ndarray, settings: Settings, label: str = "trained"
                   ) -> list[Model]:
    """The in-process model and, when the frame has its columns, the textbook baseline
    (:mod:`models.baseline`) fitted on the same labeled train rows."""
    result = train_model(frame, feature_names, config, nthread=settings.xgb_nthread,
                         seed=settings.seed)
    trained_at = result.windows["train_end"][:10]
    out = [_calibrated(Model(label, f"{label}@{trained_at}", result.booster,
                             result.feature_names, dict(result.metrics)),
                       frame, calibration, config.budget)]
    if result.baseline is not None:
        from models.baseline import BASELINE_LABEL

        out.append(_calibrated(Model(BASELINE_LABEL, f"{BASELINE_LABEL}@{trained_at}",
                                     result.baseline, result.baseline.feature_names,
                                     dict(result.baseline_metrics)),
                               frame, calibration, config.budget))
    return out


def _calibrated(model: Model, frame: pd.DataFrame, calibration: np.ndarray,
                budget: float) -> Model:
    """``model`` with its alert-budget threshold taken on the calibration rows."""
    rows = frame.loc[calibration, list(model.feature_names)].to_numpy(dtype=np.float64)
    if rows.size:
        scores = np.sort(np.asarray(model.booster.inplace_predict(rows), dtype=np.float64))
        n_alerts = max(1, int(np.ceil(round(budget * scores.size, 9))))
        model.metrics["budget_threshold"] = float(scores[::-1][n_alerts - 1])
    return model
