"""Serving figures per backbone: cold load time, latency of Predictor.predict against a
bare compiled model call on the same input (the overhead of preprocessing, temperature
and the summary), all backbones on one image, and peak RSS with every model loaded.

Uses the cards in assets/models when there are any (--shipped), else builds a
random-weight card per backbone at --img-size (latency does not depend on the weights).

    python benchmarks/serving.py [--img-size 96] [--repeats 30] [--shipped]
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from skin.backbones import BACKBONES, build_classifier  # noqa: E402
from skin.files import file_sha256  # noqa: E402
from skin.predict import Predictor  # noqa: E402
from skin.registry import Registry, load_model  # noqa: E402

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def random_cards(folder: Path, size: int) -> list[dict]:
    from skin.cards import read_card
    cards = []
    for name in BACKBONES:
        input_size = max(size, BACKBONES[name].min_size)
        weights = folder / f"{name}.weights.h5"
        build_classifier(name, len(CLASSES), input_size).save_weights(weights)
        card = {"name": name, "backbone": name, "classes": CLASSES, "input_size": input_size,
                "source": {"file": weights.name, "sha256": file_sha256(weights)}}
        (folder / f"{name}.json").write_text(json.dumps(card))
        cards.append(read_card(folder / f"{name}.json"))
    return cards


def median_ms(call, repeats: int) -> float:
    call()  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--shipped", action="store_true", help="benchmark assets/models")
    args = parser.parse_args()

    image = np.random.default_rng(0).integers(0, 256, (150, 200, 3)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as scratch:
        cards = (list(Registry.discover().cards.values()) if args.shipped
                 else random_cards(Path(scratch), args.img_size))
        rss_before = peak_rss_mib()
        rows, predictors = [], []
        for card in cards:
            started = time.perf_counter()
            model = load_model(card)
            predictor = Predictor(card, model)
            predictor.predict(image)
            cold = time.perf_counter() - started
            x = predictor.model_input(predictor.prepare(image))
            bare = tf.function(lambda t, m=model: m(t, training=False))
            bare_ms = median_ms(lambda: bare(x).numpy(), args.repeats)
            predict_ms = median_ms(lambda: predictor.predict(image), args.repeats)
            tta_ms = median_ms(lambda: predictor.predict(image, tta=True), max(args.repeats // 3, 3))
            rows.append((card["name"], card["input_size"], model.count_params(), cold, bare_ms,
                         predict_ms, tta_ms))
            predictors.append(predictor)
            print(f"{card['name']}: cold {cold:.1f} s, bare {bare_ms:.1f} ms, predict "
                  f"{predict_ms:.1f} ms", file=sys.stderr, flush=True)
        all_ms = median_ms(lambda: [p.predict(image) for p in predictors], max(args.repeats // 3, 3))

    print(f"\nTF {tf.__version__}, median of {args.repeats} calls, one 200x150 image\n")
    print("| model | input | parameters | cold load + first call (s) | bare model call (ms) "
          "| predict (ms) | overhead | predict with TTA x8 (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, size, params, cold, bare_ms, predict_ms, tta_ms in rows:
        print(f"| {name} | {size} | {params / 1e6:.1f} M | {cold:.1f} | {bare_ms:.1f} | "
              f"{predict_ms:.1f} | {predict_ms / bare_ms - 1:+.0%} | {tta_ms:.1f} |")
    print(f"\nall {len(rows)} models on one image: {all_ms:.0f} ms; peak RSS with all loaded: "
          f"{peak_rss_mib():.0f} MiB (before loading: {rss_before:.0f} MiB)")


if __name__ == "__main__":
    main()
