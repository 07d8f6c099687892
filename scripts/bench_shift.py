"""How the precision promise holds when positives are rarer (or commoner) than in training.

Takes a registered version and the data file it was trained on, scores tweets as serving does
(calibrated probabilities), then builds streams with 5, 10, 20, 35, 50 and 80 % positives by
sampling (fixed seeds) and prints, for each prevalence, over `--repeat` streams: the prior
estimated by EM and by BBSE from the unlabelled probabilities, precision and recall at the
version's fixed threshold, at the adaptive threshold (chosen from the EM estimate, as the
platform does), and the target.

The streams are drawn from tweets the version's operating curve was not measured on, as live
traffic is: the file's rows outside the version's split when there are enough (a version trained
on a sample), else the second half of its test split, the curve then re-measured on the first
half. `--pool test` draws them from the whole test split the logged curve comes from (the
optimistic reading: the curve describes those very tweets).

    AIRPARADIS_HOME=HOME python scripts/bench_shift.py --data sentiment140/sample-100k.csv.gz
    python scripts/bench_shift.py --data FILE --version 3 --tweets 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make the repo's packages importable
    sys.path.insert(0, str(ROOT))

from shared.models import LoadedModel  # noqa: E402
from shared.registry import Registry  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.shift import (  # noqa: E402
    OperatingCurve,
    bbse_prior,
    bbse_threshold,
    em_prior,
    threshold_for,
)
from training.data import load_sentiment140  # noqa: E402
from training.registry import split_rows  # noqa: E402

PREVALENCES = (0.05, 0.10, 0.20, 0.35, 0.50, 0.80)


@dataclass(frozen=True)
class StreamResult:
    prior: float
    em: float
    bbse: float
    fixed_precision: float
    fixed_recall: float
    adaptive_threshold: float
    adaptive_reached: bool
    adaptive_precision: float
    adaptive_recall: float


def precision_recall(
    labels: np.ndarray, proba: np.ndarray, threshold: float
) -> tuple[float, float]:
    called = proba >= threshold
    precision = float(labels[called].mean()) if called.any() else float("nan")
    recall = float(called[labels == 1].mean()) if (labels == 1).any() else float("nan")
    return precision, recall


def stream(
    labels: np.ndarray, prevalence: float, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices of a stream of `size` tweets with `prevalence` positives (with replacement only
    when the split has too few of a label)."""
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    k = round(prevalence * size)
    chosen = [
        rng.choice(pool, n, replace=n > pool.size)
        for pool, n in ((positives, k), (negatives, size - k))
    ]
    return rng.permutation(np.concatenate(chosen))


def run_stream(
    labels: np.ndarray,
    proba: np.ndarray,
    curve: OperatingCurve,
    fixed: float,
    target: float,
    bounds: tuple[float, float],
) -> StreamResult:
    em = float(em_prior(proba, curve.prior))
    bbse = float(bbse_prior(proba, curve, bbse_threshold(curve)))
    adaptive, reached = threshold_for(curve, em, target, low=bounds[0], high=bounds[1])
    fixed_precision, fixed_recall = precision_recall(labels, proba, fixed)
    adaptive_precision, adaptive_recall = precision_recall(labels, proba, adaptive)
    return StreamResult(
        prior=float(labels.mean()),
        em=em,
        bbse=bbse,
        fixed_precision=fixed_precision,
        fixed_recall=fixed_recall,
        adaptive_threshold=adaptive,
        adaptive_reached=reached,
        adaptive_precision=adaptive_precision,
        adaptive_recall=adaptive_recall,
    )


def stream_pool(
    registry: Registry,
    version: str,
    frame: pd.DataFrame,
    logged: OperatingCurve,
    model: LoadedModel,
    pool: str,
) -> tuple[pd.DataFrame, OperatingCurve, str]:
    """The tweets streams are drawn from, the curve to judge them with, and what they are."""
    test = split_rows(registry, version, frame, "test")
    if pool == "test":
        return test, logged, f"its {len(test):,} test tweets (the logged curve's own)"
    used = set()
    for part in ("train", "val", "test"):
        used |= set(split_rows(registry, version, frame, part).index)  # type: ignore[arg-type]
    unseen = frame.drop(index=list(used))
    if len(unseen) >= 4000 and unseen["label"].nunique() == 2:
        unseen = unseen.sample(min(len(unseen), 20_000), random_state=0)
        return unseen, logged, f"{len(unseen):,} tweets of the file outside its split"
    first = test.sample(frac=0.5, random_state=0)
    second = test.drop(index=first.index)
    curve = OperatingCurve.measure(
        first["label"].to_numpy(), model.predict_proba(first["text"].astype(str).tolist())
    )
    return (
        second,
        curve,
        (f"half its test split ({len(second):,} tweets), the curve measured on the other half"),
    )


def span(values: Sequence[float], digits: int = 3) -> str:
    low, high = np.nanmin(values), np.nanmax(values)
    mean = float(np.nanmean(values))
    if round(low, digits) == round(high, digits):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="the file the version was trained on"
    )
    parser.add_argument("--version", help="registered version (default: the champion)")
    parser.add_argument("--tweets", type=int, default=2000, help="tweets per stream")
    parser.add_argument("--repeat", type=int, default=5, help="streams per prevalence")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument(
        "--pool",
        choices=("unseen", "test"),
        default="unseen",
        help="unseen: tweets the curve was not measured on (default); test: the test split",
    )
    parser.add_argument(
        "--prevalences",
        default=",".join(f"{p:g}" for p in PREVALENCES),
        help="shares of positive tweets, comma-separated",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    registry = Registry.of(settings)
    champion = registry.champion()
    if args.version is None and champion is None:
        raise SystemExit(f"no champion for {registry.model_name}: pass --version")
    version = args.version or champion.version  # type: ignore[union-attr]
    model = registry.load(version)
    logged = registry.operating_curve(version)
    if logged is None:
        raise SystemExit(
            f"version {version} has no operating curve: retrain it, or run "
            f"`airparadis models reference {version} --data FILE`"
        )
    frame = load_sentiment140(args.data)
    pool, curve, where = stream_pool(registry, version, frame, logged, model, args.pool)
    labels = pool["label"].to_numpy(dtype=int)
    proba = model.predict_proba(pool["text"].astype(str).tolist())
    target = settings.target_precision
    bounds = (settings.threshold_min, settings.threshold_max)
    rng = np.random.default_rng(args.seed)
    print(
        f"{registry.model_name} v{version}: streams from {where}, fixed threshold "
        f"{model.threshold:.4f}, target precision {target:.2f}, "
        f"{args.repeat} streams of {args.tweets:,} tweets per prevalence "
        "(mean, min-max)\n"
    )
    header = (
        "| positives | est. prior EM | est. prior BBSE | precision fixed | recall fixed "
        "| adaptive threshold | precision adaptive | recall adaptive | target |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    worst_em = worst_bbse = 0.0
    for prevalence in (float(p) for p in args.prevalences.split(",")):
        results = []
        for _ in range(args.repeat):
            rows = stream(labels, prevalence, args.tweets, rng)
            results.append(
                run_stream(labels[rows], proba[rows], curve, model.threshold, target, bounds)
            )
        worst_em = max(worst_em, *(abs(r.em - r.prior) for r in results))
        worst_bbse = max(worst_bbse, *(abs(r.bbse - r.prior) for r in results))
        unreached = sum(not r.adaptive_reached for r in results)
        print(
            f"| {prevalence:.0%} | {span([r.em for r in results])} "
            f"| {span([r.bbse for r in results])} "
            f"| {span([r.fixed_precision for r in results])} "
            f"| {span([r.fixed_recall for r in results])} "
            f"| {span([r.adaptive_threshold for r in results], 4)}"
            + (f" ({unreached} unreachable)" if unreached else "")
            + f" | {span([r.adaptive_precision for r in results])} "
            f"| {span([r.adaptive_recall for r in results])} | {target:.2f} |"
        )
    print(
        f"\nlargest prior error: EM {worst_em:.3f}, BBSE {worst_bbse:.3f} "
        f"(over {args.repeat} streams per prevalence)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
