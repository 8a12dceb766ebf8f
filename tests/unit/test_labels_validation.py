"""Topic ``labels``: one validator, strict like transactions, and never an overflow."""

from __future__ import annotations

import json
from typing import Any

import pytest

from features.labels import parse_label, validate_label
from infra.errors import InvalidInput

VALID: dict[str, Any] = {"transaction_id": "t1", "card_id": "c1", "label": "fraud",
                         "source": "chargeback", "label_time": "2025-01-06T00:00:01.250Z"}


def reason(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(InvalidInput) as info:
        parse_label(raw, 16_384)
    return info.value.reason


@pytest.mark.parametrize("label_time", ["2025-01-06T01:00:01.250+01:00", 1_736_121_601_250,
                                        1_736_121_601_250.0])
def test_valid_label_forms(label_time: Any) -> None:
    label = parse_label(json.dumps({**VALID, "label_time": label_time}), 16_384)
    assert (label.transaction_id, label.card_id, label.fraud) == ("t1", "c1", True)
    assert label.label_ms == 1_736_121_601_250


def test_genuine_and_printable_ids() -> None:
    label = validate_label({**VALID, "label": "genuine", "card_id": "card 7, Café"})
    assert not label.fraud and label.card_id == "card 7, Café"


@pytest.mark.parametrize(
    ("label_time", "words"),
    [("9999-12-31T23:59:59-01:00", "range"), ("0001-01-01T00:00:00+01:00", "range"),
     (1e300, "range"), (10**30, "range"), (float("inf"), "finite"),
     (float("nan"), "finite"), ("2025-01-06T00:00:00", "timezone"), (True, "boolean"),
     (None, "NoneType"), ({"deep": [1]}, "dict"), ("soon", "ISO-8601")],
)
def test_bad_label_times_are_named(label_time: Any, words: str) -> None:
    text = reason({**VALID, "label_time": label_time})
    assert text.startswith("invalid label: label_time: ") and words in text, text


@pytest.mark.parametrize(
    ("change", "field"),
    [({"label": "maybe"}, "label"), ({"label": 1}, "label"), ({"label": ["fraud"]}, "label"),
     ({"transaction_id": 5}, "transaction_id"), ({"card_id": ""}, "card_id"),
     ({"card_id": "c\x00"}, "card_id"), ({"source": "a\nb"}, "source"),
     ({"transaction_id": "x" * 200}, "transaction_id")],
)
def test_bad_fields_are_named(change: dict[str, Any], field: str) -> None:
    assert reason({**VALID, **change}).startswith(f"invalid label: {field}: ")


@pytest.mark.parametrize("field", ["transaction_id", "card_id", "label", "label_time"])
def test_missing_fields_are_named(field: str) -> None:
    data = {k: v for k, v in VALID.items() if k != field}
    assert reason(data) == f"invalid label: {field}: Field required"


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"[" * 5000 + b"]" * 5000, "malformed JSON"), (b"{", "malformed JSON"),
     (b"\xff\xfe", "not UTF-8"), (b"[]", "expected a JSON object"),
     (b'{"label": "fraud", "label": "genuine"}', "duplicate key"),
     (b'{"a": "' + b"x" * 20_000 + b'"}', "payload too large")],
)
def test_hostile_bytes_are_invalid_input(raw: bytes, words: str) -> None:
    assert words in reason(raw)
