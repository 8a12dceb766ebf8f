"""Prometheus metrics of the drift monitor, declared in one place.

Names and labels are part of the operators' contract (dashboards, alert rules). ``column``
is a feature name or ``score``; ``severity`` gauges encode none=0, warn=1, alert=2.
Metrics are created per :class:`DriftMetrics` in a given registry (tests use their own);
:func:`default_metrics` returns the process-wide instance on the global registry, created
on first use (never at import).
"""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "fraudstream_drift"
COLUMN = ("column",)
EVALUATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class DriftMetrics:
    """Gauges per column of the latest closed window, counters of windows and records."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.psi = Gauge(f"{PREFIX}_psi", "PSI of the latest window", COLUMN, registry=r)
        self.ks_statistic = Gauge(
            f"{PREFIX}_ks_statistic", "KS statistic D of the latest window", COLUMN, registry=r
        )
        self.ks_pvalue = Gauge(
            f"{PREFIX}_ks_pvalue_adjusted",
            "KS p-value of the latest window, adjusted across its columns",
            COLUMN,
            registry=r,
        )
        self.severity = Gauge(
            f"{PREFIX}_severity",
            "Severity of the latest window: 0 none, 1 warn, 2 alert",
            COLUMN,
            registry=r,
        )
        self.sustained = Gauge(
            f"{PREFIX}_sustained",
            "1 if the column's drift is sustained (n of m windows)",
            COLUMN,
            registry=r,
        )
        self.window_rows = Gauge(f"{PREFIX}_window_rows", "Rows of the latest window", registry=r)
        self.window_end = Gauge(
            f"{PREFIX}_window_end_timestamp_seconds",
            "Event-time end of the latest window",
            registry=r,
        )
        self.windows = Counter(
            f"{PREFIX}_windows", "Closed windows by worst severity", ("severity",), registry=r
        )
        self.records = Counter(
            f"{PREFIX}_records",
            "Score records consumed, by outcome (windowed, late, invalid)",
            ("outcome",),
            registry=r,
        )
        self.evaluation_seconds = Histogram(
            f"{PREFIX}_evaluation_seconds",
            "Time to compute one window's statistics",
            buckets=EVALUATION_BUCKETS,
            registry=r,
        )


@cache
def default_metrics() -> DriftMetrics:
    """The process's metrics on the global registry (what ``/metrics`` exposes)."""
    return DriftMetrics(REGISTRY)
