"""Finding the command-line tools the deployment tests run (promtool, helm, hadolint...).

A missing tool skips the test with the reason on a developer machine, and fails it in CI
(``CI`` set) or with ``FRAUDSTREAM_REQUIRE_SERVICES=1``: ``infra/setup.sh`` installs every
one of them, so a missing tool there is a broken set-up, never a reason to pass silently.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.testing import services_required

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "infra" / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
TOOL_DIRS = (Path(sys.executable).parent, Path.home() / ".cache" / "fraudstream" / "bin")


def tool(name: str) -> str:
    """Path of ``name`` (on PATH, in the virtualenv or the tools cache), else skip/fail."""
    found = shutil.which(name)
    for folder in TOOL_DIRS:
        if found is None and (folder / name).is_file():
            found = str(folder / name)
    if found is None:
        reason = f"{name} not found: run `make setup` (infra/setup.sh installs it)"
        if services_required():
            pytest.fail(f"{reason} (CI: failing, not skipping)")
        pytest.skip(reason)
    return found


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries (rows left out, panels inside collapsed rows included)."""
    out = []
    for panel in dashboard["panels"]:
        out.extend(panel.get("panels", []))
        if panel["type"] != "row":
            out.append(panel)
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every dashboard."""
    return [(p["title"], t["expr"]) for path in DASHBOARDS
            for p in query_panels(json.loads(path.read_text())) for t in p["targets"]]
