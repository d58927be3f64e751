"""The report of a demo, opened in a real browser: headless Chromium takes a screenshot and
every chart of the dashboard shows bars drawn from the metrics the handlers emitted.

Chromium must be installed (`make browser`, a prerequisite of `make test` and of
`make test-integration`, installs it where apt is available). Without it this test fails,
naming the fix; `MLS_SYNC_SKIP_BROWSER=<reason>` skips it instead, with that reason shown,
for a machine where no browser can be installed.
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mls_sync_local.browser import INSTALL_HINT, find_chromium, screenshot
from tests.integration.demo.conftest import DEMO_TIMEOUT, DemoRun
from tests.support.png import read_png

MIN_PIXELS = 40
"""Pixels of a chart's own colours that make its bars visible (a bar is >= 3 x 4 px)."""


class _Charts(HTMLParser):
    """The report's charts (``svg.chart``), widgets and health badges, as written."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[dict[str, str]] = []
        self.widgets: list[str] = []
        self.badges: list[str] = []
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "svg" and values.get("class") == "chart":
            self.charts.append(values)
        if tag == "section" and "widget" in values.get("class", "").split():
            self.widgets.append(values.get("data-kind", ""))
        if tag == "span" and values.get("class") == "badge":
            match = re.search(r"background:(#[0-9a-f]{6})", values.get("style", ""))
            if match:
                self.badges.append(match.group(1))
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if values.get(name, "").startswith(("http:", "https:", "//")):
                self.external.append(values[name])


def _chromium_or_skip() -> None:
    if find_chromium() is not None:
        return
    reason = os.environ.get("MLS_SYNC_SKIP_BROWSER")
    if reason:
        pytest.skip(f"no headless Chromium, skipped on purpose: {reason}")
    pytest.fail(
        f"headless Chromium not found: {INSTALL_HINT}; or set "
        "MLS_SYNC_SKIP_BROWSER=<why> to skip this test on a machine that cannot have one"
    )


@pytest.mark.timeout(2 * DEMO_TIMEOUT + 120)  # the session's demo run may start here
def test_the_demos_report_shows_every_widget_in_a_real_browser(
    demo_run: DemoRun, tmp_path: Path
) -> None:
    _chromium_or_skip()
    # Given the report a demo wrote (the page `mls-sync report` writes)
    assert demo_run.done.returncode == 0, demo_run.done.stdout[-2000:]
    page = demo_run.report.read_text(encoding="utf-8")
    parsed = _Charts()
    parsed.feed(page)
    # It is one self-contained page: no script, nothing fetched from elsewhere
    assert parsed.scripts == 0
    assert parsed.external == []
    # with the dashboard's widgets: charts (metric widgets) and tables (log widgets)
    assert parsed.widgets.count("metric") == len(parsed.charts) >= 10
    assert parsed.widgets.count("log") >= 3
    # every chart has datapoints after a demo
    empty = [c["data-widget"] for c in parsed.charts if int(c["data-points"]) == 0]
    assert not empty, f"charts without data after a demo: {empty}"
    # When headless Chromium renders it
    png = screenshot(demo_run.report, tmp_path / "report.png", width=1240, height=3600)
    image = read_png(png)
    assert (image.width, image.height) == (1240, 3600)
    colors = image.colors()
    # Then each chart's bars are on the screen, in that chart's own colours
    invisible = []
    for chart in parsed.charts:
        own = chart["data-colors"].split(",")
        pixels = sum(colors.get(c, 0) for c in own)
        if pixels < MIN_PIXELS:
            invisible.append(f"{chart['data-widget']} ({pixels} px of {own})")
    assert not invisible, f"charts whose bars Chromium did not draw: {invisible}"
    # and the connection health table's badges
    assert parsed.badges
    assert all(colors.get(badge, 0) > MIN_PIXELS for badge in set(parsed.badges))
