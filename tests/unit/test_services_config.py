"""Local services without processes: rendered configs, pid-file ownership, start decisions."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.errors import ConfigurationError, ServiceError
from infra.services import SERVICE_NAMES, _select, install_kafka, lifecycle
from infra.services.kafka_broker import COMPLETE, KafkaBroker, new_cluster_id, server_properties
from infra.services.process import PidRecord, owns, proc_start_ticks
from infra.services.redis_server import RedisServer, redis_conf, redis_url
from infra.services.status import ServiceStatus, StartAction, decide_start
from infra.settings import Settings

NOT_OUR_CHILD = 4_194_000  # a pid this test process never spawned (fake /proc entries use it)


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", **kw)  # type: ignore[arg-type]


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=31092, kafka_controller_port=31093)
    props = _props(server_properties(settings, tmp_path / "kafka"))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:31092,CONTROLLER://127.0.0.1:31093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:31092"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:31093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["auto.create.topics.enable"] == "false"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_cluster_id_is_a_kafka_uuid() -> None:
    for _ in range(200):
        cid = new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_redis_conf_loopback_aof_and_title(tmp_path: Path) -> None:
    conf = redis_conf(_settings(tmp_path, redis_port=31379), tmp_path / 'my "redis"')
    lines = conf.splitlines()
    assert "bind 127.0.0.1" in lines and "port 31379" in lines
    assert 'save ""' in lines and "appendonly yes" in lines and "daemonize no" in lines
    assert f'dir "{tmp_path}/my \\"redis\\""' in lines
    assert any(line.startswith("proc-title-template") and "{config-file}" in line for line in lines)
    assert not any(line.startswith("requirepass") for line in lines)
    secret = redis_conf(_settings(tmp_path, redis_password=SecretStr("s3")), tmp_path)
    assert 'requirepass "s3"' in secret.splitlines()


def test_addresses_never_show_redis_credentials(tmp_path: Path) -> None:
    local = _settings(tmp_path, redis_port=31379)
    assert redis_url(local) == "redis://127.0.0.1:31379/0"
    external = _settings(tmp_path, redis_url="redis://user:pw@cache:6379/0")
    assert RedisServer().address(external) == "cache:6379/0"
    assert RedisServer().external(external) and not RedisServer().external(local)


def test_markers_name_our_config_files(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    home = (tmp_path / "state").resolve()
    assert KafkaBroker().markers(settings) == ("kafka.Kafka", str(home / "kafka/server.properties"))
    assert RedisServer().markers(settings) == ("redis-server", str(home / "redis/redis.conf"))


# -- pid files and ownership --------------------------------------------------------------


def _fake_proc(root: Path, pid: int, cmdline: str, state: str = "S", start: int = 4242) -> Path:
    entry = root / str(pid)
    entry.mkdir(parents=True)
    entry.joinpath("cmdline").write_bytes(cmdline.replace(" ", "\0").encode() + b"\0")
    fields = [state, *["0"] * 18, str(start), "0"]
    entry.joinpath("stat").write_text(f"{pid} (java (x) y) {' '.join(fields)}\n")
    return root


def test_pid_record_round_trip_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x" / "kafka.pid"
    record = PidRecord(123, (1, 2), 1700000000.5, 99)
    record.dump(path)
    assert PidRecord.load(path) == record
    path.write_text("{not json")
    assert PidRecord.load(path) is None
    assert PidRecord.load(tmp_path / "missing.pid") is None


def test_owns_requires_live_process_same_start_and_markers(tmp_path: Path) -> None:
    conf = "/srv/state/kafka/server.properties"
    proc = _fake_proc(tmp_path / "proc", NOT_OUR_CHILD, f"java -cp libs/* kafka.Kafka {conf}")
    markers = ("kafka.Kafka", conf)
    assert proc_start_ticks(NOT_OUR_CHILD, proc) == 4242
    assert owns(PidRecord(NOT_OUR_CHILD, (1,), 0.0, 4242), markers, proc)
    assert owns(PidRecord(NOT_OUR_CHILD, (1,), 0.0, None), markers, proc)
    assert not owns(PidRecord(NOT_OUR_CHILD, (1,), 0.0, 4243), markers, proc)  # pid reused
    assert not owns(PidRecord(NOT_OUR_CHILD, (1,), 0.0, 4242), ("kafka.Kafka", "/other"), proc)
    assert not owns(PidRecord(NOT_OUR_CHILD + 1, (1,), 0.0, None), markers, proc)  # gone
    zombie = _fake_proc(tmp_path / "zproc", NOT_OUR_CHILD, f"kafka.Kafka {conf}", state="Z")
    assert not owns(PidRecord(NOT_OUR_CHILD, (1,), 0.0, 4242), markers, zombie)


# -- start decisions and lifecycle with a fake service ------------------------------------


@pytest.mark.parametrize(
    ("external", "owned", "busy", "expected"),
    [
        (True, None, (), StartAction.EXTERNAL),
        (True, (1, 2), (1,), StartAction.EXTERNAL),
        (False, (1, 2), (1, 2), StartAction.ALREADY_RUNNING),
        (False, (7, 8), (), StartAction.PORT_CONFLICT),
        (False, None, (2,), StartAction.PORT_CONFLICT),
        (False, None, (), StartAction.LAUNCH),
    ],
)
def test_decide_start(
    external: bool, owned: tuple[int, ...] | None, busy: tuple[int, ...], expected: StartAction
) -> None:
    got = decide_start(external=external, owned_ports=owned, wanted_ports=(1, 2), busy_ports=busy)
    assert got is expected


@dataclass
class FakeService:
    """A LocalService that records calls and never launches anything real."""

    port: int
    is_external: bool = False
    calls: list[str] = field(default_factory=list)
    name: str = "fake"
    start_timeout_s: float = 1.0
    stop_grace_s: float = 1.0

    def external(self, settings: Settings) -> bool:
        return self.is_external

    def address(self, settings: Settings) -> str:
        return f"127.0.0.1:{self.port}"

    def ports(self, settings: Settings) -> tuple[int, ...]:
        return (self.port,)

    def home(self, settings: Settings) -> Path:
        return settings.state_dir / "fake"

    def markers(self, settings: Settings) -> tuple[str, ...]:
        return ("no-process-has-this-marker",)

    def prepare(self, settings: Settings) -> list[str]:
        self.calls.append("prepare")
        raise AssertionError("must not launch")

    def probe(self, settings: Settings, timeout_s: float) -> bool:
        self.calls.append("probe")
        return True


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_external_services_are_never_started_or_stopped(tmp_path: Path) -> None:
    svc, settings = FakeService(1, is_external=True), _settings(tmp_path)
    started = lifecycle.start(svc, settings)
    assert started.state == "external" and "not started" in started.note
    assert lifecycle.stop(svc, settings).state == "external"
    assert "prepare" not in svc.calls


def test_port_held_by_someone_else_is_a_clear_error(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(ServiceError, match="in use"):
        lifecycle.start(FakeService(busy_port), _settings(tmp_path))


def test_stop_never_signals_a_pid_that_is_not_ours(tmp_path: Path) -> None:
    svc, settings = FakeService(1), _settings(tmp_path)
    pid_file = lifecycle.pid_path(svc, settings)
    PidRecord(os.getpid(), (1,), 0.0, proc_start_ticks(os.getpid())).dump(pid_file)
    status = lifecycle.stop(svc, settings)  # our own pid, but without the service's markers
    assert status.state == "stopped" and "not ours" in status.note
    assert not pid_file.exists()
    assert lifecycle.stop(svc, settings).note == "was not running"
    assert lifecycle.status(svc, settings).state == "stopped"


def test_status_line_is_printable() -> None:
    line = str(ServiceStatus("kafka", "running", "127.0.0.1:1", 42, 75.0, 3.14, "started"))
    assert "kafka" in line and "pid=42" in line and "up 1m15s" in line and "ready in 3.1s" in line
    assert ServiceStatus("redis", "external", "x").ok
    assert not ServiceStatus("redis", "stopped", "x").ok


def test_select_services_by_name() -> None:
    assert [svc.name for svc in _select(["all"])] == list(SERVICE_NAMES)
    assert [svc.name for svc in _select(["redis", "kafka", "redis"])] == ["redis", "kafka"]
    with pytest.raises(ConfigurationError):
        _select(["zookeeper"])


def test_install_kafka_is_a_no_op_once_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, kafka_version="9.9.9")
    libs = tmp_path / "cache" / "kafka-9.9.9" / "libs"
    libs.mkdir(parents=True)
    (libs / COMPLETE).write_text("9.9.9")
    monkeypatch.setattr("shutil.which", lambda _name: None)  # Maven would be needed otherwise
    assert install_kafka(settings) == libs
    (libs / COMPLETE).unlink()
    with pytest.raises(ServiceError, match="Maven"):
        install_kafka(settings)
