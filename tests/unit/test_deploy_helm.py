"""The Helm chart: ``helm lint``, ``helm template`` and every rendered manifest validated
against the Kubernetes schemas (kubernetes-validate, strict: unknown fields fail).

Custom resources (KEDA ScaledObject, prometheus-operator ServiceMonitor/PrometheusRule) have
no schema there; they are checked for kind, apiVersion and the fields the chart relies on.
helm is built by ``infra/setup.sh``; without it the tests skip, or fail in CI.
"""

from __future__ import annotations

import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infra.settings import Settings
from tests.deploy_tools import DEPLOY, tool

CHART = DEPLOY / "helm" / "fraudstream"
K8S_VERSION = "1.30.0"
CUSTOM = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
          ("monitoring.coreos.com/v1", "PrometheusRule")}
ALL_ON = ["--set", "autoscaling.keda.enabled=true", "--set",
          "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true"]


def render(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run([tool("helm"), "template", "fs", str(CHART), *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs: list[dict[str, Any]], *kinds: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in kinds}


WORKLOADS = ("Deployment", "StatefulSet")


def test_helm_lint() -> None:
    out = subprocess.run([tool("helm"), "lint", "--strict", str(CHART)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("args", [[], ALL_ON, ["--set", "autoscaling.hpa.enabled=true",
                                               "--set", "secrets.existingSecret=mine",
                                               "--set", "persistence.existingClaim=shared"]],
                         ids=["defaults", "keda-servicemonitor-rules", "hpa-existing"])
def test_every_rendered_manifest_is_valid(args: list[str]) -> None:
    docs = render(*args)
    assert len(docs) >= 10
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            assert doc["metadata"]["name"] and doc["spec"]
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_replicas_follow_partitions_and_singletons_run_once() -> None:
    deps = by_kind(render("--set", "kafka.partitions=2"), *WORKLOADS)
    assert deps["fs-fraudstream-stream"]["spec"]["replicas"] == 2  # 4 asked, 2 partitions
    assert deps["fs-fraudstream-api"]["spec"]["replicas"] == 2
    for role in ("learner", "drift", "monitor"):
        spec = deps[f"fs-fraudstream-{role}"]["spec"]
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    deps = by_kind(render("--set", "kafka.partitions=12"), *WORKLOADS)
    assert deps["fs-fraudstream-stream"]["spec"]["replicas"] == 4
    scaled = by_kind(render(*ALL_ON), *WORKLOADS)["fs-fraudstream-stream"]["spec"]
    assert "replicas" not in scaled  # KEDA owns it


def test_stream_workers_are_a_statefulset_with_stable_instance_ids() -> None:
    """`--instance $(POD_NAME)` names the transactional id and the static group member:
    a StatefulSet keeps each pod's name (…-stream-0, -1, …) across restarts and rollouts."""
    docs = render()
    sets = by_kind(docs, "StatefulSet")
    assert set(sets) == {"fs-fraudstream-stream"}
    assert "fs-fraudstream-stream" not in by_kind(docs, "Deployment")
    spec = sets["fs-fraudstream-stream"]["spec"]
    assert spec["serviceName"] in by_kind(docs, "Service")
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    assert "volumeClaimTemplates" not in spec  # the state volume stays the shared claim
    container = spec["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--instance") + 1] == "$(POD_NAME)"
    pod_name = next(e for e in container["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    for role in ("api", "learner", "drift", "monitor"):
        assert f"fs-fraudstream-{role}" in by_kind(docs, "Deployment")


def test_probes_resources_security_and_scrape_annotations() -> None:
    docs = render()
    for name, dep in by_kind(docs, *WORKLOADS).items():
        pod = dep["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True, name
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        assert container["livenessProbe"] and container["readinessProbe"], name
        if "httpGet" in container["readinessProbe"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            notes = pod["metadata"]["annotations"]
            assert notes["prometheus.io/scrape"] == "true"
            assert notes["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    assert set(by_kind(docs, "PodDisruptionBudget")) == {
        "fs-fraudstream-stream", "fs-fraudstream-api"}


def test_one_stream_role_scraped_as_the_stage_job() -> None:
    """The stream worker is the only partitioned role; its scrape job is the one the
    recording rules select (job="fraudstream-stage"), under annotations and ServiceMonitors."""
    docs = render(*ALL_ON)
    deps = by_kind(docs, *WORKLOADS)
    assert not {"fs-fraudstream-stage", "fs-fraudstream-features", "fs-fraudstream-scorer"} & set(
        deps)
    pod = deps["fs-fraudstream-stream"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["args"][:2] == ["stream", "worker"]
    assert "--instance" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FRAUDSTREAM_STREAM_METRICS_PORT"] == str(container["ports"][0]["containerPort"])
    assert pod["metadata"]["annotations"]["prometheus.io/job"] == "fraudstream-stage"
    monitors = by_kind(docs, "ServiceMonitor")
    relabel = monitors["fs-fraudstream-stream"]["spec"]["endpoints"][0]["relabelings"][0]
    assert relabel["replacement"] == "fraudstream-stage"
    assert monitors["fs-fraudstream-api"]["spec"]["endpoints"][0]["relabelings"][0][
        "replacement"] == "fraudstream-api"
    ports = {n: d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
             for n, d in by_kind(render(), *WORKLOADS).items()}
    assert len(set(ports.values())) == len(ports), f"roles share a port: {ports}"


def test_settings_in_configmap_secrets_in_secret_and_names_are_real_settings() -> None:
    docs = render("--set", "secrets.apiKey=s3cret", "--set", "settings.review_threshold=0.4")
    config = by_kind(docs, "ConfigMap")["fs-fraudstream-settings"]["data"]
    secret = by_kind(docs, "Secret")["fs-fraudstream-secrets"]["stringData"]
    assert secret["FRAUDSTREAM_API_KEY"] == "s3cret"
    assert "s3cret" not in yaml.safe_dump(config)
    assert config["FRAUDSTREAM_REVIEW_THRESHOLD"] == "0.4"
    names = set(config) | set(secret)
    for dep in by_kind(docs, *WORKLOADS).values():
        names.update(e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
                     if e["name"].startswith("FRAUDSTREAM_"))
    fields = set(Settings.model_fields)
    unknown = {n for n in names if n.removeprefix("FRAUDSTREAM_").lower() not in fields}
    assert unknown == set(), "not settings (a typo would be rejected at start-up)"
    Settings(**{k.removeprefix("FRAUDSTREAM_").lower(): v for k, v in config.items()})


def test_required_services_must_be_given() -> None:
    out = subprocess.run([tool("helm"), "template", "fs", str(CHART), "--set",
                          "kafka.bootstrap="], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "kafka.bootstrap is required" in out.stderr


def test_chart_ships_the_same_rules_and_dashboard() -> None:
    copies = {CHART / "files" / "rules" / p.name: p
              for p in (DEPLOY / "prometheus" / "rules").glob("*.yml")}
    copies[CHART / "files" / "dashboards" / "fraudstream.json"] = (
        DEPLOY / "grafana" / "dashboards" / "fraudstream.json")
    for copy, source in copies.items():
        assert copy.read_bytes() == source.read_bytes(), f"run `make deploy-sync` ({copy})"
    rule = by_kind(render(*ALL_ON), "PrometheusRule")["fs-fraudstream"]
    names = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "FraudstreamNoDecisions" in names
    dash = by_kind(render(), "ConfigMap")["fs-fraudstream-dashboard"]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"uid": "fraudstream-overview"' in dash["data"]["fraudstream.json"]


def test_keda_scales_the_stream_stage_on_its_consumer_lag() -> None:
    scaled = by_kind(render(*ALL_ON, "--set", "kafka.partitions=6"), "ScaledObject")
    spec = scaled["fs-fraudstream-stream"]["spec"]
    assert spec["maxReplicaCount"] == 6
    assert spec["triggers"][0]["type"] == "kafka"
    meta = spec["triggers"][0]["metadata"]
    assert meta["consumerGroup"] == Settings().consumer_group_stream
    assert meta["topic"] == Settings().topic_transactions
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                      "name": "fs-fraudstream-stream"}


def test_hpa_scales_the_stream_stage_on_its_lag_on_transactions() -> None:
    hpa = by_kind(render("--set", "autoscaling.hpa.enabled=true", "--set",
                         "kafka.partitions=6"), "HorizontalPodAutoscaler")["fs-fraudstream-stream"]
    assert hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    match = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
    assert match == {"group": Settings().consumer_group_stream,
                     "topic": Settings().topic_transactions}


