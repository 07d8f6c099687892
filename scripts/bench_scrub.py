"""What minimisation costs and changes, on a Sentiment140 file: the scrubber's time per tweet,
the tweets it changes (by placeholder), the drift features of the scrubbed text against the raw
one, and what the champion model scores on the scrubbed text against the raw one.

    export AIRPARADIS_HOME=/tmp/scrub DATA=../shared/data/sentiment140/sample-100k.csv.gz
    airparadis train simple --data $DATA --sample 50000 --candidates logreg --vectorizers tfidf \
        --promote
    .venv/bin/python scripts/bench_scrub.py --data $DATA

Without a champion in the registry (or with --no-model) the scores are left out.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from shared.preprocessing import text_features
from shared.scrub import EMAIL, HANDLE, PATH, PHONE, TextPolicy, scrub

PLACEHOLDERS = (HANDLE, PATH, EMAIL, PHONE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sentiment140 CSV (.gz ok)")
    parser.add_argument("--sample", type=int, default=None, help="Tweets to use (default all)")
    parser.add_argument("--repeat", type=int, default=3, help="Timed passes; the best is kept")
    parser.add_argument("--no-model", action="store_true", help="Leave the scores out")
    args = parser.parse_args()

    from training.data import load_sentiment140

    frame = load_sentiment140(args.data)
    if args.sample:
        frame = frame.sample(n=min(args.sample, len(frame)), random_state=42)
    texts: list[str] = frame["text"].tolist()
    own = TextPolicy().own_handles
    print(f"{len(texts):,} tweets of {args.data.name}")

    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        scrubbed = [scrub(text, own) for text in texts]
        timings.append((time.perf_counter() - started) / len(texts) * 1e6)
    print(
        f"scrub: {min(timings):.1f} µs per tweet (best of {args.repeat}; "
        f"median {statistics.median(timings):.1f})"
    )

    changed = [i for i, (a, b) in enumerate(zip(texts, scrubbed, strict=True)) if a != b]
    kinds = Counter(
        placeholder
        for i in changed
        for placeholder in PLACEHOLDERS
        if placeholder in scrubbed[i] and placeholder not in texts[i]
    )
    print(f"changed: {len(changed):,} tweets ({len(changed) / len(texts):.1%})")
    for placeholder in PLACEHOLDERS:
        print(f"  with {placeholder}: {kinds[placeholder]:,}")

    features(texts, scrubbed, changed)
    if not args.no_model:
        scores(texts, scrubbed, changed)


def features(texts: list[str], scrubbed: list[str], changed: list[int]) -> None:
    """The drift features of the changed tweets, raw and scrubbed, and the PSI of the scrubbed
    tweets' features against the raw ones (the drift reference is built on raw tweets)."""
    from shared.drift import FEATURES_BY_NAME, bin_shares, psi, text_feature_columns

    raw_columns, new_columns = text_feature_columns(texts), text_feature_columns(scrubbed)
    shifts = {
        name: psi(
            bin_shares(raw_columns[name], FEATURES_BY_NAME[name]),
            bin_shares(new_columns[name], FEATURES_BY_NAME[name]),
        )
        for name in raw_columns
        if name in FEATURES_BY_NAME
    }
    print("PSI of the scrubbed text's features against the raw text's (all tweets):")
    print("  " + ", ".join(f"{name} {value:.4f}" for name, value in shifts.items()))
    raw = [text_features(texts[i]) for i in changed]
    new = [text_features(scrubbed[i]) for i in changed]
    for name in ("n_mentions", "n_urls", "n_hashtags", "n_words", "length"):
        differ = sum(getattr(a, name) != getattr(b, name) for a, b in zip(raw, new, strict=True))
        print(f"  {name}: differs on {differ:,} of the changed tweets", end="")
        if name == "length":
            delta = [b.length - a.length for a, b in zip(raw, new, strict=True)]
            print(f" (mean {np.mean(delta):+.1f} characters)", end="")
        print()


def scores(texts: list[str], scrubbed: list[str], changed: list[int]) -> None:
    """The champion's probabilities on the raw and the scrubbed changed tweets."""
    from shared.estimators.base import ModelNotFoundError
    from shared.registry import Registry
    from shared.settings import Settings

    try:
        model = Registry.of(Settings()).load(None)
    except ModelNotFoundError as error:
        print(f"no scores: {error}")
        return
    before = model.predict_proba([texts[i] for i in changed])
    after = model.predict_proba([scrubbed[i] for i in changed])
    delta = np.abs(after - before)
    flipped = int(np.sum((before >= model.threshold) != (after >= model.threshold)))
    same = int(np.sum(delta < 1e-9))
    print(f"model {model.name} v{model.version}, threshold {model.threshold:.3f}:")
    print(
        f"  changed tweets scoring exactly the same: {same:,} of {len(changed):,} "
        f"({same / max(len(changed), 1):.1%})"
    )
    print(
        f"  |Δ probability|: mean {delta.mean():.5f}, p99 {np.quantile(delta, 0.99):.4f}, "
        f"max {delta.max():.4f}"
    )
    print(
        f"  labels flipped at the threshold: {flipped:,} ({flipped / len(texts):.3%} of all tweets)"
    )
    for placeholder in PLACEHOLDERS:
        rows = [k for k, i in enumerate(changed) if placeholder in scrubbed[i]]
        if rows:
            print(
                f"  with {placeholder}: mean |Δp| {delta[rows].mean():.5f}, "
                f"max {delta[rows].max():.4f} ({len(rows):,} tweets)"
            )


if __name__ == "__main__":
    main()
