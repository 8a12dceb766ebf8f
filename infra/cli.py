"""The ``fraudstream`` command line: one entry point for operators, ML engineers and the demo.

Each command builds one :class:`~infra.settings.Settings` from ``FRAUDSTREAM_*`` variables and
passes it down. Heavy imports (Feast, MLflow, XGBoost) happen inside the commands that need
them, so ``fraudstream --help`` and service commands stay fast.

Exit codes: 0 success; 1 runtime failure (a service down, a model that cannot be loaded or
served, a failed gate or check); 2 usage or configuration (bad option, invalid
``FRAUDSTREAM_*`` setting, missing or malformed input file); 130 interrupted.

To add a command: write ``_handler(args, settings) -> int`` and one ``add(...)`` line in
:func:`build_parser` (or a ``register(sub, add)`` function in its own module, as
:mod:`infra.cli_models` does). Every option needs ``help=``; defaults are shown by the
formatter.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from infra.cli_format import DESCRIPTION, EXIT_CODES, Formatter, version
from infra.cli_progress import stages
from infra.cli_train import _config, _retrain, _train, mapping_of
from infra.errors import ConfigurationError, FraudstreamError, InvalidInput
from infra.settings import Settings, settings_errors

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
    if args.action == "status" and not all(status.ok for status in statuses):
        return 1  # scripts and health checks can rely on the exit code
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
    with stages(["simulate", "write"], "simulate") as bar:
        frame = simulate(config)
        bar.next()
        write_history(frame, Path(args.out))
    fraud = int(frame["is_fraud"].sum())
    print(f"wrote {len(frame)} transactions ({fraud} fraud) to {args.out}")
    return 0


def _mapping_options(p: argparse.ArgumentParser) -> None:
    """Options that map a user's column names to fraudstream's (see docs/replay.md)."""
    p.add_argument("--mapping", help="column mapping file (.yaml, .toml or .json)")
    p.add_argument("--map", action="append", default=[], metavar="YOUR_COLUMN=field",
                   help="map one column (repeatable; overrides the mapping file)")
    p.add_argument("--derive", action="append", default=[],
                   metavar="field=COLUMN:VALUE=out,...",
                   help="a field from a column through a value map, e.g. "
                   "channel=category:*_net=ecom,*=pos (repeatable; patterns * ? [..])")
    p.add_argument("--value", action="append", default=[], metavar="field=VALUE",
                   help="a field set to one value for every row, e.g. currency=USD")
    p.add_argument("--label-delay-days", type=float, default=None,
                   help="label delay when the file has no label time (default 7)")
    p.add_argument("--sort", action="store_true", help="sort by event time, not refuse")


def _replay_publish(args: argparse.Namespace, settings: Settings) -> int:
    from replay.commands import publish_file

    result, start = publish_file(
        settings, Path(args.file), mapping_of(args), speed=args.speed,
        max_rate=args.max_rate, limit=args.limit, resume=args.resume,
        checkpoint_path=Path(args.checkpoint) if args.checkpoint else None)
    print(f"published {result.sent} transactions in {result.seconds:.1f}s"
          + (f" (resumed at row {start})" if start else ""))
    return 0


def _replay_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from replay.commands import PREQUENTIAL_STAGES, STAGES, BacktestOptions, backtest_file
    from replay.outputs import print_table

    options = BacktestOptions(
        models=args.model, train=args.train, policies=args.policy, train_days=args.train_days,
        delay_days=args.delay_days, test_days=args.test_days, test_end=args.test_end,
        calibration_days=args.calibration_days, budget=args.budget, k=args.k,
        prequential=args.prequential, folds=args.folds, step_days=args.step_days,
        fmt=args.format)
    label = "prequential" if args.prequential else "backtest"
    names = PREQUENTIAL_STAGES if args.prequential else STAGES
    with stages(names, label) as bar:
        written, metrics = backtest_file(settings, Path(args.file), mapping_of(args),
                                         options, Path(args.out), progress=bar)
    print(print_table(metrics))
    print(written.line())
    return 0


def _stream_worker(args: argparse.Namespace, settings: Settings) -> int:
    from features.stream.service import run_stream

    run_stream(settings, instance=args.instance)
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


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    from infra.monitor import run_monitor

    run_monitor(settings)
    return 0


def _alerts_tail(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.tail import tail_alerts

    tail_alerts(settings, from_beginning=args.from_beginning, limit=args.max, idle=args.idle)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from infra.demo import run_demo

    return run_demo(settings, keep_services=args.keep_services)


Add = Callable[..., argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    # -v is accepted before and after the subcommand: each parser gets it, with a suppressed
    # default so a subcommand's parser does not reset what the top-level one counted.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more logging (-v debug); accepted anywhere on the line")
    parser = argparse.ArgumentParser(prog="fraudstream", description=DESCRIPTION,
                                     epilog=EXIT_CODES, formatter_class=Formatter,
                                     parents=[common])
    parser.add_argument("--version", action="version", version=f"fraudstream {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler | None, help_: str,
            into: argparse._SubParsersAction[argparse.ArgumentParser] | None = None,
            ) -> argparse.ArgumentParser:
        p = (into or sub).add_parser(name, help=help_, description=help_, parents=[common],
                                     formatter_class=Formatter, epilog=EXIT_CODES)
        if handler is not None:
            p.set_defaults(handler=handler)
        return p

    def group(name: str, help_: str, dest: str) -> argparse._SubParsersAction[
            argparse.ArgumentParser]:
        return add(name, None, help_).add_subparsers(dest=dest, required=True, metavar="ACTION")

    add("setup", _setup, "download the Kafka broker (once) and check redis-server")
    p = add("services", _services, "start, stop or show the local Kafka and Redis "
            "(status exits 1 when one is down)")
    p.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    p.add_argument("--only", action="append", choices=["kafka", "redis"],
                   help="only this service (repeatable); default: both")
    add("topics", _topics, "create the topics (idempotent)")
    add("schema", _schema, "print the Transaction JSON Schema")
    p = add("config", _config, "print the effective settings (secrets redacted)")
    p.add_argument("--format", choices=["env", "json"], default="env",
                   help="FRAUDSTREAM_*=value lines, or one JSON object")
    p = add("simulate", _simulate, "write a simulated labeled history (Parquet)")
    p.add_argument("--out", required=True, help="Parquet file to write")
    p.add_argument("--customers", type=int, default=2000, help="simulated customers")
    p.add_argument("--terminals", type=int, default=1000, help="simulated terminals")
    p.add_argument("--days", type=int, default=30, help="days of history")
    p.add_argument("--seed", type=int, default=7, help="random seed")
    replay = group("replay", "replay a historical file", "replay_command")
    p = add("publish", _replay_publish, "publish a file into the transactions topic", replay)
    p.add_argument("file", help="history file (Parquet, or any mapped file)")
    p.add_argument("--speed", type=float, default=None,
                   help="event-time speed-up factor; default: as fast as allowed")
    p.add_argument("--max-rate", type=float, default=None,
                   help="cap on messages per second; default: no cap")
    p.add_argument("--limit", type=int, default=None, help="publish at most this many rows")
    p.add_argument("--resume", action="store_true", help="continue after the checkpoint")
    p.add_argument("--checkpoint", help="checkpoint file; default: under state_dir/replay")
    _mapping_options(p)
    p = add("backtest", _replay_backtest, "offline backtest / prequential evaluation", replay)
    p.add_argument("file", help="labeled history file (Parquet, or any mapped file)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", action="append", default=[],
                   help="registered alias or version to score (repeatable)")
    p.add_argument("--train", action="store_true",
                   help="also train in-process on the train window (implied if no --model)")
    p.add_argument("--policy", action="append", default=[],
                   help="stream | [name:]review=R[,decline=D] | [name:]budget=B (repeatable)")
    p.add_argument("--train-days", type=float, default=42.0, help="train window (days)")
    p.add_argument("--delay-days", type=float, default=7.0, help="gap before the test window")
    p.add_argument("--test-days", type=float, default=7.0, help="test window (days)")
    p.add_argument("--test-end", help="end of the test window (UTC); default: after the data")
    p.add_argument("--calibration-days", type=float, default=7.0,
                   help="window that sets the policies' thresholds")
    p.add_argument("--budget", type=float, default=0.01, help="alert budget (share)")
    p.add_argument("--k", type=int, default=100, help="cards reviewed per day (CP@k)")
    p.add_argument("--prequential", action="store_true", help="rolling folds")
    p.add_argument("--folds", type=int, default=None,
                   help="at most this many (latest) folds; default: all")
    p.add_argument("--step-days", type=float, default=None,
                   help="fold step; default: the test window")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet",
                   help="format of the prediction and metric tables")
    _mapping_options(p)
    p = add("train", _train, "train on a history and register the model in MLflow "
            "(with lineage and a model card)")
    p.add_argument("--history", required=True, help="Parquet history, or any mapped file")
    p.add_argument("--alias", default="champion",
                   help="alias to point at the new version ('none': no alias)")
    p.add_argument("--train-days", type=float, default=None,
                   help="train window length (default: all history before it)")
    p.add_argument("--delay-days", type=float, default=None, help="gap before the test (7)")
    p.add_argument("--test-days", type=float, default=None, help="evaluation window (7)")
    p.add_argument("--valid-days", type=float, default=None,
                   help="early-stopping tail of the train window (7)")
    p.add_argument("--test-end", default=None, help="end of the test window (UTC)")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="first search the booster settings with N trials on the train "
                   "window's time-ordered validation tail (optuna; logged to MLflow)")
    _mapping_options(p)
    p = add("retrain", _retrain, "check the retrain triggers; retrain, evaluate, promote if due")
    p.add_argument("--history", default=None,
                   help="labeled history to judge and train on (Parquet, or any mapped "
                   "file); default: the offline store joined with the labels topic")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="keep running: one check every SECONDS until SIGTERM; default: once")
    p.add_argument("--force", action="store_true", help="retrain whatever the triggers say")
    p.add_argument("--now", help="event time of the check (UTC); default: after the data")
    _mapping_options(p)
    stream = group("stream", "the one-hop stream stage", "stream_command")
    p = add("worker", _stream_worker, "run the stream stage (features + decisions)", stream)
    p.add_argument("--instance", default="0",
                   help="unique and stable per process (transactional id, static membership)")
    drift = group("drift", "drift detection", "drift_command")
    add("monitor", _drift_monitor, "run the drift monitor on `scores`", drift)
    alerts = group("alerts", "alerts for analysts", "alerts_command")
    p = add("tail", _alerts_tail, "print alerts as they arrive", alerts)
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    p.add_argument("--max", type=int, default=None, help="stop after this many alerts")
    p.add_argument("--idle", type=float, default=None,
                   help="exit after this many idle seconds; default: never")
    add("api", _api, "serve the REST API (FRAUDSTREAM_API_HOST/PORT/KEY)")
    add("monitor", _monitor, "export consumer lag and live precision/recall on matured labels")
    add("learner", _learner, "run the River online learner (scores + labels -> snapshots)")
    p = add("demo", _demo, "end to end on simulated data with the closed loop (drift, labels, "
            "retrain, promotion), in a few minutes")
    p.add_argument("--keep-services", action="store_true",
                   help="leave Kafka and Redis running afterwards")
    from infra import cli_models

    cli_models.register(group("models", "registered models: list, show, promote, rollback, "
                              "canary, reports", "models_command"), add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (see the module doc)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) and usage errors (2)
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", 0) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"fraudstream: error: invalid settings (FRAUDSTREAM_* variables):\n"
              f"{settings_errors(exc)}", file=sys.stderr)
        return 2
    from features.terminal import configure_label_delay
    from infra.logging_setup import configure_logging

    configure_logging(settings.log_format, bool(getattr(args, "verbose", 0)))
    configure_label_delay(settings.label_delay_days)  # one d for every path of the process
    try:
        return int(args.handler(args, settings))
    except (ConfigurationError, InvalidInput) as exc:  # bad settings, options or input file
        print(f"fraudstream: error: {exc}", file=sys.stderr)
        return 2
    except FraudstreamError as exc:
        print(f"fraudstream: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
