"""Unit tests of the drift core: statistics, reference bins, windows, verdicts, outputs."""

from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from drift.batch import stream_reports
from drift.detect import DriftThresholds, WindowReport, evaluate_window
from drift.metrics import DriftMetrics
from drift.records import drift_records, observation
from drift.reference import SCORE, ColumnReference, Reference
from drift.report import render, write_report
from drift.stats import adjust_pvalues, bin_counts, ks_test, psi
from drift.sustained import SustainedDrift
from drift.windows import CountWindower, EventTimeWindower
from infra.errors import InvalidInput
from models.profile import reference_profile

RNG = np.random.default_rng(0)


def test_doctests() -> None:
    result = doctest.testmod(importlib.import_module("drift.stats"))
    assert result.attempted >= 6 and result.failed == 0


# -- statistics -------------------------------------------------------------------------
def test_psi_properties() -> None:
    e = np.array([0.2, 0.3, 0.5])
    assert psi(e, e) == 0.0
    a = np.array([0.3, 0.3, 0.4])
    assert psi(e, a) == pytest.approx(psi(a, e)) and psi(e, a) > 0
    # empty bins are floored at eps: finite, and bigger for a smaller eps
    assert np.isfinite(psi([1.0, 0.0], [0.5, 0.5]))
    assert psi([1.0, 0.0], [0.5, 0.5], eps=1e-6) > psi([1.0, 0.0], [0.5, 0.5], eps=1e-3)
    with pytest.raises(ValueError, match="length"):
        psi([0.5, 0.5], [1.0])


def test_bins_are_right_closed_with_open_ends() -> None:
    assert bin_counts([-5.0, 0.0, 0.5, 1.0, 9.0], [0.0, 1.0]).tolist() == [2, 2, 1]


def test_ks_test() -> None:
    ref = RNG.normal(size=2000)
    d_same, p_same = ks_test(RNG.normal(size=5000), ref)
    d_shift, p_shift = ks_test(RNG.normal(0.5, size=5000), ref)
    assert d_same < 0.05 and p_same > 0.01
    assert d_shift > 0.15 and p_shift < 1e-10
    assert ks_test([], ref) == (0.0, 1.0)
    assert ks_test([np.nan, np.inf], ref) == (0.0, 1.0)


def test_adjust_pvalues() -> None:
    p = [0.001, 0.04, 0.03, 0.8]
    bonf = adjust_pvalues(p, "bonferroni")
    bh = adjust_pvalues(p, "bh")
    assert bonf == pytest.approx([0.004, 0.16, 0.12, 1.0])
    assert bh == pytest.approx([0.004, 0.0533333, 0.0533333, 0.8])
    assert all(b <= f for b, f in zip(bh, bonf, strict=True))
    assert adjust_pvalues([]) == []
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues(p, "holm")  # type: ignore[arg-type]


# -- reference --------------------------------------------------------------------------
def test_profile_reference_splits_the_minimum_off() -> None:
    """A binary feature: the profile has one bin; the drift reference restores two."""
    x = (RNG.random(10_000) < 0.03).astype(float)
    profile = reference_profile(_frame(binary=x), ["binary"], RNG.random(10_000))
    assert profile["features"]["binary"]["fractions"] == [1.0]  # blind as stored
    ref = Reference.from_profile(profile, "3").columns["binary"]
    assert ref.cuts.tolist() == [0.0]
    assert ref.expected == pytest.approx([0.97, 0.03], abs=0.015)
    assert Reference.from_profile(profile, "3").names == ("binary", SCORE)


def test_continuous_reference_keeps_quantile_bins() -> None:
    x = RNG.lognormal(3, 1, 20_000)
    profile = reference_profile(_frame(x=x), ["x"], RNG.random(20_000), sample_size=1000)
    ref = Reference.from_profile(profile, None).columns["x"]
    assert ref.expected.size == 11 and ref.expected[0] < 0.002
    assert ref.expected[1:] == pytest.approx([0.1] * 10, abs=0.002)
    assert ref.sample.size == 1000 and np.all(np.diff(ref.sample) >= 0)
    direct = ColumnReference.from_values("x", x)
    assert direct.expected.sum() == pytest.approx(1.0)


def test_empty_and_constant_columns() -> None:
    empty = ColumnReference.from_profile("e", {"edges": [], "fractions": [], "sample": []})
    assert not empty.usable
    const = ColumnReference.from_values("c", np.ones(100))
    assert const.cuts.tolist() == [1.0] and const.expected.tolist() == [1.0, 0.0]


# -- windows ----------------------------------------------------------------------------
def test_count_windows() -> None:
    w: CountWindower[int] = CountWindower(3, lambda t: t)
    closed = [win for t in [5, 1, 7, 8, 9, 10, 11] for win in w.add(t)]
    assert [(c.start_ms, c.end_ms, c.items) for c in closed] == [
        (1, 8, [5, 1, 7]),
        (8, 11, [8, 9, 10]),
    ]
    assert w.open_items() == [11]
    assert [c.items for c in w.flush()] == [[11]] and w.flush() == []


def test_event_time_windows_with_lateness() -> None:
    w: EventTimeWindower[int] = EventTimeWindower(10, lambda t: t, lateness_ms=3)
    out = []
    for t in [1, 5, 11, 9, 12, 13, 2, 25, 14]:
        out += w.add(t)
    # [0,10) closes at watermark 10 (t=13); 2 is then late; 25 closes [10,20)
    assert [(c.start_ms, c.items) for c in out] == [(0, [1, 5, 9]), (10, [11, 12, 13])]
    assert w.late == 2  # 2 and 14 arrived after their windows closed
    assert [(c.start_ms, c.items) for c in w.flush()] == [(20, [25])]


def test_windowers_reject_bad_sizes() -> None:
    with pytest.raises(ValueError):
        CountWindower(0, lambda t: t)
    with pytest.raises(ValueError):
        EventTimeWindower(0, lambda t: t)


# -- verdicts ---------------------------------------------------------------------------
def _frame(**cols: np.ndarray):  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.DataFrame(cols)


def _reference(n: int = 50_000, sample_size: int = 2000) -> Reference:
    cols = {
        "a": RNG.normal(size=n),
        "b": RNG.exponential(size=n),
        "is_weekend": (RNG.random(n) < 0.28).astype(float),
        SCORE: RNG.beta(1, 20, size=n),
    }
    return Reference.from_columns(cols, model_version="7", sample_size=sample_size)


def _window(n: int, shift_a: float = 0.0, scale_b: float = 1.0) -> dict[str, np.ndarray]:
    return {
        "a": RNG.normal(shift_a, size=n),
        "b": RNG.exponential(scale_b, size=n),
        "is_weekend": np.ones(n),  # a Saturday: skipped, never drifting
        SCORE: RNG.beta(1, 20, size=n),
    }


def test_stationary_window_is_stable() -> None:
    report = evaluate_window(_window(5000), _reference(), start_ms=0, end_ms=1)
    assert report.severity == "none" and report.drifting == ()
    assert report.column("is_weekend").reason.startswith("skipped")
    assert report.reference_version == "7" and report.rows == 5000


def test_shift_is_flagged_and_named() -> None:
    report = evaluate_window(_window(5000, shift_a=0.6), _reference(), start_ms=0, end_ms=1)
    assert report.severity == "alert" and report.alerting == ("a",)
    assert report.drifting == ("a",)
    a = report.column("a")
    assert a.psi >= 0.25 and a.ks_pvalue_adjusted < 0.05


def test_ks_effect_floor_silences_trivial_differences_in_huge_windows() -> None:
    """A 0.05 sd shift in 200k rows is 'significant' but irrelevant: no verdict above none."""
    ref = _reference(200_000, sample_size=50_000)
    report = evaluate_window(_window(200_000, shift_a=0.05), ref, start_ms=0, end_ms=1)
    a = report.column("a")
    assert a.ks_pvalue < 0.01 and a.ks_statistic < 0.1
    assert a.severity == "none"
    floorless = DriftThresholds(ks_min_statistic=0.0)
    report = evaluate_window(_window(200_000, 0.05), ref, floorless, start_ms=0, end_ms=1)
    assert report.column("a").severity == "warn"  # KS alone: at most warn


def test_small_windows_get_no_verdict() -> None:
    report = evaluate_window(_window(300, shift_a=2.0), _reference(), start_ms=0, end_ms=1)
    assert report.severity == "none"
    a = report.column("a")
    assert not a.evaluated and "too few rows" in a.reason and a.psi > 1.0


def test_missing_column_counts_as_missing() -> None:
    values = _window(2000)
    del values["b"]
    report = evaluate_window(values, _reference(), start_ms=0, end_ms=1)
    assert report.column("b").missing_rate == 1.0 and not report.column("b").evaluated


def test_thresholds_are_configurable_and_validated() -> None:
    strict = DriftThresholds(psi_warn=0.001, psi_alert=0.002, ks_min_statistic=0.0)
    report = evaluate_window(_window(5000, shift_a=0.1), _reference(), strict, start_ms=0, end_ms=1)
    assert "a" in report.alerting
    with pytest.raises(ValueError):
        DriftThresholds(psi_warn=0.3, psi_alert=0.2)
    with pytest.raises(ValueError):
        DriftThresholds(min_rows=0)


def test_sustained_drift_n_of_m() -> None:
    tracker = SustainedDrift(n=2, m=3)
    ref = _reference()
    shifts = [0.0, 0.8, 0.0, 0.8, 0.8, 0.0, 0.0, 0.0]
    seen = []
    for shift in shifts:
        report = evaluate_window(_window(3000, shift_a=shift), ref, start_ms=0, end_ms=1)
        seen.append(tracker.update(report).columns)
    assert seen == [(), (), (), ("a",), ("a",), ("a",), (), ()]
    small = evaluate_window(_window(10, shift_a=5), ref, start_ms=0, end_ms=1)
    assert tracker.update(small).columns == ()  # no verdict: history unchanged
    tracker.reset()
    assert tracker.history == {}


def test_stream_reports_by_count_and_by_time() -> None:
    ref = _reference()
    n = 12_000
    cols = _window(n)
    cols["a"][6000:] += 0.8
    times = np.arange(n) * 10_000  # one row per 10 s: 8,640 per day
    by_count = stream_reports(times, cols, ref, window="count", size=3000)
    assert [r.severity for r in by_count] == ["none", "none", "alert", "alert"]
    by_day = stream_reports(times, cols, ref, flush=True)
    assert [r.rows for r in by_day] == [8640, n - 8640]


# -- outputs ----------------------------------------------------------------------------
def _shifted_report() -> WindowReport:
    return evaluate_window(
        _window(5000, shift_a=0.7),
        _reference(),
        start_ms=1_736_121_600_000,
        end_ms=1_736_208_000_000,
        scored_by={"7": 5000},
    )


def test_drift_records_one_per_column() -> None:
    records = drift_records(_shifted_report(), DriftThresholds(), "event_time")
    assert [k for k, _ in records] == [b"a", b"b", b"is_weekend", b"score"]
    value = dict(records)[b"a"]
    json.dumps(value, allow_nan=False)
    assert value["window"] == {
        "start": "2025-01-06T00:00:00Z",
        "end": "2025-01-07T00:00:00Z",
        "kind": "event_time",
        "rows": 5000,
    }
    assert value["severity"] == "alert" and value["drifting"] == ["a"]
    assert value["reference_model_version"] == "7" and value["scored_by"] == {"7": 5000}


def test_report_names_drifting_features(tmp_path: Path) -> None:
    report = _shifted_report()
    text, files = render(report, DriftThresholds(), "w")
    assert "drifting: **a** (alert)" in text and "## a: alert" in text
    assert set(files) == {"w-psi.svg", "w-a.svg"}
    assert all(f.startswith("<svg") and f.endswith("</svg>") for f in files.values())
    path = write_report(report, DriftThresholds(), tmp_path, _reference())
    assert path.name == "window-20250106T000000Z_20250107T000000Z.md"
    assert (tmp_path / "latest.md").read_text() == path.read_text()
    assert "&lt;=" in (tmp_path / f"{path.stem}-a.svg").read_text()  # value-range bin labels


def test_observation_decoding() -> None:
    raw = json.dumps(
        {
            "transaction_id": "t1",
            "event_time": "2025-01-06T00:00:01Z",
            "card_id": "c",
            "score": 0.25,
            "decision": "approve",
            "model_version": {"batch": "3", "online": None},
            "features": {"a": 1.5, "b": None},
            "latency_ms": 3,
        }
    ).encode()
    obs = observation(raw, 2, 40)
    assert obs.event_ms == 1_736_121_601_000 and obs.version == "3"
    assert obs.values["a"] == 1.5 and np.isnan(obs.values["b"]) and obs.values[SCORE] == 0.25
    assert (obs.partition, obs.offset) == (2, 40)
    for bad in (b"{", b'{"score": 1}', b'{"score": "x", "features": {}, "event_time": 1}'):
        with pytest.raises(InvalidInput):
            observation(bad)


def test_a_canary_record_is_judged_by_the_champions_score() -> None:
    """The reference is the champion's score profile: a canary-arm record contributes the
    champion's score of the same transaction, a champion-arm record its own."""
    record = {"transaction_id": "t1", "event_time": "2025-01-06T00:00:01Z", "card_id": "c",
              "score": 0.9, "arm": "canary", "scores": {"batch": 0.9, "champion": 0.1},
              "model_version": {"batch": "4", "online": None}, "features": {"a": 1.0}}
    assert observation(json.dumps(record).encode()).values[SCORE] == 0.1
    record["arm"] = "champion"
    assert observation(json.dumps(record).encode()).values[SCORE] == 0.9
    record["arm"], record["scores"] = "canary", {"batch": 0.9}  # no paired score: its own
    assert observation(json.dumps(record).encode()).values[SCORE] == 0.9


def test_metrics_use_their_own_registry() -> None:
    registry = CollectorRegistry()
    metrics = DriftMetrics(registry)
    metrics.psi.labels("amount").set(0.3)
    assert registry.get_sample_value("fraudstream_drift_psi", {"column": "amount"}) == 0.3
    DriftMetrics(CollectorRegistry())  # a second instance elsewhere does not collide


def test_event_time_watermark_is_the_slowest_partition() -> None:
    w: EventTimeWindower[tuple[int, int]] = EventTimeWindower(
        10, lambda r: r[1], partition_of=lambda r: r[0]
    )
    w.expect([0, 1])
    assert w.add((0, 1)) == [] and w.add((0, 25)) == []  # partition 1 has not delivered
    assert w.add((1, 3)) == []  # partition 1 still in [0, 10)
    closed = w.add((1, 12))
    assert [(c.start_ms, c.items) for c in closed] == [(0, [(0, 1), (1, 3)])]
    assert w.idle(0) == []  # partition 1 (at 12) still holds [10, 20)
    assert [c.start_ms for c in w.idle(1)] == [10]  # all read: watermark = max seen (25)
    assert w.add((1, 13)) == [] and w.late == 1
    w.forget([0, 1])
    assert w.watermark_ms is None and w.late == 1
