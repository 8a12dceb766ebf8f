"""Canary operations: start, step (gated, with automatic rollback), abort, status.

State lives in the registry: the ``canary`` alias names the version and the registered
model's ``canary_share`` tag its traffic share; the worker routes by
:func:`scoring.routing.arm_for` with that share, salted by the canary version. Every
operation, including a hold (gates evaluated, share unchanged), appends an audit record on
alias ``canary`` whose ``extra`` holds the shares and each gate's outcome; completion also
moves ``champion`` (action ``canary_complete``), so ``models rollback`` can undo it.

The gates' evidence (per-arm decisions and matured labels) is passed in: this module does
no stream I/O. :func:`models.reports.decisions_frame` builds it from ``scores`` records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.errors import ModelError
from models.canary import STEPS, CanaryPolicy, StepDecision, decide_step
from models.reports import ArmEvidence
from models.rollout import CANARY, check_servable

if TYPE_CHECKING:
    from models.registry import ModelRegistry

log = logging.getLogger("fraudstream.models.canary")
CHAMPION = "champion"


@dataclass(frozen=True)
class CanaryStatus:
    version: str | None
    share: float
    champion: str | None


def status(registry: ModelRegistry, name: str | None = None) -> CanaryStatus:
    name = name or registry.settings.model_name
    return CanaryStatus(registry.alias_version(CANARY, name), registry.canary_share(name),
                        registry.alias_version(CHAMPION, name))


def start_canary(registry: ModelRegistry, version: str, *, actor: str, share: float = STEPS[0],
                 reason: str = "", served: Sequence[str] | None = None,
                 name: str | None = None) -> dict[str, Any]:
    """Make ``version`` the canary at ``share`` after checking it can be served."""
    name = name or registry.settings.model_name
    now = status(registry, name)
    if now.version is not None and now.version != str(version):
        raise ModelError(f"canary v{now.version} is running at {now.share:.0%}: "
                         "abort it first (`models canary abort`)")
    if now.champion is None:
        raise ModelError(f"{name} has no champion to compare a canary with")
    if now.champion == str(version):
        raise ModelError(f"v{version} is already the champion")
    if not 0.0 < share < 1.0:
        raise ModelError(f"a canary starts at a share in (0, 1), got {share}")
    check_servable(registry, str(version), name, served)
    registry.set_canary_share(name, share)
    return registry.set_alias(name, CANARY, str(version), actor=actor,
                              reason=reason or f"canary v{version} at {share:.0%} "
                              f"against champion v{now.champion}",
                              action="canary_start",
                              extra={"share": share, "champion": now.champion})


def step_canary(registry: ModelRegistry, champion: ArmEvidence, canary: ArmEvidence, *,
                actor: str, policy: CanaryPolicy | None = None, name: str | None = None
                ) -> tuple[StepDecision, list[dict[str, Any]]]:
    """Judge the running canary on the arms' evidence and act: step, hold, roll back or
    complete. Returns the decision and the audit records written."""
    name = name or registry.settings.model_name
    now = status(registry, name)
    if now.version is None:
        raise ModelError(f"{name} has no canary running")
    decision = decide_step(now.share, champion, canary, policy)
    extra = {"share_from": decision.share, "share_to": decision.next_share,
             "champion": now.champion, "checks": decision.checks,
             "decisions": {"champion": champion.decisions, "canary": canary.decisions}}
    records: list[dict[str, Any]] = []
    if decision.action in ("hold", "step"):
        if decision.action == "step":
            registry.set_canary_share(name, decision.next_share)
        records.append(registry.set_alias(name, CANARY, now.version, actor=actor,
                                          reason=decision.reason,
                                          action=f"canary_{decision.action}", extra=extra))
    elif decision.action == "rollback":
        records.append(registry.delete_alias(name, CANARY, actor=actor, reason=decision.reason,
                                             action="canary_rollback", extra=extra))
        registry.set_canary_share(name, 0.0)
    else:  # complete
        records.append(registry.set_alias(name, CHAMPION, now.version, actor=actor,
                                          reason=decision.reason, action="canary_complete",
                                          extra=extra))
        records.append(registry.delete_alias(name, CANARY, actor=actor, reason=decision.reason,
                                             action="canary_complete", extra=extra))
        registry.set_canary_share(name, 0.0)
    log.info("canary v%s: %s", now.version, decision.reason)
    return decision, records


def abort_canary(registry: ModelRegistry, *, actor: str, reason: str = "",
                 name: str | None = None) -> dict[str, Any]:
    """Stop the canary now: all traffic back to the champion."""
    name = name or registry.settings.model_name
    now = status(registry, name)
    if now.version is None:
        raise ModelError(f"{name} has no canary running")
    record = registry.delete_alias(name, CANARY, actor=actor,
                                   reason=reason or f"canary v{now.version} aborted",
                                   action="canary_abort", extra={"share_from": now.share})
    registry.set_canary_share(name, 0.0)
    return record
