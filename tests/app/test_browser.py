"""A real browser against `streamlit run app.py`: Debian's Chromium driven by Playwright.

Skipped (with the reason) when Playwright or /usr/bin/chromium is missing, unless CI=true, where
that is a failure. Saves screenshots to $APP_SCREENSHOT_DIR (default: the test's tmp_path).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import accounting as acc

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"


def _requirements() -> None:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing.append(f"Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture
def server(ui):
    _requirements()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ui.app), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ui.app.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _metric(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
    return metric.locator('[data-testid="stMetricValue"]').inner_text(timeout=60_000).strip()


def _wait_metric(page, label: str, expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (value := _metric(page, label)) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert value == expected, f"{label}: {value!r} != {expected!r}"


def test_overview_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("APP_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    xl, medium = acc.get_preset("cs336-gpt2-xl"), acc.get_preset("cs336-gpt2-medium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server}/?preset=cs336-gpt2-xl")  # a shared link opens its state
            _wait_metric(page, "Parameters", acc.fmt_int(acc.total_parameters(xl)))
            assert _metric(page, "Training-step FLOPs") == acc.fmt_flops(acc.train_step_flops(xl, 8))
            page.screenshot(path=str(shots / "overview-gpt2-xl.png"), full_page=True)

            page.get_by_test_id("stSelectbox").filter(has_text="Preset").click()
            page.get_by_role("option", name="cs336-gpt2-medium", exact=True).click()
            _wait_metric(page, "Parameters", acc.fmt_int(acc.total_parameters(medium)))
            # the rerun renders the metrics in order: the peak may still show XL's for a moment
            _wait_metric(page, "Peak training memory", acc.fmt_bytes(acc.peak_memory_bytes(medium, 8)))
            page.wait_for_url("**preset=cs336-gpt2-medium**", timeout=30_000)
            page.screenshot(path=str(shots / "overview-gpt2-medium.png"), full_page=True)
        finally:
            browser.close()
    assert (shots / "overview-gpt2-medium.png").stat().st_size > 10_000
