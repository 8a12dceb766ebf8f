"""Online feature reads benchmark (a command, not a test).

``python -m bench.features_bench [--repeat K]``

Starts Kafka and Redis (``infra.testing.running_services``) and measures online reads of
micro-batches of 1, 100 and 500 transactions: ``OnlineFeatures.read`` (one pipelined round
trip + decoding Feast's protobufs) beside a raw Redis pipeline of the same HMGETs (no
decoding) and Feast's ``get_online_features``. The stream stage's throughput, latency and
CPU (it writes the rows) are measured by :mod:`bench.pipeline_bench`.

Prints the numbers and writes ``bench-results/features.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from features.core import FEATURE_NAMES
from features.definitions import ENTITY_JOIN_KEY, TRANSACTION_VIEW
from features.redis_layout import feature_fields, redis_key
from features.store import OnlineFeatures
from infra.settings import Settings
from infra.testing import running_services


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process and of its children it has reaped (Redis's
    forked AOF rewrites), from /proc: other processes on the box do not inflate it, unlike
    wall-clock rates."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def reads(settings: Settings, repeat: int) -> dict[str, Any]:
    online = OnlineFeatures(settings)
    project = settings.feast_project.encode()
    fields = feature_fields(TRANSACTION_VIEW, FEATURE_NAMES)
    ids = [f"bench-{i:07d}" for i in range(5000)]
    vector = tuple(float(i) for i in range(len(FEATURE_NAMES)))
    for at in range(0, len(ids), 500):  # the rows the stream stage would have written
        online.write([(t, "card-1", "t:1", 1_714_000_000_000, vector) for t in ids[at:at + 500]])
    out: dict[str, Any] = {}
    online.read(ids[:10])
    online.read_via_feast(ids[:10])

    def timed(fn: Any, batch: list[str]) -> float:
        started = time.perf_counter()
        fn(batch)
        return (time.perf_counter() - started) * 1000.0

    def raw(batch: list[str]) -> None:
        with online.redis.pipeline(transaction=False) as pipe:
            for tid in batch:
                pipe.hmget(redis_key(ENTITY_JOIN_KEY, tid, project), fields)  # type: ignore[arg-type]
            pipe.execute()

    for size in (1, 100, 500):
        batches = [ids[(i * size) % (len(ids) - size):][:size] for i in range(repeat)]
        ours = [timed(online.read, b) for b in batches]
        base = [timed(raw, b) for b in batches]
        feast = [timed(online.read_via_feast, b) for b in batches[: max(5, repeat // 10)]]
        if any(v is None for v in online.read(batches[0])):
            raise RuntimeError("benchmark rows missing from the online store")
        out[str(size)] = {
            "read_p50_ms": statistics.median(ours), "read_p99_ms": pct(ours, 0.99),
            "raw_redis_p50_ms": statistics.median(base), "raw_redis_p99_ms": pct(base, 0.99),
            "feast_get_online_features_p50_ms": statistics.median(feast),
            "ratio_p50": statistics.median(ours) / statistics.median(base),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with running_services() as settings:
        OnlineFeatures(settings).apply()
        results["reads"] = reads(settings, args.repeat)
        for size, r in results["reads"].items():
            print(f"read {size:>3}: {r['read_p50_ms']:.2f} ms p50 vs raw Redis "
                  f"{r['raw_redis_p50_ms']:.2f} ms (x{r['ratio_p50']:.2f}); Feast "
                  f"get_online_features {r['feast_get_online_features_p50_ms']:.2f} ms")
    out = Path("bench-results") / "features.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
