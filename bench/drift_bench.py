"""Cost of the drift computation per window: ``python bench/drift_bench.py [--repeat N]``.

For N columns (features + score) and window sizes W, measures with ``time.perf_counter``
(median of ``--repeat`` runs, one thread):

- ``evaluate_ms``: :func:`drift.detect.evaluate_window` (binning, PSI, KS against a
  1,000-value reference sample, p-value correction, severities);
- ``assemble_ms``: turning W decoded ``scores`` observations into column arrays, as the
  monitor does before evaluating;
- ``window_add_us``: per-record cost of the event-time windower;
- ``report_ms``: rendering the Markdown/SVG report of a drifting window (no disk I/O).

Prints a table and writes ``bench-results/drift.json`` (machine, settings, results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drift.detect import DriftThresholds, evaluate_window
from drift.records import Observation
from drift.reference import SCORE, Reference
from drift.report import render
from drift.windows import EventTimeWindower

COLUMNS = (16, 41, 64)  # 41 = the current 40 served features + score
WINDOWS = (1_000, 5_000, 10_000, 50_000)
SAMPLE = 1_000


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def _columns(rng: np.random.Generator, n_cols: int, rows: int, shift: float) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for i in range(n_cols - 1):
        kind = i % 3
        if kind == 0:
            cols[f"f{i}"] = rng.lognormal(3 + shift, 1, rows)
        elif kind == 1:
            cols[f"f{i}"] = rng.poisson(3 + shift, rows).astype(float)
        else:
            cols[f"f{i}"] = (rng.random(rows) < 0.1 + shift / 10).astype(float)
    cols[SCORE] = rng.beta(1, 20, rows)
    return cols


def _measure(
    reference: Reference, values: dict[str, Any], thresholds: DriftThresholds, repeat: int
) -> dict[str, Any]:
    rows = len(values[SCORE])
    observations = [
        Observation(i * 1000, {k: float(v[i]) for k, v in values.items()}, "1", 0, i)
        for i in range(rows)
    ]

    def assemble() -> None:
        for n in reference.names:
            np.fromiter((o.values.get(n, np.nan) for o in observations), float, rows)

    def evaluate() -> None:
        evaluate_window(values, reference, thresholds, start_ms=0, end_ms=1)

    def windowing() -> None:
        w: EventTimeWindower[Observation] = EventTimeWindower(
            86_400_000, lambda o: o.event_ms, partition_of=lambda o: o.partition
        )
        for o in observations:
            w.add(o)

    report = evaluate_window(values, reference, thresholds, start_ms=0, end_ms=1)
    half = max(1, repeat // 2)
    return {
        "columns": len(reference.names),
        "window_rows": rows,
        "evaluate_ms": round(_median_ms(evaluate, repeat), 3),
        "assemble_ms": round(_median_ms(assemble, half), 3),
        "window_add_us": round(_median_ms(windowing, half) * 1000 / rows, 3),
        "report_ms": round(
            _median_ms(lambda: render(report, thresholds, "w", reference), repeat), 3
        ),
        "drifting_columns": len(report.drifting),
    }


def bench(repeat: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    thresholds = DriftThresholds(skip=())
    results = []
    for n_cols in COLUMNS:
        reference = Reference.from_columns(
            _columns(rng, n_cols, 50_000, 0.0), model_version="1", sample_size=SAMPLE
        )
        for rows in WINDOWS:
            results.append(
                _measure(reference, _columns(rng, n_cols, rows, 0.3), thresholds, repeat)
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench-results/drift.json"))
    args = parser.parse_args()
    results = bench(args.repeat)
    print(f"{'cols':>5} {'rows':>7} {'eval ms':>9} {'assemble ms':>12} {'add us':>7}", end="")
    print(f" {'report ms':>10}")
    for r in results:
        print(
            f"{r['columns']:>5} {r['window_rows']:>7} {r['evaluate_ms']:>9.2f} "
            f"{r['assemble_ms']:>12.2f} {r['window_add_us']:>7.2f} {r['report_ms']:>10.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "bench": "drift",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "reference_sample": SAMPLE,
        "repeat": args.repeat,
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
