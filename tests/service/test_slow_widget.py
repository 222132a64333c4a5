"""The suggest widget on the demo page, driven in headless Chromium (Debian `chromium` +
`chromium-driver`) against a real server with the real models."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.server import serve_demo
from tests.support import KEYS

pytestmark = pytest.mark.slow


def _type(browser: WebDriver, text: str) -> None:
    box = browser.find_element(By.ID, "question")
    box.clear()
    box.send_keys(text)


def test_widget_suggests_and_shows_staff_notice(
    tmp_path: Path, real_triage_dir: Path, browser: WebDriver
) -> None:
    with serve_demo(tmp_path, real_triage_dir, UNSOURCE_DEMO_KEY=KEYS["public"]) as served:
        browser.get(f"{served.base}/demo")
        wait = WebDriverWait(browser, 20)

        _type(browser, "How do I reset the hub to factory settings?")
        first = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".unsource-suggestion"))
        )
        assert first.get_attribute("data-thread-id") == "lumio-001"
        assert "Lumio Hub" in first.text
        assert not browser.find_elements(By.CSS_SELECTOR, ".unsource-staff")
        browser.save_screenshot(str(tmp_path / "widget-suggest.png"))

        first.find_element(By.CSS_SELECTOR, ".unsource-helpful").click()
        wait.until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".unsource-helpful"), "Thanks")
        )

        # an Italian reader: the widget answers in Italian and marks the English answer
        _type(browser, "Non ricevo nessuna notifica su Android")
        wait.until(
            ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".unsource-heading"), "Risposte")
        )
        first = browser.find_element(By.CSS_SELECTOR, ".unsource-suggestion")
        assert first.get_attribute("data-thread-id") == "lumio-045"
        assert first.get_attribute("data-language") == "en"
        assert "Risposta in inglese" in first.text
        browser.save_screenshot(str(tmp_path / "widget-italian.png"))

        _type(browser, "I was charged twice on my credit card for my subscription")
        notice = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".unsource-staff")))
        assert "support team" in notice.text
        assert not browser.find_elements(By.CSS_SELECTOR, ".unsource-suggestion")
        browser.save_screenshot(str(tmp_path / "widget-staff.png"))

        # a title box created after the page loaded (a forum's composer opening) is
        # attached on its first focus
        browser.execute_script(
            "var old = document.getElementById('question');"
            "var box = old.nextElementSibling; if (box) box.remove();"
            "var late = document.createElement('input'); late.id = 'question';"
            "old.replaceWith(late);"
        )
        _type(browser, "How do I reset the hub to factory settings?")
        late = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".unsource-suggestion"))
        )
        assert late.get_attribute("data-thread-id") == "lumio-001"

    for name in ("widget-suggest.png", "widget-italian.png", "widget-staff.png"):
        assert (tmp_path / name).stat().st_size > 10_000
