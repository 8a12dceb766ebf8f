"""``fraudstream train``, ``retrain`` and ``config``: the commands that make models.

Kept apart from :mod:`infra.cli` (the parser and the service commands) to keep each small.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from infra.cli_progress import stages
from infra.errors import ConfigurationError, FraudstreamError
from infra.settings import Settings

if TYPE_CHECKING:
    from replay.mapping import ColumnMapping

log = logging.getLogger("fraudstream.cli")


def mapping_of(args: argparse.Namespace) -> ColumnMapping:
    """The column mapping the ``--mapping``/``--map``/``--derive``/``--value``/``--sort``
    options describe."""
    from dataclasses import replace

    from replay.mapping import load_mapping

    mapping = load_mapping(args.mapping, args.map, args.label_delay_days,
                           derive=args.derive, values=args.value)
    return replace(mapping, sort=True) if args.sort else mapping


def history_file(args: argparse.Namespace, settings: Settings) -> Path:
    """``--history`` as a fraudstream Parquet history (mapped files are rewritten first)."""
    history = Path(args.history)
    if not history.is_file():
        raise ConfigurationError(f"history file {history} does not exist (or is not a file)")
    if (args.mapping or args.map or args.derive or args.value or args.sort
            or history.suffix != ".parquet"):
        from replay.commands import normalized_history

        history = normalized_history(settings, history, mapping_of(args))
    return history


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from features.definitions import FEATURE_SERVICE_NAME
    from models.card import slices_of_test_window
    from models.lineage import data_lineage
    from models.pipeline import train_config, train_frame_from_history
    from models.registry import ModelRegistry

    history = history_file(args, settings)
    config = train_config(train_days=args.train_days, delay_days=args.delay_days,
                          test_days=args.test_days, valid_days=args.valid_days,
                          test_end=args.test_end)
    with stages(["features and training", "register"], "train") as bar:
        frame, result = train_frame_from_history(settings, history, config,
                                                 tune_trials=args.tune)
        bar.next()
        alias = None if args.alias == "none" else args.alias
        version = ModelRegistry(settings).log_and_register(
            result, settings.model_name, FEATURE_SERVICE_NAME, alias=alias,
            data=data_lineage(frame, source=str(args.history)),
            slices=slices_of_test_window(frame, result))
    print(f"registered {settings.model_name} version {version} (alias {args.alias})")
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    values = settings.redacted()
    if args.format == "json":
        print(json.dumps(values, indent=2, sort_keys=True, default=str))
        return 0
    for key in sorted(values):
        value = values[key]
        text = json.dumps(value, default=str) if isinstance(value, list | tuple) else value
        print(f"FRAUDSTREAM_{key.upper()}={'' if value is None else text}")
    return 0


def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from infra.timestamps import utc

    now = None
    if args.now is not None:
        try:
            now = utc(args.now)
        except ValueError:
            raise ConfigurationError(f"--now {args.now!r} is not a date or time "
                                     "(e.g. 2025-02-10 or 2025-02-10T12:00Z)") from None
    if args.every is not None and (args.every <= 0 or now is not None):
        raise ConfigurationError("--every needs a positive number of seconds, without --now")
    history = history_file(args, settings) if args.history else None
    if args.every is None:
        _retrain_once(settings, history, args.force, now)
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():  # a long-running retrainer: one check per period, until SIGTERM
        try:
            _retrain_once(settings, history, args.force, None)
        except FraudstreamError as exc:  # the next period tries again; the error is shown
            log.error("retrain check failed: %s", exc)
        stop.wait(args.every)
    return 0


def _retrain_once(settings: Settings, history: Path | None, force: bool, now: object) -> None:
    from models.retrain_job import run_job

    result = run_job(settings, history, force=force, now=now)
    if result.decision is not None:
        print(f"{result.now.isoformat()}: triggers {list(result.decision.reasons)} "
              f"fire={result.decision.fire} {result.decision.suppressed or ''}".rstrip())
    if result.outcome is not None:
        print(f"challenger v{result.outcome.challenger_version}: {result.outcome.decision.reason}")
    elif result.decision is not None and not result.decision.fire:
        print("no retrain due")
