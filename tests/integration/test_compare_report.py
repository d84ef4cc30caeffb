"""compare.html in a real browser: Debian's chromium, headless, driven by selenium through Debian's chromedriver (no
browser download). The page of a 20-run sweep loads without console errors, a column header re-sorts the table, the
filter hides rows and their curves, and a screenshot is taken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import chromium, console_errors
from fake_runs import write_sweep


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    with chromium(tmp_path / "profile") as driver:
        yield driver


@pytest.fixture
def report(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    write_sweep(sweep, 20)
    result = subprocess.run([sys.executable, "-m", "llmexp.cli.compare", str(sweep)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return sweep / "compare.html"


def _column(driver, index: int) -> list[str]:
    rows = driver.find_elements("css selector", "#runs tbody tr")
    return [r.find_elements("tag name", "td")[index].text for r in rows if r.is_displayed()]


def test_the_report_of_a_20_run_sweep_works_in_chromium(browser, report, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert console_errors(browser) == []
    assert len(browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 20
    assert browser.find_element(By.CSS_SELECTOR, "tr.best td").text.startswith("9")  # lowest val/loss, first

    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#runs th")]
    lr = headers.index("optimizer.lr")
    by_loss = [float(v) for v in _column(browser, lr)]
    assert by_loss != sorted(by_loss)  # ranked by val/loss, not by learning rate
    browser.find_elements(By.CSS_SELECTOR, "#runs th")[lr].click()
    assert [float(v) for v in _column(browser, lr)] == sorted(by_loss)
    browser.find_elements(By.CSS_SELECTOR, "#runs th")[lr].click()
    assert [float(v) for v in _column(browser, lr)] == sorted(by_loss, reverse=True)

    shot = tmp_path / "compare.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 50_000
    if dest := os.environ.get("LLMEXP_SCREENSHOT_DIR"):  # to look at it
        shutil.copy(shot, Path(dest) / "compare_20_runs.png")

    assert (
        browser.execute_script("return document.getElementById('curves').data.length") == 60
    )  # train loss, val loss, val bpb
    browser.find_element(By.ID, "filter").send_keys("1.00e-04")
    assert _column(browser, 0) == ["0"]
    visible = browser.execute_script("return document.getElementById('curves').data.map(t => t.visible)")
    assert visible.count(True) == 3 and visible.count(False) == 57
