"""The README's comparison table, measured: every shipped model scored by the serving
code on the HAM10000 test split (re-made from the cards' seed and checked against their
split fingerprint), the ensemble's row, parameters, weights size and latency, as Markdown;
then whether the ensemble's lead over each member is resolved (paired bootstrap), and
the comparator's tables (per-class recall, every pair's paired difference with McNemar's
test: skin.comparison, as the app and `python -m skin evaluate --compare`). With
--write-scores, the per-image probabilities go to the file the app's Evaluation
page compares the models on (assets/comparison/test-split.csv).

    python benchmarks/comparison.py [--data ../shared/data/ham10000] [--repeats 20] \
        [--write-scores assets/comparison/test-split.csv]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from serving import median_ms  # noqa: E402
from skin.cards import class_balance, split_identity  # noqa: E402
from skin.comparison import comparison_report, format_report  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT, DatasetError, load_dataset  # noqa: E402
from skin.images import read_image  # noqa: E402
from skin.metrics import evaluate, lead_over_best, paired_difference  # noqa: E402
from skin.predict import Ensemble, Predictor  # noqa: E402
from skin.registry import SHIPPED_MODELS, Registry  # noqa: E402
from skin.scores import ENSEMBLE, score_images  # noqa: E402
from skin.split import remade_split_rows  # noqa: E402

COLUMNS = [("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"),
           ("macro-F1", "macro_f1"), ("top-3", "top3_accuracy"), ("AUC (OvR)", "auc_ovr"),
           ("ECE", "ece")]


def shared_split_rows(cards: list[dict], data: Path, side: str = "test"):
    """The rows of one side of the split every card was trained on (one split, or an
    error)."""
    splits = {split_identity(c) for c in cards}
    if len(splits) != 1:
        sys.exit("error: the models were not trained on one split; no fair comparison")
    seed, fingerprint, test_source = splits.pop()
    try:
        return remade_split_rows(load_dataset(data).table, seed, fingerprint, side,
                                 test_source=test_source)
    except DatasetError as e:
        sys.exit(f"error: {e}")


def class_indices(classes: list[str], labels) -> np.ndarray:
    """Each label's position in a model's list of classes: the y that metrics take."""
    return np.array([classes.index(label) for label in labels])


def cell(scores: dict, key: str) -> str:
    value, interval = scores[key], scores["intervals_95"].get(key)
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else f"{value:.3f}"


def paired_cell(difference: float, interval: list[float]) -> str:
    """A paired difference and its interval, e.g. "+0.0123 [-0.0050, +0.0290]"."""
    return f"{difference:+.4f} [{interval[0]:+.4f}, {interval[1]:+.4f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    p.add_argument("--models", default=str(SHIPPED_MODELS))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples; 0: no intervals")
    p.add_argument("--write-scores", help="write every model's per-image probabilities here")
    args = p.parse_args()

    registry = Registry.discover([Path(args.models)])
    cards = list(registry.cards.values())
    test = shared_split_rows(cards, Path(args.data))
    members = [Predictor.from_card(card) for card in cards]
    paths = dict(zip(test["image_id"], test["path"]))
    scored, skipped = score_images(
        members, list(paths), test["label"].tolist(), paths.get,
        f"HAM10000 test split (lesion-grouped, seed {split_identity(cards[0])[0]})",
        registry.ensemble_members())
    if skipped:
        sys.exit(f"error: unreadable test images: {skipped[:3]}")
    if args.write_scores:
        scored.write(args.write_scores)
    first_image = read_image(test["path"].iloc[0])
    header = "| model | class balance | " + " | ".join(c for c, _ in COLUMNS) + \
        " | parameters | weights | latency (ms) |"
    rows = [header, "|" + "---|" * (len(COLUMNS) + 5)]

    def add_row(name, scores, cards_used, predict_one):
        balance = " + ".join(sorted({str(class_balance(c)) for c in cards_used}))
        rows.append(f"| {name} | {balance} | " + " | ".join(cell(scores, k) for _, k in COLUMNS)
                    + f" | {sum(c['parameters'] for c in cards_used) / 1e6:.1f} M"
                    f" | {sum(c['source']['bytes'] for c in cards_used) / 2**20:.1f} MiB"
                    f" | {median_ms(predict_one, args.repeats):.1f} |")

    all_probs = scored.probs
    for card, member in zip(cards, members):
        y = class_indices(member.classes, test["label"])
        scores = evaluate(y, all_probs[member.name], member.classes, n_resamples=args.bootstrap)
        drift = scores["balanced_accuracy"] - card["evaluation"]["balanced_accuracy"]
        print(f"{member.name}: balanced accuracy served {scores['balanced_accuracy']:.4f}, "
              f"card {card['evaluation']['balanced_accuracy']:.4f} ({drift:+.4f})",
              file=sys.stderr)
        add_row(member.name, scores, [card], lambda: member.predict(first_image))
    ensemble_names = registry.ensemble_members()
    same_classes = [m for m in members if m.name in ensemble_names]
    leads = []
    if len(same_classes) > 1:
        y = class_indices(same_classes[0].classes, test["label"])
        mean = all_probs[ENSEMBLE]
        scores = evaluate(y, mean, same_classes[0].classes, n_resamples=args.bootstrap)
        add_row(f"**ensemble** (mean of {len(same_classes)})", scores,
                [m.card for m in same_classes], lambda: Ensemble(same_classes).predict(first_image))
        if args.bootstrap:
            for m in same_classes:
                lead = paired_difference(y, mean, all_probs[m.name], n_resamples=args.bootstrap)
                leads.append(f"| {m.name} | {paired_cell(*lead)} |")
            best = lead_over_best(y, mean, [all_probs[m.name] for m in same_classes],
                                  n_resamples=args.bootstrap)
            leads.append(f"| the best member, chosen in each resample | {paired_cell(*best)} |")
    print(f"Test split: n = {len(test)} (lesion-grouped, seed "
          f"{split_identity(cards[0])[0]}); 95% bootstrap intervals.\n")
    print("\n".join(rows))
    if leads:
        print("\nEnsemble minus each member, balanced accuracy, paired 95% bootstrap over "
              "the same test images:\n")
        print("\n".join(["| member | ensemble - member |", "|---|---|", *leads]))
    if args.bootstrap:
        report = comparison_report(scored.y, scored.probs, scored.classes,
                                   n_resamples=args.bootstrap)
        print("\n```\n" + format_report(report) + "\n```")


if __name__ == "__main__":
    main()
