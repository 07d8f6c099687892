"""The personal-data settings: what text is kept, the airline's handles, and a bus that keeps
nothing longer than the store."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings


def test_text_is_scrubbed_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRPARADIS_TEXT_STORAGE", raising=False)
    assert Settings().text_storage == "scrubbed"
    monkeypatch.setenv("AIRPARADIS_TEXT_STORAGE", "none")
    assert Settings().text_storage == "none"


def test_an_unknown_text_storage_is_refused_with_the_choices() -> None:
    with pytest.raises(ValidationError, match="'full', 'scrubbed' or 'none'"):
        Settings(text_storage="everything")


def test_own_handles_come_as_a_list_with_or_without_the_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRPARADIS_OWN_HANDLES", "@AirParadis, AirParadisHelp")
    assert Settings().own_handles == ["AirParadis", "AirParadisHelp"]


def test_a_handle_that_twitter_could_not_have_is_refused() -> None:
    with pytest.raises(ValidationError, match="not @handles"):
        Settings(own_handles="Air Paradis")


def test_the_bus_may_not_keep_messages_longer_than_the_store_keeps_rows() -> None:
    with pytest.raises(ValidationError, match="must not exceed retention_days"):
        Settings(retention_days=5, stream_max_age_days=7)
    assert Settings(retention_days=7, stream_max_age_days=7).stream_max_age_days == 7
