"""Process logging: human-readable lines by default, JSON lines with ``log_format=json``.

JSON output is one object per line (``time``, ``level``, ``logger``, ``message``) for log
shippers (Loki, Elasticsearch, Cloud Logging). Context travels in ``extra=`` under fixed
keys so every worker logs it the same way::

    log.warning("skipping %s", reason, extra=record_context(topic, partition, offset, tid))

adds ``topic``, ``partition``, ``offset``, ``source`` (``topic[partition]@offset``, the form
the text format already uses in messages) and ``transaction_id`` where known. Exceptions
come as ``exc_info`` text. Non-JSON values are written with ``str``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

CONTEXT_KEYS = ("topic", "partition", "offset", "source", "transaction_id", "group",
                "worker")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def record_context(topic: str | None = None, partition: int | None = None,
                   offset: int | None = None, transaction_id: str | None = None,
                   ) -> dict[str, Any]:
    """The ``extra=`` of a log call about one Kafka record (unknown parts left out).

    >>> record_context("transactions", 2, 41, "t-9")["source"]
    'transactions[2]@41'
    """
    out: dict[str, Any] = {}
    if topic is not None:
        out["topic"] = topic
    if partition is not None:
        out["partition"] = partition
    if offset is not None:
        out["offset"] = offset
    if topic is not None and partition is not None and offset is not None:
        out["source"] = f"{topic}[{partition}]@{offset}"
    if transaction_id is not None:
        out["transaction_id"] = transaction_id
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record, context keys (``CONTEXT_KEYS``) lifted from ``extra=``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if "source" not in out and {"topic", "partition", "offset"} <= out.keys():
            out["source"] = f"{out['topic']}[{out['partition']}]@{out['offset']}"
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(fmt: Literal["text", "json"] = "text", verbose: bool = False) -> None:
    """Configure the root logger for the process (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
