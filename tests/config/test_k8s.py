"""The Kubernetes manifests: `kustomize build` of the base and of every overlay, each object
valid against the Kubernetes JSON schemas (kubernetes-validate, offline, strict) or, for KEDA's
kinds, against the schema in tests/config/schemas; then the promises docs/deploying.md makes about
them (ceiling = partitions, readiness on /health, state on a volume, ...) are checked."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from evgrid.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "config" / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still in upstream support when written
KEDA = json.loads((Path(__file__).parent / "schemas" / "keda-v1alpha1.json").read_text())
BUILDS = ["base", *(f"overlays/{p.name}" for p in sorted((K8S / "overlays").iterdir()))]
SECRETS = {"evgrid-api-token", "evgrid-kafka-sasl", "evgrid-kafka-tls", "evgrid-sql"}


def kustomize() -> str:
    path = shutil.which("kustomize", path=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    if path is None:
        pytest.fail("kustomize is not installed: run `make tools` (go install from the Go "
                    "module proxy into .venv/bin)")
    return path


def build(name: str) -> list[dict[str, Any]]:
    out = subprocess.run([kustomize(), "build", str(K8S / name)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=BUILDS)
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(request.param)


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]


def config(objects: list[dict]) -> dict[str, str]:
    return one(objects, "ConfigMap", "evgrid-config")["data"]


def test_every_object_is_valid(objects: list[dict]) -> None:
    kinds = set()
    for obj in objects:
        kinds.add(obj["kind"])
        if obj["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(obj, KEDA[obj["kind"]])
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at "
                        f"{'/'.join(map(str, exc.path))}")
    assert {"StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap",
            "ScaledObject"} <= kinds


def test_the_schema_check_catches_mistakes() -> None:
    """The validator is strict: a misspelt field or a wrong type fails (so a pass means
    something)."""
    sts = copy.deepcopy(one(build("base"), "StatefulSet", "evgrid-worker"))
    sts["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBERNETES_VERSION, strict=True)
    scaled = copy.deepcopy(one(build("base"), "ScaledObject", "evgrid-worker"))
    scaled["spec"]["maxReplicas"] = 4
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA["ScaledObject"])


def test_scaling_is_capped_at_the_partition_count(objects: list[dict]) -> None:
    conf = {k: v for k, v in config(objects).items() if "CAFILE" not in k}
    secrets = {"EVGRID_BROKER_SASL_USERNAME": "u", "EVGRID_BROKER_SASL_PASSWORD": "p"}
    settings = WorkerSettings.from_env({**conf, **secrets})
    scaled = one(objects, "ScaledObject", "evgrid-worker")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                      "name": "evgrid-worker"}
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] == settings.partitions
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    jsonschema.validate(meta, KEDA["kafka_trigger_metadata"])
    assert meta["consumerGroup"] == settings.ingest_group
    assert meta["topic"] == settings.topics.meter_values
    assert meta["bootstrapServers"] == settings.bootstrap_servers
    assert meta["allowIdleConsumers"] == "false"
    secure = settings.broker_security_protocol
    assert (meta.get("tls") == "enable") == secure.endswith("SSL")
    assert ("sasl" in meta) == secure.startswith("SASL")
    if "authenticationRef" in trigger:
        auth = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        params = {r["parameter"] for r in auth["spec"]["secretTargetRef"]}
        assert params <= set(KEDA["kafka_auth_parameters"])
        assert {r["name"] for r in auth["spec"]["secretTargetRef"]} <= SECRETS
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"kind": "StatefulSet", "name": "x"}, "maxReplicas": 1,
                    "behavior": behavior}}
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)


def test_worker_keeps_state_on_a_volume_and_is_ready_after_recovery(objects: list[dict]) -> None:
    sts = one(objects, "StatefulSet", "evgrid-worker")
    pod = sts["spec"]["template"]["spec"]
    [worker] = pod["containers"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    assert mounts[env["EVGRID_DATA_DIR"]] in claims
    assert worker["readinessProbe"]["httpGet"]["path"] == "/health"
    assert worker["livenessProbe"]["httpGet"]["path"] != "/health"  # recovery is not death
    headless = one(objects, "Service", sts["spec"]["serviceName"])["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    # Faust advertises EVGRID_WEB_HOST to the other workers: it must be the pod's DNS name
    # under the headless Service.
    assert env["EVGRID_WEB_HOST"].startswith(f"$(POD_NAME).{sts['spec']['serviceName']}.")
    assert worker["args"] == ["worker"]


def test_every_workload_is_sized_probed_scraped_and_guarded(objects: list[dict]) -> None:
    services = [o for o in objects if o["kind"] == "Service"]
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    roles = set()
    for w in workloads(objects):
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= labels.items()
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            roles.add(c["args"][0])
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= c["resources"][part].keys(), (w, part)
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert c["readinessProbe"]["httpGet"]["port"] in ports
            notes = w["spec"]["template"]["metadata"]["annotations"]
            assert notes["prometheus.io/scrape"] == "true"
            assert int(notes["prometheus.io/port"]) in ports.values()
            assert notes["prometheus.io/path"] == "/metrics"
            refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})}
            refs |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
            assert refs <= SECRETS, refs
        if w["spec"].get("replicas", 1) > 1 or w["kind"] == "StatefulSet":
            assert any(b["spec"]["selector"]["matchLabels"].items() <= labels.items()
                       for b in budgets), f"no PodDisruptionBudget for {w['metadata']['name']}"
    assert roles == {"worker", "gateway", "openadr", "sql"}
    for svc in services:
        selector = svc["spec"]["selector"].items()
        assert any(selector <= w["spec"]["template"]["metadata"]["labels"].items()
                   for w in workloads(objects)), svc["metadata"]["name"]


def test_worker_settings_in_the_manifests_are_real_settings(objects: list[dict],
                                                            tmp_path: Path) -> None:
    """Every EVGRID_* variable the worker gets is one `WorkerSettings` reads, and together they
    validate (secrets and mounted files stand in with dummies)."""
    sts = one(objects, "StatefulSet", "evgrid-worker")
    [worker] = sts["spec"]["template"]["spec"]["containers"]
    env = dict(config(objects))
    for e in worker["env"]:
        env[e["name"]] = e.get("value") or "dummy"
    known = set(WorkerSettings(api_token="x").to_env()) | {f"EVGRID_{n.upper()}"
                                                            for n in WorkerSettings.model_fields}
    unknown = {k for k in env if k.startswith("EVGRID_") and k not in known}
    assert not unknown, unknown
    for name, value in env.items():
        if value.startswith("/etc/"):  # files from secrets
            env[name] = str(tmp_path / "file")
            (tmp_path / "file").write_text("")
    env["EVGRID_WEB_HOST"] = re.sub(r"\$\(\w+\)", "x", env["EVGRID_WEB_HOST"])
    settings = WorkerSettings.from_env(env)
    assert settings.data_dir == Path("/var/lib/evgrid")


def test_deploying_page_names_every_secret() -> None:
    page = (ROOT / "docs" / "deploying.md").read_text()
    section = page[page.index("## Secrets"):]
    for name in SECRETS:
        assert f"create secret generic {name} " in section, name
