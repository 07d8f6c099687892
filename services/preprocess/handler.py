"""tweets.submitted -> tweets.preprocessed, a batch at a time.

The model-specific preprocessing runs inside the model (so training and serving can never
skew); this step does what every model needs: minimise the text (upstream apps publish tweets
as written: past this step only the scrubbed text travels, shared/scrub.py), reject what
normalises to nothing (answering a waiting caller at once, with the reason), tell its language
(shared/language.py: infer then says whether the model can read it), and extract the features
that drift monitoring compares with the training data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared import subjects
from shared.bus import InvalidMessage
from shared.jetstream import Outcome, Outgoing, decode_batch
from shared.language import LanguageDetector
from shared.messages import ScoringFailed, TweetPreprocessed, TweetSubmitted
from shared.preprocessing import normalize, text_features
from shared.scrub import TextPolicy

if TYPE_CHECKING:
    from nats.aio.msg import Msg

WORKER = "preprocess"


def preprocess_tweet(
    tweet: TweetSubmitted, policy: TextPolicy, detector: LanguageDetector
) -> TweetPreprocessed:
    """The pure step: minimise the text, check it has something to score, tell its language
    and measure it."""
    text = policy.ingress(tweet.text)
    if not normalize(text):
        raise InvalidMessage("text is empty once control characters and whitespace are removed")
    return TweetPreprocessed(
        id=tweet.id,
        text=text,
        features=text_features(text),
        source=tweet.source,
        submitted_at=tweet.submitted_at,
        reply_to=tweet.reply_to,
        key_name=tweet.key_name,
        language=detector.detect(text),
    )


class PreprocessHandler:
    """Decodes a batch of submitted tweets and turns each valid one into its preprocessed form."""

    def __init__(
        self, max_bytes: int, policy: TextPolicy, detector: LanguageDetector | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.policy = policy
        self.detector = detector or LanguageDetector()

    async def __call__(self, batch: Sequence[Msg]) -> Outcome:
        events, rejected = decode_batch(batch, TweetSubmitted, self.max_bytes)
        outcome = Outcome(rejected=rejected)
        for index, tweet in events:
            try:
                preprocessed = preprocess_tweet(tweet, self.policy, self.detector)
            except InvalidMessage as error:
                outcome.rejected[index] = str(error)
                if tweet.reply_to:  # a caller waits for an answer: tell it why, now
                    failed = ScoringFailed(id=tweet.id, reason=str(error))
                    outcome.replies.append(
                        (index, tweet.reply_to, failed.model_dump_json().encode())
                    )
                continue
            outcome.outputs.append(
                Outgoing(
                    subjects.TWEETS_PREPROCESSED,
                    preprocessed.model_dump_json().encode(),
                    f"preprocessed-{tweet.id}",
                    index,
                )
            )
        return outcome
