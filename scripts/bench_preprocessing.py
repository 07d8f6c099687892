"""Throughput of shared.preprocessing: tweets per second for the full and a minimal config.

    python scripts/bench_preprocessing.py                       # fixture tweets, repeated
    python scripts/bench_preprocessing.py --data sample-100k.csv.gz --n 100000

The full config runs first on fresh caches, as a training run would; the language data is
loaded before the clock starts (`warm_up`) and its load time is printed apart.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from dataclasses import fields, replace
from pathlib import Path

from shared.preprocessing import PreprocessConfig, TextPreprocessor

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "airline_tweets.csv"
MINIMAL = PreprocessConfig(**{f.name: False for f in fields(PreprocessConfig)})


def load_texts(data: Path | None, n: int) -> list[str]:
    if data is None:
        with FIXTURE.open(encoding="utf-8", newline="") as handle:
            fixture = [row["text"] for row in csv.DictReader(handle)]
        return list(itertools.islice(itertools.cycle(fixture), n))
    import pandas as pd

    frame = pd.read_csv(data, usecols=["text"], dtype={"text": str}, keep_default_na=False)
    return frame["text"].head(n).tolist()


def measure(name: str, config: PreprocessConfig, texts: list[str]) -> None:
    preprocessor = TextPreprocessor(config)
    started = time.perf_counter()
    preprocessor.warm_up()
    loaded = time.perf_counter()
    cpu_started = time.process_time()
    preprocessor.transform(texts)
    cpu_seconds = time.process_time() - cpu_started
    finished = time.perf_counter()
    # CPU time too: on a shared machine the wall-clock rate mostly measures the neighbours.
    print(
        f"{name:<24} {len(texts) / (finished - loaded):>9,.0f} tweets/s wall "
        f"{len(texts) / cpu_seconds:>9,.0f} tweets/s CPU  "
        f"({len(texts):,} tweets in {finished - loaded:.2f} s; "
        f"language data loaded in {loaded - started:.2f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="CSV (optionally .gz) with a text column")
    parser.add_argument("--n", type=int, default=100_000, help="number of tweets (default 100k)")
    parser.add_argument(
        "--ablation", action="store_true", help="also time the full config less each step"
    )
    args = parser.parse_args()

    texts = load_texts(args.data, args.n)
    source = args.data or f"{FIXTURE.name} (repeated: caches stay warm)"
    print(f"{len(texts):,} tweets from {source}")
    measure("full", PreprocessConfig(), texts)
    measure("minimal (all steps off)", MINIMAL, texts)
    if args.ablation:
        for step in fields(PreprocessConfig):
            measure(f"full - {step.name}", replace(PreprocessConfig(), **{step.name: False}), texts)


if __name__ == "__main__":
    main()
