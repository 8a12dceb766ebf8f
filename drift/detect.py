"""One window's verdict: PSI and KS per column against the reference, and a severity.

Severity per column (``none`` < ``warn`` < ``alert``), see ``docs/drift.md`` for why:

- PSI level: ``alert`` if PSI >= ``psi_alert`` (0.25), ``warn`` if >= ``psi_warn`` (0.1).
- KS is *significant* when its p-value, adjusted across the window's evaluated columns
  (``correction``, Bonferroni by default), is below ``ks_alpha`` (0.05) **and** the
  statistic D is at least ``ks_min_statistic`` (0.1). The effect-size floor matters
  because with thousands of rows KS rejects for differences nobody cares about.
- ``severity`` = the PSI level, raised to ``warn`` by a significant KS, and to ``alert``
  when PSI is at ``warn`` and KS agrees. So KS alone never alerts.
- A column with fewer than ``min_rows`` finite values in the window (or a reference without
  data) gets no verdict: ``evaluated=False``, severity ``none``, the statistics still shown.

Columns in ``skip`` (default: the calendar features ``is_weekend`` and ``is_night``, pure
functions of event time whose distribution follows the window's position in the week, not
the data) are reported with ``evaluated=False`` and reason ``skipped``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from drift.reference import Reference
from drift.stats import PSI_EPSILON, Correction, adjust_pvalues, bin_fractions, ks_test, psi

Severity = Literal["none", "warn", "alert"]
SEVERITY_RANK: dict[str, int] = {"none": 0, "warn": 1, "alert": 2}
CALENDAR_FEATURES = ("is_weekend", "is_night")


@dataclass(frozen=True)
class DriftThresholds:
    """Decision thresholds; the defaults follow common practice (see ``docs/drift.md``)."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_alpha: float = 0.05
    ks_min_statistic: float = 0.1
    correction: Correction = "bonferroni"
    min_rows: int = 1000
    psi_epsilon: float = PSI_EPSILON
    skip: tuple[str, ...] = CALENDAR_FEATURES

    def __post_init__(self) -> None:
        if not 0 < self.psi_warn <= self.psi_alert:
            raise ValueError("need 0 < psi_warn <= psi_alert")
        if not 0 < self.ks_alpha < 1 or not 0 <= self.ks_min_statistic <= 1:
            raise ValueError("need 0 < ks_alpha < 1 and 0 <= ks_min_statistic <= 1")
        if self.min_rows < 1 or self.psi_epsilon <= 0:
            raise ValueError("need min_rows >= 1 and psi_epsilon > 0")


@dataclass(frozen=True)
class ColumnDrift:
    """Statistics and verdict of one column (feature or ``score``) in one window."""

    column: str
    rows: int  # finite values in the window
    missing_rate: float
    psi: float
    ks_statistic: float
    ks_pvalue: float
    ks_pvalue_adjusted: float
    severity: Severity
    evaluated: bool
    reason: str  # why this severity, or why no verdict
    expected: tuple[float, ...] = field(repr=False)
    actual: tuple[float, ...] = field(repr=False)


@dataclass(frozen=True)
class WindowReport:
    """Every column's verdict for the window ``[start_ms, end_ms)`` of ``rows`` records."""

    start_ms: int
    end_ms: int
    rows: int
    reference_version: str | None
    columns: tuple[ColumnDrift, ...]
    scored_by: Mapping[str, int] = field(default_factory=dict)  # model version -> rows

    @property
    def severity(self) -> Severity:
        levels: tuple[Severity, ...] = ("none", "warn", "alert")
        return levels[max((SEVERITY_RANK[c.severity] for c in self.columns), default=0)]

    @property
    def drifting(self) -> tuple[str, ...]:
        """Columns at ``warn`` or ``alert``, worst PSI first."""
        hit = [c for c in self.columns if c.severity != "none"]
        return tuple(c.column for c in sorted(hit, key=lambda c: -c.psi))

    @property
    def alerting(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.severity == "alert")

    def column(self, name: str) -> ColumnDrift:
        return next(c for c in self.columns if c.column == name)


def evaluate_window(
    values: Mapping[str, Any],
    reference: Reference,
    thresholds: DriftThresholds | None = None,
    *,
    start_ms: int,
    end_ms: int,
    scored_by: Mapping[str, int] | None = None,
) -> WindowReport:
    """Compare each reference column's window ``values`` (NaN = missing) with the reference.

    Columns of the reference absent from ``values`` count as all missing. Deterministic.
    """
    t = thresholds or DriftThresholds()
    rows = max((np.asarray(v).size for v in values.values()), default=0)
    raw: list[dict[str, Any]] = []
    for name, ref in reference.columns.items():
        x = np.asarray(values.get(name, np.full(rows, np.nan)), dtype=np.float64)
        finite = x[np.isfinite(x)]
        actual = bin_fractions(finite, ref.cuts) if ref.usable else np.empty(0)
        d, p = ks_test(finite, ref.sample) if ref.usable else (0.0, 1.0)
        reason = ""
        if name in t.skip:
            reason = "skipped (calendar feature)"
        elif not ref.usable:
            reason = "no reference data"
        elif finite.size < t.min_rows:
            reason = f"too few rows ({finite.size} < {t.min_rows})"
        raw.append(
            {
                "column": name,
                "rows": int(finite.size),
                "missing_rate": float(1.0 - finite.size / x.size) if x.size else 1.0,
                "psi": psi(ref.expected, actual, t.psi_epsilon) if ref.usable else 0.0,
                "ks_statistic": d,
                "ks_pvalue": p,
                "evaluated": not reason,
                "reason": reason,
                "expected": tuple(float(v) for v in ref.expected),
                "actual": tuple(float(v) for v in actual),
            }
        )
    tested = [r for r in raw if r["evaluated"]]
    for r, adj in zip(
        tested, adjust_pvalues([r["ks_pvalue"] for r in tested], t.correction), strict=True
    ):
        r["ks_pvalue_adjusted"] = adj
    columns = []
    for r in raw:
        r.setdefault("ks_pvalue_adjusted", 1.0)
        severity, why = _severity(r, t) if r["evaluated"] else ("none", r["reason"])
        columns.append(ColumnDrift(**{**r, "severity": severity, "reason": why}))
    return WindowReport(
        start_ms, end_ms, rows, reference.model_version, tuple(columns), dict(scored_by or {})
    )


def _severity(r: Mapping[str, Any], t: DriftThresholds) -> tuple[Severity, str]:
    level: Severity = (
        "alert" if r["psi"] >= t.psi_alert else "warn" if r["psi"] >= t.psi_warn else "none"
    )
    ks = r["ks_pvalue_adjusted"] < t.ks_alpha and r["ks_statistic"] >= t.ks_min_statistic
    if level == "alert":
        return level, f"PSI {r['psi']:.3f} >= {t.psi_alert}"
    if level == "warn" and ks:
        return "alert", f"PSI {r['psi']:.3f} >= {t.psi_warn} and KS D {r['ks_statistic']:.3f}"
    if level == "warn":
        return level, f"PSI {r['psi']:.3f} >= {t.psi_warn}"
    if ks:
        return "warn", f"KS D {r['ks_statistic']:.3f} >= {t.ks_min_statistic}, significant"
    return "none", "stable"
