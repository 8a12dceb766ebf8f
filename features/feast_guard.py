"""Import Feast without its process-wide side effect on Prometheus metrics.

Importing ``feast`` (its ``feast.metrics`` module) sets ``PROMETHEUS_MULTIPROCESS_DIR`` and
``PROMETHEUS_MULTIPROC_DIR`` when they are unset. If ``prometheus_client`` is imported after
that, every metric of the process stores its values in files of Feast's temporary folder
(multiprocess mode), and child processes inherit the variables. fraudstream's workers keep
their metrics in-process, so this module — imported before any Feast import — fixes
``prometheus_client``'s value class first and removes the variables Feast added.
It is the one module whose import has a side effect, and that is its purpose.
"""

from __future__ import annotations

import os

import prometheus_client.values  # noqa: F401 - chooses the in-process value class now

_VARS = ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR")
_unset_before = [name for name in _VARS if name not in os.environ]

import feast  # noqa: E402, F401 - the import being guarded

for _name in _unset_before:
    os.environ.pop(_name, None)
