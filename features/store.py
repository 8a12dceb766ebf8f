"""Feast adapter: applies the definitions and writes/reads transaction features.

Owns one :class:`feast.FeatureStore` built from settings (local registry under
``state_dir/feast``, Redis online store), created lazily because ``import feast`` and registry
loading take seconds. Writes go through ``write_to_online_store`` once per micro-batch (one
call costs ~2.5 ms whatever the batch size); reads fetch the FeatureService for a batch of
transaction ids in one call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from features.core import FEATURE_NAMES, Features
from features.definitions import (
    FEATURE_SERVICE_NAME,
    TIMESTAMP_FIELD,
    TRANSACTION_VIEW,
    build_definitions,
)
from infra.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

log = logging.getLogger("fraudstream.features.store")


def repo_config(settings: Settings) -> Any:
    from feast.repo_config import RegistryConfig, RepoConfig

    feast_dir = settings.feast_dir.resolve()
    feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=RegistryConfig(path=str(feast_dir / "registry.db"), cache_ttl_seconds=0),
        online_store={
            "type": "redis",
            "connection_string": settings.redis_connection,
            "key_ttl_seconds": settings.online_ttl_seconds,
        },
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=str(feast_dir),
    )


class OnlineFeatures:
    """Feature writes and reads against Feast's online store (Redis)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: FeatureStore | None = None
        self._service: FeatureService | None = None

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            from feast import FeatureStore

            self._store = FeatureStore(config=repo_config(self._settings))
        return self._store

    def apply(self) -> None:
        """Register entities, views and the FeatureService (idempotent)."""
        offline = (self._settings.feast_dir / "offline").resolve()
        offline.mkdir(parents=True, exist_ok=True)
        ttl = timedelta(seconds=self._settings.online_ttl_seconds)
        self.store.apply(build_definitions(offline, ttl))  # type: ignore[arg-type]
        log.info("feast definitions applied (service %s)", FEATURE_SERVICE_NAME)

    def feature_service(self) -> FeatureService:
        if self._service is None:
            self._service = self.store.get_feature_service(FEATURE_SERVICE_NAME)
        return self._service

    def write(self, rows: Sequence[tuple[str, str, int, Features]]) -> None:
        """Write ``(transaction_id, card_id, event_ms, features)`` rows in one call."""
        if not rows:
            return
        import pandas as pd

        columns: dict[str, list[Any]] = {
            "transaction_id": [r[0] for r in rows],
            "card_id": [r[1] for r in rows],
            TIMESTAMP_FIELD: [datetime.fromtimestamp(r[2] / 1000.0, tz=UTC) for r in rows],
        }
        for i, name in enumerate(FEATURE_NAMES):
            columns[name] = [float(r[3][i]) for r in rows]
        self.store.write_to_online_store(TRANSACTION_VIEW, pd.DataFrame(columns))

    def read(self, transaction_ids: Sequence[str]) -> list[Features | None]:
        """The served feature vectors, in FeatureService order; ``None`` where missing."""
        if not transaction_ids:
            return []
        response = self.store.get_online_features(
            features=self.feature_service(),
            entity_rows=[{"transaction_id": t} for t in transaction_ids],
        ).to_dict()
        columns = [response[name] for name in FEATURE_NAMES]
        out: list[Features | None] = []
        for i in range(len(transaction_ids)):
            values = [col[i] for col in columns]
            out.append(None if any(v is None for v in values) else tuple(values))
        return out

    def served_features(self) -> list[str]:
        """Ordered feature names the FeatureService serves (for model compatibility checks)."""
        service = self.feature_service()
        return [f.name for proj in service.feature_view_projections for f in proj.features]
