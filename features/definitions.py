"""Feast definitions: entities, feature views, push sources and the versioned FeatureService.

Models are trained against :data:`FEATURE_SERVICE_NAME`; its ordered feature list is the
model signature, and a scorer refuses a model whose features that service cannot serve.
Bump the service version whenever the feature list or a feature's meaning changes
(v2: card windows from 10 minutes to 30 days, card profile, terminal volumes and
label-aware terminal fraud rates; v3: label-delay-aware features — terminal counts and
fraud rates over windows ending the label delay before T, and the card's known frauds —
see ``docs/features.md``).

Only definitions live here (no I/O): :mod:`features.store` applies them to a registry.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

# isort: off
import features.feast_guard  # noqa: F401 - before any feast import (see its doc)
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, String
from feast.value_type import ValueType

# isort: on

from features.core import FEATURE_NAMES

FEATURE_SERVICE_NAME = "fraud_features_v3"
TRANSACTION_VIEW = "transaction_features"
TRANSACTION_PUSH_SOURCE = "transaction_features_push"
TIMESTAMP_FIELD = "event_timestamp"
ENTITY_JOIN_KEY = "transaction_id"


def offline_path(offline_dir: Path) -> Path:
    """The offline store of the view: a folder of Parquet part files (stream and backfill)."""
    return offline_dir / TRANSACTION_VIEW


def build_definitions(offline_dir: Path, ttl: timedelta) -> list[object]:
    """All Feast objects, with the offline store's files under ``offline_dir``.

    Features are keyed by transaction: the row for T holds T's full vector (its card
    features and its terminal's features, T included), written by the stream stage before T
    is decided (:mod:`features.stream.batch`), which scores that same vector; the REST API
    reads exactly the vector of T, even when later events of the same card or terminal were
    processed in the meantime, and the offline
    point-in-time join (entity = T, timestamp = T's event time) finds the same row.
    """
    transaction = Entity(
        name="transaction",
        join_keys=[ENTITY_JOIN_KEY],
        value_type=ValueType.STRING,
        description="one card transaction",
    )
    batch_source = FileSource(
        name="transaction_features_offline",
        path=str(offline_path(offline_dir)),
        timestamp_field=TIMESTAMP_FIELD,
    )
    push_source = PushSource(name=TRANSACTION_PUSH_SOURCE, batch_source=batch_source)
    view = FeatureView(
        name=TRANSACTION_VIEW,
        entities=[transaction],
        ttl=ttl,
        schema=[Field(name="card_id", dtype=String), Field(name="terminal", dtype=String)]
        + [Field(name=name, dtype=Float64) for name in FEATURE_NAMES],
        source=push_source,
        online=True,
        description="card and terminal features as of (and including) each transaction",
    )
    service = FeatureService(
        name=FEATURE_SERVICE_NAME,
        features=[view[list(FEATURE_NAMES)]],
        description="features of batch models v3, in signature order",
    )
    return [transaction, batch_source, push_source, view, service]
