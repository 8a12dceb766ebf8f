"""``fraudstream models ...``: list, show, promote, rollback, canary, reports.

Thin: each command calls :mod:`models.rollout` / :mod:`models.rollout_canary` /
:mod:`models.reports` (the API calls the same functions), prints the result and returns an
exit code. A model that cannot be loaded or served, a missing previous holder or a canary
gate that rolled back is exit code 1; an unknown alias is 2.

Canary evidence (``canary step``, ``report``) is read live from the ``scores`` and
``labels`` topics (:mod:`models.live_evidence`), or from a decisions file: a JSON-lines
dump of ``scores`` records (``arm``, ``score``, ``decision``, ``shadow`` ...) with an
optional labels file (``transaction_id``, ``is_fraud``; matured labels only), or a Parquet
decisions frame (columns of :mod:`models.reports`).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.errors import ConfigurationError
from infra.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

ALIASES = ["champion", "challenger", "shadow"]


def _registry(settings: Settings) -> Any:
    from models.registry import ModelRegistry

    return ModelRegistry(settings)


def _dump(value: Any) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value), indent=2, default=str)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from models.rollout import list_models

    versions = list_models(_registry(settings))
    if args.json:
        print(_dump(versions))
        return 0
    if not versions:
        print(f"no versions of {settings.model_name} registered")
    for v in versions:
        m = v["metrics"]
        print(f"v{v['version']:<4} {','.join(v['aliases']) or '-':<22} {v['created'][:19]}  "
              f"AP {m.get('average_precision', math.nan):.4f}  "
              f"recall@budget {m.get('recall_at_budget', math.nan):.4f}  {v['feature_service']}")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from models.rollout import show_model

    info = show_model(_registry(settings), args.version)
    if args.card:
        print(info["model_card"] or "this version has no model card")
        return 0
    if not args.json:
        info.pop("model_card", None)
        info.pop("slices", None)
    print(_dump(info))
    return 0


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    from models.rollout import promote

    record = promote(_registry(settings), args.version, args.alias, actor=args.actor,
                     reason=args.reason)
    print(f"{settings.model_name}@{args.alias}: v{record['previous_version']} -> "
          f"v{record['new_version']}")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    from models.rollout import rollback

    record = rollback(_registry(settings), args.alias, actor=args.actor, reason=args.reason)
    print(f"{settings.model_name}@{args.alias} rolled back: v{record['previous_version']} -> "
          f"v{record['new_version']}")
    return 0


def _decisions(args: argparse.Namespace, settings: Settings) -> pd.DataFrame:
    import pandas as pd

    from models.reports import decisions_frame

    if args.decisions is None:  # live: the scores and labels topics
        from models.live_evidence import live_decisions, report_window_ms

        registry = _registry(settings)
        since = getattr(args, "since", None)
        if since is None and not getattr(args, "report", False):
            return live_decisions(settings, registry)  # canary step: the canary's window
        since_ms = _since_ms(since) if since else report_window_ms(registry,
                                                                   settings.model_name)
        return live_decisions(settings, registry, since_ms=since_ms, canary=False)
    path = Path(args.decisions)
    if not path.is_file():
        raise ConfigurationError(f"decisions file {path} does not exist")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    labels: dict[str, int] = {}
    if args.labels:
        for line in Path(args.labels).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                labels[str(row["transaction_id"])] = int(row["is_fraud"])
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    return decisions_frame(records, labels)


def _since_ms(text: str) -> int:
    from infra.timestamps import utc

    try:
        when = utc(text)
    except ValueError as exc:
        raise ConfigurationError(f"--since {text!r}: not a time ({exc})") from None
    return int(when.value // 1_000_000)


def _canary(args: argparse.Namespace, settings: Settings) -> int:
    from models import rollout_canary
    from models.canary import canary_policy_from
    from models.reports import arm_evidence

    registry = _registry(settings)
    if args.canary_action == "start":
        record = rollout_canary.start_canary(registry, args.version, actor=args.actor,
                                             share=args.share, reason=args.reason)
        print(f"canary v{record['new_version']} at {args.share:.0%}")
        return 0
    if args.canary_action == "abort":
        rollout_canary.abort_canary(registry, actor=args.actor, reason=args.reason)
        print("canary aborted: all traffic on the champion")
        return 0
    if args.canary_action == "status":
        status = rollout_canary.status(registry)
        print(f"canary {'v' + status.version if status.version else 'none'} at "
              f"{status.share:.0%}; champion v{status.champion}")
        return 0
    if args.every is not None and (args.every <= 0 or args.decisions is not None):
        raise ConfigurationError("--every needs a positive number of seconds and live evidence "
                                 "(no --decisions)")
    stop = threading.Event()
    if args.every is not None:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while True:
        frame = _decisions(args, settings)
        decision, _ = rollout_canary.step_canary(
            registry, arm_evidence(frame, "champion"), arm_evidence(frame, "canary"),
            actor=args.actor, policy=canary_policy_from(settings))
        for name, check in decision.checks.items():
            verdict = {True: "pass", False: "FAIL", None: "n/a "}[check["passed"]]
            print(f"  {verdict}  {name}: {check['detail']}")
        print(f"{decision.action}: {decision.reason}", flush=True)
        if args.every is None or decision.action in ("rollback", "complete") \
                or stop.wait(args.every):
            return 1 if decision.action == "rollback" else 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from models.reports import ab_report, format_ab, shadow_report

    frame = _decisions(args, settings)
    ab = ab_report(frame)
    shadow = shadow_report(frame) if frame.get("shadow_score") is not None and \
        frame["shadow_score"].notna().any() else None
    if args.html:
        from models.report_html import report_html

        source = args.decisions or f"topics {settings.topic_scores} + {settings.topic_labels}"
        Path(args.html).write_text(report_html(ab, shadow, notes={
            "model": settings.model_name, "decisions": str(source)}), encoding="utf-8")
        print(f"wrote {args.html}")
    if args.json:
        print(_dump({"ab": ab, "shadow": shadow}))
        return 0
    print("A/B by arm (95% Wilson intervals, labels matured only):")
    print(format_ab(ab))
    if shadow is not None:
        a = shadow["alerts"]
        print(f"shadow: {shadow['transactions']} transactions, alert agreement "
              f"{shadow['agreement']['value']:.4f}, Pearson {shadow['pearson']:.3f}, "
              f"Spearman {shadow['spearman']:.3f}; alerts live {a['live']}, shadow "
              f"{a['shadow']}, both {a['both']}; frauds caught live "
              f"{shadow['frauds_caught']['live']}, shadow {shadow['frauds_caught']['shadow']} "
              f"of {shadow['matured_frauds']}")
    return 0


def _evidence_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decisions", default=None,
                   help="scores records (.jsonl) or a decisions frame (.parquet); default: "
                   "the scores topic since the canary's last step, with the labels topic")
    p.add_argument("--labels", default=None,
                   help="matured labels (.jsonl: transaction_id, is_fraud) for a .jsonl file")


def register(models: Any, add: Any) -> None:
    """Add the ``models`` actions to their subparsers (``add`` from ``infra.cli``)."""
    def actor(p: argparse.ArgumentParser) -> None:
        p.add_argument("--actor", default="cli", help="who does it (written to the audit log)")
        p.add_argument("--reason", default="", help="why (written to the audit log)")

    p = add("list", _list, "every version with its aliases and test metrics", models)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p = add("show", _show, "one version: metrics, windows, lineage, alias history", models)
    p.add_argument("version", help="version number")
    p.add_argument("--json", action="store_true", help="also the model card and slice table")
    p.add_argument("--card", action="store_true", help="print the model card (Markdown)")
    p = add("promote", _promote, "point an alias at a version, once it is known servable",
            models)
    p.add_argument("version", help="version number")
    p.add_argument("--alias", default="champion", choices=ALIASES, help="alias to move")
    actor(p)
    p = add("rollback", _rollback, "move an alias back to its previous holder "
            "(from the audit log), once that one is known servable", models)
    p.add_argument("--alias", default="champion", choices=ALIASES, help="alias to roll back")
    actor(p)
    canary = add("canary", None, "canary rollout: 1%% -> 10%% -> 50%% -> 100%% with gates",
                 models).add_subparsers(dest="canary_action", required=True, metavar="ACTION")
    p = add("start", _canary, "start a canary of a version", canary)
    p.add_argument("version", help="version number")
    p.add_argument("--share", type=float, default=0.01, help="first traffic share")
    actor(p)
    p = add("step", _canary, "judge the gates on the decisions since the last step and "
            "step, hold, complete or roll back (exit 1 on rollback)", canary)
    _evidence_options(p)
    p.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="keep stepping every SECONDS until the canary completes or is "
                   "rolled back (or SIGTERM); default: once")
    actor(p)
    p = add("abort", _canary, "stop the canary: all traffic back to the champion", canary)
    actor(p)
    add("status", _canary, "the canary's version and share", canary)
    p = add("report", _report, "A/B by arm and shadow agreement from decisions", models)
    _evidence_options(p)
    p.set_defaults(report=True)
    p.add_argument("--since", default=None, metavar="TIME",
                   help="live: the scores records since TIME (UTC); default: the running "
                   "canary's window, else since the shadow alias last moved")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.add_argument("--html", default=None, metavar="FILE",
                   help="also write the report as one self-contained HTML file")
