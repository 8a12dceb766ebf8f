"""Cost of the input boundary: ``python -m bench.validation_bench [--n N] [--repeat R]``.

Per call (best of ``--repeat`` runs of ``--n`` calls, one thread, ``time.perf_counter``):

- ``parse_transaction_us``: bytes -> validated :class:`~streams.schema.Transaction` (UTF-8
  decode, JSON with the duplicate-key check, strict field rules);
- ``parse_label_us``: bytes -> validated label;
- ``refuse_us``: a refused transaction (a subnormal amount) -> ``InvalidInput``;
- ``check_finite_us``: :func:`features.guards.check_finite` on one 40-feature vector.

Prints the numbers and writes ``bench-results/validation.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from features.core import FEATURE_NAMES
from features.guards import check_finite
from features.labels import parse_label
from infra.errors import InvalidInput
from streams.schema import parse_transaction

TX = {"transaction_id": "tx-000001", "event_time": "2024-05-01T12:30:00Z", "card_id": "card-42",
      "merchant_id": "Kutch, Hermiston and Farrell", "terminal_id": "t-7", "amount": 59.9,
      "currency": "EUR", "channel": "pos", "country": "FR", "mcc": "5411", "schema_version": 1}
LABEL = {"transaction_id": "tx-000001", "card_id": "card-42", "label": "fraud",
         "source": "chargeback", "label_time": "2024-05-09T08:00:00Z"}


def best_us(fn: Callable[[], Any], n: int, repeat: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/validation.json"))
    args = parser.parse_args()
    tx, label = json.dumps(TX).encode(), json.dumps(LABEL).encode()
    bad = json.dumps({**TX, "amount": 5e-324}).encode()
    vector = [1.0] * len(FEATURE_NAMES)

    def refuse() -> None:
        try:
            parse_transaction(bad)
        except InvalidInput:
            pass

    results = {
        "parse_transaction_us": best_us(lambda: parse_transaction(tx), args.n, args.repeat),
        "parse_label_us": best_us(lambda: parse_label(label, 16_384), args.n, args.repeat),
        "refuse_us": best_us(refuse, args.n, args.repeat),
        "check_finite_us": best_us(lambda: check_finite(vector, FEATURE_NAMES), args.n,
                                   args.repeat),
    }
    for name, value in results.items():
        print(f"{name:<22} {value:8.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.machine(), "python":
                                    platform.python_version(), "n": args.n,
                                    "repeat": args.repeat, "results": results}, indent=2))


if __name__ == "__main__":
    main()
