"""The scrubber on real-looking tweets: what identifies a person goes, what an airline's
tweet needs (flights, times, prices, dates, its own handle) stays; the text policies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.preprocessing import TextPreprocessor, text_features
from shared.scrub import TextPolicy, scrub
from shared.settings import Settings

SCRUBBED = [
    # international and national phone numbers
    ("Call me on +33 6 12 34 56 78 please", "Call me on <phone> please"),
    ("(555) 123-4567 is my cell", "<phone> is my cell"),
    ("UK office +44 20 7946 0958.", "UK office <phone>."),
    ("mon 06.12.34.56.78 svp", "mon <phone> svp"),
    ("+1 (555) 123-4567", "<phone>"),
    ("+33 (0)6 12 34 56 78", "<phone>"),
    ("0033612345678 or 0612345678", "<phone> or <phone>"),
    ("tel:+33612345678", "tel:<phone>"),
    ("text me 555-123-4567!!", "text me <phone>!!"),
    ("call 555-1234 now", "call <phone> now"),
    # e-mail addresses, written and spelled out
    ("mail jane.doe@gmail.com!", "mail <email>!"),
    ("lost my bag, write to jane dot doe at gmail dot com", "lost my bag, write to <email>"),
    ("jane[at]example[.]com", "<email>"),
    ("ahsanul(at)ahsanulhaque(dot)com", "<email>"),
    ("jane (at) example (dot) org", "<email>"),
    ("jane [at] example.co.uk thanks", "<email> thanks"),
    ("up...joe@mail.com", "up...<email>"),
    ("@bob mail me: bob@mail.com", "<handle> mail me: <email>"),
    ("jane&#64;example.com", "<email>"),
    # handles in replies: the airline's own stays, whatever its case
    ("@bob @AirParadis thanks", "<handle> @AirParadis thanks"),
    ("@airparadis @Bob_99 hi", "@airparadis <handle> hi"),
    (".@AIRPARADIS what about @jane?", ".@AIRPARADIS what about <handle>?"),
    ("@bob@jane@AirParadis lol", "<handle><handle>@AirParadis lol"),
    ("lol@bob that was fun", "lol<handle> that was fun"),
    ("vote @http://bit.ly/Y4z5j", "vote @http://bit.ly/<path>"),
    # URLs keep their scheme and host
    (
        "see https://example.com/booking?ref=ABC123&name=jane.",
        "see https://example.com/<path>.",
    ),
    ("www.example.com/a/b", "www.example.com/<path>"),
    ("Www.Example.com/Jane.Doe", "Www.Example.com/<path>"),
    ("https://user:secret@host.com:8080/x#y", "https://host.com:8080/<path>"),
    ("http://bit.ly/abc123 #fb", "http://bit.ly/<path> #fb"),
]

KEPT = [
    "flight AP214 at 10:45 for 120€ on 12/05/2024",
    "AP-214 boarded 2024-05-12, landed 12.05.2024",
    "I paid 1500 for 3 tickets and earned 100 000 000 miles",
    "gate 12, row 1204, seats 23A and 23B, 2 hours late",
    "order 12345678 and booking ref 1234567890",
    "@AirParadis best crew ever",
    "https://airparadis.com and https://airparadis.com/",
    "meet me at the gate at 9, at work now",
    "10:45-11:30 then 14h05",
    "prices from 99,90 € to 1.200 €",
    "Top 10 of 2019",
    "scores 800-1000 points",
]


@pytest.mark.parametrize(("written", "kept"), SCRUBBED)
def test_what_identifies_a_person_is_replaced_by_a_typed_placeholder(
    written: str, kept: str
) -> None:
    assert scrub(written) == kept


@pytest.mark.parametrize("written", KEPT)
def test_flights_times_prices_dates_numbers_and_the_airline_handle_stay(written: str) -> None:
    assert scrub(written) == written


def test_the_airline_handles_are_a_setting() -> None:
    own = TextPolicy.of(Settings(own_handles="AirParadisHelp, @AirParadis"))
    assert own.stored("@airparadishelp @AirParadis @bob") == "@airparadishelp @AirParadis <handle>"


@given(st.text(max_size=300))
def test_scrubbing_any_text_twice_changes_nothing_more(text: str) -> None:
    once = scrub(text)
    assert scrub(once) == once


def test_the_model_reads_a_scrubbed_handle_and_url_as_the_ones_they_replaced() -> None:
    written = "@bob loved it, see https://x.com/trip?id=42 @AirParadis"
    scrubbed = scrub(written)
    preprocess = TextPreprocessor()
    assert preprocess.tokens(scrubbed) == preprocess.tokens(written)
    features = text_features(scrubbed)
    assert (features.n_mentions, features.n_urls) == (2, 1)


def test_each_text_storage_keeps_as_written_scrubbed_or_nothing() -> None:
    tweet = "@bob call +33 6 12 34 56 78"
    full, scrubbed, none = (TextPolicy(mode) for mode in ("full", "scrubbed", "none"))
    assert full.ingress(tweet) == full.stored(tweet) == tweet
    assert scrubbed.ingress(tweet) == scrubbed.stored(tweet) == "<handle> call <phone>"
    # under none the model still reads the scrubbed text; nothing keeps it
    assert none.ingress(tweet) == "<handle> call <phone>"
    assert none.stored(tweet) == ""


def test_quoted_texts_in_alert_details_are_kept_as_the_policy_says() -> None:
    details = {
        "report_ids": ["r1"],
        "reports": [{"report_id": "r1", "tweet": "@bob hi", "comment": "mail a@b.com"}],
        "psi": 0.3,
    }
    assert TextPolicy().stored_details(details) == {
        "report_ids": ["r1"],
        "reports": [{"report_id": "r1", "tweet": "<handle> hi", "comment": "mail <email>"}],
        "psi": 0.3,
    }
    assert TextPolicy("none").stored_details(details)["reports"][0]["tweet"] == ""
