"""Data minimisation: what is left of a tweet or a comment before it is kept anywhere.

`scrub` replaces what identifies a person by a typed placeholder: e-mail addresses (also
spelled out, "jane dot doe at gmail dot com", "jane[at]example[.]com") by `<email>`, phone
numbers (international and national forms) by `<phone>`, the path, query and fragment of a
URL by `<path>` (its scheme and host stay: "https://host/<path>"), and @handles other than the
airline's own by `<handle>`. Flight numbers, times, prices, dates and plain numbers stay.
It is pure, idempotent and fast (a few µs a tweet, README "Security and personal data").

`TextPolicy` applies the `text_storage` setting: `full` keeps text as written, `scrubbed` (the
default) scrubs it at the ingress (gateway, preprocess) and again, as a last guard, before it
is written to ClickHouse or put in an email, `none` scrubs it at the ingress (the model still
reads it) and keeps no text at all.

The placeholders are chosen so that the models read a scrubbed tweet as they read the raw one:
shared/preprocessing.py turns `<handle>` into its mention token as it does an @handle, and
reads "https://host/<path>" as one URL.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from shared.settings import Settings

TextStorage = Literal["full", "scrubbed", "none"]

EMAIL = "<email>"
PHONE = "<phone>"
HANDLE = "<handle>"
PATH = "<path>"

# Keys of an alert's details (at any depth) whose value quotes what a person wrote.
QUOTED_FIELDS = frozenset({"tweet", "comment", "text"})

# --- URLs: scheme and host stay, the rest (path, query, fragment) goes ---

_URL = re.compile(
    r"(?P<scheme>\bhttps?://|\bwww\.)"
    r"(?:[^\s/?#@<>\"']{1,200}@)?"  # user:password@ is dropped
    r"(?P<host>[\w.-]{0,253}[\w-](?::\d{1,5})?)"
    # what follows the host ends before trailing punctuation, as in shared/preprocessing.py
    r"(?P<rest>[/?#](?:[^\s<>\"]*[^\s<>\".,!?;:'()\[\]{}])?)?",
    re.IGNORECASE,
)


def _url(match: re.Match[str]) -> str:
    rest = match["rest"]
    kept = f"{match['scheme']}{match['host']}"
    return kept + (f"/{PATH}" if rest and rest != "/" else rest or "")


# --- E-mail addresses, written or spelled out ---

_EMAIL = re.compile(
    r"(?<![\w+-])(?<!\w\.)[\w+-]{1,64}(?:\.[\w+-]{1,64}){0,8}"
    r"@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,24}(?![\w-])"
)
_TLDS = (
    "com|net|org|edu|gov|int|mil|info|biz|io|co|me|eu|fr|uk|de|es|it|nl|be|ch|at|lu|ie|pt|"
    "pl|se|no|dk|fi|ca|us|au|nz|jp|br|in|ru|cn|ma|tn|dz|sn|re|mq|gp"
)
_BRACKETED = r"\s*[\[({<]\s*WORD\s*[\])}>]\s*"
_AT_BRACKETED = _BRACKETED.replace("WORD", "at")
_DOT_BRACKETED = _BRACKETED.replace("WORD", r"(?:dot|\.)")
_DOT_SPOKEN = rf"(?:{_DOT_BRACKETED}|\s+dot\s+)"
_DOT_ANY = rf"(?:{_DOT_SPOKEN}|\.)"
_OBFUSCATED_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w+-]{{1,64}}(?:{_DOT_ANY}[\w+-]{{1,64}}){{0,4}}"
    # "jane[at]example[.]com", "jane (at) example.org": a bracketed "at" and any domain
    rf"(?:{_AT_BRACKETED}[\w-]{{1,63}}(?:{_DOT_ANY}[\w-]{{1,63}}){{0,3}}{_DOT_ANY}[^\W\d_]{{2,24}}"
    # "jane dot doe at gmail dot com", "jane @ gmail dot com": a plain "at" or "@" needs the
    # domain's dots spoken and a known TLD ("online at www.site.com" is no address)
    rf"|\s+(?:at|@)\s+[\w-]{{1,63}}(?:{_DOT_SPOKEN}[\w-]{{1,63}}){{0,3}}{_DOT_SPOKEN}(?:{_TLDS}))"
    r"(?![\w-])",
    re.IGNORECASE,
)


def _maybe_obfuscated(text: str) -> bool:
    """Whether a spelled-out address may be there: each has a spoken dot or a bracket."""
    lowered = text.lower()
    return "dot" in lowered or (
        ("at" in lowered or "." in lowered) and any(bracket in text for bracket in "[({<")
    )


# --- Phone numbers ---

# A candidate: an optional country code (+33, 0033, with the UK's "(0)"), an optional area
# code in parentheses, then digits in groups of 1 to 4 separated by at most one space, dot or
# hyphen. Not inside a word (AP214), a URL, a time (10:45) or a decimal. `_is_phone` decides.
_PHONE = re.compile(
    r"(?<![\w+/.,-])(?<![\w][.,-])"
    r"(?>(?P<plus>(?:\+|\b00)\d{1,3}[ .-]?(?:\(0\)[ .-]?)?)?"
    r"(?P<area>\(\d{1,4}\)[ .-]?)?"
    r"\d{1,4}(?:[ .-]?\d{1,4}){0,7})"
    r"(?![\w€$£%]|[.,:/-]\d)"
)
_DIGIT = re.compile(r"\d")
_GROUPS = re.compile(r"\d+")
_DATE = re.compile(r"\d{1,2}[./-]\d{1,2}[./-]\d{4}|\d{4}[./-]\d{1,2}[./-]\d{1,2}")
_LOCAL_NUMBER = re.compile(r"(\d{3})-(\d{4})\Z")  # 555-1234


def _is_phone(candidate: str, plus: str | None, area: str | None) -> bool:
    groups = _GROUPS.findall(candidate)
    digits = sum(len(group) for group in groups)
    if plus:
        return 8 <= digits <= 15
    if area:
        return 9 <= digits <= 15
    if local := _LOCAL_NUMBER.match(candidate):
        return not (local[1].endswith("00") and local[2].endswith("00"))  # 800-1000: a range
    if not 9 <= digits <= 15 or _DATE.search(candidate):
        return False
    thousands = len(groups) >= 2 and len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
    if thousands:  # 100 000 000, 1.200.000: an amount, not a phone
        return False
    return candidate.startswith("0") or len(groups) >= 3


# --- Handles ---

# Any "@name" left once addresses are gone: chained replies ("@bob@jane") and "lol@bob" too;
# not the "@" before a URL ("@http://..."), whose host stays.
_HANDLE = re.compile(r"@(\w{1,50})\b(?!://)")


def scrub(text: str, own_handles: Iterable[str] = ("airparadis",)) -> str:
    """`text` with e-mail addresses, phone numbers, URL paths and queries, and @handles other
    than `own_handles` (compared case-insensitively) replaced by typed placeholders.

    HTML entities are read as the characters they stand for ("jane&#64;example.com" is an
    address); a text in which something is replaced comes back unescaped, any other as given.
    """
    own = own_handles if isinstance(own_handles, frozenset) else _lowered(own_handles)
    scrubbed = _scrub(text, own)
    if "&" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            scrubbed_unescaped = _scrub(unescaped, own)
            if scrubbed_unescaped != unescaped:
                return scrubbed_unescaped
    return scrubbed


def _lowered(handles: Iterable[str]) -> frozenset[str]:
    return frozenset(handle.lstrip("@").lower() for handle in handles)


def _scrub(text: str, own: frozenset[str]) -> str:
    # The cheap `in` tests skip the regexes most tweets have nothing for.
    if "://" in text or "www." in text.lower():
        text = _URL.sub(_url, text)
    if "@" in text and _written_address(text):
        text = _EMAIL.sub(EMAIL, text)
    if _maybe_obfuscated(text):
        text = _OBFUSCATED_EMAIL.sub(EMAIL, text)
    if _DIGIT.search(text):
        text = _PHONE.sub(_phone, text)
    if "@" in text:
        text = _HANDLE.sub(lambda match: _handle(match, own), text)
    return text


def _written_address(text: str) -> bool:
    """Whether an "@" follows a character an address can hold (a mention follows a space)."""
    at = text.find("@")
    while at >= 0:
        if at > 0 and (text[at - 1].isalnum() or text[at - 1] in "_.+-"):
            return True
        at = text.find("@", at + 1)
    return False


def _phone(match: re.Match[str]) -> str:
    candidate = match.group()
    return PHONE if _is_phone(candidate, match["plus"], match["area"]) else candidate


def _handle(match: re.Match[str], own: frozenset[str]) -> str:
    return match.group() if match[1].lower() in own else HANDLE


@dataclass(frozen=True)
class TextPolicy:
    """What text the platform keeps, from the `text_storage` setting."""

    storage: TextStorage = "scrubbed"
    own_handles: frozenset[str] = frozenset({"airparadis"})

    @classmethod
    def of(cls, settings: Settings) -> TextPolicy:
        return cls(settings.text_storage, _lowered(settings.own_handles))

    def ingress(self, text: str) -> str:
        """What travels on the bus past the ingress: the text as written under `full`, else
        scrubbed (under `none` the model still reads the scrubbed text; nothing keeps it)."""
        return text if self.storage == "full" else scrub(text, self.own_handles)

    def stored(self, text: str) -> str:
        """What is written to ClickHouse or put in an email: as written, scrubbed, or ""."""
        if self.storage == "full":
            return text
        if self.storage == "none":
            return ""
        return scrub(text, self.own_handles)

    def past_ingress(self, text: str) -> str:
        """What is stored of a text the ingress already minimised (every scored tweet went
        through preprocess): as it is, or "" under `none`; no second scrub per tweet."""
        return "" if self.storage == "none" else text

    def stored_details(self, details: Mapping[str, Any]) -> dict[str, Any]:
        """An alert's details with every quoted text (QUOTED_FIELDS, at any depth) as stored."""
        return {key: self._stored_value(key, value) for key, value in details.items()}

    def _stored_value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            return self.stored(value) if key in QUOTED_FIELDS else value
        if isinstance(value, Mapping):
            return self.stored_details(value)
        if isinstance(value, list):
            return [self._stored_value(key, item) for item in value]
        return value
