"""Drift over a whole recorded stream (backtests, tests, retrain triggers), no Kafka.

Runs the same windowers and :func:`drift.detect.evaluate_window` as the monitor worker,
on column arrays instead of ``scores`` records, so offline and online verdicts agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from drift.detect import DriftThresholds, WindowReport, evaluate_window
from drift.reference import Reference
from drift.windows import CountWindower, EventTimeWindower, Window

DAY_MS = 86_400_000


def stream_reports(
    event_ms: Any,
    columns: Mapping[str, Any],
    reference: Reference,
    thresholds: DriftThresholds | None = None,
    *,
    window: Literal["count", "event_time"] = "event_time",
    size: int = DAY_MS,
    lateness_ms: int = 0,
    flush: bool = False,
) -> list[WindowReport]:
    """Reports of every window of a stream given in arrival order.

    ``event_ms``: event time of each row (epoch ms); ``columns``: name -> array aligned
    with it (NaN = missing). ``size`` is rows for ``count`` windows, ms for ``event_time``
    (default one UTC day). The trailing open window is judged only with ``flush=True``.
    """
    times = np.asarray(event_ms, dtype=np.int64)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}

    def time_of(i: int) -> int:
        return int(times[i])

    windower: CountWindower[int] | EventTimeWindower[int] = (
        CountWindower(size, time_of)
        if window == "count"
        else EventTimeWindower(size, time_of, lateness_ms=lateness_ms)
    )
    closed: list[Window[int]] = []
    for i in range(times.size):
        closed += windower.add(i)
    if flush:
        closed += windower.flush()
    reports = []
    for w in closed:
        rows = np.asarray(w.items, dtype=np.int64)
        values = {k: a[rows] for k, a in arrays.items()}
        reports.append(
            evaluate_window(values, reference, thresholds, start_ms=w.start_ms, end_ms=w.end_ms)
        )
    return reports
