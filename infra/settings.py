"""One frozen settings object per process, read from ``FRAUDSTREAM_*`` environment variables.

Every process (CLI command, worker, API, test fixture) builds one :class:`Settings` at start-up
and passes it down; nothing below reads ``os.environ``. Defaults describe the embedded local
set-up (Kafka and Redis as local processes under ``state_dir``, MLflow on sqlite), and each
service can be pointed elsewhere by one variable, e.g. ``FRAUDSTREAM_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Metrics of models.metrics.fraud_metrics a promotion may compare (higher is better).
Metric = Literal[
    "average_precision", "roc_auc", "recall_at_budget", "amount_recall_at_budget",
    "card_precision_at_k",
]


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
    topic_scores: str = "scores"
    topic_alerts: str = "alerts"
    topic_labels: str = "labels"
    topic_labels_dlq: str = "labels.dlq"
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
    metrics_host: str = Field(default="127.0.0.1", description="bind address of /metrics")
    max_message_bytes: int = Field(default=16 * 1024, ge=256)

    # -- the one-hop stream stage (features + decision; see docs/features.md) -------------
    topic_card_changelog: str = Field(
        default="fraudstream.card-state.changelog",
        description="internal, compacted: card states, committed with the stage's outputs")
    consumer_group_stream: str = "fraudstream-stream"
    stream_batch_size: int = Field(default=1000, ge=1)
    stream_batch_ms: int = Field(
        default=100, ge=1, description="a batch closes this long after the previous one "
        "closed, or sooner when stream_batch_records came (Kafka Streams' commit interval "
        "under exactly-once is also 100 ms)")
    stream_batch_records: int = Field(
        default=25, ge=1, description="records that close a batch before stream_batch_ms")
    stream_session_timeout_ms: int = Field(default=6_000, ge=6_000, le=300_000)
    stream_transaction_timeout_ms: int = Field(
        default=5_000, ge=1_000, description="a killed worker's open transaction is aborted by "
        "the broker after this (its partitions' readers wait at most this long)")
    stream_call_timeout_s: float = Field(
        default=5.0, gt=0.0, description="bound on every blocking Kafka/Redis call")
    stream_max_buffered: int = Field(
        default=20_000, ge=100, description="records held per partition waiting for the "
        "other partitions' event time before the partition is paused")
    stream_metrics_port: int = Field(default=18084, ge=0, le=65535, description="0 = off")

    # -- drift monitor (see docs/drift.md) ------------------------------------------------
    consumer_group_drift: str = "fraudstream-drift"
    drift_window: Literal["event_time", "count"] = "event_time"
    drift_window_seconds: int = Field(default=86_400, ge=1, description="event-time windows")
    drift_window_rows: int = Field(default=5_000, ge=1, description="count windows")
    drift_lateness_seconds: int = Field(default=600, ge=0)
    drift_min_rows: int = Field(default=1_000, ge=1, description="no verdict below this")
    drift_psi_warn: float = Field(default=0.1, gt=0.0)
    drift_psi_alert: float = Field(default=0.25, gt=0.0)
    drift_ks_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    drift_ks_min_statistic: float = Field(default=0.1, ge=0.0, le=1.0)
    drift_correction: Literal["bonferroni", "bh"] = "bonferroni"
    drift_skip_columns: tuple[str, ...] = ("is_weekend", "is_night")
    drift_reference_alias: str = "champion"
    drift_metrics_port: int = Field(default=18082, ge=0, le=65535, description="0 = off")
    drift_sustained_windows: int = Field(
        default=3, ge=1, description="a column at alert in this many of the last "
        "drift_sustained_lookback judged windows is in sustained drift (a retrain trigger)"
    )
    drift_sustained_lookback: int = Field(default=5, ge=1)

    # -- retraining and promotion (see docs/retraining.md) -------------------------------
    retrain_train_days: float = Field(default=28.0, gt=0.0, description="challenger's train")
    retrain_eval_days: float = Field(default=7.0, gt=0.0, description="evaluation window")
    retrain_maturity_days: float = Field(
        default=7.0, ge=0.0, description="latest days left out: their labels are still coming"
    )
    retrain_valid_days: float = Field(
        default=7.0, gt=0.0, description="tail of the train window kept for early stopping"
    )
    retrain_budget: float = Field(
        default=0.01, gt=0.0, lt=1.0, description="alert budget (share of transactions)"
    )
    retrain_k: int = Field(default=100, ge=1, description="cards reviewed per day (CP@k)")
    retrain_min_interval_days: float = Field(
        default=7.0, ge=0.0, description="rate limit: days since the last retrain or firing"
    )
    retrain_decay_recall_drop: float = Field(default=0.15, gt=0.0, lt=1.0)
    retrain_decay_ap_drop: float = Field(default=0.25, gt=0.0, lt=1.0)
    retrain_decay_confirmations: int = Field(default=2, ge=1)
    retrain_min_matured_frauds: int = Field(default=30, ge=1)
    retrain_volume_frauds: int = Field(
        default=500, ge=0, description="new fraud labels that trigger a retrain; 0 = off"
    )
    retrain_schedule_days: float = Field(
        default=30.0, ge=0.0, description="days after which a retrain is due; 0 = off"
    )
    retrain_drift_min_columns: int = Field(default=1, ge=1)
    promotion_primary_metric: Metric = "average_precision"
    promotion_min_improvement: float = Field(default=0.01, ge=0.0, le=1.0)
    promotion_guardrail_metric: Metric = "recall_at_budget"
    promotion_recall_tolerance: float = Field(
        default=0.02, ge=0.0, le=1.0, description="how far the guardrail metric may fall"
    )
    promotion_min_frauds: int = Field(default=30, ge=1)

    # -- canary rollout gates (see docs/models.md) ------------------------------------------
    canary_min_decisions: int = Field(default=200, ge=1, description="per arm, else hold")
    canary_max_error_excess: float = Field(default=0.001, ge=0.0, le=1.0)
    canary_max_score_psi: float = Field(default=0.25, gt=0.0)
    canary_alert_ratio: float = Field(default=2.0, ge=1.0)
    canary_min_rank_correlation: float = Field(default=0.0, ge=-1.0, le=1.0)
    canary_min_frauds: int = Field(default=20, ge=1, description="matured, per arm")
    canary_label_tolerance: float = Field(default=0.05, ge=0.0, le=1.0)

    # -- decision policy ----------------------------------------------------------------
    review_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="unset = the champion's score at its alert budget on its test window",
    )
    decline_threshold: float = Field(default=0.9, ge=0.0, le=1.0)
    top_reasons: int = Field(default=3, ge=1, le=20)

    # -- REST API (see docs/api.md) --------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=18080, ge=1, le=65535)
    api_key: SecretStr | None = Field(
        default=None, description="one X-API-Key, named 'api' (FRAUDSTREAM_API_KEYS names "
        "each caller; both may be set)"
    )
    api_keys: SecretStr | None = Field(
        default=None, description="named keys as 'name:key,name:key'; the name is the audit "
        "actor and the analyst's name in the console")
    api_keys_file: Path | None = Field(
        default=None, description="file of 'name:key' lines (# comments), read at start-up")
    api_allow_weak_keys: bool = Field(
        default=False, description="accept keys under 16 characters (tests and dev only); "
        "otherwise the API refuses to start with a weak key")
    api_open_reads: bool = Field(
        default=True, description="GET /v1/models and /metrics without a key (logged as a "
        "warning at start-up); false = they need a key too")
    console_alerts_capacity: int = Field(
        default=50_000, ge=100, description="alerts the console keeps (oldest dropped first)")
    console_claim_seconds: int = Field(
        default=900, ge=10, description="how long an opened case stays claimed without a verdict")
    console_session_hours: float = Field(default=12.0, gt=0.0, le=168.0)
    console_secure_cookies: bool = Field(
        default=False, description="mark the console's cookies Secure (behind HTTPS)")
    api_publish_transactions: bool = Field(
        default=True, description="POST /v1/score also publishes the transaction to the stream"
    )

    # -- River online model (see docs/online-learning.md) ---------------------------------
    consumer_group_learner: str = "fraudstream-learner"
    online_join_capacity: int = Field(default=500_000, ge=100, description="pending decisions")
    online_join_ttl_hours: float = Field(default=168.0, gt=0.0, description="event time")
    online_negative_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    online_learning_rate: float = Field(default=0.05, gt=0.0)
    online_warmup_frauds: int = Field(default=50, ge=0, description="weight 0 before this")
    online_weight: float = Field(default=1.0, ge=0.0, le=5.0)
    online_snapshot_seconds: float = Field(default=30.0, gt=0.0)
    online_reload_seconds: float = Field(default=5.0, ge=0.0)
    online_keep_snapshots: int = Field(default=5, ge=1)
    learner_metrics_port: int = Field(default=18081, ge=0, le=65535, description="0 = off")

    # -- operations: logs, the monitor process (see docs/operations.md) -------------------
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one object per line (topic[partition]@offset, "
        "transaction_id where known); text: human-readable")
    monitor_metrics_port: int = Field(default=18085, ge=0, le=65535, description="0 = off")
    monitor_lag_groups: tuple[str, ...] = Field(
        default=(), description="consumer groups whose lag the monitor exports; empty = the "
        "groups of the stream stage, learner, drift and quality workers")
    monitor_lag_timeout_s: float = Field(default=5.0, gt=0.0, le=30.0)
    consumer_group_quality: str = "fraudstream-quality"
    quality_window: int = Field(
        default=20_000, ge=100, description="matured decisions in the rolling window of live "
        "precision/recall")
    quality_capacity: int = Field(
        default=500_000, ge=100, description="decisions held while their labels mature")
    quality_sample_rate: float = Field(
        default=1.0, gt=0.0, le=1.0, description="share of decisions tracked (by id hash); "
        "ratios stay unbiased, lower it when rate x maturity exceeds the capacity")

    # -- features (see docs/features.md) -------------------------------------------------
    label_delay_days: int = Field(
        default=7, ge=1, le=90, description="d: the typical days until a fraud "
        "label is known; the delayed-window terminal features end d days before T. One value "
        "for the stream, the API, backfills and training (a model records the d it was "
        "trained with and is refused when served with another)")

    # -- training -----------------------------------------------------------------------
    xgb_nthread: int = Field(default=1, ge=1)
    seed: int = 7

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = []
        if self.drift_psi_warn > self.drift_psi_alert:
            problems.append("drift_psi_warn must not exceed drift_psi_alert")
        if self.drift_sustained_windows > self.drift_sustained_lookback:
            problems.append("drift_sustained_windows must not exceed drift_sustained_lookback")
        if self.retrain_valid_days >= self.retrain_train_days:
            problems.append("retrain_valid_days must be shorter than retrain_train_days "
                            "(it is the train window's tail)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

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


def settings_errors(exc: ValidationError) -> str:
    """One line per invalid setting, named by its environment variable."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        name = f"FRAUDSTREAM_{field.upper()}" if field else "settings"
        lines.append(f"  {name}: {error['msg']}")
    return "\n".join(lines)
