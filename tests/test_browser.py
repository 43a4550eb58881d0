"""End to end in a real browser: `streamlit run app.py` on 127.0.0.1, Debian's chromium
driven by Playwright, an upload, and the prediction on the page.

Set SKIN_SCREENSHOTS=DIR to keep a screenshot of every page there (docs/ holds them)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Debian's chromium for the browser test (.ci/run installs it)")
    pytest.skip("no chromium here (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tiny_models, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "SKIN_MODEL_DIRS": os.environ.get("SKIN_E2E_MODELS", str(tiny_models)),
           "SKIN_SAMPLE_DIR": str(tmp_path_factory.mktemp("no-samples"))}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("streamlit did not answer /_stcore/health within 90 s")
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("SKIN_SCREENSHOTS")
    if folder:
        page.wait_for_timeout(1500)  # let Plotly finish drawing
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_upload_an_image_and_read_the_prediction(app_url, browser, tmp_path):
    image = write_image(tmp_path / "lesion.jpg", (180, 60, 60), (200, 150))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app_url)
    page.get_by_text("Classify a lesion").wait_for(timeout=60_000)
    page.locator('input[type="file"]').first.set_input_files(str(image))
    page.get_by_text("not a medical device").first.wait_for(timeout=120_000)
    page.get_by_text("Grad-CAM for").first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    assert "Inconclusive" in body or "%" in body
    assert "Traceback" not in body
    screenshot(page, "classify")


def test_a_bad_upload_shows_an_error_in_the_browser(app_url, browser, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    page = browser.new_page()
    page.goto(app_url)
    page.get_by_text("Classify a lesion").wait_for(timeout=60_000)
    page.locator('input[type="file"]').first.set_input_files(str(bad))
    page.get_by_text("This file cannot be used").wait_for(timeout=60_000)
    assert "Traceback" not in page.inner_text("body")


@pytest.mark.parametrize("path, heading", [("compare", "Held-out test metrics"),
                                           ("evaluation", "Calibration"),
                                           ("about", "The models")])
def test_other_pages_render(app_url, browser, path, heading):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/{path}")
    page.get_by_text(heading).first.wait_for(timeout=60_000)
    assert "Traceback" not in page.inner_text("body")
    screenshot(page, path)
