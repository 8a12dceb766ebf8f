"""Console page latency with 10,000 alerts in the queue (goal: p95 < 100 ms per page).

``python -m bench.console_bench [--alerts 10000] [--requests 200]`` starts the API (console
included, no Kafka: the child fills its case store with synthetic alerts and card
histories) as a uvicorn child process on a free loopback port, signs in, then requests each
console page sequentially over keep-alive HTTP and reports p50/p95/p99/max per page. The
numbers are printed and written to ``bench-results/console_bench.json``, with the load
average (the box is shared: read it before the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

KEY = "bench-Console-9x7w-3k2j"
PAGES = {
    "queue": "/console",
    "queue filtered (decline, score>=0.5, riskiest)":
        "/console?decision=decline&min_score=0.5&sort=riskiest",
    "queue filtered (ecom, FR, amount 100-500)":
        "/console?channel=ecom&country=FR&min_amount=100&max_amount=500",
    "queue poll (JSON)": "/console/api/alerts",
    "case": "/console/case/{tid}",
    "case export (JSON)": "/console/case/{tid}/export.json",
    "audit": "/console/audit",
}


def _alert(i: int, rng: random.Random) -> dict[str, Any]:
    score = rng.random() * 0.6 + 0.4
    return {
        "transaction_id": f"tx-{i:06d}", "decision": "decline" if score > 0.9 else "review",
        "score": score, "latency_ms": rng.randint(5, 80),
        "reasons": [{"code": c, "value": rng.random() * 10, "contribution": rng.random()}
                    for c in ("card_amount_ratio_30d", "card_new_device_30d",
                              "term_fraud_rate_7d")],
        "model_version": {"batch": str(rng.choice([3, 4])), "online": "12"},
        "transaction": {"event_time": "2025-03-01T10:00:00Z", "card_id": f"card-{i % 2000}",
                        "merchant_id": f"m-{i % 300}", "terminal_id": f"t-{i % 500}",
                        "amount": round(rng.lognormvariate(4, 1), 2), "currency": "EUR",
                        "channel": rng.choice(["pos", "ecom", "atm", "moto"]),
                        "country": rng.choice(["FR", "DE", "US", "GB"]), "mcc": "5411"},
    }


def serve(port: int, alerts: int, state_dir: Path) -> None:
    """Child: the API with a filled console store, served until killed."""
    import uvicorn
    from pydantic import SecretStr

    from features.core import FEATURE_NAMES
    from infra.errors import ModelError
    from infra.settings import Settings
    from scoring.api import create_app
    from scoring.api_deps import ApiDeps

    class NoStates:
        def read(self, card_id: str, terminal: str) -> tuple[None, None]:
            return None, None

        def ping(self) -> bool:
            return True

    def no_model() -> Any:
        raise ModelError("the console bench loads no model")

    import scoring.console as console_module

    settings = Settings(state_dir=state_dir, api_keys=SecretStr(f"bench:{KEY}"),
                        api_port=port, console_alerts_capacity=max(alerts, 100))
    rng = random.Random(7)  # noqa: S311 - synthetic data, not secrets
    build = console_module.build_console

    def filled(settings: Settings, feed: bool) -> Any:
        console = build(settings, feed)
        for i in range(alerts):
            alert = _alert(i, rng)
            console.store.add_score({
                "transaction_id": alert["transaction_id"],
                "card_id": alert["transaction"]["card_id"], "event_time": "2025-03-01T10:00:00Z",
                "score": alert["score"], "decision": alert["decision"],
                "features": {n: rng.random() for n in FEATURE_NAMES}})
            console.store.add_alert(alert)
        return console

    console_module.build_console = filled  # the lifespan's start hook builds a filled store
    app = create_app(settings, ApiDeps(settings, states=NoStates(), load_model=no_model),
                     console_feed=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--state-dir", default=".fraudstream/console-bench")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.alerts, Path(args.state_dir))
        return {}

    import httpx

    port = _free_port()
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.console_bench", "--serve", str(port),
         "--alerts", str(args.alerts), "--state-dir", args.state_dir])
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise
                time.sleep(0.3)
            client.post("/console/login", data={"key": KEY})
            newest = client.get("/console/api/alerts").json()
            assert newest["total"] == args.alerts, newest["total"]  # noqa: S101
            tid = newest["rows"][len(newest["rows"]) // 2]["transaction_id"]
            results: dict[str, Any] = {}
            for name, path in PAGES.items():
                url = path.format(tid=tid)
                for _ in range(5):  # warm-up
                    client.get(url)
                times = []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    answer = client.get(url)
                    times.append((time.perf_counter() - started) * 1000)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
                times.sort()
                results[name] = {
                    "path": url, "requests": len(times),
                    "p50_ms": round(statistics.median(times), 2),
                    "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
                    "p99_ms": round(times[int(0.99 * (len(times) - 1))], 2),
                    "max_ms": round(times[-1], 2), "bytes": len(answer.content)}
                print(f"{name:48s} p50 {results[name]['p50_ms']:7.2f} ms  p95 "
                      f"{results[name]['p95_ms']:7.2f} ms  p99 {results[name]['p99_ms']:7.2f}"
                      f" ms  ({results[name]['bytes']} bytes)", flush=True)
    finally:
        child.terminate()
        child.wait(20)
    summary = {"alerts_in_queue": args.alerts, "goal_p95_ms": 100,
               "load_average_1m": os.getloadavg()[0],
               "met": all(r["p95_ms"] < 100 for r in results.values()), "pages": results}
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "console_bench.json").write_text(json.dumps(summary, indent=1))
    print(f"goal p95 < 100 ms on every page: {'met' if summary['met'] else 'NOT met'} "
          f"(load average {summary['load_average_1m']:.1f}); bench-results/console_bench.json")
    return summary


if __name__ == "__main__":
    main()
