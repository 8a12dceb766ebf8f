"""Real Kafka and Redis: what the rest of the project relies on them for."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from confluent_kafka import Consumer, Message, Producer

from infra.services import redis_url, service_status, start_services, stop_services
from infra.services.lifecycle import pid_path
from infra.services.process import PidRecord, free_ports, is_alive, port_open, proc_start_ticks
from infra.services.redis_server import RedisServer
from infra.settings import Settings


def _consume_one(settings: Settings, topic: str, **extra: str) -> Message:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": settings.consumer_group_stream,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **extra,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                consumer.commit(message=msg, asynchronous=False)  # needs __consumer_offsets
                return msg
        raise AssertionError(f"nothing consumed from {topic} in 60s")
    finally:
        consumer.close()


def test_produce_and_consume(settings: Settings, topic_factory: Callable[..., str]) -> None:
    topic = topic_factory(settings.topic_transactions, partitions=3)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
    producer.produce(topic, key=b"card-1", value=b'{"amount": 12.5}')
    assert producer.flush(30) == 0
    msg = _consume_one(settings, topic)
    assert (msg.key(), msg.value()) == (b"card-1", b'{"amount": 12.5}')


def test_transactional_producer(settings: Settings, topic_factory: Callable[..., str]) -> None:
    """init_transactions only succeeds when transaction.state.log.* fit one broker."""
    topic = topic_factory(settings.topic_scores)
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "transactional.id": f"test-tx-{uuid.uuid4().hex[:8]}",
        }
    )
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(topic, key=b"card-2", value=b"decided")
    producer.commit_transaction(60)
    msg = _consume_one(settings, topic, **{"isolation.level": "read_committed"})
    assert msg.value() == b"decided"


def test_auto_create_is_off(settings: Settings) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    meta = producer.list_topics(f"never-created-{uuid.uuid4().hex[:8]}", timeout=10)
    assert all(t.error is not None for t in meta.topics.values())


def test_redis_ping_set_get(settings: Settings) -> None:
    client = redis.Redis.from_url(redis_url(settings))
    try:
        assert client.ping()
        key = f"test:{uuid.uuid4().hex}"
        client.set(key, b"v1", ex=60)
        assert client.get(key) == b"v1"
    finally:
        client.close()


def test_per_test_settings_isolate_names_and_pin_services(
    settings: Settings, service_settings: Settings
) -> None:
    assert settings.topic_transactions != service_settings.topic_transactions
    assert settings.consumer_group_stream != service_settings.consumer_group_stream
    assert settings.bootstrap_servers == service_settings.bootstrap_servers
    assert settings.redis_connection == service_settings.redis_connection
    assert [s.state for s in start_services(settings)] == ["external", "external"]
    assert [s.state for s in service_status(settings)] == ["external", "external"]


def test_session_services_start_is_idempotent(service_settings: Settings) -> None:
    before = {s.name: s.pid for s in service_status(service_settings)}
    again = start_services(service_settings)
    assert all(s.ok for s in again)
    assert all(s.note in ("already running", "external: not started here") for s in again)
    assert {s.name: s.pid for s in again} == before


def test_start_idempotent_and_stop_kills_only_our_pid(
    service_settings: Settings, tmp_path: Path
) -> None:
    """A dedicated Redis (cheap): second start is a no-op; stop ignores a foreign pid file.

    Requests ``service_settings`` only so the session's skip-or-fail policy applies here too.
    """
    (port,) = free_ports(1)
    settings = Settings(state_dir=tmp_path, redis_url=None, redis_port=port)
    decoy = subprocess.Popen(["sleep", "120"])  # noqa: S607 - a harmless foreign process
    first = start_services(settings, ["redis"])[0]
    try:
        assert first.state == "running" and first.note == "started" and first.pid
        assert first.start_seconds is not None
        second = start_services(settings, ["redis"])[0]
        assert (second.note, second.pid) == ("already running", first.pid)

        ours = PidRecord.load(pid_path(RedisServer(), settings))
        assert ours is not None
        PidRecord(decoy.pid, ours.ports, time.time(), proc_start_ticks(decoy.pid)).dump(
            pid_path(RedisServer(), settings)
        )
        foreign = stop_services(settings, ["redis"])[0]
        assert "not ours" in foreign.note
        assert decoy.poll() is None and port_open(port)  # neither was signalled

        ours.dump(pid_path(RedisServer(), settings))
        stopped = stop_services(settings, ["redis"])[0]
        assert stopped.state == "stopped" and f"pid {first.pid}" in stopped.note
        assert not is_alive(first.pid) and not port_open(port)
        assert service_status(settings, ["redis"])[0].state == "stopped"
    finally:
        decoy.kill()
        decoy.wait()
        stop_services(settings, ["redis"])
