"""A visitor's first minute, in a real browser (Debian's chromium) against `streamlit run
app.py` on 127.0.0.1 with the shipped models alone, every figure from the server's start:

- page interactive: the Classify page's title and uploader are on screen;
- first Classify result: a HAM10000 image uploaded once the uploader is there, until the
  decision and the Grad-CAM map are shown (the default model);
- first complete Compare: on a second fresh server, /compare, until every model's map is
  shown.

Run it with nothing else on the machine (the figures are wall-clock on 2 cores):

    python benchmarks/cold_start.py [--app DIR] [--repeats 3]

--app runs another checkout of the app (e.g. `git worktree add /tmp/before COMMIT`), for
figures before and after a change on the same machine.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, streamlit_app  # noqa: E402
from tests.test_load import wait_for_comparison  # noqa: E402

IMAGE = sorted((ROOT.parent / "shared" / "data" / "ham10000" / "images").glob("*.jpg"))[7]


def classify_timings(chromium, app: Path, model_dirs: str) -> tuple[float, float]:
    started = time.monotonic()
    with streamlit_app(model_dirs, app=app) as url:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.get_by_text("Classify a lesion").first.wait_for(timeout=120_000)
        page.locator('[data-testid="stFileUploaderDropzone"]').first.wait_for(timeout=120_000)
        interactive = time.monotonic() - started
        upload = page.locator('input[type="file"]').first
        upload.set_input_files(str(IMAGE))
        page.get_by_text("Grad-CAM for").first.wait_for(timeout=300_000)
        return interactive, time.monotonic() - started


def compare_timing(chromium, app: Path, model_dirs: str, maps: int) -> float:
    started = time.monotonic()
    with streamlit_app(model_dirs, app=app) as url:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/compare")
        upload = page.locator('input[type="file"]').first
        upload.wait_for(state="attached", timeout=120_000)
        upload.set_input_files(str(IMAGE))
        wait_for_comparison(page, IMAGE, maps)
        return time.monotonic() - started


def main() -> None:
    from playwright.sync_api import sync_playwright

    from skin.registry import SHIPPED_MODELS, Registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=str(ROOT), help="the checkout whose app.py to run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    app = Path(args.app).resolve()
    maps = len(Registry.discover([app / "assets" / "models"]).cards or
               Registry.discover([SHIPPED_MODELS]).cards)
    figures = {"page interactive": [], "first Classify result": [],
               "first complete Compare": []}
    with tempfile.TemporaryDirectory() as no_extra_models, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for _ in range(args.repeats):
            interactive, result = classify_timings(chromium, app, no_extra_models)
            figures["page interactive"].append(interactive)
            figures["first Classify result"].append(result)
            figures["first complete Compare"].append(
                compare_timing(chromium, app, no_extra_models, maps))
        chromium.close()
    print(f"{app.name}: seconds from server start, median (min-max) of {args.repeats} "
          f"fresh servers; {maps} shipped models; image {IMAGE.name}\n")
    print("| figure | seconds |\n|---|---|")
    for name, seconds in figures.items():
        print(f"| {name} | {statistics.median(seconds):.1f} ({min(seconds):.1f}-"
              f"{max(seconds):.1f}) |")


if __name__ == "__main__":
    main()
