"""The processing register (docs/rgpd.md) says what the settings and the code do."""

from __future__ import annotations

import pytest

from airparadis import rgpd
from shared.settings import Settings


def test_committed_register_is_the_one_the_settings_render() -> None:
    # If this fails: python -m airparadis.rgpd render
    assert not rgpd.outdated()


def test_the_register_follows_the_retention_and_the_text_storage() -> None:
    text = rgpd.REGISTER.read_text(encoding="utf-8")
    settings = Settings.model_construct(
        retention_days=30, stream_max_age_days=2, text_storage="none"
    )
    rendered = rgpd.render(text, settings)
    assert "| `predictions` |" in rendered and "30 days after `scored_at`" in rendered
    assert "| Messages on the bus | 2 days |" in rendered
    assert "`none`: no text is stored" in rendered
    assert "365 days" not in rendered


def test_a_table_the_register_does_not_describe_stops_the_rendering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(rgpd.TABLES, "audit")
    with pytest.raises(rgpd.RegisterError, match=r"\['audit'\]"):
        rgpd.render(rgpd.REGISTER.read_text(encoding="utf-8"), rgpd.default_settings())
