"""Canary routing: which arm scores a card, by a stable hash (pure, no I/O).

A card is routed by the first 8 bytes of ``blake2b(salt + card_id)`` read as a number in
[0, 1): it goes to the canary when that number is below the canary's share. Consequences
the rollout relies on:

- **stable**: the same card, salt and share give the same arm in every process and after
  every restart (no Python ``hash``, which is salted per process), so a card sees one
  model for the whole canary and per-arm metrics are per-card clean;
- **monotone**: raising the share only moves cards from champion to canary (a card on the
  canary at 1% stays on it at 10%, 50% and 100%);
- **salted by the canary version**: each canary gets its own random card set, so one
  unlucky set of cards is not the canary's population every time.

The worker calls :func:`arm_for` per record (or :func:`arms_for` per batch) with the share
and version it read from the registry (:meth:`models.registry.ModelRegistry.canary_share`,
``alias_version("canary")``), and writes the arm into the decision record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

Arm = Literal["champion", "canary"]
CHAMPION: Arm = "champion"
CANARY: Arm = "canary"
_SCALE = float(1 << 64)


def bucket(card_id: str, salt: str = "") -> float:
    """The card's position in [0, 1) for ``salt`` (uniform over cards).

    >>> bucket("card-1", "v7") == bucket("card-1", "v7")
    True
    >>> 0.0 <= bucket("card-1", "v7") < 1.0
    True
    """
    digest = hashlib.blake2b(f"{salt}\x1f{card_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def arm_for(card_id: str, share: float, salt: str = "") -> Arm:
    """``"canary"`` for a ``share`` of cards (0 = none, 1 = all), else ``"champion"``.

    >>> arm_for("card-1", 0.0, "v7"), arm_for("card-1", 1.0, "v7")
    ('champion', 'canary')
    """
    if share <= 0.0:
        return CHAMPION
    if share >= 1.0:
        return CANARY
    return CANARY if bucket(card_id, salt) < share else CHAMPION


def arms_for(card_ids: Iterable[str], share: float, salt: str = "") -> list[Arm]:
    """:func:`arm_for` of each card, in order."""
    return [arm_for(card, share, salt) for card in card_ids]
