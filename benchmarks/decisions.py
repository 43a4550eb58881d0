"""The README's table of safe decisions, measured: for every model of a folder of cards
and their ensemble, the referral rule (threshold chosen on validation) with its
sensitivity and specificity on the test split, from the cards (`python -m train.decisions`
wrote them through the serving code); and the input guard's share of flagged images on
validation and test lesions (its false alarms) and on non-lesion images
(benchmarks/non_lesion.py), the latter measured here through the serving code. Markdown.

    python benchmarks/decisions.py [--models assets/models]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from non_lesion import non_lesion_images  # noqa: E402
from skin.decision import is_flagged  # noqa: E402
from skin.predict import Predictor, ensemble_guard_score  # noqa: E402
from skin.registry import (  # noqa: E402
    SHIPPED_MODELS, Registry, ensemble_record_for,
)


def rate(block: dict, key: str) -> str:
    value, interval = block.get(key), (block.get("intervals_95") or {}).get(key)
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def row(name: str, rules: dict, flagged: dict) -> str:
    referral, guard = rules.get("referral") or {}, rules.get("guard") or {}
    test = referral.get("test") or {}
    threshold = f"{referral['threshold']:.3f}" if referral else "no rule"
    guard_cells = [f"{guard[k]:.3f}" if k in guard else "n/a"
                   for k in ("val_flagged", "test_flagged")]
    return (f"| {name} | {threshold} | {rate(test, 'sensitivity')} | "
            f"{rate(test, 'specificity')} | " + " | ".join(guard_cells) + " | "
            + " | ".join(f"{n}/{total}" for n, total in flagged.values()) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=str(SHIPPED_MODELS))
    args = p.parse_args()

    registry = Registry.discover([Path(args.models)])
    sets = non_lesion_images()
    header = ("| model | refer at P(malignant) >= | test sensitivity | test specificity | "
              "guard: val lesions flagged | test lesions flagged | "
              + " | ".join(f"{name.replace('_', ' ')} flagged" for name in sets) + " |")
    lines = [header, "|" + "---|" * (6 + len(sets))]
    scores = {}
    for name, card in registry.cards.items():
        predictor = Predictor.from_card(card)
        scores[name] = {s: predictor.batch_scores(images)[1] for s, images in sets.items()}
        flagged = {s: (int(np.sum(is_flagged(v, card.get("guard")))), len(v))
                   for s, v in scores[name].items()}
        lines.append(row(name, card, flagged))
    members = registry.ensemble_members()
    record = ensemble_record_for(registry.ensemble_record, members)
    if record is not None:
        guards = [registry.cards[m]["guard"] for m in members]
        flagged = {}
        for s, images in sets.items():
            mean = ensemble_guard_score([scores[m][s] for m in members], guards)
            flagged[s] = (int(np.sum(is_flagged(mean, record["guard"]))), len(images))
        lines.append(row(f"**ensemble** (mean of {len(members)})", record, flagged))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
