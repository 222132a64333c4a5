"""The staff console (/console) in headless Chromium against a real server with seeded
activity: an overdue question, planted knowledge gaps, votes crediting an author, requests
in two languages. Each panel is checked; screenshots are saved (set
UNSOURCE_SCREENSHOTS_DIR to keep them, e.g. docs/)."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.server import BIN, serve_demo
from tests.support import KEYS, PLANTED, TEST_POLICY, auth

pytestmark = pytest.mark.slow
PANELS = ("escalations", "gaps", "rates", "languages", "leaders")


def _seed(base: str) -> None:
    thread = {
        "title": "Wifi extender blinking red light after storm",
        "answer": "Unplug it for ten seconds, then re-pair.",
        "answer_author": "maria.h",
    }
    assert (
        httpx.put(f"{base}/v1/threads/ext-1", json=thread, headers=auth("admin")).status_code == 201
    )
    for reader in range(3):  # three readers find maria's answer helpful
        r = httpx.post(
            f"{base}/v1/suggest", json={"title": thread["title"]}, headers=auth("public")
        ).json()
        assert r["decision"] == "suggest", r
        vote = {"request_id": r["request_id"], "thread_id": "ext-1", "helpful": True}
        headers = {**auth("public"), "x-forwarded-for": f"10.0.0.{reader}"}
        assert httpx.post(f"{base}/v1/feedback", json=vote, headers=headers).status_code == 200
    for qs in PLANTED.values():
        for q in qs:
            httpx.post(f"{base}/v1/suggest", json={"title": q}, headers=auth("public"))
    httpx.post(
        f"{base}/v1/suggest",
        json={"title": "Como troco a senha do wifi do roteador?"},
        headers=auth("public"),
    )
    late = (datetime.now(UTC) - timedelta(hours=30)).isoformat()
    fresh = {"id": "forum-9002", "title": "Which app shows the energy report?"}
    assert httpx.post(f"{base}/v1/questions", json=fresh, headers=auth("agent")).status_code == 201
    question = {"id": "forum-9001", "title": "Hub offline since the update", "created_at": late}
    assert (
        httpx.post(f"{base}/v1/questions", json=question, headers=auth("agent")).status_code == 201
    )


def test_console_shows_every_panel(
    tmp_path: Path,
    triage_dir: Path,
    browser: WebDriver,
) -> None:
    env = {
        "UNSOURCE_MODEL": "hash:256",
        "UNSOURCE_TRIAGE_POLICY": str(TEST_POLICY),
        "UNSOURCE_TRUSTED_PROXIES": '["127.0.0.1"]',
    }
    with serve_demo(tmp_path, triage_dir, BIN, None, **env) as served:
        _seed(served.base)
        browser.get(f"{served.base}/console")
        browser.find_element(By.ID, "key").send_keys(KEYS["agent"])
        browser.find_element(By.ID, "load").click()
        wait = WebDriverWait(browser, 30)
        for panel in PANELS:
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{panel}[data-loaded]")))
        text = {p: browser.find_element(By.ID, p).text for p in PANELS}
        queue = text["escalations"]
        assert queue.index("forum-9001") < queue.index("forum-9002")  # oldest first
        assert "overdue by" in queue and "SLA left" in queue
        assert "#1:" in text["gaps"] and any(
            q in text["gaps"] for qs in PLANTED.values() for q in qs
        )
        assert browser.find_elements(By.CSS_SELECTOR, "#rates polyline.series-deflection_rate")
        assert "pt" in text["languages"].split() and "en" in text["languages"].split()
        assert "maria.h" in text["leaders"] and "3" in text["leaders"]
        assert "failed" not in browser.find_element(By.ID, "status").text
        shot = tmp_path / "console.png"
        browser.set_window_size(1200, 1100)
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        keep = os.environ.get("UNSOURCE_SCREENSHOTS_DIR")
        if keep:
            shutil.copy(shot, Path(keep) / "console.png")
