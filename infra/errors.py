"""One error hierarchy for the project, mapped to HTTP or dead-letter records at the boundary."""

from __future__ import annotations


class FraudstreamError(Exception):
    """Base of every error fraudstream raises on purpose."""


class InvalidInput(FraudstreamError):
    """Input that breaks the contract (schema, types, ranges, size).

    Workers turn it into a dead-letter record; the API answers 4xx with ``reason``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigurationError(FraudstreamError):
    """Settings or files that cannot work together."""


class ServiceError(FraudstreamError):
    """A local or remote service (Kafka, Redis, MLflow) is missing, failed or not ready."""


class ModelError(FraudstreamError):
    """No usable model, or a model whose features the scorer cannot serve."""


class ModelUnavailable(ModelError):
    """A model behind an alias cannot be used: the alias is missing, the version will not load,
    or its features do not match the FeatureService.

    Raised by :meth:`models.registry.ModelRegistry.load` for every such case, so a scorer
    catches one error for an optional role (shadow, challenger, canary), logs and counts it,
    and keeps scoring with the champion. ``alias``, ``version`` (None when the alias is
    unset) and ``reason`` (``missing`` | ``broken`` | ``unservable``) say which and why.
    """

    def __init__(self, message: str, *, alias: str, version: str | None, reason: str) -> None:
        super().__init__(message)
        self.alias = alias
        self.version = version
        self.reason = reason
