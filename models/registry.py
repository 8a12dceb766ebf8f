"""MLflow registry wrapper: log, register, alias (with an audit log) and load batch models.

A version is an XGBoost **Booster** (its pyfunc returns probabilities, unlike the sklearn
wrapper's labels) whose signature is the ordered feature list of a Feast FeatureService. The
version and its run carry the tags ``feature_service`` and ``feature_names`` (JSON list), the
training windows, test metrics, ``reference_profile.json`` and ``model_card.md``.

Aliases (``champion``, ``challenger``, ``shadow``, ``canary``) are the only way scorers pick
a version. Every move goes through :meth:`ModelRegistry.set_alias` (or
:meth:`~ModelRegistry.delete_alias`), which appends one JSON line to
``state_dir/audit/model_aliases.jsonl``: when (UTC), actor, action, reason, previous and new
version, metrics. The alias moves first; a failed audit write then raises rather than going
unnoticed. The canary's traffic share is the registered model's tag ``canary_share``.

Loading never fails in more than one way: a missing alias, a version that will not load and
a version whose features the caller cannot serve (other features, or trained with another
label delay ``d`` than the process's ``FRAUDSTREAM_LABEL_DELAY_DAYS``) all raise
:class:`~infra.errors.ModelUnavailable` (a ``ModelError``), so a scorer can skip a broken
shadow/challenger/canary with one ``except`` and keep its champion.

Each version also carries its lineage (:mod:`models.lineage`: git commit, data hash and
window, row and fraud counts, package versions, seed) as ``lineage.*`` tags and
``lineage.json``, and its model card (:mod:`models.card`) with metrics by slice.

The client is created lazily from ``Settings``. ``mlflow.xgboost.log_model`` and
``load_model`` only work through MLflow's process-global URIs, so those are set right
before each such call (never at import), to the settings of the registry making it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.xgboost
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from features.terminal import label_delay
from infra.errors import ModelError, ModelUnavailable
from infra.settings import Settings
from models import audit, lineage
from models.train import TrainResult
from models.versions import LoadedModel, ModelVersionInfo

__all__ = ["EXPERIMENT", "LoadedModel", "ModelRegistry", "ModelVersionInfo"]

EXPERIMENT = "fraudstream"
CANARY_SHARE_TAG = "canary_share"


def _check_delay(model: LoadedModel) -> None:
    """Refuse a version trained with another label delay than the process's features use
    (its delayed-window features would mean other days than it learned)."""
    served = label_delay()
    if model.label_delay_days != served:
        raise ModelUnavailable(
            f"{model.name} v{model.version}" + (f" (alias {model.alias!r})" if model.alias else "")
            + f" was trained with label delay {model.label_delay_days} d, but this process "
            f"computes features with FRAUDSTREAM_LABEL_DELAY_DAYS={served}; retrain it or set "
            f"FRAUDSTREAM_LABEL_DELAY_DAYS={model.label_delay_days}",
            alias=model.alias, version=model.version, reason="unservable",
        )


def _not_found(exc: MlflowException) -> bool:
    """MLflow reports a missing alias as INVALID_PARAMETER_VALUE "... not found"."""
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        exc.error_code == "INVALID_PARAMETER_VALUE" and "not found" in exc.message
    )


def _xgboost_requirement() -> str:
    for dist in ("xgboost-cpu", "xgboost"):
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    raise ModelError("xgboost is not installed")


class ModelRegistry:
    """Registered fraud models of one MLflow tracking/registry URI (``Settings.tracking_uri``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.audit_path = audit.audit_path(settings)

    @cached_property
    def client(self) -> MlflowClient:
        if self.settings.mlflow_tracking_uri is None:  # embedded sqlite store
            (self.settings.state_dir / "mlflow").mkdir(parents=True, exist_ok=True)
        Path(self.settings.artifact_root).mkdir(parents=True, exist_ok=True)
        uri = self.settings.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    @cached_property
    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return str(found.experiment_id)
        location = (
            Path(self.settings.artifact_root).as_uri()
            if self.settings.mlflow_tracking_uri is None
            else None
        )
        try:
            return str(self.client.create_experiment(EXPERIMENT, artifact_location=location))
        except MlflowException:  # created concurrently by another process
            again = self.client.get_experiment_by_name(EXPERIMENT)
            if again is None:
                raise
            return str(again.experiment_id)

    def _activate(self) -> None:
        self.client  # noqa: B018 - creates folders before MLflow's global helpers run
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        mlflow.set_registry_uri(self.settings.tracking_uri)

    def log_and_register(
        self,
        result: TrainResult,
        name: str,
        feature_service_name: str,
        alias: str | None = "champion",
        extra_tags: dict[str, str] | None = None,
        *,
        actor: str = "fraudstream.train",
        reason: str | None = None,
        data: lineage.DataLineage | None = None,
        slices: list[dict[str, Any]] | None = None,
    ) -> str:
        """Log ``result`` as a new version of ``name`` and optionally point ``alias`` at it.

        ``data`` (the training frame's hash, window and counts, see
        :func:`models.lineage.data_lineage`) and ``slices`` (the test window's metrics by
        slice, :func:`models.card.slice_table`) go into the lineage tags and the model card;
        without them the card says they were not recorded. Returns the new version number
        (as a string, as MLflow does).
        """
        from models.card import model_card

        names = list(result.feature_names)
        lineage_record = lineage.lineage_record(result, data)
        tags = {
            "feature_service": feature_service_name,
            "feature_names": json.dumps(names),
            **{f"window.{k}": v for k, v in result.windows.items()},
            **lineage.lineage_tags(lineage_record),
            **(extra_tags or {}),
        }
        signature = ModelSignature(
            inputs=Schema([ColSpec("double", n) for n in names]),
            outputs=Schema([ColSpec("double", "score")]),
        )
        self._activate()
        with mlflow.start_run(experiment_id=self.experiment_id, tags=tags) as run:
            mlflow.log_params({k: str(v) for k, v in result.params.items()})
            mlflow.log_metrics(
                {f"test_{k}": float(v) for k, v in result.metrics.items()}
                | {f"rows_{k}": float(v) for k, v in result.counts.items()}
                | {"best_iteration": float(result.best_iteration)}
            )
            mlflow.log_dict(
                {"feature_service": feature_service_name, "feature_names": names},
                "feature_service.json",
            )
            mlflow.log_dict(result.reference, "reference_profile.json")
            mlflow.log_dict(lineage_record, "lineage.json")
            if slices is not None:
                mlflow.log_dict({"slices": slices}, "slices.json")
            info = mlflow.xgboost.log_model(
                result.booster,
                name="model",
                registered_model_name=name,
                signature=signature,
                pip_requirements=[_xgboost_requirement()],
            )
            version = str(info.registered_model_version)
            mlflow.log_text(
                model_card(name, version, run.info.run_id, feature_service_name, result,
                           lineage_record, slices),
                "model_card.md",
            )
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)
        if alias is not None:
            self.set_alias(
                name,
                alias,
                version,
                actor=actor,
                reason=reason or f"registered from run {run.info.run_id}",
                metrics=result.metrics,
                action="register",
            )
        return version

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        actor: str,
        reason: str,
        metrics: dict[str, float] | None = None,
        *,
        action: str = "set",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Point ``alias`` at ``version`` and append the audit record, which is returned.

        ``action`` (``register``, ``promote``, ``rollback``, ``canary_start`` ...) and
        ``extra`` (e.g. the canary's share and gate results) are written to the record.
        """
        previous = self.alias_version(alias, name)
        try:
            self.client.set_registered_model_alias(name, alias, str(version))
        except MlflowException as exc:
            raise ModelError(f"cannot set {name}@{alias} -> {version}: {exc.message}") from exc
        record = audit.alias_record(name, alias, actor, reason, previous, str(version), metrics,
                                    action=action, extra=extra)
        audit.append(self.audit_path, record)
        return record

    def delete_alias(
        self, name: str, alias: str, actor: str, reason: str, *, action: str = "delete",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Remove ``alias`` (if set) and audit it with ``new_version`` null."""
        previous = self.alias_version(alias, name)
        if previous is not None:
            try:
                self.client.delete_registered_model_alias(name, alias)
            except MlflowException as exc:
                raise ModelError(f"cannot delete {name}@{alias}: {exc.message}") from exc
        record = audit.alias_record(name, alias, actor, reason, previous, None,
                                    action=action, extra=extra)
        audit.append(self.audit_path, record)
        return record

    def set_canary_share(self, name: str, share: float) -> None:
        """Record the canary's traffic share (0 to 1) on the registered model."""
        if not 0.0 <= share <= 1.0:
            raise ModelError(f"canary share must be within [0, 1], got {share}")
        try:
            self.client.set_registered_model_tag(name, CANARY_SHARE_TAG, repr(float(share)))
        except MlflowException as exc:
            raise ModelError(f"cannot set the canary share of {name}: {exc.message}") from exc

    def canary_share(self, name: str | None = None) -> float:
        """The canary's traffic share; 0 when no canary runs (no alias or no share recorded)."""
        name = name or self.settings.model_name
        if self.alias_version("canary", name) is None:
            return 0.0
        try:
            raw = self.client.get_registered_model(name).tags.get(CANARY_SHARE_TAG)
        except MlflowException as exc:
            raise ModelError(f"cannot read the canary share of {name}: {exc.message}") from exc
        return float(raw) if raw else 0.0

    def alias_version(self, alias: str = "champion", name: str | None = None) -> str | None:
        """Version ``alias`` points at, or None; one registry call, for hot-swap polling."""
        try:
            return str(
                self.client.get_model_version_by_alias(
                    name or self.settings.model_name, alias
                ).version
            )
        except MlflowException as exc:
            if _not_found(exc):
                return None
            raise ModelError(f"cannot resolve alias {alias!r}: {exc.message}") from exc

    def load(
        self, alias: str = "champion", name: str | None = None,
        served: Sequence[str] | None = None,
    ) -> LoadedModel:
        """Load the booster ``alias`` points at, checked against ``served`` when given.

        Raises :class:`~infra.errors.ModelUnavailable` when the alias is unset, the version
        will not load (artifact missing or corrupt, tags missing) or its ordered features
        differ from ``served`` (the FeatureService's list). The alias is resolved once and
        the resolved version is loaded, so a concurrent promotion cannot yield a booster and
        metadata of different versions.
        """
        name = name or self.settings.model_name
        version = self.alias_version(alias, name)
        if version is None:
            raise ModelUnavailable(
                f"no version of model {name!r} has alias {alias!r} "
                f"(registry {self.settings.tracking_uri})",
                alias=alias, version=None, reason="missing",
            )
        return self.load_version(version, name, alias=alias, served=served)

    def load_version(
        self, version: str, name: str | None = None, *, alias: str = "",
        served: Sequence[str] | None = None,
    ) -> LoadedModel:
        """Load one version (see :meth:`load`); every failure is ``ModelUnavailable``."""
        name = name or self.settings.model_name
        try:
            model = self._load_version(name, str(version), alias)
        except ModelUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any load failure makes the version unusable
            raise ModelUnavailable(
                f"{name} v{version}" + (f" (alias {alias!r})" if alias else "")
                + f" cannot be loaded: {type(exc).__name__}: {exc}",
                alias=alias, version=str(version), reason="broken",
            ) from exc
        if served is not None and list(model.feature_names) != list(served):
            raise ModelUnavailable(
                f"{name} v{version}" + (f" (alias {alias!r})" if alias else "")
                + f" expects features {list(model.feature_names)}, but the feature service "
                f"serves {list(served)}",
                alias=alias, version=str(version), reason="unservable",
            )
        _check_delay(model)
        return model

    def _load_version(self, name: str, version: str, alias: str) -> LoadedModel:
        mv = self.client.get_model_version(name, version)
        run = self.client.get_run(mv.run_id) if mv.run_id else None
        run_tags = run.data.tags if run else {}
        metrics = {
            k.removeprefix("test_"): float(v)
            for k, v in (run.data.metrics if run else {}).items()
            if k.startswith("test_")
        }
        raw = mv.tags.get("feature_names") or run_tags.get("feature_names")
        if raw is None:
            raise ModelError(f"{name} v{version} has no feature_names tag")
        feature_names = tuple(json.loads(raw))
        self._activate()
        booster = mlflow.xgboost.load_model(f"models:/{name}/{version}")
        if booster.feature_names and tuple(booster.feature_names) != feature_names:
            raise ModelError(f"{name} v{version}: booster features differ from its tag")
        return LoadedModel(
            booster=booster,
            name=name,
            version=version,
            alias=alias,
            feature_names=feature_names,
            run_id=str(mv.run_id),
            feature_service=mv.tags.get("feature_service", run_tags.get("feature_service", "")),
            metrics=metrics,
            label_delay_days=lineage.trained_label_delay(run_tags | dict(mv.tags)),
        )

    def load_reference(
        self, alias: str = "champion", name: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """``(version, reference profile)`` of the version ``alias`` points at.

        The profile is the version's ``reference_profile.json`` (see :mod:`models.profile`),
        read by the drift monitor; ``ModelError`` if the alias or the artifact is missing.
        """
        name = name or self.settings.model_name
        version = self.alias_version(alias, name)
        if version is None:
            raise ModelError(f"no version of model {name!r} has alias {alias!r}")
        run_id = self.client.get_model_version(name, version).run_id
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = self.client.download_artifacts(str(run_id), "reference_profile.json", tmp)
                profile = json.loads(Path(path).read_text(encoding="utf-8"))
        except (MlflowException, OSError) as exc:
            raise ModelError(f"{name} v{version} has no readable reference profile: {exc}") from exc
        return version, profile

    def list_versions(self, name: str | None = None) -> list[ModelVersionInfo]:
        """Every version of ``name`` (oldest first) with its aliases and test metrics."""
        name = name or self.settings.model_name
        try:
            aliases = self.client.get_registered_model(name).aliases
        except MlflowException as exc:
            if _not_found(exc):
                return []
            raise
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        found = self.client.search_model_versions(f"name = '{name}'")
        return [
            ModelVersionInfo.from_mlflow(
                mv,
                aliases=by_version.get(str(mv.version), []),
                run_metrics=self.client.get_run(mv.run_id).data.metrics if mv.run_id else {},
            )
            for mv in sorted(found, key=lambda v: int(v.version))
        ]
