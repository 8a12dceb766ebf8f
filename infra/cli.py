"""The ``fraudstream`` command line: one entry point for operators, ML engineers and the demo.

Each command builds one :class:`~infra.settings.Settings` from ``FRAUDSTREAM_*`` variables and
passes it down. Heavy imports (Feast, MLflow, XGBoost) happen inside the commands that need
them, so ``fraudstream --help`` and service commands stay fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from infra.errors import ConfigurationError, FraudstreamError
from infra.settings import Settings, settings_errors

if TYPE_CHECKING:
    from replay.mapping import ColumnMapping

log = logging.getLogger("fraudstream.cli")

Handler = Callable[[argparse.Namespace, Settings], int]


def _services(args: argparse.Namespace, settings: Settings) -> int:
    from infra import services

    names = tuple(args.only) if args.only else ("kafka", "redis")
    if args.action == "start":
        statuses = services.start_services(settings, names)
    elif args.action == "stop":
        statuses = services.stop_services(settings, names)
    else:
        statuses = services.service_status(settings, names)
    for status in statuses:
        print(status)
    return 0


def _setup(args: argparse.Namespace, settings: Settings) -> int:
    from infra import services

    services.install_kafka(settings)
    services.require_redis_server()
    print("setup complete: Kafka broker jars cached, redis-server present")
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.clients import make_admin
    from streams.topics import catalog, ensure_topics

    for name in ensure_topics(make_admin(settings), catalog(settings)):
        print(name)
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from streams.schema import transaction_json_schema

    print(json.dumps(transaction_json_schema(), indent=2))
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from replay.simulator import SimulationConfig, simulate, write_history

    config = SimulationConfig(
        n_customers=args.customers, n_terminals=args.terminals, days=args.days, seed=args.seed
    )
    frame = simulate(config)
    write_history(frame, Path(args.out))
    fraud = int(frame["is_fraud"].sum())
    print(f"wrote {len(frame)} transactions ({fraud} fraud) to {args.out}")
    return 0


def _mapping_options(p: argparse.ArgumentParser) -> None:
    """Options that map a user's column names to fraudstream's (see docs/replay.md)."""
    p.add_argument("--mapping", help="column mapping file (.yaml, .toml or .json)")
    p.add_argument("--map", action="append", default=[], metavar="YOUR_COLUMN=field",
                   help="map one column (repeatable; overrides the mapping file)")
    p.add_argument("--label-delay-days", type=float, default=None,
                   help="label delay when the file has no label time (default 7)")
    p.add_argument("--sort", action="store_true", help="sort by event time, not refuse")


def _mapping(args: argparse.Namespace) -> ColumnMapping:
    from dataclasses import replace

    from replay.mapping import load_mapping

    mapping = load_mapping(args.mapping, args.map, args.label_delay_days)
    return replace(mapping, sort=True) if args.sort else mapping


def _replay_publish(args: argparse.Namespace, settings: Settings) -> int:
    from replay.commands import publish_file

    result, start = publish_file(
        settings, Path(args.file), _mapping(args), speed=args.speed,
        max_rate=args.max_rate, limit=args.limit, resume=args.resume,
        checkpoint_path=Path(args.checkpoint) if args.checkpoint else None)
    print(f"published {result.sent} transactions in {result.seconds:.1f}s"
          + (f" (resumed at row {start})" if start else ""))
    return 0


def _replay_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from replay.commands import BacktestOptions, backtest_file
    from replay.outputs import print_table

    options = BacktestOptions(
        models=args.model, train=args.train, policies=args.policy, train_days=args.train_days,
        delay_days=args.delay_days, test_days=args.test_days, test_end=args.test_end,
        calibration_days=args.calibration_days, budget=args.budget, k=args.k,
        prequential=args.prequential, folds=args.folds, step_days=args.step_days,
        fmt=args.format)
    written, metrics = backtest_file(settings, Path(args.file), _mapping(args),
                                     options, Path(args.out))
    print(print_table(metrics))
    print(f"wrote {written.predictions}, {written.metrics} and {written.report}")
    return 0


def _history_file(args: argparse.Namespace, settings: Settings) -> Path:
    """``--history`` as a fraudstream Parquet history (mapped files are rewritten first)."""
    history = Path(args.history)
    if not history.is_file():
        raise ConfigurationError(f"history file {history} does not exist (or is not a file)")
    if args.mapping or args.map or args.sort or history.suffix != ".parquet":
        from replay.commands import normalized_history

        history = normalized_history(settings, history, _mapping(args))
    return history


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from models.pipeline import train_and_register, train_config

    config = train_config(train_days=args.train_days, delay_days=args.delay_days,
                          test_days=args.test_days, valid_days=args.valid_days,
                          test_end=args.test_end)
    version = train_and_register(settings, _history_file(args, settings), alias=args.alias,
                                 config=config)
    print(f"registered {settings.model_name} version {version} (alias {args.alias})")
    return 0


def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    from models.retrain import utc
    from models.retrain_job import run_job

    now = None
    if args.now is not None:
        try:
            now = utc(args.now)
        except ValueError:
            raise ConfigurationError(f"--now {args.now!r} is not a date or time "
                                     "(e.g. 2025-02-10 or 2025-02-10T12:00Z)") from None
    result = run_job(settings, _history_file(args, settings), force=args.force, now=now)
    if result.decision is not None:
        print(f"{result.now.isoformat()}: triggers {list(result.decision.reasons)} "
              f"fire={result.decision.fire} {result.decision.suppressed or ''}".rstrip())
    if result.outcome is not None:
        print(f"challenger v{result.outcome.challenger_version}: {result.outcome.decision.reason}")
    elif result.decision is not None and not result.decision.fire:
        print("no retrain due")
    return 0


def _features_worker(args: argparse.Namespace, settings: Settings) -> int:
    from features.worker import run_worker

    run_worker(settings)
    return 0


def _score_worker(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.service import run_scorer

    run_scorer(settings, instance=args.instance)
    return 0


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.api import run_api

    run_api(settings)
    return 0


def _learner(args: argparse.Namespace, settings: Settings) -> int:
    from models.learner import run_learner

    run_learner(settings)
    return 0


def _drift_monitor(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from drift.monitor import serve

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serve(settings, stop)
    return 0


def _alerts_tail(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.tail import tail_alerts

    tail_alerts(settings, from_beginning=args.from_beginning, limit=args.max, idle=args.idle)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from infra.demo import run_demo

    return run_demo(settings, keep_services=args.keep_services)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraudstream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(handler=handler)
        return p

    add("setup", _setup, "download the Kafka broker (once) and check redis-server")
    p = add("services", _services, "start, stop or show the local Kafka and Redis")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--only", action="append", choices=["kafka", "redis"])
    add("topics", _topics, "create the topics (idempotent)")
    add("schema", _schema, "print the Transaction JSON Schema")
    p = add("simulate", _simulate, "write a simulated labeled history (Parquet)")
    p.add_argument("--out", required=True)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--terminals", type=int, default=1000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    replay = sub.add_parser("replay", help="replay a historical file").add_subparsers(
        dest="replay_command", required=True
    )
    p = replay.add_parser("publish", help="publish a file into the transactions topic")
    p.set_defaults(handler=_replay_publish)
    p.add_argument("file")
    p.add_argument("--speed", type=float, default=None, help="event-time speed-up factor")
    p.add_argument("--max-rate", type=float, default=None, help="cap on messages per second")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue after the checkpoint")
    p.add_argument("--checkpoint", help="checkpoint file (default under state_dir/replay)")
    _mapping_options(p)
    p = replay.add_parser("backtest", help="offline backtest / prequential evaluation")
    p.set_defaults(handler=_replay_backtest)
    p.add_argument("file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", action="append", default=[],
                   help="registered alias or version to score (repeatable)")
    p.add_argument("--train", action="store_true",
                   help="also train in-process on the train window (default if no --model)")
    p.add_argument("--policy", action="append", default=[],
                   help="stream | [name:]review=R[,decline=D] | [name:]budget=B (repeatable)")
    p.add_argument("--train-days", type=float, default=21.0)
    p.add_argument("--delay-days", type=float, default=7.0)
    p.add_argument("--test-days", type=float, default=7.0)
    p.add_argument("--test-end", help="end of the test window (UTC), default: after the data")
    p.add_argument("--calibration-days", type=float, default=7.0)
    p.add_argument("--budget", type=float, default=0.01, help="alert budget (share)")
    p.add_argument("--k", type=int, default=100, help="cards reviewed per day (CP@k)")
    p.add_argument("--prequential", action="store_true", help="rolling folds")
    p.add_argument("--folds", type=int, default=None, help="at most this many (latest) folds")
    p.add_argument("--step-days", type=float, default=None, help="fold step (default test)")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    _mapping_options(p)
    p = add("train", _train, "train on a history and register the model in MLflow")
    p.add_argument("--history", required=True, help="Parquet history, or any mapped file")
    p.add_argument("--alias", default="champion")
    p.add_argument("--train-days", type=float, default=None,
                   help="train window length (default: all history before it)")
    p.add_argument("--delay-days", type=float, default=None, help="gap before the test (7)")
    p.add_argument("--test-days", type=float, default=None, help="evaluation window (7)")
    p.add_argument("--valid-days", type=float, default=None,
                   help="early-stopping tail of the train window (7)")
    p.add_argument("--test-end", default=None, help="end of the test window (UTC)")
    _mapping_options(p)
    p = add("retrain", _retrain, "check the retrain triggers; retrain, evaluate, promote if due")
    p.add_argument("--history", required=True,
                   help="labeled history to judge and train on: Parquet, or any mapped file")
    p.add_argument("--force", action="store_true", help="retrain whatever the triggers say")
    p.add_argument("--now", help="event time of the check (UTC), default: after the data")
    _mapping_options(p)
    features = sub.add_parser("features", help="feature worker").add_subparsers(
        dest="features_command", required=True
    )
    features.add_parser("worker", help="run the stream feature worker").set_defaults(
        handler=_features_worker
    )
    score = sub.add_parser("score", help="scorer").add_subparsers(
        dest="score_command", required=True
    )
    p = score.add_parser("worker", help="run the scorer worker")
    p.set_defaults(handler=_score_worker)
    p.add_argument("--instance", default="0", help="stable id of this scorer (transactional id)")
    drift = sub.add_parser("drift", help="drift detection").add_subparsers(
        dest="drift_command", required=True
    )
    drift.add_parser("monitor", help="run the drift monitor on `scores`").set_defaults(
        handler=_drift_monitor
    )
    alerts = sub.add_parser("alerts", help="alerts for analysts").add_subparsers(
        dest="alerts_command", required=True
    )
    p = alerts.add_parser("tail", help="print alerts as they arrive")
    p.set_defaults(handler=_alerts_tail)
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=None)
    p.add_argument("--idle", type=float, default=None, help="exit after this many idle seconds")
    add("api", _api, "serve the REST API (FRAUDSTREAM_API_HOST/PORT/KEY)")
    add("learner", _learner, "run the River online learner (scores + labels -> snapshots)")
    p = add("demo", _demo, "end to end on simulated data with the closed loop (drift, labels, "
            "retrain, promotion), in a few minutes")
    p.add_argument("--keep-services", action="store_true",
                   help="leave Kafka and Redis running afterwards")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"fraudstream: error: invalid settings (FRAUDSTREAM_* variables):\n"
              f"{settings_errors(exc)}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args, settings))
    except FraudstreamError as exc:
        print(f"fraudstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
