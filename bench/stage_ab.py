"""Compare stage variants on ONE warm broker and Redis, alternating them (a command).

    python -m bench.stage_ab --variant base --variant b50:stream_batch_ms=50 \\
        [--variant mine@/path/to/other/checkout] [--plan 250x20,1000x20,2000x20,drain40000] \\
        [--rounds 2]

Run-to-run spread of :mod:`bench.pipeline_bench` on a 2-core box (a freshly started JVM
broker still compiling, other load) is larger than many changes worth measuring. Here every
variant runs against the same services, round after round (A B A B), each round after the
ones before warmed the broker. A variant is ``name[@checkout][:setting=value,...]``: the
stage process runs from ``checkout`` (another git worktree: compare code) with those
settings (compare settings). ``--plan`` steps: ``RATExSECONDS`` (5 s unmeasured at the rate
first, then publish -> visible latency and CPU per decision of each process) or
``drainN`` (N transactions published at once, decisions per second). Prints one JSON line
per step and writes ``bench-results/stage_ab.json``; the CPU figures include this process
(publisher and reader) under ``bench``, which the totals leave out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.features_bench import process_cpu_s
from bench.pipeline_bench import SMALL_HISTORY, Collector, paced_latency, service_pids
from features.terminal import configure_label_delay
from infra.bootstrap import bootstrap
from infra.services.process import free_ports
from infra.settings import Settings
from infra.testing import running_services
from infra.workers import WorkerProcess
from replay.history import write_history
from replay.publish import publish_history
from replay.simulator import SimulationConfig, simulate

RESULTS = Path("bench-results") / "stage_ab.json"
WARM_S = 5.0


def variant(text: str) -> dict[str, Any]:
    """``name[@checkout][:k=v,...]`` -> name, checkout (or None) and settings overrides."""
    head, _, sets = text.partition(":")
    name, _, checkout = head.partition("@")
    fields = Settings.model_fields
    overrides: dict[str, Any] = {}
    for pair in filter(None, sets.split(",")):
        key, _, value = pair.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown setting {key!r} in --variant {text!r}")
        overrides[key] = value
    return {"name": name, "checkout": checkout or None, "overrides": overrides}


def step(text: str) -> tuple[str, float, float]:
    if text.startswith("drain"):
        return "drain", float(text[5:]), 0.0
    rate, _, seconds = text.partition("x")
    return "paced", float(rate), float(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", type=variant, required=True)
    parser.add_argument("--plan", default="250x20,1000x20,2000x20,drain40000")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    plan = [step(s) for s in args.plan.split(",") if s]
    configure_label_delay(Settings().label_delay_days)
    per_round = sum(n if kind == "drain" else n * (WARM_S + s) for kind, n, s in plan)
    need = int(20_000 + args.rounds * len(args.variant) * (200 + per_round))
    frame = simulate(SimulationConfig(n_customers=max(2000, need // 11), n_terminals=1500,
                                      days=21, seed=3))
    start = frame["event_time"].min() + pd.Timedelta(days=14)
    history, live = frame[frame["event_time"] < start], frame[frame["event_time"] >= start]
    if len(live) < need:
        raise SystemExit(f"the plan needs {need} transactions, the simulation has {len(live)}")
    rows: list[dict[str, Any]] = []
    with running_services() as base:
        settings = base.model_copy(update={"state_dir": base.state_dir / "ab"})
        work = settings.state_dir
        work.mkdir(parents=True, exist_ok=True)
        bootstrap(settings, write_history(history, work / "h.parquet"), SMALL_HISTORY)
        at = 0  # the next unpublished row of ``live``

        def take(n: int) -> pd.DataFrame:
            nonlocal at
            chunk = live.iloc[at: at + n]
            at += n
            return chunk

        with Collector(settings) as collector:
            backlog = take(20_000)  # decided by the first variant before any measurement
            publish_history(write_history(backlog, work / "b.parquet"), settings, progress=None)
            for rnd in range(args.rounds):
                for v in args.variant:
                    rows += run_variant(v, rnd, plan, settings, service_pids(base),
                                        collector, take, work, backlog if not rows else None)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"wrote {RESULTS}")
    return 0


def run_variant(v: dict[str, Any], rnd: int, plan: list[tuple[str, float, float]],
                settings: Settings, services: dict[str, int], collector: Collector,
                take: Any, work: Path, backlog: pd.DataFrame | None) -> list[dict[str, Any]]:
    """One variant's worker through the plan (after deciding ``backlog`` if given)."""
    port = free_ports(1)[0]
    here = os.getcwd()
    os.chdir(v["checkout"] or here)  # the worker imports the stage from its working dir
    try:
        worker = WorkerProcess(f"ab-{v['name']}", ["stream", "worker"], settings.model_copy(
            update={"stream_metrics_port": port, **v["overrides"]})).start()
    finally:
        os.chdir(here)
    pids = {"stream": worker.pid} | services | {"bench": os.getpid()}
    out = []
    try:
        if backlog is not None:
            collector.wait_for(set(backlog["transaction_id"]), timeout=900)
        ready = take(200)  # the worker is up and assigned before anything is measured
        publish_history(write_history(ready, work / "r.parquet"), settings, progress=None)
        collector.wait_for(set(ready["transaction_id"]), timeout=300)
        for kind, n, seconds in plan:
            if kind == "paced":
                warm = take(int(n * WARM_S))
                publish_history(write_history(warm, work / "w.parquet"), settings, max_rate=n,
                                progress=None)
                collector.wait_for(set(warm["transaction_id"]), timeout=600)
                run = paced_latency(  # the latency step of bench.pipeline_bench
                    settings, collector, take(int(n * seconds)), n, work / "p.parquet", pids,
                    [port])
                cpu, decided = run.pop("cpu_ms_per_tx"), run.pop("decided")
                extra = {k: run[k] for k in ("p50", "p99", "after_5s", "at_decide",
                                             "stage_wall_ms_per_tx")}
            else:
                cpu, decided, extra = drain(settings, collector, take(int(n)), work, pids)
            row: dict[str, Any] = {"variant": v["name"], "round": rnd,
                                   "step": f"{kind} {n:g}", "decided": decided, "cpu": cpu,
                                   "cpu_total": round(sum(c for k, c in cpu.items()
                                                          if k != "bench"), 4), **extra}
            print(json.dumps(row), flush=True)
            out.append(row)
    finally:
        worker.stop()
        time.sleep(1.0)  # its group membership leaves before the next variant joins
    return out


def drain(settings: Settings, collector: Collector, frame: pd.DataFrame, work: Path,
          pids: dict[str, int | None]) -> tuple[dict[str, float], int, dict[str, Any]]:
    """``frame`` published at once: each process's CPU per decision, the decisions, and
    decisions per second from the first to the last."""
    ids = set(frame["transaction_id"])
    before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    publish_history(write_history(frame, work / "d.parquet"), settings, progress=None)
    got = collector.wait_for(ids, timeout=600)
    cpu = {name: round((process_cpu_s(pid) - before[name]) * 1000 / len(ids), 4)
           for name, pid in pids.items()}
    arrivals = [t for t, _ in got]
    return cpu, len(got), {"per_s": round(len(got) / max(1e-9, arrivals[-1] - arrivals[0]))}


if __name__ == "__main__":
    raise SystemExit(main())
