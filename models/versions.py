"""What the registry hands out: a loaded model and a version summary (the card: models.card).

Kept apart from :mod:`models.registry` so scorers and the API can type against these without
importing MLflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from infra.errors import ModelError


@dataclass(frozen=True)
class LoadedModel:
    """A registered booster with the ordered features it must be fed."""

    booster: xgb.Booster
    name: str
    version: str
    alias: str
    feature_names: tuple[str, ...]
    feature_service: str
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)  # test-window metrics
    label_delay_days: int = 7  # d of the delayed-window features it was trained with

    def require_features(self, servable: Iterable[str]) -> None:
        """Raise ``ModelError`` unless every model feature is in ``servable``."""
        missing = sorted(set(self.feature_names) - set(servable))
        if missing:
            raise ModelError(
                f"{self.name} v{self.version} needs features the scorer cannot serve: {missing}"
            )

    def predict(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fraud probabilities; a frame is reordered to ``feature_names``, an array must be."""
        if isinstance(features, pd.DataFrame):
            self.require_features(features.columns)
            features = features[list(self.feature_names)].to_numpy(dtype=np.float64)
        matrix = np.asarray(features, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ModelError(
                f"expected (n, {len(self.feature_names)}) features, got shape {matrix.shape}"
            )
        return np.asarray(self.booster.inplace_predict(matrix), dtype=np.float64)


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version as listed by ``GET /v1/models`` (JSON-friendly)."""

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    created: str  # ISO-8601 UTC
    feature_service: str
    metrics: dict[str, float] = field(default_factory=dict)  # test-window metrics
    label_delay_days: int = 7  # d of the delayed-window features it was trained with
    windows: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mlflow(
        cls, mv: Any, aliases: Iterable[str], run_metrics: dict[str, float]
    ) -> ModelVersionInfo:
        """From an MLflow ``ModelVersion`` (duck-typed) and its run's metrics."""
        return cls(
            name=str(mv.name),
            version=str(mv.version),
            aliases=tuple(sorted(aliases)),
            run_id=str(mv.run_id),
            created=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC).isoformat(),
            feature_service=str(mv.tags.get("feature_service", "")),
            metrics={
                k.removeprefix("test_"): float(v)
                for k, v in run_metrics.items()
                if k.startswith("test_")
            },
            windows={
                k.removeprefix("window."): str(v)
                for k, v in mv.tags.items()
                if k.startswith("window.")
            },
        )
