"""Real Kafka and Redis for tests and benchmarks, as a context manager yielding ``Settings``.

``FRAUDSTREAM_TEST_SERVICES`` picks where they come from (read here and nowhere else):

- ``auto`` (default): Docker containers via testcontainers when a Docker engine answers,
  otherwise local processes;
- ``docker``: containers, failing when there is no engine;
- ``local``: our own broker and redis-server on free ports under a temporary state folder,
  stopped (only those) on exit;
- ``external``: ``FRAUDSTREAM_KAFKA_BOOTSTRAP`` / ``FRAUDSTREAM_REDIS_URL`` as given.

MLflow is the Settings default, sqlite under the state folder, except in ``external`` mode
where ``FRAUDSTREAM_MLFLOW_TRACKING_URI`` is honoured if set.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Literal, cast, get_args

from infra.errors import ConfigurationError, ServiceError
from infra.services import service_status, start_services, stop_services
from infra.services.process import free_ports
from infra.settings import Settings

log = logging.getLogger("fraudstream.infra.testing")

Mode = Literal["auto", "local", "docker", "external"]
MODE_ENV = "FRAUDSTREAM_TEST_SERVICES"


class DockerUnavailable(ServiceError):
    """No Docker engine (or no testcontainers): ``auto`` falls back to local processes."""


def mode_from_env() -> Mode:
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in get_args(Mode):
        raise ConfigurationError(f"{MODE_ENV}={mode!r}; choose from {get_args(Mode)}")
    return cast(Mode, mode)


def services_required() -> bool:
    """In CI (``CI`` set) or with ``FRAUDSTREAM_REQUIRE_SERVICES=1``, missing services fail."""
    return bool(os.environ.get("CI")) or os.environ.get("FRAUDSTREAM_REQUIRE_SERVICES") == "1"


@contextmanager
def running_services(mode: Mode | None = None, state_dir: Path | None = None) -> Iterator[Settings]:
    """Settings pointing at running Kafka and Redis; what this started is stopped on exit.

    ``state_dir`` defaults to a temporary folder removed on exit. Raises ``ServiceError``
    when the services cannot be provided.
    """
    mode = mode or mode_from_env()
    with ExitStack() as stack:
        if state_dir is None:
            tmp = tempfile.TemporaryDirectory(
                prefix="fraudstream-test-", ignore_cleanup_errors=True
            )
            state_dir = Path(stack.enter_context(tmp))
        if mode == "external":
            yield _external(state_dir)
        elif mode == "local":
            yield stack.enter_context(_local(state_dir))
        else:
            try:
                settings = stack.enter_context(_docker(state_dir))
            except DockerUnavailable as exc:
                if mode == "docker":
                    raise
                log.info("%s; starting local Kafka and Redis instead", exc)
                settings = stack.enter_context(_local(state_dir))
            yield settings


@contextmanager
def _local(state_dir: Path) -> Iterator[Settings]:
    kafka_port, controller_port, redis_port = free_ports(3)
    settings = Settings(
        state_dir=state_dir,
        kafka_bootstrap=None,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        redis_url=None,
        redis_port=redis_port,
        mlflow_tracking_uri=None,
    )
    try:
        for status in start_services(settings):
            log.info("%s", status)
        yield settings
    finally:
        for status in stop_services(settings):
            log.info("%s", status)


@contextmanager
def _docker(state_dir: Path) -> Iterator[Settings]:
    try:
        from docker.errors import DockerException
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError as exc:
        raise DockerUnavailable(f"testcontainers is not installed: {exc}") from exc
    try:  # constructing a container is what talks to the engine first
        kafka, redis = KafkaContainer().with_kraft(), RedisContainer()
    except DockerException as exc:
        raise DockerUnavailable(f"no Docker engine answers: {str(exc).splitlines()[0]}") from exc
    with kafka, redis:
        host, port = redis.get_container_host_ip(), redis.get_exposed_port(redis.port)
        yield Settings(
            state_dir=state_dir,
            kafka_bootstrap=kafka.get_bootstrap_server(),
            redis_url=f"redis://{host}:{port}/0",
            mlflow_tracking_uri=None,
        )


def _external(state_dir: Path) -> Settings:
    settings = Settings(state_dir=state_dir)  # the FRAUDSTREAM_* variables name the services
    if settings.kafka_bootstrap is None or settings.redis_url is None:
        raise ServiceError(
            f"{MODE_ENV}=external needs FRAUDSTREAM_KAFKA_BOOTSTRAP and FRAUDSTREAM_REDIS_URL"
        )
    unreachable = [str(s) for s in service_status(settings) if not s.ok]
    if unreachable:
        raise ServiceError("external services do not answer: " + "; ".join(unreachable))
    return settings
