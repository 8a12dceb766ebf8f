"""Every Prometheus metric of the stream stage, declared here (names, labels, buckets).

Nothing is registered at import: :func:`build_stage_metrics` creates the collectors in the
registry it is given. Label values are bounded (input topic role, dead-letter kind, id
verdict, model role).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from scoring.metrics import BATCH_BUCKETS, E2E_BUCKETS


@dataclass(frozen=True)
class StageMetrics:
    registry: CollectorRegistry
    records_in: Counter  # by input (transactions, labels)
    records_out: Counter  # by output (scores, alerts, dlq, labels_dlq, changelog)
    batch_seconds: Histogram
    publish_to_decision: Histogram
    lag: Gauge  # by topic, partition
    dead_letters: Counter  # by input, kind
    late: Counter  # by kind (transaction, label)
    ids: Counter  # by verdict (repeat, conflict, redelivered)
    aborts: Counter  # by cause
    model_info: Gauge  # role, version
    shadow_errors: Counter
    canary_errors: Counter
    restore_seconds: Histogram
    phase_seconds: Counter  # by phase of the loop (where a batch's time goes)
    batches: Counter
    gc_seconds: Counter  # by generation: the interpreter's collection pauses

    def set_model(self, role: str, version: str | None) -> None:
        self.model_info.clear() if role == "batch" else None
        if version is not None:
            self.model_info.labels(role=role, version=version).set(1)


def build_stage_metrics(registry: CollectorRegistry | None = None) -> StageMetrics:
    r = registry if registry is not None else CollectorRegistry(auto_describe=True)
    ns = "fraudstream_stream"
    return StageMetrics(
        registry=r,
        records_in=Counter("records_in", "Records consumed, by input topic role.", ["input"],
                           namespace=ns, registry=r),
        records_out=Counter("records_out", "Records produced in committed batches, by output.",
                            ["output"], namespace=ns, registry=r),
        batch_seconds=Histogram("batch_seconds", "One micro-batch, release to commit.",
                                namespace=ns, buckets=BATCH_BUCKETS, registry=r),
        publish_to_decision=Histogram(
            "publish_to_decision_seconds", "From a transaction's Kafka timestamp to its "
            "decision being committed.", namespace=ns, buckets=E2E_BUCKETS, registry=r),
        lag=Gauge("consumer_lag", "Records behind the partition's end, per input partition.",
                  ["topic", "partition"], namespace=ns, registry=r),
        dead_letters=Counter("dead_letters", "Records dead-lettered, by input and kind "
                             "(invalid, key, conflict, non_finite, model).", ["input", "kind"],
                             namespace=ns, registry=r),
        late=Counter("late_items", "Items applied behind their terminal's event-time order "
                     "(their terminal features may differ from the offline core).", ["kind"],
                     namespace=ns, registry=r),
        ids=Counter("transaction_ids", "Transaction ids seen again: repeat (same content, "
                    "no second decision), conflict (dead-lettered), redelivered (rolled-back "
                    "batch redone).", ["verdict"], namespace=ns, registry=r),
        aborts=Counter("transaction_aborts", "Kafka transactions aborted, by cause.",
                       ["cause"], namespace=ns, registry=r),
        model_info=Gauge("model_info", "Model version in use (value 1), by role.",
                         ["role", "version"], namespace=ns, registry=r),
        shadow_errors=Counter("shadow_errors", "Shadow-model loads skipped, by error.",
                              ["error"], namespace=ns, registry=r),
        canary_errors=Counter("canary_errors", "Canary-model loads skipped (by error; its "
                              "cards go to the champion) and batches with rows it failed on "
                              "(error row).", ["error"], namespace=ns, registry=r),
        restore_seconds=Histogram("restore_seconds", "Card-state restore from the changelog.",
                                  namespace=ns, registry=r),
        phase_seconds=Counter("phase_seconds", "Wall time of the loop by phase (consume, "
                              "release, process, produce, offsets, commit).", ["phase"],
                              namespace=ns, registry=r),
        batches=Counter("batches", "Micro-batches committed.", namespace=ns, registry=r),
        gc_seconds=Counter("gc_seconds", "Time the loop stood still in Python's garbage "
                           "collector, by generation.", ["generation"], namespace=ns,
                           registry=r),
    )
