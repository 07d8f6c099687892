"""The communication team's page and the monitor in headless Chromium against `airparadis up`
with API keys required: each page asks for a key once, then works."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, screenshot_path
from tests.e2e.launch import create_key

pytestmark = pytest.mark.e2e

REPO = Path(__file__).parents[2]
DRAFT = "Lost my bag again and the crew was rude, but the seats were comfy"


def sign_in(page: object, key: str) -> None:
    """Give the page its key in the form it shows, and wait until it took it."""
    page.locator("#key-card").wait_for(state="visible")  # type: ignore[attr-defined]
    page.get_by_label("API key").fill(key)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Use this key").click()  # type: ignore[attr-defined]
    page.locator("#key-status").wait_for(state="visible")  # type: ignore[attr-defined]


def test_check_a_draft_see_why_and_report_it(
    secured_platform: Running, browser: object, tmp_path: Path
) -> None:
    platform = secured_platform
    key = create_key(platform, "comms-team", "predict", "feedback")
    page = browser.new_page(viewport={"width": 1000, "height": 1300})  # type: ignore[attr-defined]
    page.goto(platform.base_url + "/")
    assert page.title() == "Air Paradis — tweet check"

    # The page asks for a key; a wrong one is refused with the reason, the right one taken.
    page.locator("#key-card").wait_for(state="visible")
    page.get_by_label("API key").fill("ap_0123456789ab_" + "x" * 43)
    page.get_by_role("button", name="Use this key").click()
    page.wait_for_function("!document.querySelector('#key-error').hidden")
    assert "refused" in page.locator("#key-error").inner_text()
    sign_in(page, key)
    assert page.locator("#key-name").inner_text() == "comms-team"
    assert page.locator("#key-card").is_hidden()

    page.get_by_label("Tweet text").fill(DRAFT)
    assert page.locator("#count").inner_text() == f"{len(DRAFT)} / 1,000"
    page.get_by_label("Tweet text").press("Control+Enter")

    page.locator("#verdict").wait_for(state="visible")
    verdict = page.locator("#verdict").inner_text()
    assert verdict in {"Safe to post", "Risk of negative reading"}
    label = page.locator("#label").inner_text()
    assert label in {"positive", "negative"}
    assert page.locator("#model").inner_text() == "airparadis-sentiment v1"
    page.wait_for_function("document.querySelector('#why-note').textContent.length > 0")
    assert page.locator("#why-note").inner_text().startswith("From "), page.locator(
        "#why-note"
    ).inner_text()
    assert page.locator("#why").inner_text() == DRAFT
    assert page.locator("#why mark").count() >= 1
    assert page.locator("#history li").count() == 1
    page.screenshot(path=str(screenshot_path(tmp_path, "web-page.png")), full_page=True)

    page.locator("#report summary").click()
    page.get_by_label("Positive", exact=True).check()
    page.get_by_label("Comment (optional)").fill("Reads as sarcasm to me")
    page.get_by_role("button", name="Send report").click()
    page.wait_for_function("document.querySelector('#report-status').textContent.length > 0")
    assert page.locator("#report-status").inner_text().startswith("Thank you: report received")
    assert page.locator("#language-warning").is_hidden()
    assert page.locator("#language").inner_text().startswith("English")

    # A French draft: the model learnt English only, and the page says so beside the verdict.
    page.get_by_label("Tweet text").fill("Vol annulé encore une fois, service client injoignable")
    page.get_by_role("button", name="Analyse").click()
    page.locator("#language-warning").wait_for(state="visible")
    warning = page.locator("#language-warning").inner_text()
    assert warning.startswith("⚠ Not reliable.") and "French" in warning, warning
    assert "English" in warning
    assert "unsure" in (page.locator("#verdict").get_attribute("class") or "")
    assert page.locator("#language").inner_text().startswith("French")
    page.screenshot(path=str(screenshot_path(tmp_path, "web-page-french.png")), full_page=True)
    # The key is in this tab's sessionStorage only: not in the page, not in a URL.
    assert key not in page.content() and key not in page.url
    assert page.evaluate("sessionStorage.getItem('airparadis.api-key')") == key


def test_errors_are_shown_and_the_page_keeps_working_until_its_key_is_revoked(
    secured_platform: Running, browser: object
) -> None:
    platform = secured_platform
    key = create_key(platform, "phone", "predict")
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page.goto(platform.base_url + "/")
    sign_in(page, key)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.get_by_role("button", name="Analyse").click()
    assert page.locator("#error").inner_text() == "Type or paste a tweet first."

    page.get_by_label("Tweet text").fill("x" * 1001)
    page.get_by_role("button", name="Analyse").click()
    assert "limit is 1000" in page.locator("#error").inner_text()

    page.route("**/v1/predict", lambda route: route.abort())
    page.get_by_label("Tweet text").fill("Great crew!")
    page.get_by_role("button", name="Analyse").click()
    page.wait_for_function("!document.querySelector('#error').hidden")
    assert "cannot be reached" in page.locator("#error").inner_text()

    page.unroute("**/v1/predict")
    page.get_by_role("button", name="Analyse").click()
    page.locator("#verdict").wait_for(state="visible")
    assert page.locator("#error").is_hidden()

    # A key revoked while the page is open: the next call is refused and the key asked again.
    revoked = subprocess.run(
        [sys.executable, "-m", "airparadis", "keys", "revoke", "phone"],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert revoked.returncode == 0, revoked.stderr[-2000:]
    page.get_by_role("button", name="Analyse").click()
    page.wait_for_function("!document.querySelector('#error').hidden")
    assert "valid API key" in page.locator("#error").inner_text()
    assert page.locator("#key-card").is_visible()
    assert "revoked" in page.locator("#key-error").inner_text()


def test_monitor_page_draws_the_traffic_of_the_last_hour(
    secured_platform: Running, browser: object, tmp_path: Path
) -> None:
    platform = secured_platform
    crm = {"Authorization": f"Bearer {create_key(platform, 'crm', 'predict')}"}
    ops = create_key(platform, "ops", "monitor")
    texts = [f"Flight {n} was lovely, thank you crew" for n in range(8)]
    texts += ["Vol annulé encore une fois, service client injoignable"]
    answer = httpx.post(
        platform.base_url + "/v1/predict", json={"texts": texts}, headers=crm, timeout=30
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the store worker inserts in batches
        figures = httpx.get(
            platform.base_url + "/v1/monitor",
            params={"hours": 1},
            headers={"Authorization": f"Bearer {ops}"},
        ).json()
        languages = {row["language"] for row in figures["language_totals"]}
        if sum(point["predictions"] for point in figures["traffic"]) > 0 and "fr" in languages:
            break
        time.sleep(0.5)

    page = browser.new_page(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page.goto(platform.base_url + "/monitor?hours=1")
    sign_in(page, ops)
    page.wait_for_function("document.querySelector('#updated').textContent.length > 0")
    assert page.locator("#rate-limited").inner_text().startswith("0 (")
    assert page.locator("#rate-limited-stored").inner_text().startswith("0 (")

    assert page.locator("#hours").input_value() == "1"
    assert page.locator("#error").is_hidden()
    assert page.locator("#traffic svg path").count() == 1
    assert "predictions: last" in page.locator("#traffic svg").get_attribute("aria-label")
    # With little data the charts still read: each bucket is a dot, the time ticks differ, the
    # axes carry their unit and no scientific notation, p50 is not hidden under p99.
    assert page.locator("#traffic svg circle").count() >= 1
    ticks = page.eval_on_selector_all("#latency svg text", "els => els.map(e => e.textContent)")
    assert any(t.endswith(" ms") for t in ticks) and not any("e+" in t for t in ticks)
    assert page.locator("#latency svg circle").count() >= 3
    # What has nothing to show yet says what will appear, and when.
    assert "enough predictions" in page.locator("#psi .empty-state").inner_text()
    assert page.locator("#precision .empty-state").inner_text().startswith("No estimate yet")
    page.screenshot(path=str(screenshot_path(tmp_path, "monitor-few.png")), full_page=True)
    assert page.locator("#psi-caption").inner_text().startswith("Drift: PSI per 5 min")
    assert page.locator("#version").input_value() == "1"
    # The language mix: English and French, their shares in the caption.
    assert page.locator("#languages svg path").count() == len(figures["language_totals"]) >= 2
    caption = page.locator("#languages-caption").inner_text()
    shares = {row["language"]: row["share"] for row in figures["language_totals"]}
    assert f"English {shares['en']:.0%}" in caption and f"French {shares['fr']:.0%}" in caption
    assert page.locator("#unreliable svg circle").count() >= 1
    # Under `up`: the processes of each worker it scales, and no decision on traffic this small.
    rows = page.locator("#scaling tr").all_inner_texts()
    assert sorted(row.split()[0] for row in rows) == ["infer", "preprocess"]
    assert page.locator("#scale-decisions").inner_text() == "no decision yet"
    # The only stylesheet and scripts are the gateway's own: no CDN.
    sources = page.evaluate(
        "[...document.querySelectorAll('script[src], link[href]')].map(e => e.src || e.href)"
    )
    assert sources and all(s.startswith(platform.base_url) for s in sources)


def test_the_api_documentation_renders_with_no_network(platform: Running, browser: object) -> None:
    """/docs and /redoc draw the API from files served by the gateway itself: every request
    that would leave the machine is refused and recorded, and there is none."""
    outside: list[str] = []
    page = browser.new_page()  # type: ignore[attr-defined]

    def only_local(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(platform.base_url):
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route.abort()  # type: ignore[attr-defined]

    page.route("**/*", only_local)
    page.goto(platform.base_url + "/docs")
    page.locator(".swagger-ui .info .title").wait_for(timeout=20_000)
    assert "Air Paradis sentiment API" in page.locator(".swagger-ui .info .title").inner_text()
    page.get_by_text("/v1/predict", exact=True).first.wait_for(timeout=20_000)

    page.goto(platform.base_url + "/redoc")
    page.locator("h1").first.wait_for(timeout=20_000)
    assert "Air Paradis sentiment API" in page.locator("h1").first.inner_text()

    favicon = httpx.get(platform.base_url + "/favicon.ico", timeout=10)
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/svg+xml"
    assert outside == []


def test_a_csv_of_drafts_is_scored_shown_and_offered_back(
    platform: Running, browser: object, tmp_path: Path
) -> None:
    drafts = tmp_path / "drafts.csv"
    texts = [f"Flight {n}: the crew was {'lovely' if n % 2 else 'rude'}" for n in range(70)]
    rows = [["draft", "text"], *[[f"d{n}", text] for n, text in enumerate(texts)]]
    rows.insert(3, ["blank", "   "])  # refused with its reason, the others scored
    rows.insert(5, ["quoted", 'She said "never again", twice\nand meant it'])
    with drafts.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)

    page = browser.new_page(viewport={"width": 1000, "height": 1300})  # type: ignore[attr-defined]
    page.goto(platform.base_url + "/")
    page.set_input_files("#file", str(drafts))
    page.get_by_role("button", name="Score the file").click()
    page.locator("#file-download").wait_for(state="visible", timeout=60_000)
    assert page.locator("#file-status").inner_text() == "72 rows scored, 1 with an error."
    assert page.locator("#file-table tbody tr").count() == 72
    with page.expect_download() as download:
        page.locator("#file-download").click()
    saved = tmp_path / "scored.csv"
    download.value.save_as(saved)

    with saved.open(encoding="utf-8", newline="") as source:
        scored = list(csv.DictReader(source))
    assert download.value.suggested_filename == "drafts.scored.csv"
    assert [row["draft"] for row in scored] == [row[0] for row in rows[1:]]  # in order
    assert scored[2]["error"] and not scored[2]["label"]
    assert scored[4]["text"] == 'She said "never again", twice\nand meant it'
    good = [row for row in scored if row["draft"] != "blank"]
    assert all(row["label"] in {"positive", "negative"} and row["id"] for row in good)
    assert len({row["id"] for row in good}) == 71
