"""The README stays true: every setting is documented, and the commands it shows exist."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from airparadis.cli import app
from shared.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    missing = [n for n in Settings.model_fields if f"`AIRPARADIS_{n.upper()}`" not in README]
    assert missing == []


def test_readme_shows_the_run_and_test_commands() -> None:
    assert "airparadis up" in README
    assert "make test" in README


def test_every_command_in_the_readme_table_answers_help() -> None:
    runner = CliRunner()
    for command in (
        ["up"],
        ["worker"],
        ["gateway"],
        ["train", "simple"],
        ["models", "list"],
        ["models", "compare"],
        ["models", "promote"],
        ["models", "unset-alias"],
        ["models", "evaluate"],
        ["feedback", "export"],
        ["retrain"],
        ["migrate"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["data", "forget"],
        ["data", "export"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
