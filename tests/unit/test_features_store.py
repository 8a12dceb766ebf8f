"""Feast's Redis layout as read directly by ``OnlineFeatures.read`` matches Feast's code."""

from __future__ import annotations

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from features.core import FEATURE_NAMES
from features.labels import parse_label
from features.redis_layout import decode_rows, feature_fields, redis_key
from infra.errors import InvalidInput


@pytest.mark.parametrize("tid", ["s7-000000001", "tx-ü-42", ""])
def test_redis_key_is_feasts(tid: str) -> None:
    key = EntityKey(join_keys=["transaction_id"], entity_values=[Value(string_val=tid)])
    assert redis_key("transaction_id", tid, b"proj") == _redis_key("proj", key, 3)
    assert redis_key("transaction_id", tid, b"") == serialize_entity_key(key, 3)


def test_feature_fields_are_feasts() -> None:
    fields = feature_fields("transaction_features", FEATURE_NAMES)
    assert fields == [_mmh3(f"transaction_features:{n}") for n in FEATURE_NAMES]


def test_decode_rows_reads_feast_values() -> None:
    doubles = [Value(double_val=v).SerializeToString() for v in (0.0, -1.5, 1e300)]
    odd = [Value(int64_val=3).SerializeToString(), Value(double_val=2.0).SerializeToString(),
           Value(float_val=0.5).SerializeToString()]
    missing = [doubles[0], None, doubles[2]]
    empty = [Value().SerializeToString()] * 3
    assert decode_rows([doubles, odd, missing, empty], 3) == [
        (0.0, -1.5, 1e300), (3.0, 2.0, 0.5), None, None]


def test_parse_label() -> None:
    raw = (b'{"transaction_id": "t1", "card_id": "c1", "label": "fraud", "source": "analyst",'
           b' "label_time": "2025-01-06T00:00:01.250Z"}')
    label = parse_label(raw, 16_384)
    assert (label.transaction_id, label.card_id, label.fraud) == ("t1", "c1", True)
    assert label.label_ms == 1_736_121_601_250
    for bad in (b"[]", b"{", b'{"transaction_id": "t", "card_id": "c", "label": "maybe"}',
                b'{"transaction_id": "t", "card_id": "c", "label": "fraud",'
                b' "label_time": "2025-01-06T00:00:00"}'):
        with pytest.raises(InvalidInput):
            parse_label(bad, 16_384)


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, -1e-300, 3.141592653589793, 1e308])
def test_encode_double_is_valueproto(value: float) -> None:
    from features.redis_layout import encode_double

    assert encode_double(value) == Value(double_val=value).SerializeToString()


@pytest.mark.parametrize("ms", [0, 999, 1_736_121_601_250, 1_736_121_600_000])
def test_encode_timestamp_and_string_are_protobufs(ms: int) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from features.redis_layout import encode_string, encode_timestamp

    ts = Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)
    assert encode_timestamp(ms) == ts.SerializeToString()
    text = "t:" + "x" * 200
    assert encode_string(text) == Value(string_val=text).SerializeToString()
