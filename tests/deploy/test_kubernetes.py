"""infra/kubernetes/: valid against the Kubernetes and KEDA schemas, and saying what the code says.

Offline, with no cluster: the core kinds (Namespace, ConfigMap, Secret, Deployment, Service, Job)
are checked against the Kubernetes JSON schemas the kubernetes-validate package ships (dev extra),
in their strict form, where an unknown key is an error. No Python package ships KEDA's CRDs, so
the ScaledObjects are checked against tests/deploy/schemas/keda-scaledobject-v1alpha1.json,
written from KEDA's ScaledObject specification and its nats-jetstream scaler page: as strict
(a misspelt key fails), it reuses Kubernetes' own schemas for metadata and the
HorizontalPodAutoscaler behaviour. The other tests tie the manifests to the code: the consumers
KEDA reads are shared/subjects.py's, every AIRPARADIS_* is a Settings field, each worker runs
compose.yaml's command as its own NATS user, and no Secret carries a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.nats.render_accounts import ACCOUNT, USERS
from shared import subjects
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "infra" / "kubernetes"
KEDA_SCHEMA = Path(__file__).with_name("schemas") / "keda-scaledobject-v1alpha1.json"
SECRET_TEMPLATE = MANIFESTS / "secret.example.yaml"
# The oldest Kubernetes release the manifests aim at (the schemas of later ones accept them too).
KUBERNETES_VERSION = "1.30"
IMAGE = "ghcr.io/air-paradis/airparadis"
WORKERS = ("preprocess", "infer", "store", "alerter")
# The hot workers and the durable consumer each drains: what KEDA scales them on.
SCALED = {
    "preprocess": (subjects.STREAM_TWEETS, subjects.DURABLE_PREPROCESS),
    "infer": (subjects.STREAM_TWEETS, subjects.DURABLE_INFER),
}
HEALTHCHECK = ["python", "/app/infra/docker/healthcheck.py"]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def manifests() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k infra/kubernetes/` sends, in the order it lists them."""
    return [d for name in kustomization()["resources"] for d in documents(MANIFESTS / name)]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


def workloads() -> dict[str, dict[str, Any]]:
    return {**of_kind("Deployment"), **of_kind("Job")}


def config_map() -> dict[str, str]:
    data: dict[str, str] = of_kind("ConfigMap")["airparadis"]["data"]
    return data


def compose_services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def kubernetes_errors(document: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(map(str, error.absolute_path)) or "<root>"
        return [f"{document['kind']} {document['metadata']['name']}: {path}: {error.message}"]
    return []


def kubernetes_definitions() -> dict[str, Any]:
    schemas = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    folder = schemas / f"v{KUBERNETES_VERSION}.0-local-strict"
    definitions: dict[str, Any] = json.loads((folder / "_definitions.json").read_text())
    return definitions


def keda_errors(document: dict[str, Any]) -> list[str]:
    import jsonschema
    from referencing import Registry, Resource

    definitions = kubernetes_definitions()
    registry: Registry[Any] = Registry().with_resource(
        definitions["$id"], Resource.from_contents(definitions)
    )
    schema = json.loads(KEDA_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    )


def env_names(workload: dict[str, Any]) -> set[str]:
    return {variable["name"] for variable in container(workload).get("env", [])}


def secret_refs(node: Any) -> Iterator[dict[str, Any]]:
    """Every secretKeyRef in a parsed manifest."""
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_refs(item)


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    # The template stays out: `kubectl apply -k` must never overwrite the real Secret.
    assert present - listed == {SECRET_TEMPLATE.name}
    assert listed <= present
    assert kustomization()["namespace"] == of_kind("Namespace").popitem()[0]


def newest_kubernetes() -> str:
    import kubernetes_validate

    return ".".join(kubernetes_validate.latest_version().split(".")[:2])


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, "newest"])
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    version = newest_kubernetes() if version == "newest" else version
    core = [d for d in manifests() if d["kind"] != "ScaledObject"]
    assert {d["kind"] for d in core} == {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "Job",
    }
    everything = [*core, *documents(SECRET_TEMPLATE)]
    errors = [e for d in everything for e in kubernetes_errors(d, version)]
    assert errors == []


def test_every_scaled_object_is_valid_against_the_keda_schema() -> None:
    scaled_objects = of_kind("ScaledObject")
    assert set(scaled_objects) == set(SCALED)
    assert [e for d in scaled_objects.values() for e in keda_errors(d)] == []


def test_the_schema_checks_would_catch_a_mistake() -> None:
    deployment = of_kind("Deployment")["infer"]
    pod_spec(deployment)["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    assert any("readOnlyRootFileSystem" in e for e in kubernetes_errors(deployment))

    scaled = of_kind("ScaledObject")["infer"]
    metadata = scaled["spec"]["triggers"][0]["metadata"]
    metadata["lagTreshold"] = metadata.pop("lagThreshold")
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["window"] = 5
    errors = keda_errors(scaled)
    assert any("lagTreshold" in e for e in errors)
    assert any("maxReplicas" in e for e in errors)
    assert any("window" in e for e in errors)

    scaled = of_kind("ScaledObject")["preprocess"]
    scaled["spec"]["triggers"][0]["metadata"]["natsServerMonitoringEndpoint"] = "http://nats:8222"
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 2000  # KEDA wants strings
    errors = keda_errors(scaled)
    assert any("natsServerMonitoringEndpoint" in e and "match" in e for e in errors)
    assert any(
        e.startswith("spec/triggers/0/metadata/lagThreshold: 2000 is not of type") for e in errors
    )


def test_each_hot_worker_scales_on_the_durable_consumer_it_pulls_from() -> None:
    deployments = of_kind("Deployment")
    for name, scaled in of_kind("ScaledObject").items():
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        # The HorizontalPodAutoscaler that KEDA makes owns the count: an apply must not reset it.
        assert "replicas" not in deployments[name]["spec"], name
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "nats-jetstream"
        metadata = trigger["metadata"]
        assert (metadata["stream"], metadata["consumer"]) == SCALED[name]
        assert metadata["account"] == ACCOUNT
        # Every worker's bus and KEDA's monitoring endpoint are the same NATS server.
        nats_host = config_map()["AIRPARADIS_NATS_URL"].removeprefix("nats://").split(":")[0]
        assert metadata["natsServerMonitoringEndpoint"] == f"{nats_host}:8222"
    config = (ROOT / "infra/nats/nats-server.conf").read_text(encoding="utf-8")
    assert "http_port: 8222" in config.splitlines()


def test_scaling_figures_are_the_supervisors_defaults() -> None:
    """The same backlog per process as `airparadis up`, at least as many replicas."""
    fields = Settings.model_fields
    if "scale_target_backlog" not in fields:
        pytest.skip("shared/settings.py has no scaling settings (scale_target_backlog) yet")
    target = fields["scale_target_backlog"].default
    for name, scaled in of_kind("ScaledObject").items():
        spec = scaled["spec"]
        assert int(spec["triggers"][0]["metadata"]["lagThreshold"]) == target, name
        assert spec["minReplicaCount"] == max(1, fields[f"scale_{name}_min"].default), name
        assert spec["maxReplicaCount"] >= fields[f"scale_{name}_max"].default, name


def test_every_airparadis_variable_is_a_settings_field() -> None:
    known = {f"AIRPARADIS_{name.upper()}" for name in Settings.model_fields}
    names = set(config_map())
    for workload in workloads().values():
        names |= env_names(workload)
    airparadis = {n for n in names if n.startswith("AIRPARADIS_")}
    assert airparadis - known == set()
    assert names - airparadis == {"HOME"}  # /tmp: the root filesystem is read-only


def test_each_pod_gets_what_compose_gives_the_same_service() -> None:
    """Same command, and every AIRPARADIS_* compose sets (the values are the cluster's)."""
    services = compose_services()
    shared = {k for k in services["preprocess"]["environment"] if k.startswith("AIRPARADIS_")}
    shared -= {"AIRPARADIS_NATS_USER", "AIRPARADIS_NATS_PASSWORD"}
    assert shared <= set(config_map())
    for name, workload in workloads().items():
        assert container(workload)["image"] == IMAGE
        assert container(workload)["args"] == services[name]["command"], name
        in_compose = {k for k in services[name]["environment"] if k.startswith("AIRPARADIS_")}
        assert in_compose <= env_names(workload) | set(config_map()), name
        assert {"configMapRef": {"name": "airparadis"}} in container(workload)["envFrom"]


def test_each_service_logs_in_to_nats_as_its_own_user() -> None:
    users = {user.name: user for user in USERS}
    seen = set()
    for name, workload in workloads().items():
        env = {v["name"]: v for v in container(workload)["env"]}
        if "AIRPARADIS_NATS_USER" not in env:  # the migrate Job talks to ClickHouse only
            continue
        user = env["AIRPARADIS_NATS_USER"]["value"]
        assert user == name.removesuffix("-init")  # the bus-init Job logs in as `bus`
        key = users[user].password_env.lower().replace("_", "-")  # nats-infer-password
        ref = env["AIRPARADIS_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "airparadis", "key": key}
        seen.add(user)
    # The trainer runs from a laptop or a one-off pod; upstream apps live outside.
    assert seen == set(users) - {"trainer", "upstream"}


def test_no_secret_carries_a_value() -> None:
    assert of_kind("Secret") == {}  # none is applied: the real one is created by hand
    (template,) = documents(SECRET_TEMPLATE)
    assert "data" not in template
    assert {k: v for k, v in template["stringData"].items() if v} == {}
    assert not any("PASSWORD" in k or "password" in v for k, v in config_map().items())
    refs = [ref for d in manifests() for ref in secret_refs(d)]
    assert {ref["name"] for ref in refs} == {template["metadata"]["name"]}
    assert {ref["key"] for ref in refs} == set(template["stringData"])
    assert template["metadata"]["namespace"] == kustomization()["namespace"]


def test_every_pod_runs_as_the_images_user_with_a_read_only_root_and_no_capabilities() -> None:
    for name, workload in workloads().items():
        pod = pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (10001, 10001), name
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        box = container(workload)["securityContext"]
        assert box == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, name
        mounts = {m["mountPath"]: m for m in container(workload)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]], name
        assert config_map()["HOME"] == "/tmp"
        resources_ = container(workload)["resources"]
        assert {"cpu", "memory"} <= set(resources_["requests"]), name
        assert "memory" in resources_["limits"], name
    namespace = of_kind("Namespace")["airparadis"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_pod_checks_nats_and_clickhouse_with_the_mounted_authority() -> None:
    ca = Path(config_map()["AIRPARADIS_NATS_TLS_CA"])
    assert config_map()["AIRPARADIS_CLICKHOUSE_TLS_CA"] == str(ca)
    for name, workload in workloads().items():
        mounts = {m["mountPath"]: m for m in container(workload)["volumeMounts"]}
        tls = mounts[str(ca.parent)]
        assert tls["readOnly"] is True, name
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert volumes[tls["name"]]["configMap"]["name"] == "airparadis-ca", name
    for url in (config_map()["AIRPARADIS_NATS_URL"],):
        assert url.startswith("nats://")


def test_workers_and_the_gateway_are_probed_as_compose_checks_them() -> None:
    for name in WORKERS:
        box = container(of_kind("Deployment")[name])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert box[probe]["exec"]["command"] == HEALTHCHECK, (name, probe)
    gateway = of_kind("Deployment")["gateway"]
    box = container(gateway)
    env = {v["name"]: v.get("value") for v in box["env"]}
    (port,) = box["ports"]
    assert port["containerPort"] == int(env["AIRPARADIS_HTTP_PORT"])
    assert env["AIRPARADIS_HTTP_HOST"] == "0.0.0.0"
    assert env["AIRPARADIS_AUTH"] == "on"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert box[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}, probe
    service = of_kind("Service")["gateway"]
    assert service["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    for name, deployment in of_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert labels["app.kubernetes.io/component"] == name


def test_the_readme_says_how_to_deploy_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Kubernetes (with KEDA)")
    text = readme[start : readme.index("\n## ", start)]
    assert "kubectl apply -k infra/kubernetes/" in text
    assert "--from-file=ca.crt=" in text and "configmap airparadis-ca" in text
    (template,) = documents(SECRET_TEMPLATE)
    for key in template["stringData"]:
        # Every key the pods read is created in the README; the SMTP login is optional.
        assert f"--from-literal={key}=" in text or key.startswith("smtp-"), key
        assert key in text, key
    for name, (stream, durable) in SCALED.items():
        assert f"`{durable}`" in text and f"`{stream}`" in text, name
