"""The transformer family's pure parts: its preprocessing, its options, its batches."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from shared.preprocessing import PreprocessConfig, TextPreprocessor
from training.transformer import (
    DEFAULT_PREPROCESS,
    FineTuneOptions,
    _step_groups,
    transformer_preprocess,
)


def test_the_default_preprocessing_keeps_near_raw_text() -> None:
    tweet = "@AirParadis &amp; the crew were NOT helpful!!! #worstflight 😡 https://t.co/x"

    cleaned = TextPreprocessor(DEFAULT_PREPROCESS)(tweet)

    assert cleaned == "<mention> & the crew were NOT helpful!!! worst flight enraged face <url>"


def test_a_switched_off_step_is_off_and_the_family_defaults_stay_off() -> None:
    switches = PreprocessConfig(split_hashtags=False)

    config = transformer_preprocess(switches)

    assert not config.split_hashtags
    assert not config.lowercase and not config.lemmatize and not config.remove_stopwords
    assert config.html_unescape and config.emojis_to_words
    assert transformer_preprocess(PreprocessConfig()) == DEFAULT_PREPROCESS


def test_smoke_options_are_short_and_overridable() -> None:
    smoke = FineTuneOptions.smoke(max_steps=4)

    assert (smoke.max_length, smoke.max_steps) == (32, 4)
    assert smoke.batch_size * smoke.accumulation_steps == 16
    assert smoke.as_params()["transformer.effective_batch_size"] == 16


@pytest.mark.parametrize("field", ["batch_size", "accumulation_steps", "eval_every", "max_steps"])
def test_options_refuse_a_zero(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FineTuneOptions(**{field: 0})


@pytest.mark.parametrize("grouped", [True, False])
def test_each_epoch_uses_every_tweet_once_in_groups_of_micro_batches(grouped: bool) -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    options = FineTuneOptions(batch_size=8, accumulation_steps=2, group_by_length=grouped)
    steps_per_epoch = 63  # 125 micro-batches of 8, in groups of 2

    groups = list(_step_groups(np.random.default_rng(1), lengths, options, 2 * steps_per_epoch))

    assert len(groups) == 2 * steps_per_epoch
    for epoch in (groups[:steps_per_epoch], groups[steps_per_epoch:]):
        seen = np.concatenate([batch for group in epoch for batch in group])
        assert sorted(seen.tolist()) == list(range(1000))
    assert all(len(group) <= 2 and all(len(b) <= 8 for b in group) for group in groups)


def test_grouping_by_length_cuts_the_padding() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=4096)

    def padded_tokens(grouped: bool) -> int:
        options = FineTuneOptions(group_by_length=grouped)
        groups = _step_groups(np.random.default_rng(1), lengths, options, 256)
        return sum(lengths[b].max() * len(b) for group in groups for b in group)

    assert padded_tokens(True) < 0.7 * padded_tokens(False)
    assert padded_tokens(True) < 1.1 * lengths.sum()
