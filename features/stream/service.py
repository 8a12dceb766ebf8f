"""Process entry point of the stream stage: wiring, topics, signals, ``/metrics``."""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from infra.settings import Settings

log = logging.getLogger("fraudstream.features.stream")

# one prediction thread per stage process (scale out by processes): a 16-row batch costs
# 0.28 ms CPU on one thread and 3.4 ms with XGBoost's default thread pool on 2 cores (its
# OpenMP threads spin after each call), a 1,000-row batch 3.2 ms against 13.5 ms
PREDICT_THREADS = 1
# Python's default (700, 10, 10) ran a full collection every few seconds under load: each
# scanned every live card and terminal state and stood the loop still 100-300 ms (gen2:
# 0.66 s of every 15 s at 2,000 tx/s; p99 publish -> decision 406 ms). Young collections
# every 10,000 net allocations and a full one every 100 of the middle ones: no full
# collection in a 15 s paced run, p99 at 2,000 tx/s 150 ms, peak memory unchanged.
GC_THRESHOLDS = (10_000, 10, 100)


def ensure_stream_topics(settings: Settings) -> None:
    """The catalog topics plus the compacted card-state changelog."""
    from streams.clients import make_admin
    from streams.topics import catalog, changelog_spec, ensure_topics

    ensure_topics(make_admin(settings), [*catalog(settings), changelog_spec(settings)])


def build_stage(settings: Settings, instance: str = "0") -> object:
    from features.core import FEATURE_NAMES
    from features.stream.decide import Decider
    from features.stream.metrics import build_stage_metrics
    from features.stream.redis_io import StageRedis
    from features.stream.stage import StreamStage
    from models.online import CombineRule
    from models.online_snapshot import OnlineModelHandle, SnapshotStore
    from models.registry import ModelRegistry

    metrics = build_stage_metrics()
    online = OnlineModelHandle(
        SnapshotStore(settings.state_dir / "online", settings.online_keep_snapshots),
        CombineRule(settings.online_weight, settings.online_warmup_frauds),
        settings.online_reload_seconds,
    )
    # what the stage computes and writes, in order: the FeatureService's features (a unit
    # test holds them equal), without importing feast at start-up
    served = list(FEATURE_NAMES)

    def on_models(d: Decider) -> None:
        for model in (d.model, d.shadow, d.canary):
            if model is not None:  # XGBoost's default (all cores) costs ~10x the CPU
                model.booster.set_param({"nthread": PREDICT_THREADS})  # on small batches
        metrics.set_model("batch", d.model.version if d.model else None)
        metrics.set_model("shadow", d.shadow.version if d.shadow else None)
        metrics.set_model("canary", d.canary.version if d.canary else None)
        metrics.set_model("online", d.online.version if d.online else None)

    decider = Decider(ModelRegistry(settings), served, settings.top_reasons,
                      (settings.review_threshold, settings.decline_threshold), online,
                      on_models=on_models,
                      on_shadow_error=lambda e: metrics.shadow_errors.labels(error=e).inc(),
                      on_canary_error=lambda e: metrics.canary_errors.labels(error=e).inc())
    return StreamStage(settings, decider, StageRedis(settings), metrics, instance)


def gc_timer(seconds: Any) -> Callable[[str, dict[str, int]], None]:
    """A ``gc.callbacks`` hook adding each collection's pause to ``seconds`` (a Counter
    labelled by generation) and logging a long one."""
    started = [0.0]

    def hook(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = time.perf_counter() - started[0]
        seconds.labels(generation=str(info["generation"])).inc(took)
        if took > 0.05:
            log.info("garbage collection of generation %d stood the loop still %.0f ms "
                     "(%d objects collected)", info["generation"], took * 1000,
                     info["collected"])

    return hook


def run_stream(settings: Settings, instance: str = "0") -> None:
    """Run until SIGTERM/SIGINT; the current micro-batch's transaction completes first."""
    from features.stream.stage import StreamStage
    from infra.metrics_http import serve_metrics

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ensure_stream_topics(settings)
    stage = build_stage(settings, instance)
    if not isinstance(stage, StreamStage):
        raise TypeError("build_stage returned no StreamStage")
    serve_metrics(settings.stream_metrics_port, settings.metrics_host, stage.m.registry)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.callbacks.append(gc_timer(stage.m.gc_seconds))
    stage.run(stop)
    log.info("stream stage stopped after %d decisions", stage.decided)
