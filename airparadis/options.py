"""Command-line switches shared by every `airparadis train <family>` command.

`preprocess_options` adds one `--no-<step>` flag per field of shared.preprocessing's
PreprocessConfig (generated from the dataclass, so a new step gets its flag without an edit here)
and hands the command the resulting config as its `preprocess` argument. A family's command
declares `preprocess: PreprocessConfig` as a keyword argument and decorates itself, below the
Typer decorator:

    @train_app.command("lstm")
    @preprocess_options
    def train_lstm_command(data: DataOption = None, *, preprocess: PreprocessConfig) -> None:
        result = train_lstm(frame, preprocess=preprocess, ...)

`airparadis train lstm --no-lemmatize --no-stopwords` then trains with those two steps off.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Annotated, Any, TypeVar

import typer

from shared.preprocessing import PreprocessConfig

PREPROCESS_PARAMETER = "preprocess"
_FLAG_PREFIX = "no_"
# Shorter spellings people type, beside the generated `--no-<field>` of these steps.
_SHORT_FLAGS = {"remove_stopwords": "--no-stopwords", "emojis_to_words": "--no-emojis"}

Command = TypeVar("Command", bound=Callable[..., Any])


def preprocess_steps() -> list[str]:
    """The switchable steps: PreprocessConfig's field names, in order."""
    return [field.name for field in fields(PreprocessConfig)]


def flags_of(step: str) -> list[str]:
    """The command-line flags that turn `step` off (`--no-<step with dashes>` first)."""
    flags = [f"--no-{step.replace('_', '-')}"]
    if step in _SHORT_FLAGS:
        flags.append(_SHORT_FLAGS[step])
    return flags


def preprocess_config(disabled: Iterable[str]) -> PreprocessConfig:
    """The default config with the named steps turned off; ValueError for an unknown step."""
    steps = set(preprocess_steps())
    unknown = sorted(set(disabled) - steps)
    if unknown:
        raise ValueError(f"unknown preprocessing step(s) {unknown}; known: {sorted(steps)}")
    return PreprocessConfig(**dict.fromkeys(disabled, False))


def preprocess_options(command: Command) -> Command:
    """Give a Typer command one `--no-<step>` flag per preprocessing step.

    The command must take a keyword argument `preprocess` (a PreprocessConfig); the flags replace
    it in the command-line signature and the wrapper builds the config from them.
    """
    signature = inspect.signature(command, eval_str=True)
    if PREPROCESS_PARAMETER not in signature.parameters:
        raise TypeError(f"{command.__name__} takes no {PREPROCESS_PARAMETER!r} argument")
    steps = preprocess_steps()
    flags = [
        inspect.Parameter(
            f"{_FLAG_PREFIX}{step}",
            inspect.Parameter.KEYWORD_ONLY,
            default=False,
            annotation=Annotated[
                bool,
                typer.Option(
                    *flags_of(step),
                    help=f"Skip the {step.replace('_', ' ')} preprocessing step.",
                    rich_help_panel="Preprocessing",
                ),
            ],
        )
        for step in steps
    ]
    kept = [p for name, p in signature.parameters.items() if name != PREPROCESS_PARAMETER]
    positional = [p for p in kept if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in kept if p.kind is inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(command)
    def with_preprocess(*args: Any, **kwargs: Any) -> Any:
        disabled = [step for step in steps if kwargs.pop(f"{_FLAG_PREFIX}{step}", False)]
        kwargs[PREPROCESS_PARAMETER] = preprocess_config(disabled)
        return command(*args, **kwargs)

    # Typer reads the parameters from __signature__; the raw annotations would name `preprocess`.
    with_preprocess.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*positional, *keyword, *flags]
    )
    with_preprocess.__annotations__ = {}
    return with_preprocess  # type: ignore[return-value]
