"""Driving the memory inspector in Debian's headless Chromium through Selenium.

:func:`start_chromium` fails (never skips) with one line naming the packages when the browser
or its driver is missing. :class:`Inspector` wraps the pages' actions: log in with a key, wait
for text, take full-page screenshots at a width, read the console, check every control has a
name.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver (or run tools/ensure-browser.sh as root)"
IMG_DIR = Path(__file__).resolve().parents[2] / "docs" / "img"
WAIT_S = 30.0
T = TypeVar("T")

# Every control on every view must have a name a screen reader reads: a <label> around it or
# pointing at it, an aria-label, or (buttons, links) its own text.
UNNAMED_JS = """
const out = [];
for (const el of document.querySelectorAll('input, select, textarea, button, a[href]')) {
  if (el.closest('[hidden]')) continue;
  const named = (el.getAttribute('aria-label') || '').trim()
    || (el.labels && el.labels.length && el.labels[0].textContent.trim())
    || (['BUTTON', 'A'].includes(el.tagName) && el.textContent.trim());
  if (!named) out.push(el.outerHTML.slice(0, 120));
}
return out;
"""


def start_chromium() -> webdriver.Chrome:
    """Debian's chromium under chromedriver, headless, with the console log kept."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        pytest.fail(f"browser tests need {' and '.join(missing)}: {INSTALL}", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


class Inspector:
    """One browser on one memlane server's ``/ui``."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.driver.set_page_load_timeout(WAIT_S)

    # -- navigation ---------------------------------------------------------------------------

    def open(self, hash_path: str = "") -> None:
        """Load the page (a fresh document) at ``#<hash_path>``."""
        self.driver.get(f"{self.base_url}/ui/{'#' + hash_path if hash_path else ''}")

    def go(self, hash_path: str) -> None:
        """Move within the page, as a link would."""
        self.driver.execute_script("location.hash = arguments[0];", hash_path)

    def login(self, key: str) -> None:
        """Forget any key, load the page afresh, type ``key`` into the login form and submit."""
        self.driver.get(f"{self.base_url}/ui/")  # no fragment: a real load, not a hash change
        self.driver.execute_script("sessionStorage.clear();")
        self.driver.refresh()
        field = self.wait(lambda d: d.find_element(By.CSS_SELECTOR, "form.login input#key"))
        field.send_keys(key)
        self.find("form.login button[type=submit]").click()

    # -- reading ------------------------------------------------------------------------------

    def find(self, css: str) -> WebElement:
        """The first element matching ``css`` (waits for it)."""
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css))

    def find_all(self, css: str) -> list[WebElement]:
        """Every element matching ``css`` now."""
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self) -> str:
        """The visible text of the whole page."""
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def wait_text(self, needle: str, css: str = "body", timeout: float = WAIT_S) -> WebElement:
        """The element ``css`` once its text contains ``needle``."""

        def ready(d: webdriver.Chrome) -> WebElement | None:
            for el in d.find_elements(By.CSS_SELECTOR, css):
                if needle in el.text:
                    return el
            return None

        return self.wait(ready, timeout, f"{needle!r} in {css}")

    def wait(
        self, check: Callable[[webdriver.Chrome], T | None], timeout: float = WAIT_S, what: str = ""
    ) -> T:
        """``check(driver)`` once it is truthy; on timeout, fail with the page's text."""
        ignored = (StaleElementReferenceException, WebDriverException)
        try:
            result: T = WebDriverWait(self.driver, timeout, 0.1, ignored).until(check)
        except Exception as e:
            raise AssertionError(
                f"waited {timeout} s for {what or check}; page:\n{self.text()}"
            ) from e
        return result

    def facts(self, el: WebElement) -> dict[str, str]:
        """The term -> value pairs of the first definition list (``dl.facts``) inside ``el``."""
        pairs = self.driver.execute_script(
            "const dl = arguments[0].querySelector('dl.facts');"
            "return [...dl.querySelectorAll('dt')]"
            ".map(dt => [dt.textContent, dt.nextElementSibling.textContent]);",
            el,
        )
        return {str(k): str(v) for k, v in pairs}

    def console_errors(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """SEVERE console entries since the last call, minus those containing an allowed text."""
        entries: list[dict[str, Any]] = self.driver.get_log("browser")
        return [
            str(e["message"])
            for e in entries
            if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
        ]

    def unnamed_controls(self) -> list[str]:
        """Controls on the page with no accessible name (should be none)."""
        return list(self.driver.execute_script(UNNAMED_JS))

    def overflow_x(self) -> int:
        """How many pixels the page is wider than the viewport (0 when it fits)."""
        return int(
            self.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth;"
            )
        )

    # -- widths and pictures ------------------------------------------------------------------

    def width(self, px: int) -> None:
        """Lay the page out as a ``px`` wide screen (a phone's below 600 px)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": px, "height": 900, "deviceScaleFactor": 1, "mobile": px < 600},
        )
        time.sleep(0.2)  # one layout pass; nothing asynchronous waits on it

    def screenshot(self, name: str, px: int, max_height: int = 2400) -> Path:
        """The whole page (up to ``max_height``) at width ``px``, saved as docs/img/<name>."""
        self.width(px)
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight;"))
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": px,
                    "height": min(height, max_height),
                    "scale": 1,
                },
            },
        )
        IMG_DIR.mkdir(parents=True, exist_ok=True)
        path = IMG_DIR / name
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
