"""The serving side of the LSTM family: a Keras network over word ids, scored with TensorFlow.

The artifact is a folder: `model.keras` (the network, its frozen Word2Vec embedding included) and
`estimator.json` (the vocabulary, most frequent word first, the maximum sequence length and a
format version). No pickle. Training writes it (training/lstm.py); `load` reads it all into memory,
so the folder may be deleted right after. Gensim is a training-only dependency.

Ids 0 and 1 are reserved: 0 pads (and is masked, so a network never sees it), 1 stands for any
word outside the vocabulary. Sequences are padded on the left, to the longest tweet of their batch
only: with the padding masked the probabilities do not depend on how much padding there is, and a
batch of short tweets costs short-tweet time, in training and in serving.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.estimators.base import KERAS_LSTM, ModelLoadError, oov_shares

# Set before keras is first imported (its backend is chosen then); TF's C++ start-up chatter
# (oneDNN, CPU feature notices) is hidden unless the operator asks for it.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

ESTIMATOR_FORMAT = KERAS_LSTM
MODEL_FILE = "model.keras"
CONFIG_FILE = "estimator.json"
FORMAT_VERSION = 1

PAD_ID = 0
OOV_ID = 1
RESERVED_IDS = 2

# Tweets scored in one call. Texts are sorted by length before they are cut into batches, so each
# batch pads to a length close to its own tweets'.
DEFAULT_BATCH_SIZE = 512


class Vocabulary:
    """Words to ids: the i-th word (most frequent first) gets id i + 2; ids 0 and 1 are reserved."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words: tuple[str, ...] = tuple(words)
        self._ids = {word: index + RESERVED_IDS for index, word in enumerate(self.words)}
        if len(self._ids) != len(self.words):
            raise ValueError("the vocabulary lists a word twice")
        if any(not word or word != word.strip() or " " in word for word in self.words):
            raise ValueError("vocabulary words must be non-empty tokens without whitespace")

    @property
    def size(self) -> int:
        """Rows of the embedding matrix: the words plus the padding and unknown-word ids."""
        return len(self.words) + RESERVED_IDS

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def ids(self, text: str, max_length: int) -> list[int]:
        """The ids of a preprocessed text's first max_length tokens, OOV_ID for unknown words.

        Truncation keeps the beginning: it only ever cuts outliers (max_length comes from the
        training tweets), and the beginning is where a tweet says what it is about.
        """
        return [self._ids.get(token, OOV_ID) for token in text.split()[:max_length]]

    def encode(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        """Texts as an int32 matrix, one row of at most max_length ids each (see pad_left)."""
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        return pad_left([self.ids(text, max_length) for text in texts])


def pad_left(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Id rows as an int32 matrix, padded on the left with PAD_ID to the longest row (at least
    one column, so an empty row is a row of padding)."""
    width = max((len(row) for row in rows), default=0) or 1
    matrix = np.full((len(rows), width), PAD_ID, dtype=np.int32)
    for index, row in enumerate(rows):
        if len(row):
            matrix[index, width - len(row) :] = row
    return matrix


@dataclass(frozen=True)
class LstmServingConfig:
    """What scoring needs besides the network; saved as estimator.json."""

    max_length: int
    batch_size: int = DEFAULT_BATCH_SIZE
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {self.max_length}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


class KerasLstmEstimator:
    """P(positive) of preprocessed tweets from a Keras network over word ids (N, T) -> (N, 1)."""

    def __init__(
        self, model: keras.Model, vocabulary: Vocabulary, config: LstmServingConfig
    ) -> None:
        self.model = model
        self.vocabulary = vocabulary
        self.config = config
        # One graph for every batch and length: a plain model(x) call runs eagerly, layer by
        # layer, which costs milliseconds per call on a single tweet.
        self._forward = tf.function(
            lambda ids: self.model(ids, training=False),
            input_signature=[tf.TensorSpec(shape=(None, None), dtype=tf.int32)],
            reduce_retracing=True,
        )

    def warm_up(self) -> None:
        """Build the scoring graph now (seconds), e.g. at load, not on the first tweet scored."""
        self._forward(tf.constant(self.encode(["", "warm up"])))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.vocabulary.encode(texts, self.config.max_length)

    def oov_rates(self, texts: Sequence[str]) -> np.ndarray:
        """Share of each preprocessed text's words outside the Word2Vec vocabulary."""
        return oov_shares(texts, self.vocabulary.__contains__)

    def positive_proba(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("positive_proba expects a sequence of texts, not a single str")
        texts = list(texts)
        proba = np.empty(len(texts), dtype=np.float64)
        if not texts:
            return proba
        lengths = np.array([len(text.split()) for text in texts])
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(texts), self.config.batch_size):
            batch = order[start : start + self.config.batch_size]
            ids = self.encode([texts[index] for index in batch])
            proba[batch] = np.asarray(self._forward(tf.constant(ids))).reshape(-1)
        return proba

    def save(self, path: Path) -> Path:
        """Write the artifact folder at path (created if missing) and return it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save(path / MODEL_FILE)
        description: dict[str, Any] = {
            "max_length": self.config.max_length,
            "batch_size": self.config.batch_size,
            "format_version": self.config.format_version,
            "vocabulary": list(self.vocabulary.words),
        }
        (path / CONFIG_FILE).write_text(json.dumps(description, ensure_ascii=False), "utf-8")
        return path


def load(path: Path) -> KerasLstmEstimator:
    """Read an artifact folder written by KerasLstmEstimator.save; ModelLoadError if unreadable."""
    path = Path(path)
    try:
        description = json.loads((path / CONFIG_FILE).read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"unreadable LSTM estimator config in {path}: {error}") from error
    if description.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            f"LSTM estimator format version {description.get('format_version')!r}, "
            f"this code reads {FORMAT_VERSION}"
        )
    try:
        vocabulary = Vocabulary(description["vocabulary"])
        config = LstmServingConfig(
            max_length=int(description["max_length"]),
            batch_size=int(description.get("batch_size", DEFAULT_BATCH_SIZE)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"invalid LSTM estimator config in {path}: {error}") from error
    try:
        # compile=False: serving needs no optimizer, loss or metrics.
        model = keras.saving.load_model(path / MODEL_FILE, compile=False)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot load the Keras model in {path}: {error}") from error
    estimator = KerasLstmEstimator(model, vocabulary, config)
    estimator.warm_up()
    return estimator
