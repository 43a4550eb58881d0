"""Is model A better than model B? Both cards scored by the serving code on the
validation split they share (where choices may be made; never the test split), with
the paired bootstrap difference of each figure over the same images. As Markdown.

    python benchmarks/paired_validation.py CARD_A CARD_B [--data ../shared/data/ham10000]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comparison import shared_split_rows  # noqa: E402
from skin.cards import CardError, read_card  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.metrics import paired_difference, summary_metrics  # noqa: E402
from skin.predict import Predictor  # noqa: E402
from skin.registry import load_model  # noqa: E402

FIGURES = ("accuracy", "balanced_accuracy", "macro_f1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("card_a")
    p.add_argument("card_b")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared"
                                         / "data" / "ham10000"))
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples")
    args = p.parse_args()

    try:
        cards = [read_card(args.card_a), read_card(args.card_b)]
    except CardError as e:
        sys.exit(f"error: {e}")
    if cards[0]["classes"] != cards[1]["classes"]:
        sys.exit("error: the two models do not predict the same classes")
    val = shared_split_rows(cards, Path(args.data), side="val")
    images = [read_image(path) for path in val["path"]]
    y = np.array([cards[0]["classes"].index(label) for label in val["label"]])
    probs = [Predictor(card, load_model(card)).batch_probabilities(images) for card in cards]

    a, b = (card["name"] for card in cards)
    print(f"Validation split: n = {len(val)} (lesion-grouped, seed "
          f"{cards[0]['training']['seed']}); {a} minus {b}, paired 95% bootstrap "
          f"({args.bootstrap} resamples of the same images).\n")
    print(f"| figure | {a} | {b} | difference |")
    print("|---|---|---|---|")
    scores = [summary_metrics(y, p) for p in probs]
    for figure in FIGURES:
        difference, (low, high) = paired_difference(y, *probs, figure, args.bootstrap)
        print(f"| {figure} | {scores[0][figure]:.4f} | {scores[1][figure]:.4f} | "
              f"{difference:+.4f} [{low:+.4f}, {high:+.4f}] |")


if __name__ == "__main__":
    main()
