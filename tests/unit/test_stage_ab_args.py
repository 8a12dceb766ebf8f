"""bench.stage_ab's command line: variants and plan steps."""

from __future__ import annotations

import pytest

from bench.stage_ab import step, variant


def test_a_variant_names_a_checkout_and_settings() -> None:
    assert variant("base") == {"name": "base", "checkout": None, "overrides": {}}
    assert variant("old@../before:stream_batch_ms=50,stream_batch_records=10") == {
        "name": "old", "checkout": "../before",
        "overrides": {"stream_batch_ms": "50", "stream_batch_records": "10"}}


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(SystemExit, match="stream_batch_mss"):
        variant("x:stream_batch_mss=5")


def test_plan_steps() -> None:
    assert step("250x20") == ("paced", 250.0, 20.0)
    assert step("drain40000") == ("drain", 40000.0, 0.0)
