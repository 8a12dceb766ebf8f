"""Redis (Feast's online store) as a local ``redis-server`` process from the system package.

No persistence: the online store is rebuilt from the stream or a backfill, so RDB and AOF are
off. The process title is set to include our config file's path, which is what lets
:func:`infra.services.process.owns` recognise the process as ours.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from infra.errors import ServiceError
from infra.settings import Settings


def redis_url(settings: Settings) -> str:
    """``redis://`` URL of the Redis these settings use (external or local)."""
    return settings.redis_url or f"redis://127.0.0.1:{settings.redis_port}/0"


def require_redis_server() -> str:
    """Path of ``redis-server``; a ServiceError saying how to get it when it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        raise ServiceError(
            "redis: redis-server is not on PATH; run the setup step (`make setup`, which "
            "apt-installs the redis-server package) or set FRAUDSTREAM_REDIS_URL to an "
            "existing Redis"
        )
    return path


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_conf(settings: Settings, home: Path) -> str:
    """Config for a loopback-only Redis on ``settings.redis_port``, persistent by AOF.

    The online store holds the stream's terminal state, the transaction-id registry and the
    feature rows: a restart must not lose them, so the append-only file is on and fsynced
    every second (``appendfsync everysec``: at most ~1 s of writes can be lost on a power
    cut, none on a process restart). RDB snapshots stay off (AOF is the one copy)."""
    lines = [
        "bind 127.0.0.1",
        f"port {settings.redis_port}",
        "protected-mode yes",
        "daemonize no",  # we detach it ourselves and keep its pid
        'save ""',
        "appendonly yes",
        "appendfsync everysec",
        f"dir {_quote(str(home))}",
        'logfile ""',  # stdout, which goes to our log file
        'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"',
    ]
    if settings.redis_password is not None:
        lines.append(f"requirepass {_quote(settings.redis_password.get_secret_value())}")
    return "".join(f"{line}\n" for line in lines)


class RedisServer:
    """:class:`infra.services.lifecycle.LocalService` for Redis."""

    name = "redis"
    start_timeout_s = 20.0
    stop_grace_s = 10.0

    def external(self, settings: Settings) -> bool:
        return settings.redis_url is not None

    def address(self, settings: Settings) -> str:
        return redis_url(settings).rsplit("@", 1)[-1]  # never print credentials

    def ports(self, settings: Settings) -> tuple[int, ...]:
        return (settings.redis_port,)

    def home(self, settings: Settings) -> Path:
        return (settings.state_dir / "redis").resolve()

    def markers(self, settings: Settings) -> tuple[str, ...]:
        return ("redis-server", str(self.home(settings) / "redis.conf"))

    def prepare(self, settings: Settings) -> list[str]:
        server = require_redis_server()
        home = self.home(settings)
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "redis.conf"
        conf.touch(mode=0o600)
        conf.chmod(0o600)  # before writing: it may hold requirepass
        conf.write_text(redis_conf(settings, home))
        return [server, str(conf)]

    def probe(self, settings: Settings, timeout_s: float) -> bool:
        """Redis answers PING (with the configured password, if any)."""
        password = settings.redis_password
        client = redis.Redis.from_url(
            redis_url(settings),
            password=password.get_secret_value() if password else None,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
