"""Importing the Feast definitions must not switch Prometheus to multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys


def test_feast_import_leaves_prometheus_in_process() -> None:
    code = (
        "import os, features.definitions, feast\n"
        "from prometheus_client import values\n"
        "print(values.ValueClass.__name__, os.environ.get('PROMETHEUS_MULTIPROCESS_DIR'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    out = subprocess.run(  # noqa: S603 - our interpreter, fixed code
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["MutexValue", "None"]
