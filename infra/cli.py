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

from infra.errors import FraudstreamError
from infra.settings import Settings

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


def _replay_publish(args: argparse.Namespace, settings: Settings) -> int:
    from replay.publish import publish_history

    result = publish_history(Path(args.file), settings, speed=args.speed, limit=args.limit)
    print(f"published {result.sent} transactions in {result.seconds:.1f}s")
    return 0


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from models.pipeline import train_and_register

    version = train_and_register(settings, Path(args.history), alias=args.alias)
    print(f"registered {settings.model_name} version {version} (alias {args.alias})")
    return 0


def _features_worker(args: argparse.Namespace, settings: Settings) -> int:
    from features.worker import run_worker

    run_worker(settings)
    return 0


def _score_worker(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.service import run_scorer

    run_scorer(settings, instance=args.instance)
    return 0


def _alerts_tail(args: argparse.Namespace, settings: Settings) -> int:
    from scoring.tail import tail_alerts

    tail_alerts(settings, from_beginning=args.from_beginning, limit=args.max, idle=args.idle)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from infra.demo import run_demo

    return run_demo(
        settings,
        keep_services=args.keep_services,
        live_days=args.live_days,
        stream_seconds=args.stream_seconds,
    )


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
    p.add_argument("--limit", type=int, default=None)
    p = add("train", _train, "train on a history and register the model in MLflow")
    p.add_argument("--history", required=True)
    p.add_argument("--alias", default="champion")
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
    alerts = sub.add_parser("alerts", help="alerts for analysts").add_subparsers(
        dest="alerts_command", required=True
    )
    p = alerts.add_parser("tail", help="print alerts as they arrive")
    p.set_defaults(handler=_alerts_tail)
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=None)
    p.add_argument("--idle", type=float, default=None, help="exit after this many idle seconds")
    p = add("demo", _demo, "end to end on simulated data, in a few minutes")
    p.add_argument("--keep-services", action="store_true")
    p.add_argument("--live-days", type=int, default=2, help="days streamed live")
    p.add_argument("--stream-seconds", type=float, default=60.0, help="wall time to stream them")
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
        return int(args.handler(args, settings))
    except FraudstreamError as exc:
        print(f"fraudstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
