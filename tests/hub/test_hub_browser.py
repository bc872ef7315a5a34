"""A clinician in a real browser: the hub's login page, her own server, the labeling app with her clinic's recordings.

Headless Chromium (``/usr/bin/chromium`` or ``$DEEPEPIL_CHROMIUM``) through Playwright, against a
real hub. A screenshot of the labeling app is kept in ``test-artifacts/hub/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hub"

@pytest.fixture(scope="module")
def hub(start_hub):
    return start_hub()


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) in the session's Chromium."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_clinician_logs_in_and_sees_her_clinics_recordings_in_the_labeling_app(hub, page):
    page.goto(f"{hub.url}/hub/login", timeout=120_000)
    page.fill("#username_input", "ben")
    page.fill("#password_input", hub.passwords["ben"])
    page.click("#login_submit")
    page.wait_for_url("**/user/ben/lab/tree/labeling.ipynb**", timeout=300_000)
    # JupyterLab opens the labeling notebook; once its kernel is idle, run its one cell as a person would
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=300_000)
    page.locator("text=/\\| Idle/").first.wait_for(timeout=300_000)
    page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
    rows = page.locator(".de-app .de-shell-landing tr.de-shell-row")
    rows.first.wait_for(timeout=300_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "labeling-app-after-login.png"))
    names = [text.strip() for text in rows.evaluate_all("rows => rows.map(r => r.cells[1].innerText)")]
    south = sorted(name for name, clinic in hub.placed.items() if clinic == "South")
    assert names == south, "a South clinician sees South's recordings, and only those"
    assert page.get_by_text("get notified about official Jupyter news").count() == 0  # closed network: not asked


def test_a_wrong_password_stays_on_the_login_page(hub, page):
    page.goto(f"{hub.url}/hub/login", timeout=120_000)
    page.fill("#username_input", "ben")
    page.fill("#password_input", "not the password")
    page.click("#login_submit")
    page.wait_for_load_state()
    assert "/hub/login" in page.url
    assert "Invalid username or password" in page.content()
