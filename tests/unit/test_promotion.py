"""The promotion rule: a version less precise than the champion does not replace it."""

from __future__ import annotations

from training.registry import VersionSummary, check_promotion


def summary(version: str, precision: float | None) -> VersionSummary:
    figures = {} if precision is None else {"precision": precision, "recall": 0.5}
    return VersionSummary(
        version=version,
        aliases=(),
        family="simple",
        candidate="tfidf-logreg",
        n_train=800,
        threshold=0.7,
        test_at_threshold=figures,
        accuracy_at_default=0.75,
        latency_ms=0.1,
        latency_ms_single=1.0,
        size_bytes=1e6,
        created=None,
        run_id=None,
    )


def test_the_first_champion_needs_no_comparison() -> None:
    assert check_promotion(summary("1", 0.6), None).allowed


def test_a_less_precise_version_is_refused_with_both_precisions_in_the_reason() -> None:
    check = check_promotion(summary("2", 0.81), summary("1", 0.90))

    assert not check.allowed
    assert "0.8100" in check.reason
    assert "0.9000" in check.reason
    assert (check.candidate, check.champion) == ("2", "1")


def test_an_equally_or_more_precise_version_is_allowed() -> None:
    assert check_promotion(summary("2", 0.90), summary("1", 0.90)).allowed
    assert check_promotion(summary("2", 0.95), summary("1", 0.90)).allowed


def test_a_version_without_recorded_precision_is_refused() -> None:
    check = check_promotion(summary("2", None), summary("1", 0.90))

    assert not check.allowed
    assert "no recorded test precision" in check.reason


def test_a_champion_without_recorded_precision_can_be_replaced() -> None:
    assert check_promotion(summary("2", 0.5), summary("1", None)).allowed


def test_promoting_the_champion_again_is_allowed() -> None:
    assert check_promotion(summary("1", 0.5), summary("1", 0.5)).allowed
