"""Column batches: the simulator's internal row format (a dict of equal-length arrays).

Working on whole columns keeps the simulator vectorised; a batch becomes a DataFrame only
once, at the end. ``cust`` and ``term`` are integer indices into the
:class:`~replay.population.Population` (``term`` is -1 for card-not-present rows);
``incident`` is -1 for genuine rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from replay.config import GENUINE

Batch = dict[str, NDArray[Any]]
NULL = np.array(None, dtype=object)  # a 0-d null that np.where broadcasts

INT_FIELDS = ("event_ms", "cust", "term", "incident")
OBJECT_FIELDS = ("merchant_id", "terminal_id", "currency", "channel", "country", "mcc",
                 "device_id", "scenario")
FIELDS = (*INT_FIELDS, "amount", "is_fraud", *OBJECT_FIELDS)


def make_rows(n: int, **columns: Any) -> Batch:
    """A batch of ``n`` rows; scalars broadcast, missing columns take genuine defaults."""
    defaults: dict[str, Any] = {"term": -1, "incident": -1, "is_fraud": False,
                                "terminal_id": None, "device_id": None, "scenario": GENUINE}
    unknown = set(columns) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown batch columns: {sorted(unknown)}")
    batch: Batch = {}
    for name in FIELDS:
        value = columns.get(name, defaults.get(name))
        if name in INT_FIELDS:
            dtype: Any = np.int64
        elif name == "amount":
            dtype = np.float64
        elif name == "is_fraud":
            dtype = np.bool_
        else:
            dtype = object
        if isinstance(value, np.ndarray):
            arr = value.astype(dtype, copy=False)
        else:
            arr = np.empty(n, dtype=dtype)
            arr[:] = value
        if arr.shape != (n,):
            raise ValueError(f"column {name!r} has shape {arr.shape}, expected ({n},)")
        batch[name] = arr
    return batch


def concat(batches: list[Batch]) -> Batch:
    """All batches, one after another (an empty batch if there are none)."""
    if not batches:
        return make_rows(0, event_ms=np.empty(0, np.int64), cust=np.empty(0, np.int64),
                         amount=np.empty(0), merchant_id=None, currency=None, channel=None,
                         country=None, mcc=None)
    return {name: np.concatenate([b[name] for b in batches]) for name in FIELDS}


def take(batch: Batch, index: NDArray[Any]) -> Batch:
    """Rows selected by an integer index or boolean mask."""
    return {name: col[index] for name, col in batch.items()}


def size(batch: Batch) -> int:
    return len(batch["event_ms"])
