"""The one text preprocessing used by training and by serving, so the two never disagree.

`TextPreprocessor` turns a tweet into tokens through switchable steps (`PreprocessConfig`),
`normalize` is the model-independent clean-up done by the preprocess worker, and
`text_features` gives the counts watched for drift. Language data (NLTK's tokenizer, the
wordsegment and lemminflect tables) loads lazily on first use, never at import.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self

import emoji
import wordsegment

from shared.messages import TextFeatures
from shared.scrub import HANDLE as SCRUBBED_HANDLE
from shared.scrub import PATH as SCRUBBED_PATH

if TYPE_CHECKING:
    from nltk.tokenize import TweetTokenizer

__all__ = [
    "MENTION_TOKEN",
    "NEGATIONS",
    "STOP_WORDS",
    "URL_TOKEN",
    "PreprocessConfig",
    "TextPreprocessor",
    "normalize",
    "text_features",
]

URL_TOKEN = "<url>"
MENTION_TOKEN = "<mention>"

# Placeholders carry URLs and mentions through lowercasing, punctuation stripping and
# tokenisation untouched (plain lowercase letters survive all three); they become
# URL_TOKEN / MENTION_TOKEN once the text is split into tokens. A tweet that types a
# placeholder itself gets the token too: an accepted collision.
_URL_PLACEHOLDER = "xxurlxx"
_MENTION_PLACEHOLDER = "xxmentionxx"
_PLACEHOLDER_TOKENS = {_URL_PLACEHOLDER: URL_TOKEN, _MENTION_PLACEHOLDER: MENTION_TOKEN}

# Negations flip the meaning of a tweet ("not great"), so they are never stop words,
# whatever form the tokenizer leaves them in: whole words, contractions with or without
# the apostrophe, and the stems NLTK's own word tokenizer splits off ("didn" + "'t").
NEGATIONS: frozenset[str] = frozenset(
    {
        "not", "no", "never", "nor", "n't", "none", "nobody", "nothing", "nowhere",
        "neither", "cannot",
        "ain't", "aren't", "can't", "couldn't", "didn't", "doesn't", "don't", "hadn't",
        "hasn't", "haven't", "isn't", "mightn't", "mustn't", "needn't", "shan't",
        "shouldn't", "wasn't", "weren't", "won't", "wouldn't",
        "aint", "arent", "cant", "couldnt", "didnt", "doesnt", "dont", "hadnt", "hasnt",
        "havent", "isnt", "mightnt", "mustnt", "neednt", "shant", "shouldnt", "wasnt",
        "werent", "wont", "wouldnt",
        "ain", "aren", "couldn", "didn", "doesn", "don", "hadn", "hasn", "haven", "isn",
        "mightn", "mustn", "needn", "shan", "shouldn", "wasn", "weren", "won", "wouldn",
    }
)  # fmt: skip

# NLTK's English stop word list (nltk_data corpora/stopwords/english, 2024 edition) minus
# every negation above. Shipped as a constant because the corpus is a download.
STOP_WORDS: frozenset[str] = frozenset(
    {
        "a", "about", "above", "after", "again", "against", "all", "am", "an", "and",
        "any", "are", "as", "at", "be", "because", "been", "before", "being", "below",
        "between", "both", "but", "by", "can", "d", "did", "do", "does", "doing", "down",
        "during", "each", "few", "for", "from", "further", "had", "has", "have", "having",
        "he", "he'd", "he'll", "her", "here", "hers", "herself", "he's", "him", "himself",
        "his", "how", "i", "i'd", "if", "i'll", "i'm", "in", "into", "is", "it", "it'd",
        "it'll", "it's", "its", "itself", "i've", "just", "ll", "m", "ma", "me", "more",
        "most", "my", "myself", "now", "o", "of", "off", "on", "once", "only", "or",
        "other", "our", "ours", "ourselves", "out", "over", "own", "re", "s", "same",
        "she", "she'd", "she'll", "she's", "should", "should've", "so", "some", "such",
        "t", "than", "that", "that'll", "the", "their", "theirs", "them", "themselves",
        "then", "there", "these", "they", "they'd", "they'll", "they're", "they've",
        "this", "those", "through", "to", "too", "under", "until", "up", "ve", "very",
        "was", "we", "we'd", "we'll", "we're", "were", "we've", "what", "when", "where",
        "which", "while", "who", "whom", "why", "will", "with", "y", "you", "you'd",
        "you'll", "your", "you're", "yours", "yourself", "yourselves", "you've",
    }
)  # fmt: skip

_FUNCTION_WORDS = STOP_WORDS | NEGATIONS

# A URL ends before trailing punctuation, so "see https://x.com/a." keeps its full stop.
# The scrubber's "https://host/<path>" (shared/scrub.py) is one URL, as the one it replaced.
_URL_RE = re.compile(
    rf"(?:\bhttps?://|\bwww\.)[^\s<>\"]*(?:{re.escape(SCRUBBED_PATH)}|[^\s<>\".,!?;:'()\[\]{{}}])",
    re.IGNORECASE,
)
# The look-behind keeps e-mail addresses (name@example.com) from counting as mentions. The
# scrubber's `<handle>` is the mention it replaced.
_MENTION_RE = re.compile(rf"(?<![\w@])@\w+|{re.escape(SCRUBBED_HANDLE)}")
# A hashtag needs a letter ("#1" is a rank, not a tag); "&#39;" is an entity, not a tag.
_HASHTAG_RE = re.compile(r"(?<![\w&#])#(\w*[^\W\d_]\w*)")
# The emoji package scans text one character at a time in Python, so it only gets the
# runs that can hold an emoji: every emoji is non-ASCII but the digit, "#" or "*" that
# starts a keycap ("1\ufe0f\u20e3"), so cutting at other ASCII never splits one.
_EMOJI_RUN_RE = re.compile(r"[#*0-9]?[^\x00-\x7f]+")
# "sooooo" -> "sooo", as NLTK's reduce_len does: fewer spellings of one word.
_LENGTHENING_RE = re.compile(r"(.)\1{2,}")
_CAMEL_PART_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Everything but letters, digits, whitespace and apostrophes; "_" is \w, yet special.
_PUNCTUATION_RE = re.compile(r"[^\w\s']|_")
# The same as a translate table for ASCII text (most tweets), several times faster.
_ASCII_PUNCTUATION = str.maketrans(
    {chr(code): " " for code in range(128) if _PUNCTUATION_RE.match(chr(code))}
)
# Apostrophes survive only inside a word ("don't"), not as quotes around one.
_LONE_APOSTROPHE_RE = re.compile(r"(?<!\w)'|'(?!\w)")
# Phones type typographic apostrophes (U+2019); "don't" must meet the word lists as typed.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})

_ZERO_WIDTH_JOINER = "\u200d"
# wordsegment recurses once per word and its cost grows with the length: real hashtags
# are short, longer runs of letters are left whole rather than risk the recursion limit.
_MAX_SEGMENTED_CHARS = 30
# After its first pass, normalize only goes on when an entity was unescaped, which
# shortens the text, so the loop ends on its own; the bound guards a case nobody found.
_MAX_NORMALIZE_PASSES = 16

_LEMMA_CACHE_SIZE = 1 << 17
_TOKEN_CACHE_SIZE = 1 << 17
_HASHTAG_CACHE_SIZE = 1 << 14
_EMOJI_CACHE_SIZE = 1 << 14


@dataclass(frozen=True)
class PreprocessConfig:
    """Which steps run. Logged with every model, because serving must replay them."""

    html_unescape: bool = True
    lowercase: bool = True
    url_mention_tokens: bool = True
    split_hashtags: bool = True
    strip_punctuation: bool = True
    strip_control: bool = True
    tokenize: bool = True
    lemmatize: bool = True
    remove_stopwords: bool = True
    emojis_to_words: bool = True

    PARAM_PREFIX: ClassVar[str] = "preprocess."

    def as_params(self) -> dict[str, bool]:
        """Flat `preprocess.<step>` -> bool, as MLflow run parameters."""
        return {f"{self.PARAM_PREFIX}{f.name}": getattr(self, f.name) for f in fields(self)}

    def without_steps_off_in(self, switches: PreprocessConfig) -> PreprocessConfig:
        """This config with the steps `switches` turns off turned off too: a family's own
        default reduced by the CLI's `--no-<step>` flags."""
        return PreprocessConfig(
            **{f.name: getattr(self, f.name) and getattr(switches, f.name) for f in fields(self)}
        )

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> Self:
        """Rebuild the config from `as_params` output, or from MLflow's string copy of it.

        Keys without the `preprocess.` prefix are ignored (a run logs other parameters);
        a missing step keeps its default; an unknown step is an error, because a model
        trained with a step this code does not know cannot be served without skew.
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, bool] = {}
        for key, raw in params.items():
            if not key.startswith(cls.PARAM_PREFIX):
                continue
            name = key.removeprefix(cls.PARAM_PREFIX)
            if name not in known:
                raise ValueError(f"unknown preprocessing step {key!r}; known: {sorted(known)}")
            values[name] = _parse_bool(key, raw)
        return cls(**values)


def _parse_bool(key: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    raise ValueError(f"{key} must be a boolean (True/False), got {raw!r}")


class TextPreprocessor:
    """Turns tweets into tokens; the same object runs in training and behind the model.

    Steps, in order, each switched by `PreprocessConfig`: HTML unescape, control
    characters (with Unicode NFC and whitespace collapsed), emojis to words, URL and
    mention tokens, hashtag split, lowercase, punctuation, tokenisation, lemmatisation,
    stop words. With `html_unescape` and `strip_control` both on (the default) the first
    two steps are exactly `normalize`, so feeding it the worker's normalised text or the
    raw text gives the same tokens.

    Emojis become their CLDR names with underscores turned into spaces ("😡" -> "enraged
    face"), so they share vocabulary with the words of the tweet. Hashtags split on case
    changes and underscores ("#AirParadis" -> "Air Paradis"), and runs of one case are
    segmented by wordsegment, whose words come out lowercase ("#bestflight" -> "best
    flight"). Lemmas come from lemminflect without a POS tagger, the noun reading first,
    then adjective, verb, adverb ("seats" -> "seat", "crew" stays, "flew" -> "fly",
    "worst" -> "bad"); function words are left as they are.

    It also works as an sklearn transformer (`fit` learns nothing).
    """

    def __init__(self, config: PreprocessConfig = PreprocessConfig()) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def warm_up(self) -> None:
        """Load the language data the configured steps need (seconds), e.g. at start-up,
        so that the first tweet scored is not the slow one."""
        if self.config.tokenize:
            _tweet_tokenizer()
        if self.config.split_hashtags:
            _word_segmenter()
        if self.config.lemmatize:
            _lemma("seats")

    def tokens(self, text: str) -> list[str]:
        """The tokens of one tweet; an empty list when nothing is left."""
        if not isinstance(text, str):
            raise TypeError(f"expected a str, got {type(text).__name__}")
        config = self.config
        text = self._clean(text)
        if config.emojis_to_words:
            text = _emojis_to_words(text)
        # The cheap "in" tests skip regexes that start with a look-behind or \b, which
        # the re module tries at every position of every tweet.
        if config.url_mention_tokens:
            if "://" in text or "www." in text.lower():
                text = _URL_RE.sub(f" {_URL_PLACEHOLDER} ", text)
            if "@" in text or SCRUBBED_HANDLE in text:
                text = _MENTION_RE.sub(f" {_MENTION_PLACEHOLDER} ", text)
        if config.split_hashtags and "#" in text:
            text = _HASHTAG_RE.sub(_hashtag_words, text)
        if config.lowercase:
            text = text.lower()
        if config.strip_punctuation:
            text = _strip_punctuation(text)
        words = self._split(text)
        if config.url_mention_tokens:
            words = [_PLACEHOLDER_TOKENS.get(word, word) for word in words]
        if config.lemmatize:
            words = [_lemma(word) for word in words]
        if config.remove_stopwords:
            words = [word for word in words if word.lower() not in STOP_WORDS]
        return words

    def __call__(self, text: str) -> str:
        return " ".join(self.tokens(text))

    def transform(self, texts: Iterable[str]) -> list[str]:
        """Preprocess a batch: one space-joined string per text, in order."""
        if isinstance(texts, str):
            raise TypeError("transform expects an iterable of texts, not a single str")
        return [self(text) for text in texts]

    def fit(self, texts: Iterable[str], y: object = None) -> Self:
        """Nothing to learn; here so that the preprocessor can be an sklearn Pipeline step."""
        return self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """sklearn's clone() rebuilds the step from these."""
        return {"config": self.config}

    def set_params(self, **params: Any) -> Self:
        for name, value in params.items():
            if name != "config":
                raise ValueError(f"TextPreprocessor has no parameter {name!r}")
            self.config = value
        return self

    def _clean(self, text: str) -> str:
        config = self.config
        if config.html_unescape and config.strip_control:
            return normalize(text)
        if config.html_unescape:
            return _unescape_html(text)
        if config.strip_control:
            return _strip_control(text)
        return text

    def _split(self, text: str) -> list[str]:
        if not self.config.tokenize:
            return text.split()
        if self.config.strip_punctuation:
            # Without punctuation no TweetTokenizer pattern spans whitespace, so each
            # chunk is tokenised alone and cached: the same words recur across tweets.
            return [token for chunk in text.split() for token in _tweet_tokens(chunk)]
        return _tweet_tokenize(text)


def normalize(text: str) -> str:
    """Model-independent clean-up done by the preprocess worker: HTML unescape, Unicode NFC,
    control characters removed, whitespace collapsed and stripped.

    Idempotent: steps repeat until nothing changes, since removing a control character or
    composing a character can complete an entity ("&am\\u00adp;" -> "&amp;").
    """
    for _ in range(_MAX_NORMALIZE_PASSES):
        cleaned = _strip_control(_unescape_html(text))
        if cleaned == text:
            break
        text = cleaned
    return text


def text_features(text: str) -> TextFeatures:
    """Counts used for drift monitoring: length (characters), n_words, n_urls, n_mentions,
    n_hashtags, n_emojis."""
    urls = _URL_RE.findall(text)
    # A "#" or "@" inside a URL (an anchor, a Medium profile) is no hashtag or mention.
    without_urls = _URL_RE.sub(" ", text) if urls else text
    return TextFeatures(
        length=len(text),
        n_words=len(text.split()),
        n_urls=len(urls),
        n_mentions=len(_MENTION_RE.findall(without_urls)),
        n_hashtags=len(_HASHTAG_RE.findall(without_urls)),
        n_emojis=sum(_emoji_count(run) for run in _EMOJI_RUN_RE.findall(text)),
    )


def _unescape_html(text: str) -> str:
    # Scraped tweets are sometimes escaped twice ("&amp;quot;"): unescape to the end.
    while "&" in text:
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    return text


def _strip_control(text: str) -> str:
    text = " ".join(text.split())
    if not text.isprintable():
        text = " ".join("".join(_printable_or_empty(char) for char in text).split())
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return text


def _printable_or_empty(char: str) -> str:
    if char.isprintable():
        return char
    # A control character (NUL, a tab's kin) separates what is around it: "bad\x00flight" is
    # two words, not "badflight". Format characters (soft hyphen, zero-width space) sit inside
    # words and go.
    if unicodedata.category(char) == "Cc":
        return " "
    # Kept although not printable: the joiner and tag characters build emoji sequences
    # (families, regional flags), and code points unassigned in this Python's Unicode
    # database may be emojis that the emoji package already knows.
    if char == _ZERO_WIDTH_JOINER or "\U000e0020" <= char <= "\U000e007f":
        return char
    if unicodedata.category(char) == "Cn":
        return char
    return ""


def _emojis_to_words(text: str) -> str:
    if text.isascii():
        return text
    return _EMOJI_RUN_RE.sub(_emoji_run_words, text)


def _emoji_run_words(match: re.Match[str]) -> str:
    return _run_with_emoji_names(match.group())


@functools.lru_cache(maxsize=_EMOJI_CACHE_SIZE)
def _run_with_emoji_names(run: str) -> str:
    return emoji.replace_emoji(run, replace=_emoji_words)


def _emoji_words(chars: str, data: dict[str, str]) -> str:
    name = data.get("en", "")
    return f" {name.strip(':').replace('_', ' ')} "


@functools.lru_cache(maxsize=_EMOJI_CACHE_SIZE)
def _emoji_count(run: str) -> int:
    return int(emoji.emoji_count(run))


def _hashtag_words(match: re.Match[str]) -> str:
    return f" {_split_hashtag(match.group(1))} "


@functools.lru_cache(maxsize=_HASHTAG_CACHE_SIZE)
def _split_hashtag(body: str) -> str:
    pieces: list[str] = []
    for part in body.split("_"):
        # Non-ASCII parts stay whole: the camel-case pattern and wordsegment know only
        # a-z and 0-9 ("#café" must not lose its "é").
        pieces.extend(_CAMEL_PART_RE.findall(part) if part.isascii() else [part])
    words = [piece for piece in pieces if not piece.isdigit()]
    # Underscores and case changes are word boundaries the author chose ("#LAX_to_JFK",
    # "#AirParadis"); only a hashtag without them is left to wordsegment ("#bestflight").
    if len(words) == 1 and words[0].isascii() and len(words[0]) <= _MAX_SEGMENTED_CHARS:
        single = words[0]
        segmented: list[str] = _word_segmenter().segment(single)
        # A word left whole keeps its case ("#Lufthansa"); split words come out lowercase.
        if len(segmented) > 1:
            pieces[pieces.index(single)] = " ".join(segmented)
    return " ".join(pieces)


def _strip_punctuation(text: str) -> str:
    if text.isascii():
        text = text.translate(_ASCII_PUNCTUATION)
    else:
        text = _PUNCTUATION_RE.sub(" ", text.translate(_APOSTROPHES))
    if "'" in text:
        text = _LONE_APOSTROPHE_RE.sub(" ", text)
    # Only plain spaces are left between words: NLTK's regexes and str.split disagree on
    # what else is whitespace (U+001C to U+001F), and chunked tokenisation needs them to agree.
    return " ".join(text.split())


def _tweet_tokenize(text: str) -> list[str]:
    return _tweet_tokenizer().tokenize(_LENGTHENING_RE.sub(r"\1\1\1", text))


@functools.lru_cache(maxsize=_TOKEN_CACHE_SIZE)
def _tweet_tokens(chunk: str) -> tuple[str, ...]:
    return tuple(_tweet_tokenize(chunk))


@functools.lru_cache(maxsize=_LEMMA_CACHE_SIZE)
def _lemma(word: str) -> str:
    # Function words are closed-class; lemmatising them only does harm ("does" -> "doe").
    if not word.isalpha() or word.lower() in _FUNCTION_WORDS:
        return word
    # Imported here: lemminflect pulls in numpy, which a worker that never lemmatises
    # should not pay for; the cache above makes the import statement rare.
    import lemminflect

    lemmas = lemminflect.getAllLemmas(word)
    # Without a POS tagger the part of speech is a guess: the first reading in this order
    # wins, nouns first as WordNet does, adjectives before verbs so that "tired" and
    # "broken" stay adjectives instead of becoming "tire" and "break".
    for pos in ("NOUN", "ADJ", "VERB", "ADV"):
        if candidates := lemmas.get(pos):
            return str(candidates[0])
    return word


@functools.cache
def _tweet_tokenizer() -> TweetTokenizer:
    # Imported here: importing nltk takes seconds and loads modules serving never uses.
    from nltk.tokenize import TweetTokenizer

    # Phone-number matching is off: it backtracks badly on long digit runs (NLTK then
    # raises on a wall-clock timeout, which would make the output machine-dependent) and
    # a phone number says nothing about sentiment. Lengthening is reduced by
    # _LENGTHENING_RE instead of reduce_len, which compiles its pattern on every call.
    return TweetTokenizer(preserve_case=True, reduce_len=False, match_phone_numbers=False)


@functools.cache
def _word_segmenter() -> wordsegment.Segmenter:
    # Each call builds and fully loads its own instance before the cache publishes it,
    # so a thread racing the first load never sees half-loaded tables.
    segmenter = wordsegment.Segmenter()
    segmenter.load()
    return segmenter
