"""The last line of defence before a feature vector is written or scored: all finite.

The core makes every feature finite by construction for any input the boundary accepts
(guarded denominators and documented clipping, ``docs/features.md``; a property test in
``tests/unit/test_features_finite.py``). These checks turn a violation of that promise into
:class:`~infra.errors.InvalidInput` naming the feature, so the stream dead-letters the one
record and the API answers 4xx, instead of a store write or a model call failing for every
later record (an ``inf`` once became ``null`` in the online store and stopped all scoring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from infra.errors import InvalidInput


def _bad(value: Any) -> bool:
    try:
        return not math.isfinite(value)
    except TypeError:  # None, text: not a number at all
        return True


def check_finite(values: Sequence[Any], names: Sequence[str], *, what: str = "features"
                 ) -> None:
    """Raise :class:`InvalidInput` unless ``values`` has one finite number per name.

    The reason names every non-finite feature (up to five) with its value, e.g.
    ``non-finite features: card_amount_ratio_30d=inf``. Cost: one pass over the vector.
    """
    if len(values) != len(names):
        raise InvalidInput(f"{what}: {len(values)} values for {len(names)} features")
    if not any(map(_bad, values)):
        return
    bad = [f"{n}={v!r}" for n, v in zip(names, values, strict=True) if _bad(v)]
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    raise InvalidInput(f"non-finite {what}: {', '.join(bad[:5])}{more}")


def check_finite_rows(matrix: Any, names: Sequence[str], *, what: str = "features") -> None:
    """:func:`check_finite` for a 2-d numeric array (rows x features), vectorised.

    The reason names the first offending row and its non-finite features.
    """
    import numpy as np

    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise InvalidInput(f"{what}: shape {array.shape} for {len(names)} features")
    finite = np.isfinite(array)
    if finite.all():
        return
    row = int(np.flatnonzero(~finite.all(axis=1))[0])
    try:
        check_finite(array[row].tolist(), names, what=what)
    except InvalidInput as exc:
        raise InvalidInput(f"row {row}: {exc.reason}") from None
