"""``fraudstream alerts tail``: print alerts for analysts as they arrive."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, TextIO

from infra.settings import Settings
from streams.clients import make_consumer


def format_alert(alert: dict[str, Any]) -> str:
    """One readable line per alert: decision, score, transaction, top reasons, model."""
    txn = alert.get("transaction", {})
    reasons = ", ".join(f"{r['code']}={r['value']:.4g}" for r in alert.get("reasons", [])) or "-"
    model = alert.get("model_version", {})
    return (
        f"{alert['decision'].upper():7s} score={alert['score']:.3f} "
        f"txn={alert['transaction_id']} card={txn.get('card_id')} "
        f"amount={txn.get('amount')} {txn.get('currency', '')} {txn.get('channel', '')} "
        f"{txn.get('country', '')} at {txn.get('event_time')} | reasons: {reasons} "
        f"| model v{model.get('batch')} | {alert.get('latency_ms')} ms"
    )


def tail_alerts(
    settings: Settings,
    from_beginning: bool = False,
    limit: int | None = None,
    idle: float | None = None,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Print alerts until ``limit`` alerts, ``idle`` seconds without one, or ``stop`` is set.

    Returns the number printed.
    """
    import sys

    stream = out or sys.stdout
    consumer = make_consumer(
        settings,
        f"fraudstream-alerts-tail-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    consumer.subscribe([settings.topic_alerts])
    seen = 0
    last = time.monotonic()
    try:
        while (limit is None or seen < limit) and not (stop is not None and stop.is_set()):
            message = consumer.poll(0.5)
            if message is None or message.error():
                if idle is not None and time.monotonic() - last > idle:
                    break
                continue
            last = time.monotonic()
            print(format_alert(json.loads(message.value() or b"{}")), file=stream, flush=True)
            seen += 1
    finally:
        consumer.close()
    return seen
