"""End to end in a real browser: `streamlit run app.py` on 127.0.0.1, Debian's chromium
driven by Playwright, an upload, and the prediction on the page.

Set SKIN_SCREENSHOTS=DIR to keep a screenshot of every page there (docs/ holds them)."""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.corpus import CORPUS

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


def memory_mib(pid: int) -> dict:
    """VmRSS (now) and VmHWM (peak) of a process, in MiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


class ServerURL(str):
    """The app's address, which also knows the server's process id."""


@contextlib.contextmanager
def streamlit_app(model_dirs: str, sample_dir: Path | None = None, app: Path = ROOT):
    """`streamlit run app.py` (of the checkout `app`) on a free port of 127.0.0.1; its
    address once it is healthy. Without sample_dir the app offers its default samples."""
    port = free_port()
    env = {**os.environ, "SKIN_MODEL_DIRS": model_dirs}
    if sample_dir is not None:
        env["SKIN_SAMPLE_DIR"] = str(sample_dir)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.server_pid = server.pid
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        server.kill()
        server.wait(timeout=30)
        pytest.fail("streamlit did not answer /_stcore/health within 90 s")
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def app_url(tiny_models, tmp_path_factory):
    with streamlit_app(os.environ.get("SKIN_E2E_MODELS", str(tiny_models)),
                       tmp_path_factory.mktemp("no-samples")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


# The script has finished (no "Running" widget, no skeleton placeholders) and every
# visible Plotly chart and data frame on the page has drawn (one in a closed expander
# draws when it opens).
PAGE_DRAWN = """() => {
    const all = (selector) => Array.from(document.querySelectorAll(selector))
        .filter((element) => element.checkVisibility());
    return all('[data-testid="stStatusWidget"], [data-testid="stSkeleton"]').length === 0
        && all('.stPlotlyChart').every((chart) => chart.querySelector('.main-svg'))
        && all('[data-testid="stDataFrame"]').every((frame) => frame.querySelector('canvas'));
}"""


def screenshot(page, name: str, width: int = 1280, height: int = 2000) -> None:
    folder = os.environ.get("SKIN_SCREENSHOTS")
    if folder:
        page.set_viewport_size({"width": width, "height": height})  # Streamlit scrolls inside
        page.wait_for_function(PAGE_DRAWN, timeout=60_000)
        # The resize makes charts and tables lay out again, slowly on busy cores: keep
        # the first picture that no longer changes.
        shot = None
        for _ in range(30):
            page.wait_for_timeout(1000)
            shot, previous = page.screenshot(), shot
            if shot == previous:
                break
        else:
            warnings.warn(f"{name}.png: the page was still changing after 30 s")
        (Path(folder) / f"{name}.png").write_bytes(shot)


def synthetic_lesion(path: Path) -> Path:
    """A drawn, lesion-like picture: a brown blob on skin tone (no dataset image)."""
    y, x = np.mgrid[0:150, 0:200]
    distance = np.hypot((x - 100) / 55, (y - 75) / 40)
    blob = np.clip(1.2 - distance, 0, 1)[..., None]
    skin, brown = np.array([228, 182, 160]), np.array([90, 50, 35])
    noise = np.random.default_rng(0).normal(0, 6, (150, 200, 3))
    Image.fromarray(np.clip(skin * (1 - blob) + brown * blob + noise, 0, 255).astype(np.uint8)).save(path)
    return path


def test_upload_an_image_and_read_the_prediction(app_url, browser, tmp_path):
    image = synthetic_lesion(tmp_path / "lesion.jpg")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(app_url)
    page.get_by_text("Classify a lesion").wait_for(timeout=60_000)
    page.locator('input[type="file"]').first.set_input_files(str(image))
    page.get_by_text("not a medical device").first.wait_for(timeout=120_000)
    page.get_by_text("Grad-CAM for").first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    assert "Ranked first by the model" in body
    assert any(decision in body for decision in ("Refer.", "Inconclusive.", "Low risk."))
    assert "Traceback" not in body
    screenshot(page, "classify")


def test_on_a_phone_the_decision_comes_right_after_the_input(app_url, browser, tmp_path):
    """At 390x844 the columns stack: the decision must come before the photo and its
    Grad-CAM, and nothing may scroll sideways."""
    image = synthetic_lesion(tmp_path / "lesion.jpg")
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(app_url)
    page.get_by_text("Classify a lesion").wait_for(timeout=60_000)
    page.locator('input[type="file"]').first.set_input_files(str(image))
    page.get_by_text("Grad-CAM for").first.wait_for(timeout=120_000)
    page.wait_for_function(PAGE_DRAWN, timeout=60_000)
    decision = page.get_by_text(re.compile(r"^(Refer|Inconclusive|Low risk)\.")).first
    photo = page.locator('[data-testid="stImage"]').first
    uploader = page.locator('[data-testid="stFileUploader"]').first
    top = {name: element.bounding_box()["y"] for name, element in
           (("uploader", uploader), ("decision", decision), ("photo", photo))}
    assert top["uploader"] < top["decision"] < top["photo"], top
    too_wide = page.evaluate("""() => Array.from(document.querySelectorAll('*'))
        .filter((e) => e.checkVisibility() && e.getBoundingClientRect().right > window.innerWidth + 1)
        .map((e) => e.tagName + ': ' + e.innerText.slice(0, 80) + ' @' + e.getBoundingClientRect().right).slice(0, 5)""")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 and not too_wide, too_wide
    screenshot(page, "classify-phone", width=390, height=1600)


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
                                           ("about", "The models"),
                                           ("classify", "Classify a lesion"),
                                           ("", "Classify a lesion")])
def test_every_page_has_a_stable_url(app_url, browser, path, heading):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/{path}")
    page.get_by_text(heading).first.wait_for(timeout=60_000)
    page.wait_for_function(PAGE_DRAWN, timeout=60_000)
    body = page.inner_text("body")
    assert "Traceback" not in body and "Page not found" not in body
    if path in ("compare", "evaluation", "about"):
        screenshot(page, path)


def test_a_deep_link_as_the_first_visit_of_a_fresh_server_is_routed_by_the_app(
        tiny_models, browser, tmp_path):
    """Before the first st.navigation call of a process, Streamlit treats pages/ as a legacy
    multipage app: /compare as the very first request once ran pages/compare.py alone, with
    every script of pages/ (app, about, classify ...) listed as a page (ui/__init__.py)."""
    with streamlit_app(str(tiny_models), tmp_path) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/compare")
        page.get_by_text("Held-out test metrics").first.wait_for(timeout=60_000)
        navigation = page.locator('[data-testid="stSidebarNav"] a')
        titles = [text.split()[-1] for text in navigation.all_inner_texts()]
        assert titles == ["Classify", "Compare", "Evaluation", "About"]
        assert page.title().startswith("Skin-lesion classifier")  # app.py's page config
        assert "Traceback" not in page.inner_text("body")


def classify(page, url, path):
    """Upload one file on a fresh Classify page; the page text once it has answered."""
    page.goto(url)
    page.get_by_text("Classify a lesion").wait_for(timeout=60_000)
    page.locator('input[type="file"]').first.set_input_files(str(path))
    answered = page.get_by_text("This file cannot be used").or_(page.get_by_text("Grad-CAM for"))
    answered.first.wait_for(timeout=int(os.environ.get("E2E_WAIT_MS", "120000")))
    return page.inner_text("body")


def test_the_corpus_of_bad_and_odd_files_through_the_running_app(app_url, browser, tmp_path):
    """Each file is classified or refused with its reason; the server keeps serving; file
    names are shown as text, never as HTML; nothing is written to the repository."""
    before = sorted(p for p in ROOT.rglob("*") if ".venv" not in p.parts and "__pycache__" not in p.parts)
    page = browser.new_page()
    refused = classified = 0
    for i, (kind, name, data, expected) in enumerate(CORPUS):
        if len(data) > 10 * 2**20:
            continue  # over the app's upload limit: refused by Streamlit itself (below)
        path = tmp_path / f"{i:02d}-{name}"
        path.write_bytes(data)
        body = classify(page, app_url, path)
        assert "Traceback" not in body, kind
        if expected is None:
            assert "Grad-CAM for" in body, kind
            classified += 1
        else:
            assert "This file cannot be used" in body and expected in body, kind
            refused += 1
        assert page.locator("img[src='x']").count() == 0, "a file name was rendered as HTML"
    assert refused >= 10 and classified >= 10
    assert urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=5).read() == b"ok"
    after = sorted(p for p in ROOT.rglob("*") if ".venv" not in p.parts and "__pycache__" not in p.parts)
    assert after == before


def test_a_labelled_zip_above_the_image_limit_is_compared_in_the_browser(
        app_url, browser, ham10000, tmp_path):
    # Real images with their labels, and 11 MB of padding: above the 10 MB a single image
    # may have, within the zip uploader's own limit.
    metadata = pd.read_csv(ham10000 / "metadata.csv").groupby("dx").head(2)
    archive_path = tmp_path / "labelled.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for image_id in metadata["image_id"]:
            archive.write(ham10000 / "images" / f"{image_id}.jpg", f"{image_id}.jpg")
        archive.writestr("labels.csv", metadata[["image_id", "dx"]].to_csv(index=False))
        archive.writestr("padding.bin", os.urandom(11 * 2**20))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{app_url}/evaluation")
    page.get_by_text("Your own labelled images (zip)").first.click()
    page.locator('input[type="file"]').first.set_input_files(str(archive_path))
    page.get_by_text(f"n = {len(metadata)} images, the same for every model").wait_for(
        timeout=240_000)
    page.get_by_text("Paired differences in balanced accuracy").wait_for(timeout=60_000)
    body = page.inner_text("body")
    assert "Skipped 1 file(s)" in body and "Traceback" not in body  # padding.bin


def test_an_image_over_the_limit_is_refused_by_its_uploader(app_url, browser, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * (11 * 2**20))  # the image limit is 10 MB
    page = browser.new_page()
    page.goto(app_url)
    page.get_by_text("Classify a lesion").wait_for(timeout=60_000)
    page.locator('input[type="file"]').first.set_input_files(str(big))
    page.get_by_text("or smaller").first.wait_for(timeout=30_000)
    assert "Grad-CAM for" not in page.inner_text("body")
