"""A real browser against `streamlit run app.py`: Debian's Chromium driven by Playwright.

One server for the module (started with a data directory and room for two trainings at once),
one browser. Skipped (with the reason) when Playwright or /usr/bin/chromium is missing, unless
CI=true, where that is a failure. Saves screenshots to $APP_SCREENSHOT_DIR (default: a tmp dir).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import accounting as acc
from explorer.datadir import DATA_DIR_ENV
from explorer.overhead import default_overhead
from explorer.runs import MAX_JOBS_ENV

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
# the Memory case, at a size the timeline models: both toggles, bf16, long context
LINK = "preset=cs336-gpt2-xl&context_length=2048&batch_size=8&dtype=bfloat16&attention=sdpa&checkpointing=1"


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


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    (folder / "corpus.txt").write_text("a small corpus of words. " * 400)
    return folder


@pytest.fixture(scope="module")
def server(ui, data_folder):
    _requirements()
    port = _free_port()
    env = {**os.environ, DATA_DIR_ENV: str(data_folder), MAX_JOBS_ENV: "2"}
    proc = subprocess.Popen(  # the project's .streamlit/config.toml binds localhost
        [sys.executable, "-m", "streamlit", "run", str(ui.app), "--server.headless", "true",
         "--server.port", str(port)],
        cwd=ui.app.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = f"http://localhost:{port}"
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("APP_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page(browser, errors: list[str] | None = None, height: int = 1000):
    page = browser.new_page(viewport={"width": 1400, "height": height})
    if errors is not None:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _metric(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
    return metric.locator('[data-testid="stMetricValue"]').inner_text(timeout=60_000).strip()


def _wait_metric(page, label: str, expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (value := _metric(page, label)) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert value == expected, f"{label}: {value!r} != {expected!r}"


def _text(page, pattern: str) -> str:
    """The inner text of the first markdown block matching `pattern` (waits for it)."""
    block = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=re.compile(pattern)).first
    return block.inner_text(timeout=60_000)


def _no_error_boxes(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def test_one_link_agrees_in_every_view(browser, server, shots):
    cfg = acc.get_preset("cs336-gpt2-xl").replace(context_length=2048, attention="sdpa")
    peak = acc.peak_memory_bytes(cfg, 8, dtype="bfloat16", checkpointing=True)
    usable = acc.get_gpu("H100-SXM").memory_bytes - default_overhead("H100-SXM").total_bytes
    largest = acc.largest_batch_size(cfg, usable, dtype="bfloat16", checkpointing=True).batch_size
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(f"{server}/?{LINK}")
    _wait_metric(page, "Parameters", acc.fmt_int(acc.total_parameters(cfg)))
    assert _metric(page, "Peak training memory") == acc.fmt_bytes(peak)
    assert _metric(page, "Largest batch in the GPU") == acc.fmt_int(largest)
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    page.goto(f"{server}/?view=memory&{LINK}")
    text = _text(page, "Largest batch in")
    assert f"B = {largest:,}" in text and f"peaks at {acc.fmt_bytes(peak)}" in text, text
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "memory.png"), full_page=True)

    page.goto(f"{server}/?view=formulas&{LINK}")
    assert f"now {acc.fmt_bytes(peak)}" in _text(page, "peak training memory")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "formulas.png"), full_page=True)

    page.goto(f"{server}/?view=downloads&{LINK}")
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Report (JSON)").click()
    report = json.loads(Path(download.value.path()).read_text())
    assert report["memory"]["peak"] == peak and report["memory"]["largest_batch"]["batch_size"] == largest

    for view in ("params_flops", "inference", "parallelism", "measured", "train", "tokenizer"):
        page.goto(f"{server}/?view={view}&{LINK}")
        page.get_by_role("heading", name=re.compile("lm-accounting")).wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        _no_error_boxes(page)
        if view == "parallelism":
            page.screenshot(path=str(shots / "parallelism.png"), full_page=True)
    page.goto(f"{server}/?view=tokenizer")
    page.get_by_text("special tokens").first.wait_for(timeout=60_000)
    page.locator("textarea").first.wait_for(timeout=60_000)  # the whole page, not the rerun's skeleton
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "tokenizer.png"), full_page=True)
    assert page.url.endswith("view=tokenizer")
    assert not errors, errors
    page.close()


STEPS = 60


def _fill_training_form(page, server: str, variants: list[str]) -> None:
    """A tiny run: 20 kB of the docs, 300 tokens, d_model 32, T = 32, STEPS steps."""
    page.goto(f"{server}/?view=train")
    for label, value in (("Use the first … kB", "20"), ("Vocabulary size", "300"), ("d_model", "32"),
                         ("d_ff", "64"), ("context length", "32"), ("steps", str(STEPS))):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(300)
    for name in variants:
        if name != "baseline":
            page.get_by_test_id("stMultiSelect").click()
            page.get_by_role("option", name=name, exact=True).click()
            page.keyboard.press("Escape")
    page.get_by_role("button", name="Start training").wait_for(timeout=30_000)


def _start(page) -> None:
    page.get_by_role("button", name="Start training").click()


def _losses(page, labels: list[str], timeout: float = 180) -> dict[str, list[float]]:
    """The train-loss traces of the live loss chart once every variant is done and the chart holds
    still, read from Plotly's data (exact floats; the committed experiments' charts have other
    titles)."""
    for label in labels:
        page.get_by_text(f"{label}: done").first.wait_for(timeout=timeout * 1000)
    last: dict = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        charts = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
            .filter(d => JSON.stringify((d.layout || {}).title || '').includes('Loss (cross-entropy, nats/token)'))
            .map(d => (d.data || []).map(t => ({name: t.name, y: Array.from(t.y || [])})))""")
        # while Streamlit reruns, a stale copy of the chart can sit beside the new one: read one
        found = {t["name"]: t["y"] for t in charts[0] if t["name"].endswith(" train")} if len(charts) == 1 else {}
        if found and found == last:
            return found
        last = found
        page.wait_for_timeout(1000)
    return last


def test_two_concurrent_runs_reproduce_their_solo_losses(browser, server, shots):
    variants = ["baseline", "no RoPE"]
    solo_page = _page(browser, height=2800)  # tall: the screenshot shows the loss chart
    _fill_training_form(solo_page, server, variants)
    _start(solo_page)
    solo = _losses(solo_page, variants)
    assert set(solo) == {"baseline train", "no RoPE train"} and len(solo["no RoPE train"]) > 10
    solo_page.screenshot(path=str(shots / "ablation-overlay.png"), full_page=True)
    solo_page.close()
    pages = [_page(browser), _page(browser)]
    for page in pages:  # both forms first, then both starts back to back: the jobs overlap
        _fill_training_form(page, server, variants)
    for page in pages:
        _start(page)
    together = [_losses(page, variants) for page in pages]
    assert together == [solo, solo]
    for page in pages:
        page.close()


def test_the_local_file_source_refuses_a_path_outside_the_data_directory(browser, server, data_folder):
    page = _page(browser)
    page.goto(f"{server}/?view=train")
    page.get_by_text("A file of the server's data directory").click()
    box = page.get_by_label(re.compile("File in the data directory"))
    box.fill("/etc/passwd")
    box.press("Enter")
    assert "outside the data directory" in page.get_by_test_id("stAlertContentError").inner_text(timeout=60_000)
    assert page.get_by_text("root:").count() == 0
    box.fill("corpus.txt")
    box.press("Enter")
    page.get_by_text(re.compile(r"corpus\.txt: 10,000 UTF-8 bytes")).wait_for(timeout=60_000)
    page.close()
