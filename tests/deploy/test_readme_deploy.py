"""The README's "Deploy on your own server" section agrees with compose.yaml and the scripts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Deploy on your own server")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return document


def test_section_covers_what_a_self_hoster_needs() -> None:
    text = section()
    for topic in (
        "**Prerequisites.**",
        "**The env file.**",
        "docker compose up -d",
        "**First login to Grafana.**",
        "**Where data lives.**",
        "**Backups.**",
        "**Upgrading.**",
        "**Scaling out.**",
        "INFER_REPLICAS",
        "3-node NATS cluster",
        "ReplicatedReplacingMergeTree",
    ):
        assert topic in text, topic


def test_every_volume_is_listed_where_data_lives() -> None:
    listed = set(re.findall(r"^\| `([a-z0-9-]+)`(?:, `([a-z0-9-]+)`)? \|", section(), re.MULTILINE))
    names = {name for pair in listed for name in pair if name}
    assert names == set(compose()["volumes"])


def test_backed_up_volumes_exist_and_use_the_project_prefix() -> None:
    text = section()
    assert f"{compose()['name']}_$v" in text
    loop = re.search(r"for v in ([a-z\- ]+); do", text)
    assert loop is not None
    assert set(loop.group(1).split()) <= set(compose()["volumes"])


def test_commands_and_names_in_the_section_exist() -> None:
    text = section()
    services = compose()["services"]
    assert (ROOT / "infra/make-env.sh").exists() and "infra/make-env.sh" in text
    assert "--profile tools run --rm trainer train simple" in text
    assert services["trainer"]["profiles"] == ["tools"]
    assert services["watchtower"]["profiles"] == ["autoupdate"]
    assert "--profile autoupdate" in text
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_USER"] == "admin"
    assert "User `admin`, password `GRAFANA_ADMIN_PASSWORD`" in text
    assert {"80:80", "443:443", "3000:3000"} <= set(services["caddy"]["ports"])
    for port in ("127.0.0.1:5000", "127.0.0.1:8025"):
        assert port in text
    env_example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for variable in set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", text)) - {"FINAL"}:
        if not variable.startswith("AIRPARADIS_") or variable in env_example:
            continue
        # AIRPARADIS_* names in the section are either in .env.example or a worker setting
        assert variable.removeprefix("AIRPARADIS_").lower() in Settings.model_fields, variable
