"""Doctests of the pure modules keep their documented examples honest."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["scoring.policy", "models.metrics", "models.online",
                                    "scoring.metrics", "features.redis_layout",
                                    "features.stream.items", "features.stream.release",
                                    "features.stream.ids", "features.stream.cards",
                                    "streams.serde"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
