"""Screenshot a page of a running platform with headless Chromium (Debian's, through Playwright).

    python scripts/screenshot.py /monitor?hours=1 docs/monitor-page.png
    python scripts/screenshot.py / docs/web-page.png --url http://127.0.0.1:8000

The monitor page is captured once its figures are drawn (its "updated" stamp is set). Chromium
comes from the `chromium` Debian package (`apt-get install chromium`); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make the repo's packages importable
    sys.path.insert(0, str(ROOT))

from scripts.browser import CHROMIUM_ARGS, find_chromium  # noqa: E402


def screenshot(url: str, out: Path, *, width: int, height: int, timeout_s: float) -> None:
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("Chromium is not installed: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url, timeout=timeout_s * 1000)
            if page.locator("#updated").count():
                page.wait_for_function(
                    "document.querySelector('#updated').textContent.length > 0",
                    timeout=timeout_s * 1000,
                )
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="page of the gateway, e.g. /monitor?hours=1")
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the gateway")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the page")
    args = parser.parse_args(argv)
    screenshot(
        args.url.rstrip("/") + args.path,
        args.out,
        width=args.width,
        height=args.height,
        timeout_s=args.timeout,
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
