"""Local Kafka and Redis processes: install, start, stop, status.

The API the CLI calls. Every function takes the process's :class:`~infra.settings.Settings`
and returns printable :class:`ServiceStatus` objects (``str(status)`` is one line). When
``kafka_bootstrap`` / ``redis_url`` point at existing services, start and stop leave them
alone and status only checks they answer. Progress goes to the ``fraudstream.infra.services``
loggers. Failures raise :class:`infra.errors.ServiceError` carrying the service log's tail.
"""

from __future__ import annotations

from collections.abc import Iterable

from infra.errors import ConfigurationError
from infra.services import lifecycle
from infra.services.kafka_broker import KafkaBroker, install_kafka
from infra.services.lifecycle import LocalService
from infra.services.redis_server import RedisServer, redis_url, require_redis_server
from infra.services.status import ServiceStatus
from infra.settings import Settings

__all__ = [
    "SERVICE_NAMES",
    "ServiceStatus",
    "install_kafka",
    "redis_url",
    "require_redis_server",
    "service_status",
    "start_services",
    "stop_services",
]

SERVICES: dict[str, LocalService] = {"kafka": KafkaBroker(), "redis": RedisServer()}
SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)


def _select(names: Iterable[str]) -> list[LocalService]:
    """Services by name, in the given order; ``"all"`` means every service."""
    chosen: list[str] = []
    for name in names:
        if name == "all":
            chosen.extend(SERVICE_NAMES)
        elif name in SERVICES:
            chosen.append(name)
        else:
            raise ConfigurationError(f"unknown service {name!r}; choose from {SERVICE_NAMES}")
    return [SERVICES[name] for name in dict.fromkeys(chosen)]


def start_services(settings: Settings, names: Iterable[str] = SERVICE_NAMES) -> list[ServiceStatus]:
    """Start each named service unless it already runs; returns once all answer."""
    return [lifecycle.start(svc, settings) for svc in _select(names)]


def stop_services(settings: Settings, names: Iterable[str] = SERVICE_NAMES) -> list[ServiceStatus]:
    """Stop the named services this state folder started (never anyone else's processes)."""
    return [lifecycle.stop(svc, settings) for svc in reversed(_select(names))]


def service_status(settings: Settings, names: Iterable[str] = SERVICE_NAMES) -> list[ServiceStatus]:
    return [lifecycle.status(svc, settings) for svc in _select(names)]
