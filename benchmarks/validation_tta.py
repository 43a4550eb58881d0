"""Does test-time augmentation help, and does the ensemble beat its members? Measured on
the validation split, where serving choices may be made (never on the test split): every
shipped model and their ensemble, each without and with the 8 mirrored/rotated views of
`--tta`; whether the ensemble's lead over each member, and each member's share in it,
is resolved (paired bootstrap); how often the members disagree (an ensemble gains only
where they do); then what share of images each one's "inconclusive" thresholds flag. As
Markdown.

    python benchmarks/validation_tta.py [--data ../shared/data/ham10000] [--models DIR]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comparison import class_indices, paired_cell, shared_split_rows  # noqa: E402
from skin.cards import split_identity  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.metrics import lead_over_best, paired_difference, summary_metrics  # noqa: E402
from skin.predict import (  # noqa: E402
    Predictor, ensemble_probabilities, ensemble_thresholds, flagging,
)
from skin.registry import SHIPPED_MODELS, Registry  # noqa: E402

FIGURES = ("accuracy", "balanced_accuracy", "macro_f1")


def print_member_shares(y, probs: dict, members: list[str]) -> None:
    """Is the ensemble's lead over each member real, and does each member add to it?"""
    print("\nBalanced accuracy (no TTA) of the ensemble minus each member, and of the ensemble "
          "minus the ensemble without that member; paired 95% bootstrap over the same images:\n")
    print("| member | ensemble - member | ensemble - ensemble without it |")
    print("|---|---|---|")
    full = probs["ensemble", "no"]
    for name in members:
        without = np.mean([probs[other, "no"] for other in members if other != name], axis=0)
        cells = [paired_difference(y, full, baseline) for baseline in (probs[name, "no"], without)]
        print(f"| {name} | " + " | ".join(paired_cell(*c) for c in cells) + " |")
    best = lead_over_best(y, full, [probs[name, "no"] for name in members])
    print(f"| the best member, chosen in each resample | {paired_cell(*best)} | |")


def print_member_disagreement(probs: dict, members: list[str]) -> None:
    """How often each pair of members names different top classes, and how often all
    agree: members that make the same mistakes leave their mean little to correct."""
    top = {name: probs[name, "no"].argmax(axis=1) for name in members}
    print("\nShare of images on which two members' top classes differ (no TTA):\n")
    print("| member | " + " | ".join(members) + " |")
    print("|---|" + "---|" * len(members))
    for a in members:
        cells = ("-" if a == b else f"{np.mean(top[a] != top[b]):.3f}" for b in members)
        print(f"| {a} | " + " | ".join(cells) + " |")
    all_agree = np.all([top[name] == top[members[0]] for name in members], axis=0)
    print(f"\nAll {len(members)} name the same class on {np.mean(all_agree):.3f} of the images.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    p.add_argument("--models", default=str(SHIPPED_MODELS))
    args = p.parse_args()

    registry = Registry.discover([Path(args.models)])
    members = registry.ensemble_members()
    cards = [registry.cards[name] for name in members]
    val = shared_split_rows(cards, Path(args.data), side="val")
    images = [read_image(path) for path in val["path"]]
    y = class_indices(cards[0]["classes"], val["label"])
    probs, thresholds = {}, {}
    for card in cards:
        predictor = Predictor.from_card(card)
        thresholds[card["name"]] = predictor.thresholds
        probs[card["name"], "no"] = predictor.batch_probabilities(images)
        probs[card["name"], "yes"] = np.stack([predictor.probabilities(image, tta=True)
                                               for image in images])
    for tta in ("no", "yes"):
        probs["ensemble", tta] = ensemble_probabilities([probs[name, tta] for name in members])
    thresholds["ensemble"] = ensemble_thresholds([thresholds[name] for name in members])

    print(f"Validation split: n = {len(val)} (lesion-grouped, seed "
          f"{split_identity(cards[0])[0]}).\n")
    print("| model | TTA | " + " | ".join(FIGURES) + " |")
    print("|---|---|" + "---|" * len(FIGURES))
    for (name, tta), p in probs.items():
        scores = summary_metrics(y, p)
        print(f"| {name} | {tta} | " + " | ".join(f"{scores[k]:.4f}" for k in FIGURES) + " |")

    if len(members) >= 2:  # an ensemble of one has no lead and no disagreement
        print_member_shares(y, probs, members)
        print_member_disagreement(probs, members)

    print("\nInconclusive flag (no TTA; the ensemble's thresholds are its members' mean):\n")
    print("| model | flagged | accuracy kept | accuracy flagged |")
    print("|---|---|---|---|")
    for name, limits in thresholds.items():
        flags = flagging(y, probs[name, "no"], limits)
        print(f"| {name} | {flags['flagged_fraction']:.3f} | {flags['accuracy_kept']:.3f} | "
              f"{flags['accuracy_flagged']:.3f} |")


if __name__ == "__main__":
    main()
