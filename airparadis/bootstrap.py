"""First start: make sure the registry has a champion, training the baseline if it has none."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from rich.console import Console

from shared.preprocessing import PreprocessConfig
from shared.registry import ModelVersionInfo, Registry
from shared.settings import Settings
from training.data import balanced_sample, download_sentiment140, load_sentiment140
from training.experiment import TrainResult
from training.simple import train_simple

log = logging.getLogger(__name__)
console = Console(stderr=True)


def load_training_data(settings: Settings, data: Path | None) -> tuple[pd.DataFrame, Path]:
    """Sentiment140 from data, else downloaded into the home folder; the frame and its path."""
    if data is None:
        console.print("No --data or AIRPARADIS_DATA: downloading the official Sentiment140 archive")
        data = download_sentiment140(settings.home / "data")
    console.print(f"Loading {data}")
    return load_sentiment140(data), data


def sample_size(settings: Settings, frame: pd.DataFrame, sample: int | None) -> int:
    """The balanced sample to train on: `sample`, else AIRPARADIS_TRAIN_SAMPLE, at most the data."""
    return min(sample or settings.train_sample, len(frame) - len(frame) % 2)


def train_baseline(settings: Settings, data: Path | None, sample: int | None = None) -> TrainResult:
    """Train the simple model on Sentiment140 and register it (not promoted)."""
    frame, data = load_training_data(settings, data)
    size = sample_size(settings, frame, sample)
    frame = balanced_sample(frame, size) if size < len(frame) else frame
    console.print(f"Training the baseline model on {len(frame):,} tweets")
    return train_simple(
        frame,
        preprocess=PreprocessConfig(),
        target_precision=settings.target_precision,
        registry=Registry.of(settings),
        artifacts_dir=settings.artifacts_dir,
        candidates=("logreg",),
        vectorizers=("tfidf",),
        grid="small",  # one grid point: the first start stays quick
        n_jobs=2,
        data_source=str(data),
        run_name="baseline",
    )


def ensure_champion(settings: Settings, data: Path | None) -> ModelVersionInfo:
    """The champion of the registry; trains, registers and promotes a baseline if none."""
    registry = Registry.of(settings)
    champion = registry.champion()
    if champion is not None:
        log.info("champion found", extra={"model": champion.name, "version": champion.version})
        return champion
    result = train_baseline(settings, data)
    at_threshold = result.test_at_threshold
    console.print(
        f"Registered {result.model_name} v{result.version}. On its test split, at its "
        f"threshold {result.threshold.threshold:.3f}: precision {at_threshold['precision']:.3f}, "
        f"recall {at_threshold['recall']:.3f}; at 0.5: accuracy "
        f"{result.test_at_default['accuracy']:.3f}"
    )
    return registry.promote(result.version).version
