"""Detection quality under a fixed label delay: the default pipeline vs the textbook baseline.

``python -m replay.delay_eval`` (see ``docs/evaluation.md``) generates the published
benchmark's world (``--world handbook``, the default: :mod:`replay.handbook`, the replica of
its generator, full size; ``--world classic``:
:meth:`replay.config.SimulationConfig.classic_world`, the project's simulator with the classic
scenarios), every label known exactly 7 days later, computes the features once, and runs
the default ``replay backtest --prequential`` protocol (train 42 days, delay 7, test 7,
step 7; the default :class:`models.train.TrainConfig`) over at least 8 folds. Each fold
trains the model and the logistic-regression baseline (:mod:`models.baseline`) on the same
rows and scores the same test week, so the comparison is paired fold by fold.

Reported per candidate: mean, standard deviation (ddof=1), min and max over folds of
average precision, ROC AUC and card precision@100 (the one definition of
:mod:`models.metrics`), and the relative AP lift of the model over the baseline (of the
means, and per fold). ``--ablation`` repeats the folds with each feature group left out
(:data:`GROUPS`), the table of ``docs/evaluation.md``. Output: a printed table and
``bench-results/delay_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.core import FEATURE_NAMES
from features.terminal import configure_label_delay
from infra.settings import Settings
from models.baseline import BASELINE_LABEL
from replay.backtest import BacktestConfig, feature_frame
from replay.config import SimulationConfig
from replay.handbook import MAPPING, HandbookConfig, history
from replay.prequential import run_prequential
from replay.simulator import simulate

METRICS = ("average_precision", "average_precision_unknown_cards", "roc_auc",
           "card_precision_at_k")
MODEL = "trained"

# Feature groups for the ablation: a name and the features it leaves out.
GROUPS: dict[str, tuple[str, ...]] = {
    "terminal delayed windows": tuple(n for n in FEATURE_NAMES if n.endswith("_delayed"))
    + ("term_fraud_count_known_long",),
    "terminal fraud, windows ending at T": ("term_fraud_count_7d", "term_fraud_count_30d",
                                            "term_fraud_rate_7d", "term_fraud_rate_30d"),
    "terminal volumes": ("term_txn_count_1h", "term_txn_count_24h", "term_txn_count_7d",
                         "term_txn_count_30d", "term_amount_mean_24h"),
    "card known frauds": ("card_known_fraud_count_30d", "card_known_compromised"),
    "card velocity (counts, sums, means)": tuple(
        n for n in FEATURE_NAMES if n.startswith(("card_txn_count", "card_amount_sum",
                                                  "card_amount_mean"))),
    "card history (z-score, ratio, novelty, profile)": (
        "card_amount_zscore_30d", "card_amount_ratio_30d", "card_seconds_since_prev",
        "card_distinct_merchants_24h", "card_distinct_countries_24h",
        "card_distinct_devices_24h", "card_new_merchant_30d", "card_new_device_30d",
        "card_new_country_30d", "card_age_days", "card_profile_amount_ewm",
        "card_profile_ecom_share", "card_profile_night_share"),
}


WORLDS = ("handbook", "classic")
# sizes (days, customers, terminals) of each world when not given
SIZES = {"handbook": (183, 5000, 10_000), "classic": (120, 2000, 2000)}


@dataclass(frozen=True)
class EvalConfig:
    world: str = "handbook"
    days: int | None = None  # None: the world's size (SIZES)
    customers: int | None = None
    terminals: int | None = None
    seed: int = 7
    label_delay_days: float = 7.0
    folds: int = 10
    train_days: float = 42.0
    test_days: float = 7.0
    nthread: int = 2


def featured(config: EvalConfig) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The world's history (every label known ``label_delay_days`` later) with features."""
    days, customers, terminals = (
        given if given is not None else default for given, default in zip(
            (config.days, config.customers, config.terminals), SIZES[config.world],
            strict=True))
    if config.world == "handbook":
        mapping = replace(MAPPING, label_delay_days=config.label_delay_days)
        return feature_frame(history(HandbookConfig(
            n_customers=customers, n_terminals=terminals, days=days, seed=config.seed),
            mapping))
    sim = SimulationConfig.classic_world(days=days, n_customers=customers,
                                         n_terminals=terminals, seed=config.seed,
                                         label_delay_days=config.label_delay_days)
    return feature_frame(simulate(sim))


def run_folds(frame: pd.DataFrame, names: tuple[str, ...], config: EvalConfig
              ) -> pd.DataFrame:
    """Per fold and candidate (model, baseline): the metrics of :data:`METRICS`."""
    backtest = BacktestConfig().with_windows(
        train_days=config.train_days, delay_days=config.label_delay_days,
        test_days=config.test_days)
    settings = Settings(xgb_nthread=config.nthread)
    result = run_prequential(frame, names, [], settings, backtest, n_folds=config.folds)
    return result.folds[["fold", "test_start", "candidate", *METRICS]]


def summary(folds: pd.DataFrame) -> dict[str, Any]:
    """Mean / std / min / max per candidate and metric, and the model's AP lift."""
    out: dict[str, Any] = {}
    for candidate, group in folds.groupby("candidate", sort=False):
        out[str(candidate)] = {
            m: {"mean": float(group[m].mean()), "std": float(group[m].std(ddof=1)),
                "min": float(group[m].min()), "max": float(group[m].max())}
            for m in METRICS}
    ap = folds.pivot(index="fold", columns="candidate", values="average_precision")
    per_fold = ap[MODEL] / ap[BASELINE_LABEL] - 1.0
    out["ap_lift"] = {
        "of_means": float(ap[MODEL].mean() / ap[BASELINE_LABEL].mean() - 1.0),
        "per_fold_mean": float(per_fold.mean()), "per_fold_min": float(per_fold.min()),
        "folds_model_ahead": int((per_fold > 0).sum()), "folds": int(len(per_fold))}
    return out


def _table(result: dict[str, Any]) -> str:
    width = max(len(m) for m in METRICS) + 2
    lines = [f"{'candidate':<14}" + "".join(f"{m:>{width}}" for m in METRICS)]
    for candidate in (MODEL, BASELINE_LABEL):
        cells = [f"{result[candidate][m]['mean']:.4f} ± {result[candidate][m]['std']:.4f}"
                 for m in METRICS]
        lines.append(f"{candidate:<14}" + "".join(f"{c:>{width}}" for c in cells))
    lift = result["ap_lift"]
    lines.append(f"AP lift of the model over the baseline: {lift['of_means']:+.1%} (of the "
                 f"means); per fold mean {lift['per_fold_mean']:+.1%}, min "
                 f"{lift['per_fold_min']:+.1%}; model ahead in {lift['folds_model_ahead']}"
                 f"/{lift['folds']} folds")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=WORLDS, default=EvalConfig.world,
                        help="handbook: the replica of the published generator "
                        "(replay.handbook); classic: the project's simulator with the "
                        "classic scenarios")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--terminals", type=int, default=None)
    parser.add_argument("--seed", type=int, default=EvalConfig.seed)
    parser.add_argument("--folds", type=int, default=EvalConfig.folds)
    parser.add_argument("--nthread", type=int, default=EvalConfig.nthread)
    parser.add_argument("--ablation", action="store_true", help="leave each group out")
    parser.add_argument("--out", default="bench-results/delay_eval.json")
    args = parser.parse_args(argv)
    configure_label_delay(Settings().label_delay_days)  # as the CLI does: one d
    config = EvalConfig(world=args.world, days=args.days, customers=args.customers,
                        terminals=args.terminals, seed=args.seed, folds=args.folds,
                        nthread=args.nthread)
    started = time.perf_counter()
    frame, names = featured(config)
    n_fraud = int(frame["is_fraud"].sum())
    print(f"simulated {len(frame):,} transactions ({n_fraud:,} fraud, "
          f"{n_fraud / len(frame):.2%}), features in {time.perf_counter() - started:.0f}s")
    folds = run_folds(frame, names, config)
    result: dict[str, Any] = {"config": config.__dict__, "rows": len(frame),
                              "frauds": n_fraud, "default": summary(folds),
                              "folds": folds.to_dict("records")}
    print(_table(result["default"]))
    if args.ablation:
        result["ablation"] = {}
        for group, drop in GROUPS.items():
            kept = tuple(n for n in names if n not in drop)
            s = summary(run_folds(frame, kept, config))
            result["ablation"][group] = s
            delta = s[MODEL]["average_precision"]["mean"] - result["default"][MODEL][
                "average_precision"]["mean"]
            print(f"without {group:<50} AP {s[MODEL]['average_precision']['mean']:.4f} "
                  f"({delta:+.4f})  CP@100 {s[MODEL]['card_precision_at_k']['mean']:.4f}")
    result["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=_json))
    print(f"wrote {out} ({result['seconds']:.0f}s)")
    return 0


def _json(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
