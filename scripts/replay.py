"""Replay labelled tweets into a running platform, optionally drifted, to watch the monitoring.

Tweets go to the gateway's POST /v1/predict at a chosen rate; a share of the predictions can be
reported wrong through POST /v1/feedback. With --drift the tweets change the way production
traffic might: longer texts, more URLs, mentions, hashtags or emojis, or another class mix.

    airparadis up &                                    # the embedded platform on :8000
    python scripts/replay.py tests/fixtures/airline_tweets.csv --count 3000 --rate 100 \\
        --drift long --drift urls --drift-after 1500 --report-wrong 0.05

Then /monitor (or Grafana) shows the traffic, the error rate, and the PSI rising once the
drifted half arrives. The CSV is Sentiment140's original form or `target,text`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make the repo's packages importable
    sys.path.insert(0, str(ROOT))

MAX_TWEETS_PER_REQUEST = 64
TEXT_DRIFTS = ("long", "urls", "mentions", "hashtags", "emojis")
MIX_DRIFTS = {"negative": 0, "positive": 1}  # label that makes up SKEWED_SHARE of the tweets
DRIFTS = (*TEXT_DRIFTS, *MIX_DRIFTS)
SKEWED_SHARE = 0.9
_FILLER = (
    "honestly",
    "the",
    "flight",
    "was",
    "about",
    "what",
    "I",
    "expected",
    "from",
    "a",
    "budget",
    "airline",
    "boarding",
    "took",
    "forever",
    "and",
    "then",
    "we",
    "waited",
    "on",
    "the",
    "tarmac",
    "for",
    "another",
    "hour",
    "before",
    "anyone",
    "explained",
)
_EMOJIS = ("😀", "😡", "✈️", "🙏", "😍", "😭", "👍", "🔥")


@dataclass(frozen=True)
class Tweet:
    text: str
    label: int  # 0 negative, 1 positive, as in the CSV


def drift_text(text: str, drifts: Sequence[str], rng: random.Random) -> str:
    """The tweet changed by each text drift asked for (the class-mix drifts leave it as is)."""
    for drift in drifts:
        if drift == "long":
            words = [rng.choice(_FILLER) for _ in range(rng.randint(25, 40))]
            text = f"{text} {' '.join(words)}"
        elif drift == "urls":
            text += "".join(f" https://t.co/{rng.getrandbits(40):010x}" for _ in range(2))
        elif drift == "mentions":
            text += "".join(f" @traveller{rng.randint(1, 9999)}" for _ in range(2))
        elif drift == "hashtags":
            text += "".join(f" #{rng.choice(_FILLER)}{rng.randint(1, 99)}" for _ in range(2))
        elif drift == "emojis":
            text += " " + "".join(rng.choice(_EMOJIS) for _ in range(3))
    return text


def pick_tweets(
    pool: Sequence[Tweet], count: int, drifts: Sequence[str], rng: random.Random
) -> list[Tweet]:
    """`count` tweets drawn with replacement; a class-mix drift draws SKEWED_SHARE of them
    from one label, and text drifts rewrite each one."""
    skewed = [MIX_DRIFTS[d] for d in drifts if d in MIX_DRIFTS]
    by_label = {label: [t for t in pool if t.label == label] for label in (0, 1)}
    picked = []
    for _ in range(count):
        if skewed and by_label[skewed[-1]] and rng.random() < SKEWED_SHARE:
            tweet = rng.choice(by_label[skewed[-1]])
        elif skewed and by_label[1 - skewed[-1]]:
            tweet = rng.choice(by_label[1 - skewed[-1]])
        else:
            tweet = rng.choice(pool)
        picked.append(Tweet(drift_text(tweet.text, drifts, rng), tweet.label))
    return picked


def replay_plan(
    pool: Sequence[Tweet],
    count: int,
    drifts: Sequence[str],
    drift_after: int,
    rng: random.Random,
) -> list[Tweet]:
    """The tweets to send in order: the first `drift_after` as they are, the rest drifted."""
    undrifted = min(drift_after, count) if drifts else count
    return pick_tweets(pool, undrifted, (), rng) + pick_tweets(pool, count - undrifted, drifts, rng)


@dataclass
class Tally:
    sent: int = 0
    scored: int = 0
    reported: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)


async def _send_batch(
    client: httpx.AsyncClient,
    batch: list[Tweet],
    report_wrong: float,
    rng: random.Random,
    tally: Tally,
) -> None:
    tally.sent += len(batch)
    try:
        response = await client.post("/v1/predict", json={"texts": [t.text for t in batch]})
    except httpx.HTTPError as error:
        tally.failures[type(error).__name__] += len(batch)
        return
    if response.status_code != 200:
        tally.failures[f"HTTP {response.status_code}"] += len(batch)
        return
    for prediction in response.json()["predictions"]:
        tally.scored += 1
        tally.labels[prediction["label"]] += 1
        tally.versions[f"{prediction['model_name']} v{prediction['model_version']}"] += 1
        if rng.random() < report_wrong:
            wrong = "negative" if prediction["label"] == "positive" else "positive"
            report = await client.post(
                "/v1/feedback",
                json={
                    "prediction_id": prediction["id"],
                    "correct_label": wrong,
                    "comment": "scripts/replay.py",
                },
            )
            if report.status_code == 202:
                tally.reported += 1
            else:
                tally.failures[f"feedback HTTP {report.status_code}"] += 1


async def replay(
    url: str,
    tweets: Sequence[Tweet],
    *,
    rate: float,
    batch_size: int,
    report_wrong: float,
    concurrency: int,
    seed: int,
    key: str | None = None,
) -> Tally:
    """Send the tweets in batches, paced at `rate` tweets per second (with the API key, if the
    gateway requires one)."""
    rng = random.Random(seed)
    tally = Tally()
    gate = asyncio.Semaphore(concurrency)
    batches = [list(tweets[i : i + batch_size]) for i in range(0, len(tweets), batch_size)]
    timeout = httpx.Timeout(60.0, connect=10.0)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers) as client:
        with tqdm(total=len(tweets), unit="tweet", desc="replay") as progress:
            started = time.perf_counter()

            async def one(index: int, batch: list[Tweet]) -> None:
                delay = started + index * batch_size / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with gate:
                    await _send_batch(client, batch, report_wrong, rng, tally)
                progress.update(len(batch))

            await asyncio.gather(*(one(i, batch) for i, batch in enumerate(batches)))
    return tally


def _summary(tweets: Sequence[Tweet], drift_after: int, drifts: Sequence[str]) -> str:
    lengths = [len(t.text) for t in tweets]
    head, tail = lengths[:drift_after], lengths[drift_after:]
    mix = Counter("positive" if t.label else "negative" for t in tweets)
    text = (
        f"{len(tweets)} tweets, labels in the CSV {dict(mix)}, "
        f"mean length {statistics.mean(lengths):.0f}"
    )
    if drifts and head and tail:
        text += (
            f" ({statistics.mean(head):.0f} for the first {len(head)}, "
            f"{statistics.mean(tail):.0f} once drifted by {', '.join(drifts)})"
        )
    elif drifts:
        text += f", all drifted by {', '.join(drifts)}"
    return text


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="Sentiment140 CSV (original form or target,text)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway")
    parser.add_argument("--count", type=int, default=2000, help="tweets to send")
    parser.add_argument("--rate", type=float, default=50.0, help="tweets per second")
    parser.add_argument(
        "--batch", type=int, default=16, help=f"tweets per request (1 to {MAX_TWEETS_PER_REQUEST})"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    parser.add_argument(
        "--drift",
        action="append",
        choices=DRIFTS,
        default=[],
        help="how the tweets change (repeatable): longer texts, more URLs, mentions, hashtags, "
        f"emojis, or {SKEWED_SHARE * 100:.0f}%% negative or positive tweets",
    )
    parser.add_argument(
        "--drift-after", type=int, default=0, help="send this many tweets undrifted first"
    )
    parser.add_argument(
        "--report-wrong",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="share of the predictions reported wrong through /v1/feedback",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--key",
        default=os.environ.get("AIRPARADIS_API_KEY"),
        help="API key (scopes predict and feedback) for a gateway that requires one; default "
        "AIRPARADIS_API_KEY",
    )
    arguments = parser.parse_args(argv)
    if not 1 <= arguments.batch <= MAX_TWEETS_PER_REQUEST:
        parser.error(f"--batch must be between 1 and {MAX_TWEETS_PER_REQUEST}")
    if not 0 <= arguments.report_wrong <= 1:
        parser.error("--report-wrong is a fraction between 0 and 1")
    if arguments.rate <= 0 or arguments.count < 1:
        parser.error("--rate and --count must be positive")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _arguments(argv)
    from training.data import load_sentiment140

    frame = load_sentiment140(arguments.csv)
    pool = [
        Tweet(str(text), int(label))
        for text, label in zip(frame["text"], frame["label"], strict=True)
    ]
    if not pool:
        print(f"no tweets in {arguments.csv}", file=sys.stderr)
        return 1
    rng = random.Random(arguments.seed)
    tweets = replay_plan(pool, arguments.count, arguments.drift, arguments.drift_after, rng)
    print(f"replaying {_summary(tweets, arguments.drift_after, arguments.drift)}")
    print(f"to {arguments.url} at {arguments.rate:g} tweets/s, {arguments.batch} per request")
    started = time.perf_counter()
    tally = asyncio.run(
        replay(
            arguments.url,
            tweets,
            rate=arguments.rate,
            batch_size=arguments.batch,
            report_wrong=arguments.report_wrong,
            concurrency=arguments.concurrency,
            seed=arguments.seed,
            key=arguments.key,
        )
    )
    elapsed = time.perf_counter() - started
    print(
        f"sent {tally.sent}, scored {tally.scored} in {elapsed:.1f} s "
        f"({tally.scored / elapsed:.1f} tweets/s); labels {dict(tally.labels)}; "
        f"models {dict(tally.versions)}; reported wrong {tally.reported}"
    )
    if tally.failures:
        print(f"failures: {dict(tally.failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
