"""Peak memory of the Streamlit server with every model loaded, as a Community Cloud
deployment would run it (limit there: about 2.7 GB).

Starts `streamlit run app.py` on 127.0.0.1 with the shipped models plus random-weight
models of every backbone at --img-size (with --shipped-only: the shipped models alone,
as deployed), opens the Compare page in Debian's chromium, classifies one image with all
models, and reads the server's VmHWM / VmRSS from /proc.

    python benchmarks/app_memory.py [--img-size 96] [--shipped-only]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from serving import random_cards  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, memory_mib, streamlit_app  # noqa: E402
from tests.test_load import compare_round_trip  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--shipped-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        models = scratch / "models"
        models.mkdir()
        if not args.shipped_only:
            random_cards(models, args.img_size)
        image = scratch / "lesion.jpg"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 200, 3)).astype(np.uint8)).save(image)
        n = len(list(models.glob("*.json"))) + len(list((ROOT / "assets" / "models").glob("*.json")))
        with streamlit_app(str(models)) as url:
            idle = memory_mib(url.server_pid)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                page = browser.new_page()
                page.goto(f"{url}/compare")
                page.get_by_text("Held-out test metrics").wait_for(timeout=120_000)
                started = time.monotonic()
                compare_round_trip(page, image, maps=n)
                first = time.monotonic() - started
                browser.close()
            loaded = memory_mib(url.server_pid)
        print(f"server idle: RSS {idle['VmRSS']:.0f} MiB; after Compare with {n} models loaded: "
              f"RSS {loaded['VmRSS']:.0f} MiB, peak (VmHWM) {loaded['VmHWM']:.0f} MiB; "
              f"first Compare (cold loads included) {first:.0f} s")


if __name__ == "__main__":
    main()
