"""Each preprocessing step on and off, the config round trip through MLflow params, and
properties that must hold for any input (no crash, idempotent normalize, no serving skew)."""

from __future__ import annotations

import csv
import itertools
import pickle
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import emoji
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.preprocessing import (
    MENTION_TOKEN,
    NEGATIONS,
    STOP_WORDS,
    URL_TOKEN,
    PreprocessConfig,
    TextPreprocessor,
    normalize,
    text_features,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "airline_tweets.csv"

TWEET = (
    "Just flew w/ @AirParadis & I'm in LOVE! Epic service, comfy seats, good prices at "
    "https://airparadis.com #bestflight #AirParadis"
)

STEPS = [f.name for f in fields(PreprocessConfig)]
ALL_OFF = PreprocessConfig(**dict.fromkeys(STEPS, False))

# Any text, control characters included (hypothesis leaves out surrogates by default).
any_text = st.text(max_size=2000)
tweet_like_text = st.text(
    st.sampled_from(list("abc XYZ#@&;:/.!'_0\u00e9\U0001f621\u200d\x00\n")), max_size=200
)
# Hypothesis favours short strings; repeating a tweet-like one reaches 2,000 characters.
long_text = st.builds(
    lambda text, times: (text * times)[:2000], tweet_like_text, st.integers(1, 60)
)
# Emojis with their modifiers, joiners and tags, and the ASCII that can start a keycap.
emoji_heavy_text = st.lists(
    st.sampled_from(
        [*"ab #*1 \u00e9\u200d\ufe0f\u20e3", "😡", "👨", "👩", "🏴", "\U000e0067", "\U000e007f",
         "©", "🇫", "🇷", "👍🏽", "❤", "\U0001fae8"]
    ),
    max_size=40,
).map("".join)  # fmt: skip
any_config = st.builds(PreprocessConfig, **{step: st.booleans() for step in STEPS})

# The first example pays for loading NLTK, wordsegment and lemminflect (seconds); no
# example database, so that unit tests write nothing into the checkout.
property_settings = settings(deadline=None, max_examples=40, database=None)


def only(**steps: bool) -> TextPreprocessor:
    return TextPreprocessor(replace(ALL_OFF, **steps))


def without(step: str) -> TextPreprocessor:
    return TextPreprocessor(replace(PreprocessConfig(), **{step: False}))


# The whole pipeline


def test_default_pipeline_gives_the_expected_tokens_for_the_reference_tweet() -> None:
    assert TextPreprocessor().tokens(TWEET) == [
        "fly", "w", MENTION_TOKEN, "love", "epic", "service", "comfy", "seat", "good",
        "price", URL_TOKEN, "best", "flight", "air", "paradis",
    ]  # fmt: skip


def test_call_joins_the_tokens_with_spaces() -> None:
    preprocessor = TextPreprocessor()
    assert preprocessor(TWEET) == " ".join(preprocessor.tokens(TWEET))


def test_negation_survives_the_default_pipeline() -> None:
    tokens = TextPreprocessor().tokens("Not great, the crew wasn't friendly &amp; I don't care")
    assert tokens == ["not", "great", "crew", "wasn't", "friendly", "don't", "care"]


# HTML unescape


def test_html_unescape_turns_entities_into_characters() -> None:
    assert only(html_unescape=True).tokens("fish &amp; chips &lt;3") == ["fish", "&", "chips", "<3"]


def test_html_unescape_undoes_double_escaping() -> None:
    assert only(html_unescape=True).tokens("&amp;quot;hi&amp;quot;") == ['"hi"']


def test_without_html_unescape_entities_stay_and_leave_their_names() -> None:
    assert only().tokens("fish &amp; chips") == ["fish", "&amp;", "chips"]
    assert "amp" in without("html_unescape").tokens("fish &amp; chips")


# Lowercase


def test_lowercase_lowers_every_word() -> None:
    assert only(lowercase=True).tokens("in LOVE Epic") == ["in", "love", "epic"]


def test_without_lowercase_case_stays() -> None:
    assert only().tokens("in LOVE") == ["in", "LOVE"]
    assert "LOVE" in without("lowercase").tokens(TWEET)


# URL and mention tokens


def test_urls_and_mentions_become_tokens() -> None:
    tokens = only(url_mention_tokens=True).tokens(TWEET)
    assert URL_TOKEN in tokens
    assert MENTION_TOKEN in tokens
    assert not any("airparadis.com" in token or token.startswith("@") for token in tokens)


def test_url_token_leaves_trailing_punctuation_out() -> None:
    assert only(url_mention_tokens=True).tokens("see https://x.com/a.") == ["see", URL_TOKEN, "."]
    assert only(url_mention_tokens=True).tokens("www.x.com/a?b=c, ok") == [URL_TOKEN, ",", "ok"]


def test_email_address_is_not_a_mention() -> None:
    assert only(url_mention_tokens=True).tokens("mail a@b.com") == ["mail", "a@b.com"]


def test_special_tokens_survive_lowercase_punctuation_and_stop_words() -> None:
    for preprocessor in (TextPreprocessor(), without("lowercase"), without("tokenize")):
        tokens = preprocessor.tokens("@bob see http://ap.air/x!")
        assert tokens == [MENTION_TOKEN, "see", URL_TOKEN]


def test_without_url_mention_tokens_urls_break_into_words() -> None:
    tokens = without("url_mention_tokens").tokens(TWEET)
    assert URL_TOKEN not in tokens
    assert MENTION_TOKEN not in tokens
    start = tokens.index("https")
    assert tokens[start : start + 3] == ["https", "airparadis", "com"]


# Hashtag split


def test_hashtag_split_segments_run_together_words() -> None:
    assert only(split_hashtags=True).tokens("#bestflight #neveragain") == [
        "best", "flight", "never", "again",
    ]  # fmt: skip


def test_hashtag_split_follows_case_changes_and_underscores() -> None:
    preprocessor = only(split_hashtags=True)
    assert preprocessor.tokens("#AirParadis #LAX_to_JFK") == ["Air", "Paradis", "LAX", "to", "JFK"]
    assert preprocessor.tokens("#café_au_lait #flight370") == [
        "café",
        "au",
        "lait",
        "flight",
        "370",
    ]


def test_reference_tweet_hashtags_give_best_and_flight() -> None:
    tokens = TextPreprocessor().tokens(TWEET)
    assert tokens[-4:] == ["best", "flight", "air", "paradis"]


def test_without_hashtag_split_the_tag_stays_one_word() -> None:
    assert only().tokens("#bestflight") == ["#bestflight"]
    assert "bestflight" in without("split_hashtags").tokens(TWEET)


# Punctuation and special characters


def test_punctuation_and_special_characters_are_removed() -> None:
    tokens = only(strip_punctuation=True).tokens("LOVE! Epic, comfy... seats?! a_b ~ c*d")
    assert tokens == ["LOVE", "Epic", "comfy", "seats", "a", "b", "c", "d"]


def test_apostrophes_inside_words_survive_and_quotes_go() -> None:
    tokens = only(strip_punctuation=True).tokens("I don't 'like' it, don\u2019t")
    assert tokens == ["I", "don't", "like", "it", "don't"]


def test_without_punctuation_strip_the_tokenizer_keeps_punctuation() -> None:
    assert only(tokenize=True).tokens("in LOVE!") == ["in", "LOVE", "!"]


# Control characters


def test_control_characters_separate_words_and_format_characters_go() -> None:
    # NUL between words was once removed, gluing "bad" and "flight" into "badflight".
    text = "bad\x00flight\tdelayed\r\n  again\x1f dela\u200byed"
    tokens = only(strip_control=True).tokens(text)
    assert tokens == ["bad", "flight", "delayed", "again", "delayed"]
    assert not any(chr(code) in "".join(tokens) for code in range(0x20))


def test_without_control_strip_control_characters_stay() -> None:
    assert only().tokens("fl\x00ight") == ["fl\x00ight"]


# Tokenization


def test_tokenizer_splits_punctuation_keeps_contractions_and_shortens_lengthening() -> None:
    tokens = only(tokenize=True).tokens("I'm in LOVE!!! sooooo happy :)")
    assert tokens == ["I'm", "in", "LOVE", "!", "!", "!", "sooo", "happy", ":)"]


def test_without_tokenizer_text_splits_on_whitespace() -> None:
    assert only().tokens("I'm in LOVE!!!") == ["I'm", "in", "LOVE!!!"]


# Lemmatization


def test_lemmatize_reduces_inflected_words() -> None:
    tokens = only(lemmatize=True).tokens("comfy seats good prices flew hours")
    assert tokens == ["comfy", "seat", "good", "price", "fly", "hour"]


def test_lemmatize_leaves_base_words_and_negations_alone() -> None:
    words = ["crew", "best", "broken", "not", "never", "nothing", "does"]
    assert only(lemmatize=True).tokens(" ".join(words)) == words


def test_without_lemmatize_inflections_stay() -> None:
    assert "seats" in without("lemmatize").tokens(TWEET)


# Stop words


def test_stop_words_go_and_negations_stay() -> None:
    tokens = only(remove_stopwords=True).tokens("The flight at noon was not great")
    assert tokens == ["flight", "noon", "not", "great"]


@pytest.mark.parametrize(
    "negation",
    ["not", "no", "never", "nor", "n't", "don't", "isn't", "wasn't", "can't", "won't", "didn't"],
)
def test_every_negation_survives_the_default_pipeline(negation: str) -> None:
    assert TextPreprocessor().tokens(f"the {negation} at") == [negation]


def test_stop_words_are_matched_whatever_the_case() -> None:
    assert only(remove_stopwords=True).tokens("The AT flight") == ["flight"]


def test_stop_word_list_holds_no_negation() -> None:
    assert STOP_WORDS.isdisjoint(NEGATIONS)
    assert {"the", "at", "a", "is"} <= STOP_WORDS


def test_without_stop_word_removal_the_and_at_stay() -> None:
    tokens = without("remove_stopwords").tokens(TWEET)
    assert "at" in tokens
    assert "in" in tokens


# Emojis


def test_emojis_become_words() -> None:
    assert only(emojis_to_words=True).tokens("so angry 😡") == ["so", "angry", "enraged", "face"]


def test_emoji_sequences_become_one_name() -> None:
    assert only(emojis_to_words=True).tokens("👨\u200d👩\u200d👧") == [
        "family",
        "man",
        "woman",
        "girl",
    ]


def test_emojis_newer_than_pythons_unicode_data_survive_control_strip() -> None:
    assert only(strip_control=True, emojis_to_words=True).tokens("\U0001fae8") == [
        "shaking",
        "face",
    ]


def test_emoji_words_survive_the_default_pipeline() -> None:
    assert TextPreprocessor().tokens("delayed again 😡") == ["delay", "enrage", "face"]


def test_without_emojis_to_words_punctuation_strip_drops_emojis() -> None:
    assert without("emojis_to_words").tokens("delayed again 😡") == ["delay"]
    assert only().tokens("so 😡") == ["so", "😡"]


# Config and MLflow params


def test_as_params_gives_one_prefixed_flag_per_step() -> None:
    params = PreprocessConfig(lemmatize=False).as_params()
    assert params == {f"preprocess.{step}": step != "lemmatize" for step in STEPS}


def test_from_params_inverts_as_params_for_every_combination() -> None:
    for flags in itertools.product([False, True], repeat=len(STEPS)):
        config = PreprocessConfig(**dict(zip(STEPS, flags, strict=True)))
        as_mlflow_strings = {key: str(value) for key, value in config.as_params().items()}
        assert PreprocessConfig.from_params(config.as_params()) == config
        assert PreprocessConfig.from_params(as_mlflow_strings) == config


def test_from_params_ignores_other_params_and_defaults_missing_steps() -> None:
    params = {"model": "logreg", "C": "0.5", "preprocess.lowercase": "false"}
    assert PreprocessConfig.from_params(params) == PreprocessConfig(lowercase=False)


def test_from_params_rejects_an_unknown_step() -> None:
    with pytest.raises(ValueError, match=r"preprocess\.spell_check"):
        PreprocessConfig.from_params({"preprocess.spell_check": "True"})


def test_from_params_rejects_a_value_that_is_not_a_boolean() -> None:
    with pytest.raises(ValueError, match=r"preprocess\.lowercase"):
        PreprocessConfig.from_params({"preprocess.lowercase": "maybe"})


# The preprocessor as an object


def test_transform_preprocesses_a_batch_in_order() -> None:
    preprocessor = TextPreprocessor()
    texts = ["Love it 😍", "Not great", ""]
    assert preprocessor.transform(texts) == [preprocessor(text) for text in texts]
    assert preprocessor.transform(iter(texts))[2] == ""


def test_transform_rejects_a_single_string() -> None:
    with pytest.raises(TypeError, match="not a single str"):
        TextPreprocessor().transform("one tweet")


def test_tokens_rejects_what_is_not_text() -> None:
    with pytest.raises(TypeError, match="float"):
        TextPreprocessor().tokens(float("nan"))  # type: ignore[arg-type]


def test_unpickled_preprocessor_gives_the_same_tokens() -> None:
    preprocessor = TextPreprocessor(PreprocessConfig(lemmatize=False))
    restored = pickle.loads(pickle.dumps(preprocessor))
    assert restored.config == preprocessor.config
    assert restored.tokens(TWEET) == preprocessor.tokens(TWEET)


def test_importing_the_module_loads_no_language_data() -> None:
    code = (
        "import sys, shared.preprocessing as p; "
        "print('nltk' in sys.modules, p._word_segmenter.cache_info().currsize)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "0"]


# normalize


def test_normalize_unescapes_composes_removes_control_and_collapses_whitespace() -> None:
    assert normalize("  fish &amp; chips\tcafe\u0301\x00 \r\n ok  ") == "fish & chips café ok"


def test_normalize_removes_lone_surrogates_and_keeps_emoji_sequences() -> None:
    assert normalize("a\ud800b") == "ab"
    assert normalize("👨\u200d👩\u200d👧 🫨") == "👨\u200d👩\u200d👧 🫨"


def test_normalize_is_idempotent_when_removal_completes_an_entity() -> None:
    text = "&am&shy;p;amp;"
    assert normalize(text) == "&"
    assert normalize(normalize(text)) == normalize(text)


# text_features


def test_text_features_counts_the_reference_tweet() -> None:
    features = text_features(TWEET)
    assert features.length == len(TWEET)
    assert (features.n_words, features.n_urls, features.n_mentions) == (18, 1, 1)
    assert (features.n_hashtags, features.n_emojis) == (2, 0)


def test_text_features_counts_emojis_and_sequences_once() -> None:
    assert text_features("😡😡 no 👨\u200d👩\u200d👧").n_emojis == 3


def test_text_features_ignores_anchors_emails_and_ranks() -> None:
    features = text_features("https://x.com/@team/#faq mail a@b.com we are #1")
    assert (features.n_urls, features.n_mentions, features.n_hashtags) == (1, 0, 0)


# Properties


@property_settings
@given(text=st.one_of(any_text, long_text))
def test_any_text_gives_non_empty_string_tokens(text: str) -> None:
    tokens = TextPreprocessor().tokens(text)
    assert all(isinstance(token, str) and token and not token.isspace() for token in tokens)


@property_settings
@given(text=st.one_of(any_text, tweet_like_text, long_text), config=any_config)
def test_any_text_under_any_config_gives_string_tokens(text: str, config: PreprocessConfig) -> None:
    tokens = TextPreprocessor(config).tokens(text)
    assert all(isinstance(token, str) and token for token in tokens)


@property_settings
@given(text=st.one_of(any_text, tweet_like_text, long_text))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@property_settings
@given(text=st.one_of(any_text, tweet_like_text, long_text))
def test_normalized_text_gives_the_tokens_of_the_raw_text(text: str) -> None:
    # Training sees raw tweets, serving may see the worker's normalized text: no skew.
    preprocessor = TextPreprocessor()
    assert preprocessor.tokens(normalize(text)) == preprocessor.tokens(text)


@property_settings
@given(text=st.one_of(any_text, tweet_like_text, long_text))
def test_word_by_word_tokenization_matches_tokenizing_the_whole_text(text: str) -> None:
    # With punctuation gone, words are tokenised one by one and cached: same tokens.
    stripped = " ".join(only(strip_punctuation=True).tokens(text))
    whole = only(tokenize=True).tokens(stripped)
    assert only(strip_punctuation=True, tokenize=True).tokens(text) == whole


@property_settings
@given(text=emoji_heavy_text)
def test_emoji_words_and_counts_match_the_emoji_package_on_the_whole_text(text: str) -> None:
    # Only the non-ASCII runs go through the emoji package; that must not split an emoji.
    whole = emoji.replace_emoji(text, replace=lambda _, data: f" {data['en'].strip(':')} ")
    assert only(emojis_to_words=True).tokens(text) == whole.replace("_", " ").split()
    assert text_features(text).n_emojis == emoji.emoji_count(text)


@property_settings
@given(text=st.one_of(any_text, tweet_like_text, long_text))
def test_text_features_are_non_negative_and_length_is_the_character_count(text: str) -> None:
    features = text_features(text)
    assert features.length == len(text)
    counts = features.model_dump().values()
    assert all(count >= 0 for count in counts)


@pytest.mark.parametrize(
    "text",
    [
        "1" * 2000,  # NLTK's phone-number pattern backtracks on digit runs
        "#" + "ab" * 999,  # wordsegment recurses once per word
        "#a" * 1000,
        "\U0001f621" * 1000,
        "http://" + "a" * 1993,
        "&amp;" * 400,
        "'" * 2000,
        ". " * 1000,  # NLTK's ellipsis pattern spans whitespace
    ],
    ids=["digits", "long-hashtag", "many-hashtags", "emojis", "url", "entities", "quotes", "dots"],
)
def test_long_adversarial_text_gives_string_tokens(text: str) -> None:
    for config in (
        PreprocessConfig(),
        ALL_OFF,
        replace(PreprocessConfig(), strip_punctuation=False),
    ):
        assert all(isinstance(token, str) for token in TextPreprocessor(config).tokens(text))


def test_lone_surrogates_break_no_config() -> None:
    text = "a\ud800b #x\udfff @y\ud800 http://x.com/\ud800 😡\ud83d &#xd800;"
    for flags in itertools.product([False, True], repeat=len(STEPS)):
        config = PreprocessConfig(**dict(zip(STEPS, flags, strict=True)))
        assert all(isinstance(token, str) for token in TextPreprocessor(config).tokens(text))


# The shared fixture


def test_fixture_holds_balanced_airline_tweets_that_all_keep_tokens() -> None:
    with FIXTURE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40
    assert sorted({row["target"] for row in rows}) == ["0", "4"]
    assert sum(row["target"] == "4" for row in rows) == 20
    preprocessor = TextPreprocessor()
    assert all(preprocessor.tokens(row["text"]) for row in rows)
