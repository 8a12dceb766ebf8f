"""Model operations for the CLI and the API: list, show, promote, one-command rollback.

The API engineer calls the same functions under the API key (the actor is the key's name),
so a promotion from the command line and one over HTTP check and record the same things:

- :func:`list_models`, :func:`show_model` — read only;
- :func:`promote` — point an alias at a version **after** checking it can be served
  (it loads, and its ordered features equal the FeatureService's);
- :func:`rollback` — point an alias back at its previous holder, read from the audit log
  (:func:`rollback_target`), after the same check; one call, no version number needed.

Canary operations are in :mod:`models.rollout_canary`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.errors import ConfigurationError, ModelError, ModelUnavailable
from models import audit
from models.lineage import read_lineage

if TYPE_CHECKING:
    from models.registry import ModelRegistry

ALIASES = ("champion", "challenger", "shadow", "canary")
CANARY = "canary"


def served_features() -> list[str]:
    """The FeatureService's ordered features: what a scorer can serve."""
    from features.core import FEATURE_NAMES

    return list(FEATURE_NAMES)


def _check_alias(alias: str) -> None:
    if alias not in ALIASES:
        raise ConfigurationError(f"unknown alias {alias!r}: one of {', '.join(ALIASES)}")


def list_models(registry: ModelRegistry, name: str | None = None) -> list[dict[str, Any]]:
    """Every version (oldest first): aliases, created, feature service, test metrics."""
    return [asdict(v) for v in registry.list_versions(name)]


def show_model(registry: ModelRegistry, version: str, name: str | None = None
               ) -> dict[str, Any]:
    """One version: summary, lineage, slice table, model card, and its alias history."""
    name = name or registry.settings.model_name
    found = [v for v in registry.list_versions(name) if v.version == str(version)]
    if not found:
        raise ModelError(f"{name} has no version {version!r}")
    info = asdict(found[0])
    mv = registry.client.get_model_version(name, str(version))
    info["lineage"] = read_lineage(dict(mv.tags))
    info["model_card"] = _artifact_text(registry, info["run_id"], "model_card.md")
    slices = _artifact_text(registry, info["run_id"], "slices.json")
    info["slices"] = json.loads(slices)["slices"] if slices else None
    info["history"] = [r for r in audit.read(registry.audit_path, model=name)
                       if str(version) in (r.get("new_version"), r.get("previous_version"))]
    return info


def _artifact_text(registry: ModelRegistry, run_id: str, path: str) -> str | None:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = registry.client.download_artifacts(run_id, path, tmp)
            return Path(local).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - an older version may lack the artifact
        return None


def check_servable(registry: ModelRegistry, version: str, name: str,
                   served: Sequence[str] | None = None) -> None:
    """Raise ``ModelUnavailable`` unless ``version`` loads and matches the FeatureService."""
    registry.load_version(str(version), name, served=served or served_features())


def promote(registry: ModelRegistry, version: str, alias: str = "champion", *,
            actor: str, reason: str = "", served: Sequence[str] | None = None,
            name: str | None = None) -> dict[str, Any]:
    """Point ``alias`` at ``version`` once it is known servable; returns the audit record."""
    _check_alias(alias)
    if alias == CANARY:
        raise ConfigurationError("the canary alias is moved by `models canary start`, "
                                 "which also sets its traffic share")
    name = name or registry.settings.model_name
    if str(version) not in {v.version for v in registry.list_versions(name)}:
        raise ModelError(f"{name} has no version {version!r}")
    check_servable(registry, version, name, served)
    return registry.set_alias(name, alias, str(version), actor=actor,
                              reason=reason or f"promoted v{version} to {alias}",
                              action="promote")


def rollback_target(records: Iterable[dict[str, Any]], current: str | None) -> str | None:
    """The previous holder of an alias, replaying its audit records (oldest first).

    A move pushes the version it replaced; a rollback pops it. So rolling back twice from
    v3 (after v1 -> v2 -> v3) gives v2 then v1, never back to v3.

    >>> moves = [{"action": "register", "previous_version": None, "new_version": "1"},
    ...          {"action": "promote", "previous_version": "1", "new_version": "2"},
    ...          {"action": "promote", "previous_version": "2", "new_version": "3"}]
    >>> rollback_target(moves, "3")
    '2'
    >>> back = {"action": "rollback", "previous_version": "3", "new_version": "2"}
    >>> rollback_target([*moves, back], "2")
    '1'
    """
    stack: list[str] = []
    for r in records:
        if r.get("action") == "rollback":
            if stack and stack[-1] == r.get("new_version"):
                stack.pop()
            continue
        previous = r.get("previous_version")
        if previous is not None and previous != r.get("new_version"):
            stack.append(str(previous))
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


def rollback(registry: ModelRegistry, alias: str = "champion", *, actor: str,
             reason: str = "", served: Sequence[str] | None = None,
             name: str | None = None) -> dict[str, Any]:
    """Move ``alias`` back to its previous holder (audit log) if that one can be served."""
    _check_alias(alias)
    name = name or registry.settings.model_name
    current = registry.alias_version(alias, name)
    target = rollback_target(audit.read(registry.audit_path, model=name, alias=alias), current)
    if target is None:
        raise ModelError(f"{name}@{alias} has no previous holder in the audit log "
                         f"({registry.audit_path})")
    try:
        check_servable(registry, target, name, served)
    except ModelUnavailable as exc:
        raise ModelError(f"cannot roll {name}@{alias} back to v{target}: {exc}") from exc
    return registry.set_alias(name, alias, target, actor=actor,
                              reason=reason or f"rollback from v{current} to v{target}",
                              action="rollback")
