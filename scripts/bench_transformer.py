"""CPU scoring speed of the transformer family: torch vs ONNX Runtime fp32 vs ONNX Runtime int8.

    python scripts/bench_transformer.py                      # smoke-tuned MiniLM-L6, fixture tweets
    python scripts/bench_transformer.py --data sample-100k.csv.gz --tweets 1024
    python scripts/bench_transformer.py --model /tmp/fullsize/mlartifacts/.../artifacts/estimator
    python scripts/bench_transformer.py --model models:/airparadis-sentiment/3 \\
        --tracking-uri sqlite:////tmp/fullsize/mlflow.db

Without --model, the base model is fine-tuned for a few smoke steps on the fixture tweets. With
--model (an estimator folder, a logged MLflow model folder, or a models:/ URI), the registered
ONNX graph is timed as it is, beside torch, fp32 and int8 built from its base model: speed does
not depend on the weights, only on the architecture and the lengths. Every backend gets the
same threads, the same preprocessed tweets, and one warm-up call; a call of 64 random tweets is
sorted by length and run in batches of 16, as serving does (DEFAULT_BATCH_SIZE). Prints
milliseconds per tweet at batch 1 and in calls of 64 tweets, and the speed-up over torch.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from shared.estimators.onnx_transformer import (
    CONFIG_FILE,
    DEFAULT_BATCH_SIZE,
    OnnxTransformerEstimator,
    TransformerServingConfig,
)
from shared.preprocessing import TextPreprocessor
from training.experiment import Texts
from training.transformer import (
    DEFAULT_BASE_MODEL,
    DEFAULT_PREPROCESS,
    FineTuneOptions,
    export_onnx,
    fine_tune,
    load_base_model,
    quantize_int8,
    score_torch,
)

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "airline_tweets.csv"
BATCH = 64
SINGLES = 128

Scorer = Callable[[Sequence[str]], np.ndarray]


def load_texts(data: Path | None, n: int) -> tuple[list[str], np.ndarray]:
    """n tweets and labels: from a Sentiment140 file, else the fixture tweets repeated."""
    if data is None:
        with FIXTURE.open(encoding="utf-8", newline="") as handle:
            rows = [(row["text"], int(row["target"]) // 4) for row in csv.DictReader(handle)]
        rows = list(itertools.islice(itertools.cycle(rows), n))
    else:
        from training.data import balanced_sample, load_sentiment140

        frame = balanced_sample(load_sentiment140(data), n - n % 2, seed=7)
        rows = list(zip(frame["text"], frame["label"], strict=True))
    preprocessor = TextPreprocessor(DEFAULT_PREPROCESS)
    return [preprocessor(text) for text, _ in rows], np.array([label for _, label in rows])


def registered_estimator(model: str, tracking_uri: str | None, work: Path) -> Path:
    """The estimator folder of --model: a folder, a logged model folder or a models:/ URI."""
    if model.startswith("models:/"):
        import mlflow

        from shared.registry import Registry

        if tracking_uri is None:
            raise SystemExit("a models:/ URI needs --tracking-uri")
        name, _, version = model.removeprefix("models:/").partition("/")
        # Resolved by the registry named here, not by MLflow's globals.
        model = mlflow.artifacts.download_artifacts(
            artifact_uri=Registry(tracking_uri, name).client.get_model_version_download_uri(
                name, version
            ),
            dst_path=str(work),
            tracking_uri=tracking_uri,
        )
    path = Path(model)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "artifacts" / "estimator" / CONFIG_FILE).is_file():
        return path / "artifacts" / "estimator"
    raise SystemExit(f"{model}: no {CONFIG_FILE} there nor in artifacts/estimator")


def ms_per_tweet(score: Scorer, texts: list[str], batch: int) -> float:
    chosen = texts if batch > 1 else texts[:SINGLES]
    score(chosen[:batch])  # warm-up: allocations, kernel choice
    started = time.perf_counter()
    for start in range(0, len(chosen), batch):
        score(chosen[start : start + batch])
    return (time.perf_counter() - started) * 1000 / len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="estimator folder, logged model folder or models:/ URI")
    parser.add_argument("--tracking-uri", help="registry of a models:/ URI")
    parser.add_argument("--data", type=Path, help="Sentiment140 file (default: fixture tweets)")
    parser.add_argument("--tweets", type=int, default=512, help="tweets scored per backend")
    parser.add_argument("--threads", type=int, default=2, help="threads of every backend")
    parser.add_argument("--smoke-steps", type=int, default=10, help="fine-tuning steps (no model)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    texts, labels = load_texts(args.data, args.tweets)
    with tempfile.TemporaryDirectory(prefix="bench-transformer-") as work_dir:
        work = Path(work_dir)
        registered = None
        base_model = DEFAULT_BASE_MODEL
        max_length = FineTuneOptions().max_length
        if args.model:
            registered = OnnxTransformerEstimator.load(
                registered_estimator(args.model, args.tracking_uri, work), threads=args.threads
            )
            base_model = registered.config.base_model
            max_length = registered.config.max_length
        base = load_base_model(base_model, max_length)
        classifier, encoder = base.classifier, base.encoder
        if registered is None:
            options = FineTuneOptions.smoke(max_length=max_length, max_steps=args.smoke_steps)
            split = len(texts) * 4 // 5
            fine_tune(
                classifier,
                encoder,
                Texts(texts[:split], labels[:split]),
                Texts(texts[split:], labels[split:]),
                options,
                show=False,
            )
        classifier.eval()
        fp32_path = export_onnx(classifier, encoder, work / "fp32.onnx")
        int8_path = quantize_int8(fp32_path, work / "int8.onnx")
        config = TransformerServingConfig(
            max_length=max_length, pad_id=encoder.pad_id, quantized=False, base_model=base_model
        )
        tokenizer_json = encoder.to_json()
        backends: dict[str, Scorer] = {
            "torch fp32": lambda batch: score_torch(classifier, encoder, batch, DEFAULT_BATCH_SIZE),
            "onnx fp32": OnnxTransformerEstimator(
                fp32_path.read_bytes(), tokenizer_json, config, threads=args.threads
            ).positive_proba,
            "onnx int8": OnnxTransformerEstimator(
                int8_path.read_bytes(),
                tokenizer_json,
                replace(config, quantized=True),
                threads=args.threads,
            ).positive_proba,
        }
        if registered is not None:
            kind = "int8" if registered.config.quantized else "fp32"
            backends[f"registered ({kind})"] = registered.positive_proba
        sizes = {"onnx fp32": fp32_path.stat().st_size, "onnx int8": int8_path.stat().st_size}
        if registered is not None:
            sizes[f"registered ({kind})"] = len(registered.model_bytes)
        report(backends, texts, args.threads, base_model, sizes)


def report(
    backends: dict[str, Scorer],
    texts: list[str],
    threads: int,
    base_model: str,
    sizes: dict[str, int],
) -> None:
    print(
        f"{base_model}: {len(texts)} tweets (batch 64), {min(len(texts), SINGLES)} one by one, "
        f"{threads} threads"
    )
    print(
        f"{'backend':<20}{'ms/tweet b=1':>14}{'ms/tweet b=64':>15}{'x torch b=1':>13}"
        f"{'x torch b=64':>14}{'size MB':>9}"
    )
    torch_single = torch_batch = None
    for name, score in backends.items():
        single, batch = ms_per_tweet(score, texts, 1), ms_per_tweet(score, texts, BATCH)
        torch_single, torch_batch = torch_single or single, torch_batch or batch
        size = f"{sizes[name] / 1e6:.1f}" if name in sizes else "-"
        print(
            f"{name:<20}{single:>14.2f}{batch:>15.2f}{torch_single / single:>13.2f}"
            f"{torch_batch / batch:>14.2f}{size:>9}"
        )


if __name__ == "__main__":
    main()
