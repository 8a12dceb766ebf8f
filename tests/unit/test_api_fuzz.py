"""Schemathesis against the served OpenAPI: no 5xx, and every 4xx names the field at fault.

Every operation of ``/openapi.json`` is fuzzed in schemathesis' positive mode (valid by the
schema, which the stream's validators may still refuse) and negative mode (violating it:
wrong types, missing fields, out-of-range values, bad path parameters), with and without a
valid key. Totals are printed (``pytest -s``) and written to
``bench-results/api_fuzz.json``. ``FRAUDSTREAM_FUZZ_EXAMPLES`` sets examples per operation
and mode (default 120); examples are derandomized so CI runs the same inputs
(``FRAUDSTREAM_FUZZ_RANDOM=1`` draws new ones).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from features.core import CardState, Event, TerminalState, card_update, terminal_update
from infra.settings import Settings
from scoring.api import create_app
from scoring.api_models import REQUEST_FIELDS
from scoring.api_schemas import LABEL_FIELDS, AliasRequest
from streams.schema import Transaction
from tests.unit.test_api import KEY, OPS_KEY, make_deps

EXAMPLES = int(os.environ.get("FRAUDSTREAM_FUZZ_EXAMPLES", "120"))
RANDOM = os.environ.get("FRAUDSTREAM_FUZZ_RANDOM") == "1"  # explore new inputs locally
GENERAL = {"body", "X-API-Key", "version", "path", "method", "transaction_id", "request",
           "canary"}
KNOWN = (GENERAL | set(Transaction.model_fields) | set(LABEL_FIELDS)
         | set(AliasRequest.model_fields) | set(REQUEST_FIELDS))
TOTALS: Counter[str] = Counter()
FAILURES: list[str] = []


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from pydantic import SecretStr

    s = Settings(state_dir=tmp_path_factory.mktemp("fuzz"), online_reload_seconds=60,
                 api_keys=SecretStr(f"alice:{KEY},ops:{OPS_KEY}"))
    app = create_app(s, make_deps(s, states=EveryCardSeen()), console=False)  # lifespan opens
    return schemathesis.openapi.from_asgi("/openapi.json", app)


class EveryCardSeen:
    """Every card and terminal has the same short history, so the fuzzed transactions get
    the ratios, z-scores and gaps that a card's first transaction never has."""

    def __init__(self) -> None:
        card, term = None, None
        for i, amount in enumerate((12.5, 80.0, 3.2, 450.0, 0.01)):
            event = Event(f"h{i}", 1736400000000 + i * 3_600_000, "c", "m", amount, "ecom",
                          "FR", "d", "t")
            card, _ = card_update(card, event)
            term, _ = terminal_update(term, event.transaction_id, event.event_ms, amount)
        assert card is not None and term is not None
        self.card, self.term = card.to_dict(), term.to_dict()

    def read(self, card_id: str, terminal: str) -> tuple[Any, Any]:
        # fresh objects, as from Redis: the core mutates the states it is given
        return CardState.from_dict(self.card), TerminalState.from_dict(self.term)

    def ping(self) -> bool:
        return True


def _names_in(body: Any) -> set[str]:
    return {str(k) for k in body} if isinstance(body, dict) else set()


def _check(case: Any, response: Any) -> None:
    label = f"{case.method} {case.path} {str(case.body)[:120]!r}"
    status = response.status_code
    TOTALS[f"{status // 100}xx"] += 1
    TOTALS[f"{case.method} {case.path} {status}"] += 1
    if status >= 500:
        FAILURES.append(f"{status} for {label}: {response.text[:200]}")
        return
    if status < 400:
        return
    try:
        payload = response.json()
    except ValueError:
        FAILURES.append(f"{status} without a JSON body for {label}")
        return
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not errors:
        FAILURES.append(f"{status} without errors[] for {label}: {payload}")
        return
    allowed = KNOWN | _names_in(case.body)
    for error in errors:
        field = error.get("field")
        if not field or field.split(".")[0] not in allowed or field not in payload["detail"]:
            FAILURES.append(f"{status} names no known field for {label}: {payload}")


def _run(operation: Any, mode: GenerationMode) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @given(case=strategy, keyed=st.sampled_from([True, True, True, False]))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any, keyed: bool) -> None:
        headers = {"X-API-Key": KEY} if keyed else None
        TOTALS["calls"] += 1
        _check(case, case.call(headers=headers))

    try:
        fuzz()
    except Unsatisfiable:  # nothing to violate (no parameters, no body) in negative mode
        assert mode is GenerationMode.NEGATIVE, operation.label  # noqa: PT017
        TOTALS["operations without negative cases"] += 1


def test_no_5xx_and_every_4xx_names_the_field(fuzzed: Any) -> None:
    operations = [result.ok() for result in fuzzed.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/score", "/v1/labels", "/v1/models", "/v1/models/{version}/alias",
        "/v1/models/{version}", "/v1/models/rollback", "/v1/models/canary",
        "/v1/models/canary/step", "/v1/models/canary/abort"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation, mode)
    summary = {"operations": len(operations), "examples_per_operation_and_mode": EXAMPLES,
               "calls": TOTALS["calls"],
               "by_class": {k: v for k, v in sorted(TOTALS.items()) if k.endswith("xx")},
               "by_route": {k: v for k, v in sorted(TOTALS.items()) if " " in k},
               "failures": len(FAILURES)}
    print(json.dumps(summary, indent=1))
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "api_fuzz.json").write_text(json.dumps(summary, indent=1))
    assert not FAILURES, "\n".join(FAILURES[:20])
    assert TOTALS["4xx"] > 0 and TOTALS["2xx"] > 0  # both sides of the contract were reached
