"""Pure helpers of the console: query filters, case rows, exports (no I/O, no FastAPI state)."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from typing import Any

from scoring.api_http import ApiError
from scoring.console.store import STATES, Case, Filters

DECISIONS = ("review", "decline")
SORTS = ("newest", "riskiest")
TERMINAL_RISK = ("term_fraud_rate_7d", "term_fraud_rate_30d", "term_fraud_count_7d",
                 "term_fraud_count_30d", "term_txn_count_7d")
EXPORT_COLUMNS = ("transaction_id", "state", "decision", "score", "amount", "currency",
                  "channel", "country", "mcc", "card_id", "merchant_id", "terminal_id",
                  "event_time", "received", "model_batch", "model_online", "reasons",
                  "claimed_by", "verdict", "verdict_by", "verdict_at", "note")


def _number(params: dict[str, str], name: str, low: float, high: float) -> float | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(422, name, f"not a number: {raw[:20]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(422, name, f"must be between {low:g} and {high:g}")
    return value


def _choice(params: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = params.get(name, "").strip()
    if raw and raw not in allowed:
        raise ApiError(422, name, f"must be one of {', '.join(allowed)}")
    return raw or None


def _code(params: dict[str, str], name: str, size: int) -> str | None:
    raw = params.get(name, "").strip().upper() if name != "model" else params.get(name, "")
    raw = raw.strip()
    if raw and (len(raw) > size or not raw.isalnum()):
        raise ApiError(422, name, f"must be up to {size} letters or digits")
    return raw or None


def parse_filters(params: dict[str, str]) -> Filters:
    """Filters from query parameters; 422 naming the parameter for a bad value."""
    return Filters(
        decision=_choice(params, "decision", DECISIONS),
        state=_choice(params, "state", (*STATES, "undecided")),
        min_score=_number(params, "min_score", 0.0, 1.0),
        max_score=_number(params, "max_score", 0.0, 1.0),
        min_amount=_number(params, "min_amount", 0.0, 1e12),
        max_amount=_number(params, "max_amount", 0.0, 1e12),
        channel=(_choice(params, "channel", ("pos", "ecom", "atm", "moto"))),
        country=_code(params, "country", 2),
        model=_code(params, "model", 20),
        sort=_choice(params, "sort", SORTS) or "newest",
    )


def reasons_text(reasons: Any) -> str:
    if not isinstance(reasons, list):
        return ""
    return "; ".join(f"{r.get('code')}={_fmt(r.get('value'))} ({r.get('contribution', 0):+.3f})"
                     for r in reasons if isinstance(r, dict))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def case_row(case: Case, now: float) -> dict[str, Any]:
    """One flat row: what the queue shows and what an export carries (with explanations)."""
    txn, versions = case.txn, case.alert.get("model_version")
    versions = versions if isinstance(versions, dict) else {}
    return {
        "transaction_id": case.transaction_id, "state": case.state(now),
        "decision": case.alert.get("decision"), "score": round(case.score, 4),
        "amount": txn.get("amount"), "currency": txn.get("currency"),
        "channel": txn.get("channel"), "country": txn.get("country"), "mcc": txn.get("mcc"),
        "card_id": txn.get("card_id"), "merchant_id": txn.get("merchant_id"),
        "terminal_id": txn.get("terminal_id"), "event_time": txn.get("event_time"),
        "received": iso(case.received), "model_batch": versions.get("batch"),
        "model_online": versions.get("online"), "reasons": reasons_text(case.alert.get("reasons")),
        "claimed_by": case.owner(now), "verdict": case.verdict, "verdict_by": case.verdict_by,
        "verdict_at": case.verdict_at, "note": case.note,
    }


def case_detail(case: Case, now: float, features: dict[str, float] | None) -> dict[str, Any]:
    """The JSON export of one case: its row, the reasons as given, the full feature vector."""
    reasons = [r for r in case.alert.get("reasons") or () if isinstance(r, dict)
               and isinstance(r.get("value"), int | float)
               and isinstance(r.get("contribution"), int | float)]
    return {**case_row(case, now), "reasons": reasons,
            "transaction": case.txn, "features": features or {},
            "terminal_risk": {k: (features or {}).get(k) for k in TERMINAL_RISK}}


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        # a leading =,+,-,@ would be a formula in a spreadsheet: quote it as text
        writer.writerow({k: (f"'{v}" if isinstance(v, str) and v[:1] in "=+-@" else v)
                         for k, v in row.items()})
    return out.getvalue()
