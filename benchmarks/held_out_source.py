"""How a model does on a clinic it never saw: each card's test split (re-made from its
seed and held-out source, checked against its split fingerprint) scored by the serving
code, with balanced accuracy, melanoma AUC (one-vs-rest), the referral rule's
sensitivity and specificity (threshold from the card, chosen on validation) and, as an
external melanoma-and-naevus set would count them, the share of melanomas referred and
of naevi not referred, all with 95% bootstrap intervals. Markdown; one row per card, and
one for the ensemble of each folder of cards given with `--ensemble DIR` (its
ensemble.json; repeat it to compare two ensembles). A model in several rows is scored once.

    python benchmarks/held_out_source.py [CARD ...] [--ensemble DIR ...] [--data DIR] [--tta]

Compare a card trained with `python -m train --test-source rosendahl` with the same
recipe on the mixed split to see how far the mixed split's figures overstate a new clinic.
Models scored on the same test images (cards of one split, and each card with and
without --tta's 8 views) are then compared in pairs (skin.comparison: paired bootstrap of
balanced accuracy, McNemar's test), as levers on one recipe must be.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from skin.cards import read_card, split_identity  # noqa: E402
from skin.comparison import comparison_report, format_report  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT, load_dataset  # noqa: E402
from skin.decision import malignant_probability, referral_rates  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.metrics import bootstrap_statistic  # noqa: E402
from skin.predict import Predictor, ensemble_probabilities  # noqa: E402
from skin.registry import Registry  # noqa: E402
from skin.split import remade_split_rows  # noqa: E402


def figures(labels: np.ndarray, probs: np.ndarray, classes: list, referral: dict) -> dict:
    melanoma = classes.index("mel")
    has_both = 0 < (labels == melanoma).sum() < len(labels)
    risk = malignant_probability(probs, classes, referral["malignant_classes"])
    truth = np.isin(labels, [classes.index(c) for c in referral["malignant_classes"]])
    referred = risk >= referral["threshold"]
    naevus = labels == classes.index("nv")
    return {
        "balanced_accuracy": float(balanced_accuracy_score(labels, probs.argmax(axis=1))),
        "melanoma_auc": float(roc_auc_score(labels == melanoma, probs[:, melanoma]))
        if has_both else None,
        **referral_rates(truth, risk, referral["threshold"]),
        "melanomas_referred": float(referred[labels == melanoma].mean())
        if (labels == melanoma).any() else None,
        "naevi_not_referred": float((~referred[naevus]).mean()) if naevus.any() else None,
    }


def cell(value, interval) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cards", nargs="*")
    p.add_argument("--ensemble", action="append", default=[],
                   help="a folder of cards whose ensemble to score too (repeatable)")
    p.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--tta", action="store_true",
                   help="also score each model with test-time augmentation (8 views)")
    args = p.parse_args()

    table = load_dataset(args.data).table
    columns = ("balanced_accuracy", "melanoma_auc", "sensitivity", "specificity",
               "melanomas_referred", "naevi_not_referred")
    print("| model | test split | n (malignant) | balanced accuracy | melanoma AUC | "
          "referral sensitivity | referral specificity | melanomas referred | "
          "naevi not referred |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [(card["name"] + (" +TTA" if tta else ""), [card], card["referral"], tta)
            for card in map(read_card, args.cards)
            for tta in ((False, True) if args.tta else (False,))]
    for folder in args.ensemble:
        registry = Registry.discover([Path(folder)])
        members = [registry.cards[name] for name in registry.ensemble_members()]
        rows.append((f"ensemble {Path(folder).name} (mean of {len(members)})", members,
                     registry.ensemble_record["referral"], False))
    on_same_images = {}  # (split fingerprint, source) -> {row name: probabilities}
    test_splits = {}  # split identity -> (its test rows, their decoded images)
    scored = {}  # (card name, tta, split identity) -> probabilities on its test images
    for name, cards, referral, tta in rows:
        card = cards[0]
        seed, fingerprint, source = identity = split_identity(card)
        if identity not in test_splits:
            test = remade_split_rows(table, seed, fingerprint, "test", test_source=source)
            test_splits[identity] = test, [read_image(p) for p in test["path"]]
        test, images = test_splits[identity]
        keys = [(member["name"], tta, identity) for member in cards]
        for member, key in zip(cards, keys):
            if key not in scored:
                predictor = Predictor.from_card(member)
                scored[key] = (
                    np.stack([predictor.probabilities(image, tta=True) for image in images])
                    if tta else predictor.batch_probabilities(images))
        probs = ensemble_probabilities([scored[key] for key in keys])
        labels = np.array([card["classes"].index(label) for label in test["label"]])
        observed = figures(labels, probs, card["classes"], referral)
        intervals = bootstrap_statistic(
            len(labels), lambda idx: figures(labels[idx], probs[idx], card["classes"], referral),
            n_resamples=args.bootstrap)
        n_malignant = int(np.isin(test["label"], referral["malignant_classes"]).sum())
        split = f"source {source} (unseen)" if source else "mixed, lesion-grouped"
        print(f"| {name} | {split} | {len(labels)} ({n_malignant}) | "
              + " | ".join(cell(observed[c], intervals[c]) for c in columns) + " |")
        group = on_same_images.setdefault((fingerprint, source),
                                          {"labels": labels, "classes": card["classes"],
                                           "probs": {}})
        group["probs"][name] = probs
    for (_, source), group in on_same_images.items():
        if len(group["probs"]) > 1:
            report = comparison_report(group["labels"], group["probs"], group["classes"],
                                       n_resamples=args.bootstrap, held_out_source=source)
            print(f"\nOn the same test images ({source or 'mixed split'}):\n```\n"
                  + format_report(report) + "\n```")

if __name__ == "__main__":
    main()
