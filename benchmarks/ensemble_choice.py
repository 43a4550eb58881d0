"""Which models should the ensemble average? Chosen on the validation split only: every
model of a folder scored once by the serving code, then each single model, the mean of
all, the mean of all but one, and a greedy forward selection (from the best single
model, add whichever member raises balanced accuracy most, while one does), each with
its paired difference from the best single model (bootstrap over the same images). As
Markdown.

    python benchmarks/ensemble_choice.py --models DIR [--data ../shared/data/ham10000]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comparison import class_indices, paired_cell, shared_split_rows  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.metrics import paired_difference, summary_metrics  # noqa: E402
from skin.predict import Predictor, ensemble_probabilities  # noqa: E402
from skin.registry import Registry  # noqa: E402


def balanced_accuracy(y, probs) -> float:
    return summary_metrics(y, probs)["balanced_accuracy"]


def greedy_selection(y, probs: dict, start: str) -> list[str]:
    """From `start`, add the model whose joining raises the mean's balanced accuracy
    most, while one does."""
    chosen = [start]
    score = balanced_accuracy(y, probs[start])
    while True:
        gains = {name: balanced_accuracy(y, ensemble_probabilities(
            [probs[n] for n in chosen + [name]])) for name in probs if name not in chosen}
        if not gains or max(gains.values()) <= score:
            return chosen
        best = max(gains, key=gains.get)
        chosen.append(best)
        score = gains[best]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", required=True, help="a folder of model cards sharing a split")
    p.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    args = p.parse_args()

    registry = Registry.discover([Path(args.models)])
    names = list(registry.cards)
    cards = [registry.cards[n] for n in names]
    val = shared_split_rows(cards, Path(args.data), side="val")
    images = [read_image(path) for path in val["path"]]
    y = class_indices(cards[0]["classes"], val["label"])
    probs = {c["name"]: Predictor.from_card(c).batch_probabilities(images) for c in cards}

    best = max(names, key=lambda n: balanced_accuracy(y, probs[n]))
    candidates = {n: [n] for n in names}
    candidates["mean of all"] = names
    for left_out in names:
        candidates[f"mean of all but {left_out}"] = [n for n in names if n != left_out]
    greedy = greedy_selection(y, probs, best)
    candidates["greedy: " + " + ".join(greedy)] = greedy

    print(f"Validation split: n = {len(val)}; the best single model: {best}.\n")
    print("| candidate | members | balanced accuracy | macro-F1 | minus the best single "
          "model (paired 95% interval) |")
    print("|---|---|---|---|---|")
    for label, members in candidates.items():
        mean = ensemble_probabilities([probs[n] for n in members])
        scores = summary_metrics(y, mean)
        lead = "-" if members == [best] else paired_cell(*paired_difference(y, mean, probs[best]))
        print(f"| {label} | {len(members)} | {scores['balanced_accuracy']:.4f} | "
              f"{scores['macro_f1']:.4f} | {lead} |")


if __name__ == "__main__":
    main()
