"""The GitHub workflows: valid YAML and valid against the GitHub workflow schema (as vendored by
check-jsonschema), the jobs the project relies on, actions pinned to a release, least privilege."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def load(path: Path) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow(name: str) -> dict[Any, Any]:
    return load(ROOT / ".github/workflows" / name)


def steps(document: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_against_the_github_workflow_schema(path: Path) -> None:
    import jsonschema

    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "github-workflows.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(load(path))]
    assert errors == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_release(path: Path) -> None:
    for step in steps(load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), step["uses"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_token_is_read_only_unless_a_job_needs_more(path: Path) -> None:
    document = load(path)
    assert document["permissions"] == {"contents": "read"}
    for name, job in document["jobs"].items():
        extra = {k: v for k, v in job.get("permissions", {}).items() if v == "write"}
        assert extra in ({}, {"packages": "write"}), f"{name}: {extra}"


def test_ci_runs_on_every_push_and_pull_request_with_the_expected_jobs() -> None:
    ci = workflow("ci.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(ci["on"])
    assert {"lint", "types", "test", "containers", "image"} <= set(ci["jobs"])
    runs = " ".join(step.get("run", "") for step in steps(ci))
    for command in ("ruff check", "ruff format --check", "mypy", "hadolint", "scripts/test.sh"):
        assert command in runs, command
    assert "render_accounts --check" in runs
    containers = " ".join(s.get("run", "") for s in ci["jobs"]["containers"]["steps"])
    for image in ("clickhouse/clickhouse-server", "nats:", "grafana/grafana"):
        assert image in containers
    assert "tests/deploy/test_containers.py" in containers
    # The cluster profile's tests, on Keeper and two replicas, run there and only there.
    assert "clickhouse/clickhouse-keeper" in containers
    tests = " ".join(s.get("run", "") for s in ci["jobs"]["test"]["steps"])
    for cluster_test in (
        "tests/deploy/test_clickhouse_cluster.py",
        "tests/integration/test_storage_cluster.py",
    ):
        assert cluster_test in containers and f"--ignore={cluster_test}" in tests


def test_release_on_a_tag_pushes_version_and_latest_with_an_sbom_after_ci() -> None:
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert release["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
    job = release["jobs"]["image"]
    assert job["needs"] == "ci"
    by_action = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    tags = by_action["docker/metadata-action"]["with"]["tags"]
    assert "type=semver,pattern={{version}}" in tags and "type=raw,value=latest" in tags
    assert "ghcr.io/" in by_action["docker/metadata-action"]["with"]["images"]
    build = by_action["docker/build-push-action"]["with"]
    assert build["push"] is True and build["sbom"] is True
    assert build["file"] == "infra/Dockerfile"
    assert "anchore/sbom-action" in by_action
