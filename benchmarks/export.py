"""The mobile exports against the Keras model they came from, per shipped model: file
size, single-image latency (one prepared 96 px image: the Keras graph Predictor runs,
the TensorFlow Lite interpreter, ONNX Runtime) and the largest probability difference on
HAM10000 images, for TensorFlow Lite with float32 and float16 weights and for ONNX.

    python benchmarks/export.py [--repeats 30] [--images 50] [--data ../shared/data/ham10000]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from serving import median_ms  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT  # noqa: E402
from skin.export import ExportedModel, export  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.predict import Predictor  # noqa: E402
from skin.registry import SHIPPED_MODELS, Registry  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--images", type=int, default=50, help="HAM10000 images to compare on")
    p.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    args = p.parse_args()

    ids = pd.read_csv(Path(args.data) / "metadata.csv")["image_id"].sample(args.images,
                                                                         random_state=0)
    images = [read_image(Path(args.data) / "images" / f"{i}.jpg") for i in ids]
    print(f"{args.images} HAM10000 images; latency: median of {args.repeats} calls on one "
          "prepared image\n")
    print("| model | Keras weights | Keras latency (ms) | TFLite float32 | latency (ms) | "
          "max prob. difference | TFLite float16 | latency (ms) | max prob. difference | "
          "ONNX | latency (ms) | max prob. difference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for card in Registry.discover([SHIPPED_MODELS]).cards.values():
        predictor = Predictor.from_card(card)
        expected = predictor.batch_probabilities(images)
        pixels = np.concatenate([predictor.prepare(image).numpy() for image in images])
        one = pixels[:1]
        cells = [f"{card['source']['bytes'] / 2**20:.1f} MiB",
                 f"{median_ms(lambda: predictor._batch(one)[0].numpy(), args.repeats):.1f}"]
        for fmt, float16 in (("tflite", False), ("tflite", True), ("onnx", False)):
            with tempfile.TemporaryDirectory() as folder:
                path = export(card, predictor.model, folder, fmt, float16=float16)
                exported = ExportedModel(path)
                difference = np.abs(exported.probabilities(pixels) - expected).max()
                cells += [f"{path.stat().st_size / 2**20:.1f} MiB",
                          f"{median_ms(lambda: exported.probabilities(one), args.repeats):.1f}",
                          f"{difference:.1e}"]
        print(f"| {card['name']} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
