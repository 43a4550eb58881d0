"""python -m train.decisions: choose the referral rule and the input guard on validation
for model cards that already exist, and for their ensemble, and write them in.

    python -m train.decisions --data ../shared/data/ham10000 [--models assets/models]

For each card, its split is re-made from the card's seed (and held-out source) and
checked against its split fingerprint; the serving code scores the validation and test
images and the training images the guard is fitted on (the same ones `python -m train`
uses); the card gains `referral` and `guard` blocks (skin.decision) and NAME.guard.npz,
written atomically with the rest of the card unchanged. When two or more cards share
their classes and split, their ensemble (the mean of their calibrated probabilities)
gets the same blocks, with its validation and test figures, in `ensemble.json` beside
them. `python -m train` writes these for every new model itself.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from skin.cards import CardError, split_identity
from skin.dataset import DatasetError, load_dataset
from skin.decision import (
    DEFAULT_GUARD_FLAG_RATE, DEFAULT_TARGET_SENSITIVITY, GUARD_FIT_IMAGES, guard_rule,
    make_guard, referral_rule,
)
from skin.files import atomic_write_text
from skin.images import read_image
from skin.metrics import evaluate, summary_metrics
from skin.predict import ensemble_guard_score, ensemble_probabilities
from skin.registry import ENSEMBLE_RECORD, LOAD_ERRORS, SHIPPED_MODELS, Registry
from skin.split import remade_split_rows


class SplitImages:
    """The images of each split the cards name, read once: (labels, RGB arrays) for the
    validation and test sides and for the training images the guard is fitted on."""

    def __init__(self, table):
        self.table, self.cache = table, {}

    def get(self, card: dict) -> dict:
        key = split_identity(card)
        if key not in self.cache:
            seed, fingerprint, source = key
            sides = {side: remade_split_rows(self.table, seed, fingerprint, side,
                                             test_source=source)
                     for side in ("train", "val", "test")}
            train = sides.pop("train")
            sides["guard_fit"] = train.sample(min(GUARD_FIT_IMAGES, len(train)),
                                              random_state=seed)
            self.cache[key] = {side: (rows["label"].tolist(),
                                      [read_image(path) for path in rows["path"]])
                               for side, rows in sides.items()}
        return self.cache[key]


def referral(classes, scores: dict, args) -> dict | None:
    """The referral block from validation and test (labels, probabilities, guard scores)."""
    (val_y, val_p, _), (test_y, test_p, _) = scores["val"], scores["test"]
    return referral_rule(classes, val_y, val_p, test_y, test_p,
                         target_sensitivity=args.target_sensitivity,
                         n_resamples=args.bootstrap)


def mean_scores(members: list[tuple], guards: list[dict]) -> tuple:
    """The ensemble's (labels, probabilities, guard scores): the mean of its members'
    probabilities, and their guard scores combined as the served ensemble combines them."""
    labels = members[0][0]
    return (labels, ensemble_probabilities([probs for _, probs, _ in members]),
            ensemble_guard_score([scores for _, _, scores in members], guards))


def write_json(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps({k: v for k, v in record.items() if k != "_path"},
                                       indent=1))


def describe(name: str, blocks: dict) -> str:
    referral, guard = blocks["referral"], blocks["guard"]
    if referral is None:
        return f"{name}: no malignant lesions in validation, no referral rule"
    test = referral["test"]
    ci = test.get("intervals_95", {})

    def rate(key):
        low, high = ci.get(key) or (np.nan, np.nan)
        return f"{test[key]:.3f} [{low:.3f}, {high:.3f}]"

    return (f"{name}: refer at P(malignant) >= {referral['threshold']:.4f}; test sensitivity "
            f"{rate('sensitivity')}, specificity {rate('specificity')} "
            f"(n = {test['n_malignant']} malignant, {test['n_benign']} benign); guard flags "
            f"{guard['val_flagged']:.3f} of validation and {guard['test_flagged']:.3f} of test")


def chosen_members(registry: Registry, names: str | None) -> list[str]:
    """The ensemble's members: --members (each registered, one class list), or the
    registry's own choice."""
    if not names:
        return registry.ensemble_members()
    members = sorted(n.strip() for n in names.split(","))
    for name in members:
        registry.get(name)  # a CardError naming the registered models
    if not registry.share_classes(members):
        raise CardError(f"--members {names}: the models do not share one class list")
    return members


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.decisions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the dataset the models were trained on")
    p.add_argument("--models", default=str(SHIPPED_MODELS), help="a folder of model cards")
    p.add_argument("--members", help="comma-separated: the models the ensemble averages, "
                   "as chosen on validation (benchmarks/ensemble_choice.py); only these "
                   "are scored (default: every model sharing one class list, all scored)")
    p.add_argument("--target-sensitivity", type=float, default=DEFAULT_TARGET_SENSITIVITY)
    p.add_argument("--guard-flag-rate", type=float, default=DEFAULT_GUARD_FLAG_RATE)
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for 95%% intervals")
    args = p.parse_args(argv)

    from skin.predict import Predictor
    from skin.registry import load_guard
    try:
        registry = Registry.discover([Path(args.models)])
        if not registry.cards:
            raise CardError(f"{args.models} holds no model cards")
        members = chosen_members(registry, args.members)
        images = SplitImages(load_dataset(args.data).table)
        scored = {}
        for name, card in registry.cards.items():
            if args.members and name not in members:
                continue
            print(f"scoring {name} ...", file=sys.stderr, flush=True)
            predictor = Predictor.from_card(card)
            outputs = {side: (np.array([card["classes"].index(label) for label in labels]),
                              *predictor.batch_outputs(pixels))
                       for side, (labels, pixels) in images.get(card).items()}
            card["guard"] = make_guard(
                outputs["guard_fit"][2], outputs["val"][2], outputs["test"][2],
                Path(card["_path"]).with_name(f"{name}.guard.npz"),
                flag_rate=args.guard_flag_rate)
            guard = load_guard(card)
            scored[name] = {side: (y, probs, guard.score(features))
                            for side, (y, probs, features) in outputs.items()}
            card["referral"] = referral(card["classes"], scored[name], args)
            write_json(Path(card["_path"]), card)
            print(describe(name, card))
    except (*LOAD_ERRORS, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if len(members) > 1 and len({split_identity(registry.cards[m]) for m in members}) == 1:
        classes = registry.cards[members[0]]["classes"]
        guards = [registry.cards[m]["guard"] for m in members]
        mean = {side: mean_scores([scored[m][side] for m in members], guards)
                for side in ("val", "test")}
        record = {"members": members, "combination": "mean of calibrated probabilities",
                  "referral": referral(classes, mean, args),
                  "guard": {"method": "mean of the members' guard scores, each standardised "
                                      "by its validation mean and standard deviation",
                            **guard_rule(mean["val"][2], mean["test"][2],
                                         flag_rate=args.guard_flag_rate)},
                  "validation": {"split": "val", "n": len(mean["val"][0]),
                                 **summary_metrics(*mean["val"][:2])},
                  "evaluation": {"split": "test", **evaluate(*mean["test"][:2], classes,
                                                             n_resamples=args.bootstrap)}}
        write_json(Path(args.models) / ENSEMBLE_RECORD, record)
        print(describe("ensemble", record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
