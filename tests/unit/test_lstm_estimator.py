"""The LSTM family's encoding and serving estimator: ids, padding, truncation, save and load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the lstm extra (tensorflow-cpu) is not installed")

from shared.estimators.base import KERAS_LSTM, ModelLoadError
from shared.estimators.keras_lstm import (
    CONFIG_FILE,
    OOV_ID,
    PAD_ID,
    KerasLstmEstimator,
    LstmServingConfig,
    Vocabulary,
    load,
)
from shared.estimators.loaders import ESTIMATOR_LOADERS
from training.lstm import (
    LstmOptions,
    build_model,
    length_bucketed_batches,
    oov_rate,
    sequence_length,
)

WORDS = ["the", "flight", "was", "great", "not", "delayed", "crew", "thanks"]
TEXTS = [
    "the flight was great",
    "",
    "not great",
    "flight delayed again and again and again the crew was not great thanks",
    "unknownword",
    "thanks crew",
]


@pytest.fixture(scope="module")
def estimator() -> KerasLstmEstimator:
    """An untrained but seeded network: the encoding and serving path is what is tested."""
    import keras

    keras.utils.set_random_seed(7)
    vocabulary = Vocabulary(WORDS)
    options = LstmOptions.smoke(lstm_units=(4, 4), dense_units=4)
    vectors = np.random.default_rng(7).normal(size=(vocabulary.size, 6)).astype(np.float32)
    vectors[:2] = 0.0
    model = build_model(vectors, options)
    return KerasLstmEstimator(model, vocabulary, LstmServingConfig(max_length=8, batch_size=2))


def test_known_words_get_their_rank_and_unknown_words_the_unknown_id() -> None:
    vocabulary = Vocabulary(WORDS)

    assert vocabulary.ids("the crew loved it", max_length=10) == [2, 8, OOV_ID, OOV_ID]
    assert vocabulary.size == len(WORDS) + 2


def test_rows_are_padded_on_the_left_to_the_longest_row_of_the_batch() -> None:
    matrix = Vocabulary(WORDS).encode(["the flight", "great", ""], max_length=10)

    assert matrix.dtype == np.int32
    assert matrix.tolist() == [[2, 3], [PAD_ID, 5], [PAD_ID, PAD_ID]]


def test_an_all_empty_batch_is_one_column_of_padding() -> None:
    assert Vocabulary(WORDS).encode(["", "   "], max_length=10).tolist() == [[PAD_ID], [PAD_ID]]


def test_long_texts_are_cut_to_max_length_keeping_their_beginning() -> None:
    matrix = Vocabulary(WORDS).encode(["the flight was great not delayed"], max_length=3)

    assert matrix.tolist() == [[2, 3, 4]]


def test_a_vocabulary_with_a_duplicate_or_a_blank_word_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Vocabulary(["great", "great"])
    with pytest.raises(ValueError, match="whitespace"):
        Vocabulary(["great", "not great"])


def test_probabilities_lie_in_0_1_for_every_text_even_empty_or_unknown(
    estimator: KerasLstmEstimator,
) -> None:
    proba = estimator.positive_proba(TEXTS)

    assert proba.shape == (len(TEXTS),)
    assert np.all(np.isfinite(proba))
    assert np.all((proba >= 0) & (proba <= 1))
    assert estimator.positive_proba([]).shape == (0,)


def test_a_tweet_scores_the_same_alone_and_in_a_batch_of_longer_tweets(
    estimator: KerasLstmEstimator,
) -> None:
    # Padding is masked: the amount of it, set by the batch's longest tweet, changes nothing.
    in_batch = estimator.positive_proba(TEXTS)
    alone = np.array([estimator.positive_proba([text])[0] for text in TEXTS])

    np.testing.assert_allclose(in_batch, alone, atol=1e-6)


def test_save_and_load_give_identical_probabilities(
    estimator: KerasLstmEstimator, tmp_path: Path
) -> None:
    folder = estimator.save(tmp_path / "estimator")

    loaded = ESTIMATOR_LOADERS[KERAS_LSTM](folder)

    assert isinstance(loaded, KerasLstmEstimator)
    assert loaded.vocabulary.words == tuple(WORDS)
    assert loaded.config == estimator.config
    np.testing.assert_array_equal(loaded.positive_proba(TEXTS), estimator.positive_proba(TEXTS))
    assert sorted(path.name for path in folder.iterdir()) == ["estimator.json", "model.keras"]


def test_an_artifact_of_another_format_version_is_refused(
    estimator: KerasLstmEstimator, tmp_path: Path
) -> None:
    folder = estimator.save(tmp_path / "estimator")
    description = json.loads((folder / CONFIG_FILE).read_text("utf-8"))
    (folder / CONFIG_FILE).write_text(json.dumps(description | {"format_version": 99}), "utf-8")

    with pytest.raises(ModelLoadError, match="format version"):
        load(folder)


def test_a_folder_without_the_artifact_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="unreadable"):
        load(tmp_path)


def test_training_batches_cover_every_tweet_once_with_little_padding() -> None:
    rng = np.random.default_rng(0)
    rows = [[2] * int(length) for length in rng.integers(0, 30, size=1000)]
    labels = np.arange(1000) % 2

    first = list(length_bucketed_batches(rows, labels, 16, np.random.default_rng(1)))
    second = list(length_bucketed_batches(rows, labels, 16, np.random.default_rng(2)))

    assert sum(len(y) for _, y in first) == 1000
    assert sum(int((ids != PAD_ID).sum()) for ids, _ in first) == sum(map(len, rows))
    padded = sum(ids.size for ids, _ in first)
    assert padded < 1.2 * sum(map(len, rows)) + 16 * len(first)
    assert [y.tolist() for _, y in first] != [y.tolist() for _, y in second]


def test_validation_batches_are_sorted_by_length_and_fixed() -> None:
    rows = [[2] * length for length in (5, 1, 3, 0)]

    batches = list(length_bucketed_batches(rows, np.array([1, 0, 1, 0]), 2, rng=None))

    assert [ids.shape for ids, _ in batches] == [(2, 1), (2, 5)]
    assert [y.tolist() for _, y in batches] == [[0.0, 0.0], [1.0, 1.0]]


def test_the_sequence_length_is_the_longest_tweet_capped() -> None:
    assert sequence_length([["a"] * 7, ["b"] * 3], cap=50) == 7
    assert sequence_length([["a"] * 70], cap=50) == 50
    assert sequence_length([[]], cap=50) == 1


def test_the_oov_rate_counts_tokens_outside_the_vocabulary() -> None:
    assert oov_rate(Vocabulary(WORDS), ["the flight", "lost bag"]) == 0.5
    assert oov_rate(Vocabulary(WORDS), ["", " "]) == 0.0


def test_word2vec_gives_a_frequency_ranked_vocabulary_and_zero_reserved_rows() -> None:
    pytest.importorskip("gensim")
    from training.lstm import train_word2vec

    sentences = [["great", "flight"], ["great", "crew"], ["great", "flight", "rare"]]
    options = LstmOptions.smoke(w2v_min_count=2, w2v_dim=5)

    vocabulary, vectors = train_word2vec(sentences, options)

    assert vocabulary.words == ("great", "flight")
    assert vectors.shape == (4, 5)
    assert not vectors[:2].any()
    assert vectors[2:].any()
