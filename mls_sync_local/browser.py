"""Headless Chromium, for pictures of the report: `mls-sync report --out FILE.png` and the
integration tier's check that the page renders its widgets in a real browser.

Chromium comes from the system (`make browser` installs Debian's `chromium` where apt is
available); ``MLS_SYNC_CHROMIUM`` names another binary. It is started with no network at
all (every host name resolves to nothing, background services off) on a file:// URL: the
report is self-contained, so nothing needs fetching.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "`make browser` installs it (Debian: apt-get install chromium)"


class BrowserUnavailableError(RuntimeError):
    """No headless Chromium on this machine."""


def find_chromium() -> str | None:
    named = os.environ.get("MLS_SYNC_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(
    page: Path,
    out: Path,
    *,
    width: int = 1240,
    height: int = 4000,
    timeout: float = 90.0,
) -> Path:
    """Renders ``page`` (a local HTML file) in headless Chromium and writes a PNG of the
    ``width`` x ``height`` viewport to ``out``."""
    binary = find_chromium()
    if binary is None:
        raise BrowserUnavailableError(f"headless Chromium not found: {INSTALL_HINT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mls-sync-chromium-") as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",  # as root (CI containers) Chromium refuses to start without it
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--force-device-scale-factor=1",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={out.resolve()}",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    if done.returncode != 0 or not out.is_file():
        tail = " ".join(done.stderr.split()[-40:])
        raise RuntimeError(f"chromium exited {done.returncode} without a screenshot: {tail}")
    return out


def version() -> str | None:
    binary = find_chromium()
    if binary is None:
        return None
    done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip() or None


__all__ = ["BrowserUnavailableError", "find_chromium", "screenshot", "version"]
