"""The default pipeline on the handbook replica, exactly as a user runs the benchmark.

``python -m replay.handbook_eval --seeds 0 1 2`` generates the replica
(:mod:`replay.handbook`, full size unless told otherwise) for each seed, writes it in the
handbook's own columns, and runs what a user runs on the published dataset::

    fraudstream replay backtest FILE --mapping handbook-mapping.yaml --test-end 2018-08-15

(the ``replay backtest`` defaults: train 42 days, delay 7, test 7 — the benchmark's test
week 2018-08-08 .. 14 — labels known 7 days after each transaction). It prints, per seed
and as mean ± std over seeds, the model's and the logistic-regression baseline's metrics
(:mod:`models.metrics`: AP over all test rows and on the published test set, card
precision@100 by the published protocol) and writes ``bench-results/handbook_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from features.terminal import configure_label_delay
from infra.settings import Settings
from replay.commands import BacktestOptions, backtest_file
from replay.handbook import MAPPING, TEST_END, HandbookConfig, transactions

METRICS = ("average_precision", "average_precision_unknown_cards", "card_precision_at_k",
           "roc_auc")


def run_seed(config: HandbookConfig, work: Path, options: BacktestOptions,
             settings: Settings) -> pd.DataFrame:
    """The backtest's metrics table for one generated file."""
    path = work / f"handbook-{config.seed}.parquet"
    transactions(config).to_parquet(path, index=False)
    _, metrics = backtest_file(settings, path, MAPPING, options, work / f"out-{config.seed}")
    return metrics.assign(seed=config.seed)


def summary(table: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for candidate, group in table.groupby("candidate", sort=False):
        out[str(candidate)] = {m: {"mean": float(group[m].mean()),
                                   "std": float(group[m].std(ddof=1)) if len(group) > 1
                                   else float("nan")} for m in METRICS}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--train-days", type=float, default=BacktestOptions.train_days)
    parser.add_argument("--nthread", type=int, default=2)
    parser.add_argument("--out", default="bench-results/handbook_eval.json")
    args = parser.parse_args(argv)
    configure_label_delay(Settings().label_delay_days)  # as the CLI does: one d
    options = BacktestOptions(test_end=TEST_END.isoformat(), train_days=args.train_days)
    settings = Settings(xgb_nthread=args.nthread)
    started = time.perf_counter()
    tables = []
    with tempfile.TemporaryDirectory(prefix="handbook-eval-") as tmp:
        for seed in args.seeds:
            config = HandbookConfig(n_customers=args.customers, n_terminals=args.terminals,
                                    seed=seed)
            table = run_seed(config, Path(tmp), options, settings)
            print(table[["seed", "candidate", *METRICS]].to_string(index=False), flush=True)
            tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    result = {"options": {"train_days": options.train_days, "test_end": options.test_end,
                          "customers": args.customers, "terminals": args.terminals},
              "summary": summary(table), "seeds": table[["seed", "candidate", *METRICS]]
              .to_dict("records"), "seconds": time.perf_counter() - started}
    for candidate, values in result["summary"].items():
        print(f"{candidate:<12}" + "  ".join(
            f"{m} {v['mean']:.4f} ± {v['std']:.4f}" for m, v in values.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out} ({result['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
