"""The serving side of the transformer family: a fine-tuned encoder exported to ONNX, scored with
ONNX Runtime on CPU and tokenized with the `tokenizers` library. No torch, no transformers.

The artifact is a folder: `model.onnx` (inputs `input_ids` and `attention_mask`, int64, dynamic
batch and sequence axes; output `positive_proba`, P(positive) per tweet), `tokenizer.json` (the
base model's fast tokenizer) and `estimator.json` (max length, padding id, whether the weights are
int8, the base model). Training writes it (training/transformer.py); `load` reads it all into
memory, so the folder may be deleted right after. How many tweets go into one ONNX Runtime call
is a serving knob (`batch_size`), not part of the artifact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from shared.estimators.base import ONNX_TRANSFORMER, ModelLoadError

ESTIMATOR_FORMAT = ONNX_TRANSFORMER
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "estimator.json"

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
OUTPUT = "positive_proba"

FORMAT_VERSION = 1
# Tweets scored in one ONNX Runtime call. The texts of a call are sorted by length before they
# are cut into such batches, so each pads to a length close to its own tweets'. Measured on
# Sentiment140 tweets (2 cores, fp32 MiniLM-L6), calls of 64 tweets cost, in ms a tweet: 5.1 in
# batches of 8, 4.9-6.0 in batches of 16, 5.4-6.4 in batches of 32, 8.4-10.5 in one batch of
# 64 (the longest of 64 random tweets is twice the average).
DEFAULT_BATCH_SIZE = 16
# A 6-layer encoder on a batch of short tweets stops gaining past a few threads; more replicas
# of the infer worker scale better than more threads in one.
_MAX_DEFAULT_THREADS = 4


@dataclass(frozen=True)
class TransformerServingConfig:
    """What scoring needs besides the graph and the tokenizer; saved as estimator.json."""

    max_length: int
    pad_id: int
    quantized: bool
    base_model: str
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.max_length < 2:
            raise ValueError(
                f"max_length must leave room for the special tokens: {self.max_length}"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TransformerServingConfig:
        values = json.loads(text)
        values.pop("batch_size", None)  # the first artifacts carried the serving batch size
        if values.get("format_version") != FORMAT_VERSION:
            raise ModelLoadError(
                f"estimator format version {values.get('format_version')!r}, "
                f"this code reads {FORMAT_VERSION}"
            )
        return cls(**values)


class TweetEncoder:
    """Texts to the model's int64 inputs, truncated to max_length and padded per batch.

    Training uses the same object to build its batches, so the ids a model was fine-tuned on are
    the ids it is served with.
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int, pad_id: int) -> None:
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_id = pad_id

    @classmethod
    def from_json(cls, tokenizer_json: str, max_length: int, pad_id: int) -> TweetEncoder:
        return cls(Tokenizer.from_str(tokenizer_json), max_length, pad_id)

    def to_json(self) -> str:
        return str(self.tokenizer.to_str())

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text with the special tokens ([CLS] ... [SEP]), at most max_length."""
        if isinstance(texts, str):
            raise TypeError("expected a sequence of texts, not a single str")
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]

    def pad(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """input_ids and attention_mask of shape (len(ids), longest), padded on the right."""
        width = max((len(row) for row in ids), default=0)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, token_ids in enumerate(ids):
            input_ids[row, : len(token_ids)] = token_ids
            attention_mask[row, : len(token_ids)] = 1
        return {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask}

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.pad(self.token_ids(texts))


def default_threads() -> int:
    """ONNX Runtime intra-op threads: the cores this process may use, at most a few."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(_MAX_DEFAULT_THREADS, available))


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """CPU options: a few intra-op threads, no inter-op pool, no spinning between calls."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The infer worker shares the box with the broker and the other workers: idle threads that
    # spin-wait for the next micro-batch would burn their cores for a few ms of latency.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxTransformerEstimator:
    """A fine-tuned transformer as ONNX: preprocessed tweets in, P(positive) out (CPU)."""

    def __init__(
        self,
        model: bytes,
        tokenizer_json: str,
        config: TransformerServingConfig,
        *,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.config = config
        self.batch_size = batch_size
        self._model = model
        try:
            self.encoder = TweetEncoder.from_json(tokenizer_json, config.max_length, config.pad_id)
        except Exception as error:  # tokenizers raises plain Exceptions for a bad tokenizer.json
            raise ModelLoadError(f"cannot rebuild the tokenizer: {error}") from error
        try:
            self.session = ort.InferenceSession(
                model, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped exceptions
            raise ModelLoadError(f"ONNX Runtime cannot load the model: {error}") from error
        inputs = {node.name for node in self.session.get_inputs()}
        outputs = [node.name for node in self.session.get_outputs()]
        if inputs != {INPUT_IDS, ATTENTION_MASK} or outputs != [OUTPUT]:
            raise ModelLoadError(
                f"expected inputs {INPUT_IDS}, {ATTENTION_MASK} and output {OUTPUT}; "
                f"the model has inputs {sorted(inputs)} and outputs {outputs}"
            )

    @property
    def model_bytes(self) -> bytes:
        return self._model

    def positive_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) per text, in order. Texts are scored in batches of similar length."""
        ids = self.encoder.token_ids(texts)
        proba = np.empty(len(ids), dtype=np.float64)
        # Stable sort: equal lengths keep their order, so a given list always makes the same
        # batches and scores the same to the last bit.
        order = np.argsort([len(row) for row in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            feeds = self.encoder.pad([ids[index] for index in chosen])
            (batch_proba,) = self.session.run([OUTPUT], feeds)
            proba[chosen] = batch_proba
        return proba

    def save(self, path: Path) -> Path:
        """Write the artifact folder at path (created if missing) and return it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / MODEL_FILE).write_bytes(self._model)
        (path / TOKENIZER_FILE).write_text(self.encoder.to_json(), encoding="utf-8")
        (path / CONFIG_FILE).write_text(self.config.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(
        cls, path: Path, *, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> OnnxTransformerEstimator:
        """Read an artifact folder written by save, all into memory."""
        path = Path(path)
        try:
            config = TransformerServingConfig.from_json(
                (path / CONFIG_FILE).read_text(encoding="utf-8")
            )
            tokenizer_json = (path / TOKENIZER_FILE).read_text(encoding="utf-8")
            model = (path / MODEL_FILE).read_bytes()
        except (OSError, ValueError, TypeError) as error:
            raise ModelLoadError(f"unreadable ONNX transformer artifact {path}: {error}") from error
        return cls(model, tokenizer_json, config, threads=threads, batch_size=batch_size)
