"""Is model A better than model B? Both cards scored by the serving code on the
validation split they share (where choices may be made; never the test split), with
the paired bootstrap difference of each figure over the same images. As Markdown.

    python benchmarks/paired_validation.py CARD_A CARD_B [--data ../shared/data/ham10000]
"""

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comparison import class_indices, paired_cell, shared_split_rows  # noqa: E402
from skin.cards import read_card, split_identity  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.metrics import SUMMARY_METRICS, paired_difference  # noqa: E402
from skin.predict import Predictor  # noqa: E402
from skin.registry import LOAD_ERRORS  # noqa: E402

FIGURES = ("accuracy", "balanced_accuracy", "macro_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("card_a")
    parser.add_argument("card_b")
    parser.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples (at least 1)")
    args = parser.parse_args()
    if args.bootstrap < 1:
        parser.error("--bootstrap must be at least 1")

    try:
        cards = [read_card(args.card_a), read_card(args.card_b)]
        if any("training" not in card for card in cards):
            sys.exit("error: both cards need their training record (written by python -m train)")
        if cards[0]["classes"] != cards[1]["classes"]:
            sys.exit("error: the two models do not predict the same classes in the same order")
        val = shared_split_rows(cards, Path(args.data), side="val")
        predictors = [Predictor.from_card(card) for card in cards]
    except LOAD_ERRORS as e:
        sys.exit(f"error: {e}")
    images = [read_image(path) for path in val["path"]]
    y = class_indices(cards[0]["classes"], val["label"])
    probs = [predictor.batch_probabilities(images) for predictor in predictors]

    a, b = (card["name"] for card in cards)
    print(f"Validation split: n = {len(val)} (lesion-grouped, seed "
          f"{split_identity(cards[0])[0]}); {a} minus {b}, paired 95% bootstrap "
          f"({args.bootstrap} resamples of the same images).\n")
    print(f"| figure | {a} | {b} | difference |")
    print("|---|---|---|---|")
    for figure in FIGURES:
        score = SUMMARY_METRICS[figure]
        difference = paired_difference(y, *probs, metric=figure, n_resamples=args.bootstrap)
        print(f"| {figure} | {score(y, probs[0]):.4f} | {score(y, probs[1]):.4f} | "
              f"{paired_cell(*difference)} |")


if __name__ == "__main__":
    main()
