"""What the scorer needs from its collaborators, as protocols (fakes implement them in tests).

The production implementations are ``features.store.OnlineFeatures``,
``models.registry.ModelRegistry`` / ``models.versions.LoadedModel`` and
``models.online_snapshot.OnlineModelHandle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from infra.errors import ModelError


class FeatureReader(Protocol):
    """The online feature read the scorer needs (``features.store.OnlineFeatures``)."""

    def read(self, transaction_ids: Sequence[str]) -> list[tuple[float, ...] | None]: ...
    def served_features(self) -> list[str]: ...


class ModelSource(Protocol):
    """Where models come from (``models.registry.ModelRegistry`` provides it)."""

    def load(self, alias: str = ...) -> ScoringModel: ...
    def alias_version(self, alias: str = ...) -> str | None: ...
    def canary_share(self) -> float: ...


class OnlineScorer(Protocol):
    """The River online model as the scorer uses it.

    ``models.online_snapshot.OnlineModelHandle`` provides it.
    """

    version: str | None

    def maybe_reload(self, force: bool = False) -> bool: ...
    def combine(
        self, xgb: npt.NDArray[np.float64], matrix: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]: ...


class ScoringModel(Protocol):
    """What the scorer needs of a model (``models.versions.LoadedModel`` provides it)."""

    @property
    def booster(self) -> Any: ...
    @property
    def version(self) -> str: ...
    @property
    def feature_names(self) -> Sequence[str]: ...
    @property
    def metrics(self) -> dict[str, float]: ...


def check_servable(model: ScoringModel, served: Sequence[str]) -> None:
    """Refuse a model whose signature is not the served FeatureService's ordered features."""
    if list(model.feature_names) != list(served):
        raise ModelError(
            f"model version {model.version} expects features {list(model.feature_names)}, "
            f"but the feature service serves {list(served)}"
        )
