"""Train the LSTM family: Word2Vec on the training tweets, a frozen embedding, two BiLSTM layers.

`LstmFamily` plugs into training/experiment.py's `train_family`, which does the split,
preprocessing, threshold, test, logging and registration. Its `fit`:

1. trains gensim Word2Vec (skip-gram) on the training tweets' tokens; its vocabulary, most
   frequent word first and capped, is the network's vocabulary;
2. builds the network: the Word2Vec vectors as a frozen, masked Embedding, SpatialDropout1D, two
   bidirectional LSTM layers, a dense layer, dropout and a sigmoid, trained with Adam;
3. trains it on batches of tweets of similar length (padding to the batch's longest tweet, not to
   the maximum, cuts CPU time by about the ratio of the two), logging every epoch's metrics to
   MLflow, reducing the learning rate on plateau and stopping early;
4. returns the `KerasLstmEstimator` that will be served, holding the weights of the epoch with the
   best validation precision (the design's checkpoint rule).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

# First: it sets KERAS_BACKEND and quiets TensorFlow's C++ logs before keras is imported.
from shared.estimators.keras_lstm import (
    ESTIMATOR_FORMAT,
    KerasLstmEstimator,
    LstmServingConfig,
    Vocabulary,
    pad_left,
)

# isort: split
import keras
import tensorflow as tf

from shared.estimators.base import ProbabilityEstimator
from shared.preprocessing import PreprocessConfig
from shared.registry import Registry
from training.data import Split
from training.experiment import Texts, TrainResult, train_family

logger = logging.getLogger(__name__)

FAMILY = "lstm"

# A sequence model reads the words in order, so the words that carry the order stay: stop words
# ("not as good as", "could have been better", "so", "too"), which Word2Vec also needs as
# contexts; and inflections, which Word2Vec places itself ("loved" beside "love") while the
# lemmatizer's guesses without a POS tagger erase intensity ("worst" -> "bad"). The other steps
# (HTML, case, URL and mention tokens, hashtags, punctuation, emojis to words) still clean up.
DEFAULT_PREPROCESS = PreprocessConfig(lemmatize=False, remove_stopwords=False)

# Batches are formed from this many batches' worth of shuffled tweets sorted by length, so
# batch lengths are homogeneous while each epoch still sees a fresh order.
_BUCKET_BATCHES = 32
_EVAL_BATCH_SIZE = 512

Batch = tuple[np.ndarray, np.ndarray]  # ids (N, T) int32, labels (N,) float32


@dataclass(frozen=True)
class LstmOptions:
    """Hyper-parameters of the Word2Vec embedding, the network and its training."""

    w2v_dim: int = 300
    w2v_window: int = 5
    w2v_min_count: int = 2
    w2v_epochs: int = 10
    # One worker: gensim is then deterministic for a seed (threads race otherwise); on 80k
    # tweets it costs tens of seconds, next to minutes per network epoch.
    w2v_workers: int = 1
    max_vocabulary: int = 50_000
    max_length: int | None = None  # None: the longest training tweet, at most max_length_cap
    max_length_cap: int = 50
    spatial_dropout: float = 0.2
    lstm_units: tuple[int, int] = (128, 64)
    dense_units: int = 64
    dropout: float = 0.5
    learning_rate: float = 1e-3
    epochs: int = 10
    batch_size: int = 256
    max_steps: int | None = None  # batches per epoch at most; None: the whole training split
    early_stopping_patience: int = 3
    plateau_patience: int = 1
    plateau_factor: float = 0.5
    min_learning_rate: float = 1e-5
    checkpoint_monitor: str = "val_precision"  # which epoch's weights ship (mode max)
    seed: int = 42

    def __post_init__(self) -> None:
        positive = {
            "w2v_dim": self.w2v_dim,
            "w2v_window": self.w2v_window,
            "w2v_min_count": self.w2v_min_count,
            "w2v_epochs": self.w2v_epochs,
            "w2v_workers": self.w2v_workers,
            "max_vocabulary": self.max_vocabulary,
            "max_length_cap": self.max_length_cap,
            "dense_units": self.dense_units,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            **{f"lstm_units[{i}]": units for i, units in enumerate(self.lstm_units)},
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name, optional in (("max_length", self.max_length), ("max_steps", self.max_steps)):
            if optional is not None and optional < 1:
                raise ValueError(f"{name} must be at least 1, got {optional}")
        if len(self.lstm_units) != 2:
            raise ValueError(f"lstm_units must give the two layers' sizes, got {self.lstm_units}")
        if self.checkpoint_monitor not in _CHECKPOINT_MONITORS:
            raise ValueError(
                f"checkpoint_monitor must be one of {sorted(_CHECKPOINT_MONITORS)}, "
                f"got {self.checkpoint_monitor!r}"
            )

    @classmethod
    def smoke(cls, **overrides: Any) -> LstmOptions:
        """Seconds on CPU: tiny embedding and layers, one epoch; for tests and quick checks."""
        values: dict[str, Any] = {
            "w2v_dim": 16,
            "w2v_min_count": 1,
            "w2v_epochs": 2,
            "lstm_units": (8, 8),
            "dense_units": 8,
            "epochs": 1,
            "batch_size": 32,
        }
        return cls(**(values | overrides))

    def as_params(self) -> dict[str, object]:
        params = {f"lstm.{name}": value for name, value in asdict(self).items()}
        params["lstm.lstm_units"] = "-".join(str(units) for units in self.lstm_units)
        return params


# Validation metrics a checkpoint may keep the best epoch of, and whether higher is better.
_CHECKPOINT_MONITORS = {"val_precision": "max", "val_auc": "max", "val_loss": "min"}


def lstm_preprocess(switches: PreprocessConfig) -> PreprocessConfig:
    """DEFAULT_PREPROCESS with the steps `switches` turns off turned off too (the CLI's flags)."""
    return DEFAULT_PREPROCESS.without_steps_off_in(switches)


class LstmFamily:
    """The LSTM family for training.experiment.train_family."""

    name = FAMILY
    estimator_format = ESTIMATOR_FORMAT
    # Serving needs TensorFlow and Keras only; gensim is used in training alone.
    packages: tuple[str, ...] = ("tensorflow-cpu", "keras")

    def __init__(self, options: LstmOptions | None = None, *, progress: bool = True) -> None:
        self.options = options or LstmOptions()
        self.progress = progress

    def params(self) -> dict[str, object]:
        return self.options.as_params()

    def describe(self, estimator: ProbabilityEstimator) -> str:
        """What was trained, e.g. "w2v-300 bilstm-128-64" (train_family's candidate)."""
        units = "-".join(str(units) for units in self.options.lstm_units)
        return f"w2v-{self.options.w2v_dim} bilstm-{units}"

    def fit(self, train: Texts, val: Texts, work: Path, experiment_id: str) -> ProbabilityEstimator:
        options = self.options
        keras.utils.set_random_seed(options.seed)
        train_tokens = [text.split() for text in train.texts]
        started = time.perf_counter()
        vocabulary, vectors = train_word2vec(train_tokens, options)
        w2v_seconds = time.perf_counter() - started
        max_length = options.max_length or sequence_length(train_tokens, options.max_length_cap)
        mlflow.log_param("lstm.max_length_used", max_length)
        mlflow.log_metrics(
            {
                "w2v.seconds": w2v_seconds,
                "w2v.vocabulary_size": len(vocabulary.words),
                "val.oov_rate": oov_rate(vocabulary, val.texts),
            }
        )
        logger.info(
            "Word2Vec: %d words of %d dimensions in %.0f s; max length %d",
            len(vocabulary.words),
            options.w2v_dim,
            w2v_seconds,
            max_length,
        )

        model = build_model(vectors, options)
        train_rows = [vocabulary.ids(text, max_length) for text in train.texts]
        val_rows = [vocabulary.ids(text, max_length) for text in val.texts]
        history = self._train(model, train_rows, train.labels, val_rows, val.labels, work)
        _log_history(history, options.checkpoint_monitor)
        return KerasLstmEstimator(model, vocabulary, LstmServingConfig(max_length=max_length))

    def save(self, estimator: ProbabilityEstimator, path: Path) -> Path:
        if not isinstance(estimator, KerasLstmEstimator):
            raise TypeError(f"expected a KerasLstmEstimator, got {type(estimator).__name__}")
        return estimator.save(path / "keras_lstm")

    def _train(
        self,
        model: keras.Model,
        train_rows: list[list[int]],
        train_labels: np.ndarray,
        val_rows: list[list[int]],
        val_labels: np.ndarray,
        work: Path,
    ) -> dict[str, list[float]]:
        options = self.options
        batches_per_epoch = math.ceil(len(train_rows) / options.batch_size)
        steps = min(batches_per_epoch, options.max_steps or batches_per_epoch)
        rng = np.random.default_rng(options.seed)
        train_data = _dataset(
            lambda: length_bucketed_batches(train_rows, train_labels, options.batch_size, rng),
            batches_per_epoch,
        ).repeat()  # steps_per_epoch cuts the epochs; the iterator runs on across them
        val_data = _dataset(
            lambda: length_bucketed_batches(val_rows, val_labels, _EVAL_BATCH_SIZE, rng=None),
            math.ceil(len(val_rows) / _EVAL_BATCH_SIZE),
        )
        checkpoint = work / "best.weights.h5"
        history = model.fit(
            train_data,
            validation_data=val_data,
            epochs=options.epochs,
            steps_per_epoch=steps,
            callbacks=[*training_callbacks(options, checkpoint), EpochMetricsToMlflow()],
            shuffle=False,  # length_bucketed_batches shuffles
            verbose=_verbosity(self.progress),
        )
        # The shipped weights are the checkpoint's (best validation precision), whatever
        # epoch early stopping restored.
        model.load_weights(checkpoint)
        return {
            name: [float(value) for value in values] for name, values in history.history.items()
        }


def train_lstm(
    data: pd.DataFrame | Split,
    *,
    target_precision: float,
    registry: Registry,
    artifacts_dir: Path,
    preprocess: PreprocessConfig = DEFAULT_PREPROCESS,
    options: LstmOptions | None = None,
    progress: bool = True,
    **flow: Any,
) -> TrainResult:
    """Train, evaluate, log and register an LSTM model; return the new version and its figures.

    `flow` takes the other keyword arguments of training.experiment.train_family (experiment,
    sample, val, test, data_source, run_name, languages, extra); the split's seed is the options'
    seed.
    """
    options = options or LstmOptions()
    return train_family(
        LstmFamily(options, progress=progress),
        data,
        preprocess=preprocess,
        target_precision=target_precision,
        registry=registry,
        artifacts_dir=artifacts_dir,
        seed=options.seed,
        progress=progress,
        **flow,
    )


def train_word2vec(
    sentences: Sequence[Sequence[str]], options: LstmOptions
) -> tuple[Vocabulary, np.ndarray]:
    """Skip-gram Word2Vec on the tokenized training tweets: the vocabulary (most frequent first,
    at most max_vocabulary words) and the embedding matrix, one row per id (padding and unknown
    words are zero rows)."""
    from gensim.models import Word2Vec  # training only; serving never imports gensim

    corpus = [list(sentence) for sentence in sentences if sentence]
    if not corpus:
        raise ValueError("no tokens to train Word2Vec on: every training text is empty")
    with _quiet("gensim"):
        w2v = Word2Vec(
            sentences=corpus,
            vector_size=options.w2v_dim,
            window=options.w2v_window,
            min_count=options.w2v_min_count,
            max_final_vocab=options.max_vocabulary,
            sg=1,  # skip-gram: better vectors for rare words on a small corpus than CBOW
            epochs=options.w2v_epochs,
            workers=options.w2v_workers,
            seed=options.seed,
        )
    words = list(w2v.wv.index_to_key)[: options.max_vocabulary]
    vocabulary = Vocabulary(words)
    vectors = np.zeros((vocabulary.size, options.w2v_dim), dtype=np.float32)
    if words:
        vectors[-len(words) :] = w2v.wv[words]
    return vocabulary, vectors


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Warnings only from logger_name meanwhile: gensim logs its progress at INFO every second."""
    chatty = logging.getLogger(logger_name)
    level = chatty.level
    chatty.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        chatty.setLevel(level)


def sequence_length(sentences: Sequence[Sequence[str]], cap: int) -> int:
    """The longest tokenized tweet, at most cap (and at least 1)."""
    return max(1, min(cap, max((len(sentence) for sentence in sentences), default=1)))


def oov_rate(vocabulary: Vocabulary, texts: Sequence[str]) -> float:
    """The share of tokens of texts outside the vocabulary (0 when there are no tokens)."""
    tokens = [token for text in texts for token in text.split()]
    known = set(vocabulary.words)
    return sum(token not in known for token in tokens) / len(tokens) if tokens else 0.0


def build_model(vectors: np.ndarray, options: LstmOptions) -> keras.Model:
    """The compiled network over left-padded ids of any length; vectors initialise the frozen
    embedding (row i is id i's vector)."""
    first_units, second_units = options.lstm_units
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    embedding = keras.layers.Embedding(
        input_dim=vectors.shape[0],
        output_dim=vectors.shape[1],
        mask_zero=True,  # padding is invisible to the LSTMs: results do not depend on it
        trainable=False,
        name="word2vec",
    )
    x = embedding(ids)
    x = keras.layers.SpatialDropout1D(options.spatial_dropout)(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(first_units, return_sequences=True))(x)
    x = keras.layers.Bidirectional(keras.layers.LSTM(second_units))(x)
    x = keras.layers.Dense(options.dense_units, activation="relu")(x)
    x = keras.layers.Dropout(options.dropout)(x)
    positive = keras.layers.Dense(1, activation="sigmoid", name="positive")(x)
    model = keras.Model(ids, positive, name="w2v_bilstm")
    embedding.set_weights([vectors])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=options.learning_rate),
        loss="binary_crossentropy",
        metrics=[
            keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
            keras.metrics.AUC(name="auc"),
        ],
    )
    return model


def training_callbacks(options: LstmOptions, checkpoint: Path) -> list[keras.callbacks.Callback]:
    """Early stopping and LR reduction on validation loss, checkpoint on validation precision.

    Early stopping and the LR schedule watch val_loss, not val_precision: precision at the fixed
    0.5 cut is not a measure of how well the model ranks tweets. It rises whenever the model
    calls fewer tweets positive, even while it gets worse, and it moves by whole tweets, so it
    would stop training on noise or keep it going on a drifting bias. The cross-entropy is smooth,
    threshold-free and turns up when the model starts to overfit. The business precision is
    reached afterwards by the threshold chosen on validation (train_family). The checkpoint keeps
    the epoch with the best val_precision, as the design asks; EarlyStopping still restores its
    best weights so the model in memory is the best-loss one until the checkpoint replaces it,
    and the history logged says when the two epochs differ.
    """
    return [
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            mode="min",
            patience=options.early_stopping_patience,
            restore_best_weights=True,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            mode="min",
            factor=options.plateau_factor,
            patience=options.plateau_patience,
            min_lr=options.min_learning_rate,
        ),
        keras.callbacks.ModelCheckpoint(
            filepath=str(checkpoint),
            monitor=options.checkpoint_monitor,
            mode=_CHECKPOINT_MONITORS[options.checkpoint_monitor],
            save_best_only=True,
            save_weights_only=True,
        ),
    ]


class EpochMetricsToMlflow(keras.callbacks.Callback):
    """Logs every epoch's training and validation metrics and learning rate to the active run
    (`epoch.<keras name>`, step = epoch number from 1); nothing without an active run."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if mlflow.active_run() is None:
            return
        metrics = {f"epoch.{name}": float(value) for name, value in (logs or {}).items()}
        metrics["epoch.learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        metrics["epoch.seconds"] = time.perf_counter() - self._started
        mlflow.log_metrics(metrics, step=epoch + 1)


def length_bucketed_batches(
    rows: Sequence[Sequence[int]],
    labels: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None,
) -> Iterator[Batch]:
    """One epoch of (ids, labels) batches of tweets of similar length, each padded on the left
    to its own longest tweet.

    With rng, the tweets are shuffled, sorted by length within windows of _BUCKET_BATCHES
    batches, and the batches shuffled again: each epoch a new order, yet little padding. Without
    rng (validation), all tweets are sorted by length, in a fixed order.
    """
    order = np.arange(len(rows)) if rng is None else rng.permutation(len(rows))
    lengths = np.array([len(row) for row in rows])
    window = len(rows) if rng is None else batch_size * _BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if rng is not None:
        batches = [batches[index] for index in rng.permutation(len(batches))]
    for batch in batches:
        yield pad_left([rows[index] for index in batch]), labels[batch].astype(np.float32)


def _dataset(batches: Callable[[], Iterator[Batch]], n_batches: int) -> tf.data.Dataset:
    """A tf.data pipeline over a function giving one pass of n_batches batches (called anew for
    every pass); the count lets Keras know where an epoch ends."""
    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec(shape=(None, None), dtype=tf.int32),
            tf.TensorSpec(shape=(None,), dtype=tf.float32),
        ),
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(
        tf.data.AUTOTUNE
    )


def _log_history(history: dict[str, list[float]], checkpoint_monitor: str) -> None:
    """When training stopped, and which epochs early stopping and the checkpoint preferred."""
    figures: dict[str, float] = {"fit.epochs_run": float(len(history.get("loss", [])))}
    for monitor in dict.fromkeys(("val_loss", checkpoint_monitor)):
        values = history.get(monitor)
        if not values:
            continue
        higher_is_better = _CHECKPOINT_MONITORS[monitor] == "max"
        best = int(np.argmax(values) if higher_is_better else np.argmin(values))
        figures[f"fit.best_epoch.{monitor}"] = float(best + 1)
        figures[f"fit.best.{monitor}"] = values[best]
    mlflow.log_metrics(figures)
    logger.info("training history: %s", figures)


def _verbosity(progress: bool) -> int:
    """Keras progress: a live bar on a terminal, one line per epoch in a log file."""
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2
