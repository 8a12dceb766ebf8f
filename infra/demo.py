"""``fraudstream demo``: the whole system and its closed loop on simulated data, in minutes.

1. Start Kafka and Redis (unless external ones are configured); simulate a labeled
   history (:mod:`infra.demo_world`) with a card-testing wave from ``shift_day``.
2. Compute every transaction's features with the feature core (the training data) and
   train the first champion as of day ``live_from`` (it never saw the wave).
3. Replay days ``0 .. live_from - 1`` through the stream stage at full speed (decisions set
   aside), so its 30-day card and terminal state is what it would be in production.
4. Start the stream stage (``fraudstream stream worker``: features and decisions in one
   hop) and step the live days one at a time (:class:`infra.demo_loop.LiveDemo`): alerts,
   drift, labels, triggers, challengers, promotion, the stage's hot swap.
5. Print recall at the alert budget before, during and after the wave; show the REST API;
   stop what it started.

Each run gets its own folder (``state_dir/demo/run-*``: MLflow registry, audit logs, drift
reports, worker logs) and its own topics, consumer groups and Feast project, so a run never
mixes with an earlier one on kept services.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from infra.bootstrap import ensure_infrastructure
from infra.demo_api import show_api, start_api
from infra.demo_loop import DAY, LiveDemo, LiveResult
from infra.demo_stream import (
    publish_labels,
    publish_transactions,
    wait_decided,
    warmup_settings,
)
from infra.demo_world import DemoWorld, describe, loop_settings
from infra.errors import ModelError, ServiceError
from infra.settings import Settings
from infra.workers import WorkerProcess

log = logging.getLogger("fraudstream.demo")


def _say(message: str) -> None:
    print(f"\n== {message}", flush=True)


def _line(message: str) -> None:
    print(message, flush=True)


def run_settings(settings: Settings, run: str) -> Settings:
    """The run's own state folder, topics, consumer groups and Feast project; Kafka and
    Redis pinned by address (so the run's code never starts or stops them).

    Topics get one partition unless ``FRAUDSTREAM_TOPIC_PARTITIONS`` is set: the demo
    publishes each simulated day in a burst, faster than the feature worker reads, and with
    several partitions the worker can then take a partition it has caught up with as idle
    while another partition's later records are already visible, and apply the first
    partition's next records to terminal state out of order (docs/retraining.md).
    """
    from infra.services import redis_url

    renamed = {name: f"{value}.{run}" for name, value in settings
               if name.startswith(("topic_", "consumer_group_")) and isinstance(value, str)}
    partitions = (settings.topic_partitions if "topic_partitions" in settings.model_fields_set
                  else 1)
    return settings.model_copy(update={
        **renamed, "topic_partitions": partitions,
        "state_dir": (settings.state_dir / "demo" / run).resolve(),
        "feast_project": f"fraudstream_{run.replace('-', '_')}",
        "kafka_bootstrap": settings.bootstrap_servers,
        "redis_url": redis_url(settings),
        "stream_metrics_port": 0, "drift_metrics_port": 0, "learner_metrics_port": 0,
    })


def run_demo(settings: Settings, keep_services: bool = False,
             world: DemoWorld | None = None, api: bool = True) -> int:
    """Run the demo; returns 0 when a challenger trained on the wave took over, else 1
    (a transaction left unscored raises). Services started here are stopped at the end
    unless ``keep_services``."""
    from infra import services

    world = world or DemoWorld(seed=settings.seed)
    started_at = time.monotonic()
    _say("starting Kafka and Redis")
    for status in services.start_services(settings, ("kafka", "redis")):
        _line(str(status))
    workers: list[WorkerProcess] = []
    try:
        run = datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")
        s = loop_settings(run_settings(settings, run))
        ensure_infrastructure(s)
        _line(f"this run's state: {s.state_dir}")
        result, sample = play(s, world, workers)
        if api:
            _say("the REST API (fraudstream api), scoring the live stream's riskiest "
                 "transaction again")
            api_worker, api_settings = start_api(s)
            workers.append(api_worker)
            show_api(api_settings, sample)
        _say(f"demo took {time.monotonic() - started_at:.0f}s")
        wave = pd.Timestamp(world.simulation().start, tz="UTC") + world.shift_day * DAY
        return 0 if any(fit_end > wave for *_, fit_end in result.promotions) else 1
    finally:
        _say("stopping")
        for worker in workers:
            code = worker.stop()
            _line(f"{worker.name} (pid {worker.pid}) exited {code}")
        if not keep_services:
            for status in services.stop_services(settings, ("kafka", "redis")):
                _line(str(status))


def play(s: Settings, world: DemoWorld,
         workers: list[WorkerProcess]) -> tuple[LiveResult, dict[str, Any]]:
    """Steps 1-5 of the module doc on running services (topics and Feast ready); appends
    the workers it starts to ``workers`` (the caller stops them). Returns what the live
    days produced and a transaction for the API part."""
    from features.stream.decide import READY_MARKER as STAGE_READY
    from models.registry import ModelRegistry
    from models.retrain import Retrainer
    from models.retrain_loop import RetrainLoop
    from replay.simulator import simulate

    sim = world.simulation()
    _say(f"simulating {world.days} days of card transactions ({world.customers} cards): "
         f"compromised terminals and account takeovers throughout, a card-testing wave "
         f"from day {world.shift_day}")
    history = simulate(sim)
    start = pd.Timestamp(sim.start, tz="UTC")
    _line(f"{len(history):,} transactions, {int(history['is_fraud'].sum()):,} fraud; days "
          f"0-{world.live_from - 1} are the past, days {world.live_from}-{world.days - 1} "
          "will be streamed live")
    _line(f"loop settings: {describe(s)}")
    frame = _past(s, world, history, start, workers)

    scorer = WorkerProcess("stream", ["stream", "worker"], s).start()
    workers.append(scorer)
    workers.append(WorkerProcess("monitor", ["monitor"], s).start())  # lag, live quality
    _line(f"metrics: curl localhost:{s.stream_metrics_port}/metrics (stream stage), "
          f"localhost:{s.monitor_metrics_port}/metrics (lag, live precision/recall)")
    if not scorer.wait_for_log(STAGE_READY, timeout=120):
        raise ServiceError(f"the stream stage did not become ready:\n{scorer.log_tail()}")
    _say(f"live: days {world.live_from}-{world.days - 1}, a day at a time. Every transaction "
         "goes through the stream stage (features and decision in one hop); at each midnight "
         "the drift monitor judges the day and the retrain loop checks its triggers")
    loop = RetrainLoop(Retrainer(s, ModelRegistry(s), actor="fraudstream.demo"),
                       last_retrain=start + world.live_from * DAY)
    live = LiveDemo(s, frame, start, loop, scorer, say=_line)
    result = live.run(world.live_from, world.days - 1, world.shift_day)
    _summary(s, world, frame, start, result)
    return result, _api_sample(frame, result)


def _past(s: Settings, world: DemoWorld, history: pd.DataFrame, start: pd.Timestamp,
          workers: list[WorkerProcess]) -> pd.DataFrame:
    """The training data, the first champion, and the stream stage's state of the past
    days; returns the feature frame of the whole history. The past is published while the
    champion trains; then the stream stage replays it with its decisions set aside
    (:func:`~infra.demo_stream.warmup_settings`) and is stopped: its card and terminal
    states are the live stage's starting point."""
    from features.core import FEATURE_NAMES
    from models.pipeline import training_frame
    from models.promotion import PromotionPolicy
    from models.registry import ModelRegistry
    from models.retrain import Retrainer
    from streams.clients import make_producer

    _say("feature vectors of every transaction with the feature core (the training data; "
         "the stream worker runs the same code)")
    t0 = time.monotonic()
    frame = training_frame(history)
    _line(f"{len(frame):,} vectors of {len(FEATURE_NAMES)} features in "
          f"{time.monotonic() - t0:.0f}s")

    _say(f"publishing days 0-{world.live_from - 1} for the stream stage to replay at full "
         "speed (its 30-day card and terminal state), transactions and fraud labels day by day")
    t0 = time.monotonic()
    producer = make_producer(s)
    sent = labels = 0
    for d in range(world.live_from):
        begin, end = start + d * DAY, start + (d + 1) * DAY
        sent += publish_transactions(s, producer, history, begin, end)
        labels += publish_labels(s, producer, history, begin, end)
    _line(f"published {sent:,} transactions and {labels} fraud labels in "
          f"{time.monotonic() - t0:.0f}s")

    live_start = start + world.live_from * DAY
    _say(f"training the first champion as of day {world.live_from} (MLflow registry)")
    first = Retrainer(s, ModelRegistry(s), policy=PromotionPolicy(min_frauds=1),
                      actor="fraudstream.demo").run(frame, live_start, "initial champion")
    if not first.promoted:
        raise ModelError(f"the first model was not made champion: {first.decision.reason}")
    m = first.challenger_metrics
    _line(f"v{first.challenger_version} is champion: average precision "
          f"{m['average_precision']:.3f}, recall at the {s.retrain_budget:.0%} budget "
          f"{m['recall_at_budget']:.3f} on days {_days(first.windows['eval_start'], start)}-"
          f"{_days(first.windows['eval_end'], start)}")

    day_of = ((pd.to_datetime(history["event_time"], utc=True) - start) // DAY).to_numpy()

    def progress(done: int, seconds: float) -> None:
        at = int(day_of[min(done, sent) - 1]) if done else 0
        _line(f"  stream stage: {done:,} of {sent:,} (day {at}), "
              f"{done / (time.monotonic() - t0):,.0f}/s")

    warm = warmup_settings(s)
    t0 = time.monotonic()
    replay = WorkerProcess("stream-warmup", ["stream", "worker"], warm).start()
    workers.append(replay)
    wait_decided(warm, sent, timeout=900, progress=progress)
    replay.stop()
    seconds = time.monotonic() - t0
    _line(f"stream stage: {sent:,} past transactions in {seconds:.0f}s "
          f"({sent / seconds:,.0f}/s, start-up included)")
    return frame


def _days(iso: str, start: pd.Timestamp) -> str:
    return f"{(pd.Timestamp(iso) - start) / DAY:.1f}"


def _summary(s: Settings, world: DemoWorld, frame: pd.DataFrame, start: pd.Timestamp,
             result: LiveResult) -> None:
    from models.metrics import recall_at_budget

    scored = result.scored
    day = ((pd.to_datetime(frame["event_time"], utc=True) - start) // DAY).to_numpy()
    ids = frame["transaction_id"].astype(str).to_numpy()
    live = day >= world.live_from
    score = np.array([scored.score.get(t, np.nan) for t in ids])
    fraud = frame["is_fraud"].to_numpy(dtype=np.int8)
    alerted = np.array([scored.decision.get(t, "approve") != "approve" for t in ids])
    wave = start + world.shift_day * DAY
    # "after": from the first champion whose fit rows held some of the wave
    taken = next((d for d, _, fit_end in result.promotions if fit_end > wave), None)
    _say(f"recall at the {s.retrain_budget:.0%} alert budget on the live scores "
         "(hindsight labels)")
    phases = [("before the wave", world.live_from, world.shift_day),
              ("during the wave", world.shift_day, taken or world.days),
              ("after a champion", taken, world.days)]
    for name, lo, hi in phases:
        if lo is None or lo >= hi:
            _line(f"  {name:16s}: no champion trained on the wave took over")
            continue
        rows = live & (day >= lo) & (day < hi)
        versions = sorted({scored.version[t] for t in ids[rows] if t in scored.version}, key=int)
        caught = alerted[rows] & (fraud[rows] == 1)
        _line(f"  {name:16s} days {lo}-{hi - 1}: recall@{s.retrain_budget:.0%} "
              f"{recall_at_budget(fraud[rows], score[rows], s.retrain_budget):.3f}; alerts "
              f"caught {int(caught.sum())} of {int(fraud[rows].sum())} frauds "
              f"(models {', '.join('v' + v for v in versions)})")
    if taken is None:
        _line("the loop did not close: no challenger trained on the wave was promoted")
    else:
        _line(f"  ('after a champion': from day {taken}, when the first champion trained on "
              "days of the wave took over)")
    n = int(live.sum())
    _line(f"served feature vectors equal to the feature core's: {n - scored.vector_differs:,}"
          f" of {n:,}" + (f" (differing most: {dict(scored.differs.most_common(4))})"
                          if scored.differs else ""))
    _line(f"drift reports: {s.state_dir / 'drift'}; audit logs: {s.state_dir / 'audit'}")


def _api_sample(frame: pd.DataFrame, result: LiveResult) -> dict[str, Any]:
    """The live transaction with the highest alert score, as an upstream service sends it."""
    from replay.history import iter_transactions

    alerted = sorted(result.scored.alerts.values(), key=lambda a: -float(a["score"]))
    ids = frame["transaction_id"].astype(str)
    rows = frame[ids == str(alerted[0]["transaction_id"])] if alerted else frame.tail(1)
    (transaction,) = iter_transactions(rows)
    return {**transaction, "transaction_id": f"demo-api-{transaction['transaction_id']}"}
