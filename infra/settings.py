"""One frozen settings object per process, read from ``FRAUDSTREAM_*`` environment variables.

Every process (CLI command, worker, API, test fixture) builds one :class:`Settings` at start-up
and passes it down; nothing below reads ``os.environ``. Defaults describe the embedded local
set-up (Kafka and Redis as local processes under ``state_dir``, MLflow on sqlite), and each
service can be pointed elsewhere by one variable, e.g. ``FRAUDSTREAM_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FRAUDSTREAM_",
        frozen=True,
        extra="forbid",
    )

    # -- where state lives (local services' data and logs, MLflow, Feast registry) --------
    state_dir: Path = Field(default=Path(".fraudstream"), description="local state folder")
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "fraudstream",
        description="downloads kept across runs (the Kafka broker's jars)",
    )

    # -- Kafka --------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="bootstrap servers of an existing cluster; unset = the local broker",
    )
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_version: str = "4.1.1"
    kafka_heap: str = "-Xms512m -Xmx1g"
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    topic_transactions: str = "transactions"
    topic_dlq: str = "transactions.dlq"
    topic_featurized: str = "transactions.featurized"
    topic_scores: str = "scores"
    topic_alerts: str = "alerts"
    topic_labels: str = "labels"
    topic_drift: str = "drift"

    # -- Redis (Feast online store) -----------------------------------------------------
    redis_url: str | None = Field(
        default=None, description="redis://host:port of an existing Redis; unset = local"
    )
    redis_port: int = 16379
    redis_password: SecretStr | None = None
    online_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    feast_project: str = Field(default="fraudstream", pattern=r"^[a-z][a-z0-9_]*$")

    # -- MLflow -------------------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(
        default=None, description="tracking server URI; unset = sqlite under state_dir"
    )
    model_name: str = "fraud-detector"

    # -- workers ------------------------------------------------------------------------
    feature_batch_size: int = Field(default=500, ge=1)
    feature_batch_ms: int = Field(default=20, ge=1)
    faust_store: Literal["memory://", "rocksdb://", "rocksdict://"] = "memory://"
    faust_web_port: int = 16066
    score_batch_size: int = Field(default=500, ge=1)
    score_batch_ms: int = Field(default=20, ge=1)
    consumer_group_features: str = "fraudstream-features"
    consumer_group_scorer: str = "fraudstream-scorer"
    scorer_session_timeout_ms: int = Field(default=15_000, ge=6_000, le=300_000)
    max_message_bytes: int = Field(default=16 * 1024, ge=256)

    # -- decision policy ----------------------------------------------------------------
    review_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="unset = the champion's score at its alert budget on its test window",
    )
    decline_threshold: float = Field(default=0.9, ge=0.0, le=1.0)
    top_reasons: int = Field(default=3, ge=1, le=20)

    # -- training -----------------------------------------------------------------------
    xgb_nthread: int = Field(default=1, ge=1)
    seed: int = 7

    # -- derived ------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_connection(self) -> str:
        """``host:port[,password=...]`` in the form Feast's Redis online store expects."""
        if self.redis_url:
            rest = self.redis_url.split("://", 1)[-1].rstrip("/")
            hostport = rest.rsplit("@", 1)[-1].split("/", 1)[0]
        else:
            hostport = f"127.0.0.1:{self.redis_port}"
        if self.redis_password is not None:
            return f"{hostport},password={self.redis_password.get_secret_value()}"
        return hostport

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.state_dir / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> str:
        return str((self.state_dir / "mlflow" / "artifacts").resolve())

    @property
    def feast_dir(self) -> Path:
        return self.state_dir / "feast"

    def redacted(self) -> dict[str, Any]:
        """A dump safe to log: secrets show as ``**********``."""
        return {k: (str(v) if isinstance(v, SecretStr | Path) else v) for k, v in self}
