"""Bring a deployment to a scoring-ready state: topics, Feast definitions, a champion.

Used by the demo, the integration tests and the benchmarks, so they all set up the same way.
"""

from __future__ import annotations

from pathlib import Path

from infra.settings import Settings


def ensure_infrastructure(settings: Settings) -> None:
    """Create the topics (idempotent) and apply the Feast definitions."""
    from features.store import OnlineFeatures
    from streams.clients import make_admin
    from streams.topics import catalog, ensure_topics

    ensure_topics(make_admin(settings), catalog(settings))
    OnlineFeatures(settings).apply()


def bootstrap(settings: Settings, history: Path, config: object | None = None) -> str:
    """Topics, Feast, and a champion trained on ``history``; returns the model version."""
    from models.pipeline import train_and_register
    from models.train import TrainConfig

    ensure_infrastructure(settings)
    train_config = config if isinstance(config, TrainConfig) else None
    return train_and_register(settings, history, alias="champion", config=train_config)
