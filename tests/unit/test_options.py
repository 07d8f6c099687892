"""The `--no-<step>` flags every `airparadis train <family>` command shares."""

from __future__ import annotations

from dataclasses import fields

import pytest
import typer
from typer.testing import CliRunner

from airparadis.options import flags_of, preprocess_config, preprocess_options, preprocess_steps
from shared.preprocessing import PreprocessConfig


def _command_app(seen: list[PreprocessConfig]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @preprocess_options
    def train(sample: int = 10, *, preprocess: PreprocessConfig) -> None:
        seen.append(preprocess)
        typer.echo(f"sample={sample}")

    return app


def test_every_preprocessing_step_has_a_no_flag() -> None:
    assert preprocess_steps() == [field.name for field in fields(PreprocessConfig)]
    assert flags_of("lemmatize") == ["--no-lemmatize"]
    assert flags_of("remove_stopwords") == ["--no-remove-stopwords", "--no-stopwords"]
    assert flags_of("emojis_to_words") == ["--no-emojis-to-words", "--no-emojis"]


def test_without_flags_the_command_gets_the_default_config() -> None:
    seen: list[PreprocessConfig] = []

    result = CliRunner().invoke(_command_app(seen), ["--sample", "3"])

    assert result.exit_code == 0, result.output
    assert "sample=3" in result.output
    assert seen == [PreprocessConfig()]


def test_no_flags_turn_their_steps_off_and_only_those() -> None:
    seen: list[PreprocessConfig] = []

    result = CliRunner().invoke(
        _command_app(seen),
        ["--no-lemmatize", "--no-stopwords", "--no-emojis", "--no-html-unescape"],
    )

    assert result.exit_code == 0, result.output
    assert seen == [
        PreprocessConfig(
            lemmatize=False, remove_stopwords=False, emojis_to_words=False, html_unescape=False
        )
    ]


def test_help_lists_a_flag_per_step() -> None:
    result = CliRunner().invoke(_command_app([]), ["--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for step in preprocess_steps():
        assert flags_of(step)[0] in result.output


def test_an_unknown_step_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown preprocessing step"):
        preprocess_config(["lemmatise"])


def test_a_command_without_a_preprocess_argument_cannot_take_the_flags() -> None:
    def train(sample: int = 10) -> None: ...

    with pytest.raises(TypeError, match="preprocess"):
        preprocess_options(train)
