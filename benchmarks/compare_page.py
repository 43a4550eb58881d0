"""Where the Compare page's time goes, and its round trips in a real browser.

Breakdown (in one process, the shipped models, real HAM10000 images): the steps the
page runs for one image, each timed on its own, median over the images:

    python benchmarks/compare_page.py --breakdown [--images 20]

Browser (Debian's chromium against `streamlit run app.py` on 127.0.0.1, the shipped
models only): cold = server start to the first complete Compare (every model loads),
warm = a second image on the same page until its five maps are shown:

    python benchmarks/compare_page.py --browser [--warm 5]
"""

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGES = ROOT.parent / "shared" / "data" / "ham10000" / "images"


def image_files(n: int, offset: int = 0) -> list[Path]:
    return sorted(IMAGES.glob("*.jpg"))[offset:offset + n]


def breakdown(n_images: int) -> None:
    import keras
    from PIL import Image

    from ui import charts
    from skin.gradcam import overlay
    from skin.images import read_image
    from skin.predict import Ensemble, Predictor
    from skin.registry import Registry

    clear_session = keras.backend.clear_session  # before the app's loader replaces it
    found = Registry.discover()
    print("Cold, per model: build + weights, then tracing (s)")
    print("| model | load | prediction and map graph (the app's) | single + TTA graphs |")
    print("|---|---|---|---|")
    members = []
    for card in found.cards.values():
        began = time.perf_counter()
        member = Predictor.from_card(card)
        loaded = time.perf_counter()
        member.warm_up(single=False, tta=False, explain=True)
        explained = time.perf_counter()
        member.warm_up(single=True, tta=True)
        print(f"| {card['name']} | {loaded - began:.1f} | {explained - loaded:.1f} | "
              f"{time.perf_counter() - explained:.1f} |")
        members.append(member)
    names = found.ensemble_members()
    combined = Ensemble([m for m in members if m.name in names], found.ensemble_record)
    steps = {step: [] for step in ("decode", "prediction and map (all models)", "ensemble",
                                   "overlay", "image encoding (PNG)",
                                   "Plotly figures (build + JSON)")}

    def timed(step, call):
        began = time.perf_counter()
        value = call()
        steps[step].append(time.perf_counter() - began)
        return value

    for path in image_files(n_images):
        data = path.read_bytes()
        image = timed("decode", lambda: read_image(data))
        explained = timed("prediction and map (all models)",
                          lambda: [m.explain(image) for m in members])
        results = [e.prediction for e in explained]
        timed("ensemble", lambda: combined.predict(
            image, member_predictions=[r for m, r in zip(members, results) if m.name in names]))
        blended = timed("overlay", lambda: [overlay(e.pixels, e.heatmap) for e in explained])

        def encode():
            for picture in blended:
                Image.fromarray(picture).save(io.BytesIO(), "PNG")
        timed("image encoding (PNG)", encode)
        timed("Plotly figures (build + JSON)", lambda: [
            charts.probability_bars(r.probabilities, 3, height=180).to_json() for r in results])
    print(f"\nWarm, median per image over {n_images} HAM10000 images (ms)")
    print("| step | ms per image |\n|---|---|")
    total = 0.0
    for step, seconds in steps.items():
        median = statistics.median(seconds) * 1000
        total += median
        print(f"| {step} | {median:.1f} |")
    print(f"| total | {total:.1f} |")
    after_clear = []
    for _ in range(3):
        clear_session()
        began = time.perf_counter()
        [m.explain(image) for m in members]
        after_clear.append(time.perf_counter() - began)
    print(f"prediction and map (all models) right after keras.backend.clear_session(), "
          f"which Streamlit calls after every script run: {statistics.median(after_clear):.1f} s")


def browser(n_warm: int) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, memory_mib, streamlit_app
    from tests.test_load import compare_round_trip

    files = image_files(n_warm + 1, offset=100)
    with tempfile.TemporaryDirectory() as no_extra_models:
        started = time.monotonic()
        with streamlit_app(no_extra_models) as url, sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = chromium.new_page()
            page.goto(f"{url}/compare")
            compare_round_trip(page, files[0])
            cold = time.monotonic() - started
            warm = []
            for path in files[1:]:
                began = time.monotonic()
                compare_round_trip(page, path)
                warm.append(time.monotonic() - began)
            chromium.close()
            memory = memory_mib(url.server_pid)
    print(f"cold (server start to the first complete Compare): {cold:.1f} s; warm (another "
          f"image, all maps shown): median {statistics.median(warm):.1f} s, max "
          f"{max(warm):.1f} s over {len(warm)}; server RSS {memory['VmRSS']:.0f} MiB, peak "
          f"{memory['VmHWM']:.0f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--warm", type=int, default=5)
    args = parser.parse_args()
    if not (args.breakdown or args.browser):
        parser.error("choose --breakdown and/or --browser")
    if args.breakdown:
        breakdown(args.images)
    if args.browser:
        browser(args.warm)


if __name__ == "__main__":
    main()
