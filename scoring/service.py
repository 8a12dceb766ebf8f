"""Process entry point of the scorer worker: wiring, signals and periodic progress logs."""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from types import FrameType

from features.store import OnlineFeatures
from infra.metrics_http import serve_metrics
from infra.settings import Settings
from scoring.metrics import build_metrics
from scoring.worker import Scorer

log = logging.getLogger("fraudstream.scoring")


def build_scorer(settings: Settings, instance: str = "0") -> Scorer:
    from models.online import CombineRule
    from models.online_snapshot import OnlineModelHandle, SnapshotStore
    from models.registry import ModelRegistry

    online = OnlineModelHandle(
        SnapshotStore(settings.state_dir / "online", settings.online_keep_snapshots),
        CombineRule(settings.online_weight, settings.online_warmup_frauds),
        settings.online_reload_seconds,
    )
    return Scorer(
        settings,
        OnlineFeatures(settings),
        ModelRegistry(settings),
        instance=instance,
        online_model=online,
        metrics=build_metrics(),
    )


def run_scorer(settings: Settings, instance: str = "0") -> None:
    """Run until SIGTERM/SIGINT; the current micro-batch's transaction completes first."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    scorer = build_scorer(settings, instance)
    scorer.start()
    if scorer.metrics is not None:
        serve_metrics(settings.scorer_metrics_port, settings.metrics_host, scorer.metrics.registry)
    gc.freeze()  # start-up objects out of the collector's way: steadier tail latency
    reporter = threading.Thread(target=_report, args=(scorer, stop), daemon=True)
    reporter.start()
    scorer.run(stop)
    log.info("scorer stopped: %s", scorer.stats)


def _report(scorer: Scorer, stop: threading.Event, every: float = 5.0) -> None:
    last = 0
    while not stop.wait(every):
        scored = scorer.stats.scored
        if scored != last:
            log.info(
                "scored %d (+%d), alerts %d, dead-lettered %d",
                scored,
                scored - last,
                scorer.stats.alerts,
                scorer.stats.dead_lettered,
            )
            last = scored
        time.sleep(0)
