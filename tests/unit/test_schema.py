"""The Transaction contract: what upstream may send, and the reasons it gets when it may not."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from infra.errors import InvalidInput
from streams.schema import (
    EXAMPLE_TRANSACTIONS,
    MAX_PAYLOAD_BYTES,
    Transaction,
    parse_transaction,
    transaction_json_schema,
    validate_transaction,
)
from streams.schema_file import SCHEMA_PATH, is_current, main, render_schema

VALID: dict[str, Any] = {
    "transaction_id": "tx-1",
    "event_time": "2024-03-10T08:15:30Z",
    "card_id": "card-1",
    "merchant_id": "m-1",
    "amount": 42.5,
    "currency": "EUR",
    "channel": "ecom",
    "country": "DE",
    "mcc": "5411",
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**VALID, **changes}


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != field}


def reason(data: Any) -> str:
    """The InvalidInput reason for ``data``: bytes are sent as they are, the rest as JSON."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(InvalidInput) as info:
        parse_transaction(raw)
    return info.value.reason


# -- valid input ---------------------------------------------------------------------------


def test_valid_transaction_roundtrips_to_a_normalized_record() -> None:
    tx = parse_transaction(json.dumps(VALID).encode())
    assert tx.event_time == datetime(2024, 3, 10, 8, 15, 30, tzinfo=UTC)
    record = tx.to_record()
    assert record["event_time"] == "2024-03-10T08:15:30Z"
    assert validate_transaction(record) == tx


@pytest.mark.parametrize(
    "event_time",
    [
        "2024-03-10T08:15:30Z",
        "2024-03-10T09:15:30+01:00",
        "2024-03-10T03:15:30-05:00",
        "2024-03-10T08:15:30.000+00:00",
        1710058530000,
        1710058530000.0,
    ],
)
def test_event_time_forms_are_the_same_instant_in_utc(event_time: Any) -> None:
    tx = validate_transaction(with_(event_time=event_time))
    assert tx.event_time == datetime(2024, 3, 10, 8, 15, 30, tzinfo=UTC)
    assert tx.event_time.tzinfo == UTC
    assert tx.event_ms == 1710058530000


def test_int_mcc_is_zero_padded_and_defaults_are_filled() -> None:
    tx = validate_transaction({**without("mcc"), "mcc": 742})
    assert tx.mcc == "0742"
    minimal = {k: VALID[k] for k in ("transaction_id", "event_time", "card_id")}
    tx = validate_transaction({**minimal, "merchant_id": "m", "amount": 1, "country": "FR"})
    assert (tx.currency, tx.channel, tx.mcc, tx.schema_version) == ("EUR", "pos", "5999", 1)


def test_unknown_fields_are_ignored_and_whitespace_stripped() -> None:
    tx = validate_transaction(with_(loyalty_tier="gold", card_id="  card-1 "))
    assert tx.card_id == "card-1"
    assert "loyalty_tier" not in tx.to_record()


def test_amount_bounds_are_inclusive_at_the_maximum() -> None:
    assert validate_transaction(with_(amount=1_000_000)).amount == 1_000_000.0
    assert validate_transaction(with_(amount=0.01)).amount == 0.01
    assert validate_transaction(with_(amount=0.0001)).amount == 0.0001


@pytest.mark.parametrize("amount", [0, 0.0, -0.0])
def test_zero_amount_is_valid_card_verification(amount: float) -> None:
    tx = parse_transaction(json.dumps(with_(amount=amount)))
    assert tx.amount == 0.0 and math.copysign(1.0, tx.amount) == 1.0


@pytest.mark.parametrize(
    "name", ["fraud_Kutch, Hermiston and Farrell", "Café Müller", "東京 store #12", "O'Neil & Sons"]
)
def test_ids_are_printable_text_with_spaces_and_commas(name: str) -> None:
    raw = json.dumps(with_(merchant_id=name, terminal_id=name), ensure_ascii=False)
    tx = parse_transaction(raw)
    assert tx.merchant_id == tx.terminal_id == name
    assert validate_transaction(with_(card_id="x" * 128)).card_id == "x" * 128


def test_duplicate_json_keys_are_refused() -> None:
    raw = b'{"amount": 1.0, "amount": 999999.0}'
    assert reason(raw).startswith("duplicate key 'amount'")


def test_only_utf8_is_json() -> None:
    raw = json.dumps(VALID).encode("utf-16")
    assert reason(raw).startswith("malformed JSON: not UTF-8")


def test_aware_datetimes_from_python_callers_are_checked() -> None:
    when = datetime(2024, 3, 10, 8, 15, 30, tzinfo=UTC)
    assert Transaction(**{**VALID, "event_time": when}).event_time == when
    with pytest.raises(ValueError, match="timezone"):
        Transaction(**{**VALID, "event_time": when.replace(tzinfo=None)})


# -- malformed input: every reason names what is wrong -------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"amount": 1,}', b"", b"\xff\xfe\x00garbage", b'{"a": 1} trailing'],
)
def test_bad_json_is_invalid_input(raw: bytes) -> None:
    assert reason(raw).startswith("malformed JSON")


@pytest.mark.parametrize(
    "raw",
    [b"[" * 5000 + b"]" * 5000, b'{"amount": ' + b"9" * 5000 + b"}"],
    ids=["deep-nesting", "huge-integer"],
)
def test_pathological_json_is_invalid_input_not_a_crash(raw: bytes) -> None:
    assert reason(raw).startswith("malformed JSON")


@pytest.mark.parametrize("data", [[VALID], "a string", 42, None, True])
def test_non_object_is_invalid_input(data: Any) -> None:
    assert "expected a JSON object" in reason(data)


@pytest.mark.parametrize(
    "field", ["transaction_id", "event_time", "card_id", "merchant_id", "amount", "country"]
)
def test_missing_required_field_is_named(field: str) -> None:
    assert reason(without(field)) == f"invalid transaction: {field}: Field required"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "forty"),
        ("amount", True),
        ("amount", [1]),
        ("amount", None),
        ("card_id", 123),
        ("card_id", {"id": 1}),
        ("transaction_id", None),
        ("event_time", True),
        ("event_time", [2024, 1, 1]),
        ("event_time", "yesterday"),
        ("channel", "telepathy"),
        ("schema_version", "one"),
        ("schema_version", True),
        ("schema_version", 2),
        ("mcc", "54a1"),
        ("mcc", 12345),
        ("card_id", "tab\there"),
        ("card_id", "line\nbreak"),
        ("card_id", "zero\u200bwidth"),
        ("card_id", "\ud800"),
        ("card_id", ""),
        ("card_id", "   "),
        ("merchant_id", "x" * 129),
        ("amount", "12.50"),
        ("amount", "12"),
        ("schema_version", 1.0),
        ("mcc", True),
        ("mcc", -1),
        ("terminal_id", 7),
    ],
)
def test_wrong_types_and_formats_are_named(field: str, value: Any) -> None:
    text = reason(with_(**{field: value}))
    assert text.startswith(f"invalid transaction: {field}: "), text


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (-5.0, "greater than or equal to 0"),
        (-1e-300, "greater than or equal to 0"),
        (5e-324, "at least 0.0001"),
        (1e-300, "at least 0.0001"),
        (0.00009, "at least 0.0001"),
        (1_000_000.01, "less than or equal to 1000000"),
        (1e12, "less than or equal to 1000000"),
        (1e308, "less than or equal to 1000000"),
        (10**30, "less than or equal to 1000000"),
    ],
)
def test_absurd_amounts_are_named(amount: float, words: str) -> None:
    text = reason(with_(amount=amount))
    assert text.startswith("invalid transaction: amount: ") and words in text, text


@pytest.mark.parametrize("amount", [math.nan, math.inf, -math.inf])
def test_non_finite_amounts_are_rejected(amount: float) -> None:
    # json.dumps writes NaN/Infinity tokens, which Python's json accepts: the model must not.
    text = reason(with_(amount=amount))
    assert text == "invalid transaction: amount: Input should be a finite number"


@pytest.mark.parametrize(
    "event_time",
    [
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:01Z",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00-23:59",
        "9999-12-31T23:59:59.999999+23:59",
        1710058530,  # epoch *seconds*: 1970 in milliseconds
        -1,
        10**16,
        10**30,
        1e300,
        -1e300,
    ],
)
def test_absurd_timestamps_are_rejected(event_time: Any) -> None:
    text = reason(with_(event_time=event_time))
    assert text.startswith("invalid transaction: event_time: ") and "range" in text, text


@pytest.mark.parametrize(
    ("event_time", "words"),
    [(math.nan, "finite"), (math.inf, "finite"), (1710058530000.5, "whole number"),
     ("1710058530000", "not ISO-8601"), ("2024-03-10T08:15:30Z" + " " * 60, "too long"),
     (None, "not NoneType")],
)
def test_other_bad_times_are_named(event_time: Any, words: str) -> None:
    text = reason(with_(event_time=event_time))
    assert text.startswith("invalid transaction: event_time: ") and words in text, text


@pytest.mark.parametrize("event_time", ["2024-03-10T08:15:30", "2024-03-10 08:15:30", "2024-03-10"])
def test_naive_timestamps_are_rejected_as_ambiguous(event_time: str) -> None:
    text = reason(with_(event_time=event_time))
    assert text.startswith("invalid transaction: event_time: ") and "timezone" in text, text


def test_oversized_payload_is_rejected_before_parsing() -> None:
    big = json.dumps(with_(note="x" * MAX_PAYLOAD_BYTES)).encode()
    assert reason(big) == f"payload too large: {len(big)} bytes > {MAX_PAYLOAD_BYTES}"
    with pytest.raises(InvalidInput, match="payload too large"):
        parse_transaction(json.dumps(VALID), max_bytes=50)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("currency", "eur"),
        ("currency", "EURO"),
        ("currency", 978),
        ("country", "DEU"),
        ("country", "d"),
    ],
)
def test_bad_currency_and_country_are_named(field: str, value: Any) -> None:
    text = reason(with_(**{field: value}))
    assert text.startswith(f"invalid transaction: {field}: "), text


def test_several_errors_are_reported_together() -> None:
    text = reason({**without("card_id"), "amount": -1})
    assert "card_id: Field required" in text and "amount:" in text


def test_transaction_is_immutable() -> None:
    tx = validate_transaction(VALID)
    with pytest.raises(ValueError, match="frozen"):
        tx.amount = 1.0


# -- the published JSON Schema -------------------------------------------------------------


def test_committed_schema_file_equals_the_model_schema() -> None:
    committed = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == transaction_json_schema(), "run: python -m streams.schema_file"
    assert is_current(), "schema file formatting drifted: run python -m streams.schema_file"
    assert main(["--check"]) == 0


def test_schema_file_check_fails_on_drift(tmp_path: Any) -> None:
    stale = tmp_path / "schema.json"
    stale.write_text(render_schema({"title": "old"}), encoding="utf-8")
    assert main(["--check", "--path", str(stale)]) == 1
    assert main(["--path", str(stale)]) == 0 and main(["--check", "--path", str(stale)]) == 0


def test_schema_examples_are_valid_transactions() -> None:
    schema = transaction_json_schema()
    assert len(schema["examples"]) == len(EXAMPLE_TRANSACTIONS) >= 2
    for example in schema["examples"]:
        assert isinstance(validate_transaction(example), Transaction)
        assert set(schema["required"]) <= set(example)


def test_schema_accepts_what_the_validator_accepts() -> None:
    props = transaction_json_schema()["properties"]
    assert {"type": "integer"}.items() <= props["event_time"]["anyOf"][1].items()
    assert {alt["type"] for alt in props["mcc"]["anyOf"]} == {"string", "integer"}
    zero, positive = props["amount"]["anyOf"]
    assert zero["const"] == 0 and positive["minimum"] == 0.0001
    assert positive["maximum"] == 1_000_000


@pytest.mark.parametrize(
    ("event_time", "ok"),
    [("2000-01-01T00:00:00Z", True), ("2100-01-01T00:00:00Z", True),
     ("2100-01-01T01:00:00+01:00", True), ("2100-01-01T00:00:00.001Z", False),
     ("1999-12-31T23:59:59.999Z", False), (946_684_800_000, True), (946_684_799_999, False),
     (4_102_444_800_000, True), (4_102_444_800_001, False)],
)
def test_time_range_edges_are_inclusive(event_time: Any, ok: bool) -> None:
    if ok:
        assert validate_transaction(with_(event_time=event_time)).event_time.tzinfo == UTC
    else:
        assert "range" in reason(with_(event_time=event_time))
