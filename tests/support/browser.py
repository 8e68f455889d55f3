"""A real browser for the tests: Debian's chromium, driven by Playwright.

Playwright never downloads a browser here: it launches the binary Debian's `chromium`
package installs (`python3 tasks.py test` installs the package first). The binary
itself, not the `/usr/bin/chromium` shell wrapper, whose flag handling Playwright does
not need. A missing browser fails the test, saying how to get it; it never skips.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

__all__ = ["CHROMIUM", "chromium"]

CHROMIUM = Path("/usr/lib/chromium/chromium")
"""Debian's chromium binary (package `chromium`); /usr/bin/chromium is a wrapper."""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian chromium until the block ends; close it and its pages then."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: run the suite with `python3 tasks.py test`, which "
            "installs Debian's chromium first (or `apt-get install chromium`)"
        )
    # Playwright reads this for its own browsers: an empty folder, so nothing is
    # looked up or written under ~/.cache.
    with tempfile.TemporaryDirectory(prefix="playwright-") as browsers:
        previous = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
        os.environ["PLAYWRIGHT_BROWSERS_PATH"] = browsers
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM),
                    headless=True,
                    # No user namespaces for chromium's sandbox as root in a container.
                    args=["--no-sandbox"],
                )
                try:
                    yield browser
                finally:
                    browser.close()
        finally:
            if previous is None:
                os.environ.pop("PLAYWRIGHT_BROWSERS_PATH", None)
            else:
                os.environ["PLAYWRIGHT_BROWSERS_PATH"] = previous
