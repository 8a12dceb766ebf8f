"""A single-node Apache Kafka broker (KRaft, broker+controller) as a local Java process.

The broker's jars come from Maven Central through ``infra/kafka/pom.xml`` once per Kafka
version into ``cache_dir``; config, data and log live under ``state_dir/kafka``. Every
internal topic has replication factor 1 (transactions cannot initialise otherwise) and
auto-creation is off: the project creates its topics explicitly, with partition counts.
"""

from __future__ import annotations

import base64
import logging
import shlex
import shutil
import subprocess  # noqa: S404 - fixed argv lists, no shell
import tempfile
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from infra.errors import ServiceError
from infra.services.process import port_open
from infra.settings import Settings

log = logging.getLogger("fraudstream.infra.services.kafka")

POM = Path(__file__).resolve().parents[1] / "kafka" / "pom.xml"
COMPLETE = ".fraudstream-complete"  # written last: its presence means the jar set is whole

LOG4J2 = """\
status = warn
name = fraudstream-kafka
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
"""


def kafka_libs(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs"


def install_kafka(settings: Settings) -> Path:
    """Resolve the broker's jars into :func:`kafka_libs` (once; idempotent) and return it.

    Maven copies into a private temp folder which is renamed into place, so a crash or a
    concurrent install never leaves a half-filled ``libs`` that looks complete.
    """
    libs = kafka_libs(settings)
    if (libs / COMPLETE).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("Maven (mvn) is needed once to fetch Kafka's jars: run `make setup`")
    libs.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="libs.partial-", dir=libs.parent))
    log.info("kafka: resolving Kafka %s jars with Maven into %s", settings.kafka_version, libs)
    argv = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
        f"-Dkafka.version={settings.kafka_version}",
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)  # noqa: S603
        if done.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise ServiceError(
                f"kafka: Maven could not resolve Kafka {settings.kafka_version}:\n{tail}"
            )
        (partial / COMPLETE).write_text(settings.kafka_version)
        if not (libs / COMPLETE).exists():  # another install may have won meanwhile
            shutil.rmtree(libs, ignore_errors=True)
            partial.rename(libs)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return libs


def server_properties(settings: Settings, home: Path) -> str:
    """The broker's config for ``settings``' ports with data under ``home/data``."""
    port, ctl = settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{ctl}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(home / "data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # a killed transactional worker's open transaction is aborted within ~1 s of its
        # transaction.timeout.ms (not the default 10 s sweep), so read_committed readers of
        # its partitions (the changelog restore, scores consumers) are not held up
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def new_cluster_id() -> str:
    """What ``StorageTool random-uuid`` prints (Kafka's ``Uuid.randomUuid``), minus a JVM start.

    Base64url of 16 random bytes without padding; Kafka rejects ids starting with ``-``.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _format_storage(classpath: list[str], config: Path) -> None:
    """Format the log dirs for a new cluster; once per state folder (KRaft requires it)."""
    cluster_id = new_cluster_id()
    argv = ["java", "-Xmx256m", *classpath, "kafka.tools.StorageTool", "format",
            "--standalone", "-t", cluster_id, "-c", str(config)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    if done.returncode != 0:
        raise ServiceError(f"kafka: formatting storage failed:\n{done.stdout}{done.stderr}")
    log.info("kafka: formatted storage, cluster id %s", cluster_id)


class KafkaBroker:
    """:class:`infra.services.lifecycle.LocalService` for the broker."""

    name = "kafka"
    start_timeout_s = 90.0
    stop_grace_s = 30.0

    def external(self, settings: Settings) -> bool:
        return settings.kafka_bootstrap is not None

    def address(self, settings: Settings) -> str:
        return settings.bootstrap_servers

    def ports(self, settings: Settings) -> tuple[int, ...]:
        return (settings.kafka_port, settings.kafka_controller_port)

    def home(self, settings: Settings) -> Path:
        return (settings.state_dir / "kafka").resolve()

    def markers(self, settings: Settings) -> tuple[str, ...]:
        return ("kafka.Kafka", str(self.home(settings) / "server.properties"))

    def prepare(self, settings: Settings) -> list[str]:
        """Install jars, write configs, format storage once; return the broker's argv."""
        if shutil.which("java") is None:
            raise ServiceError("kafka: Java 17+ is needed on PATH: run `make setup`")
        libs = install_kafka(settings)
        home = self.home(settings)
        home.mkdir(parents=True, exist_ok=True)
        config, log4j = home / "server.properties", home / "log4j2.properties"
        config.write_text(server_properties(settings, home))
        log4j.write_text(LOG4J2)
        classpath = ["-cp", f"{libs}/*", f"-Dlog4j2.configurationFile={log4j}"]
        if not (home / "data" / "meta.properties").exists():
            _format_storage(classpath, config)
        heap = shlex.split(settings.kafka_heap)
        return ["java", *heap, "-XX:+UseG1GC", "-Djava.awt.headless=true", *classpath,
                "kafka.Kafka", str(config)]  # fmt: skip

    def probe(self, settings: Settings, timeout_s: float) -> bool:
        """The broker answers a metadata request listing at least one broker."""
        if not self.external(settings) and not port_open(settings.kafka_port):
            return False
        # Refused connections are expected while a broker boots, and the answer is reported;
        # keep librdkafka from also printing them to stderr.
        admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "log_level": 0})
        try:
            return bool(admin.list_topics(timeout=timeout_s).brokers)
        except KafkaException:
            return False
