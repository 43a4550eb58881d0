"""Which out-of-distribution score should the input guard use? For every model of a folder
of cards: each candidate score's threshold is set to flag 5% of validation lesions (as
the guard's is), and the share of non-lesion images it then flags is printed, on the
two sets the design was chosen on (benchmarks/non_lesion.py: `natural`, `faces`). The
candidates, each higher on less familiar inputs:

- max softmax: 1 - the top calibrated probability (Hendrycks & Gimpel, 2017);
- energy: -logsumexp(logits) (Liu et al., 2020);
- PCA Mahalanobis: the distance in the top 64 principal components of the pooled
  features of 2,000 training images, without the residual;
- probabilistic PCA (the guard, skin.decision.FeatureGuard): the same plus the residual
  outside those components.

    python benchmarks/guard_designs.py [--data ../shared/data/ham10000] [--models DIR]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from non_lesion import non_lesion_images  # noqa: E402
from skin.dataset import HAM10000_BESIDE_CHECKOUT, load_dataset  # noqa: E402
from skin.decision import GUARD_FIT_IMAGES, FeatureGuard, guard_rule, is_flagged  # noqa: E402
from skin.predict import Predictor  # noqa: E402
from skin.registry import SHIPPED_MODELS, Registry  # noqa: E402
from train.decisions import SplitImages  # noqa: E402


def pca_only(guard: FeatureGuard):
    def score(features):
        inside = (np.asarray(features, np.float64) - guard.mean) @ guard.projection
        return np.log(((inside @ guard.whitening) ** 2).sum(axis=-1))
    return score


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(HAM10000_BESIDE_CHECKOUT))
    p.add_argument("--models", default=str(SHIPPED_MODELS))
    args = p.parse_args()

    registry = Registry.discover([Path(args.models)])
    images = SplitImages(load_dataset(args.data).table)
    sets = non_lesion_images()
    chosen_on = sets["natural"] + sets["faces"]
    print(f"Share of the {len(chosen_on)} non-lesion images (natural and faces) flagged at "
          f"the threshold that flags 5% of validation lesions; guard fitted on "
          f"{GUARD_FIT_IMAGES} training images.\n")
    print("| model | max softmax | energy | PCA Mahalanobis | probabilistic PCA (the guard) |")
    print("|---|---|---|---|---|")
    for name, card in registry.cards.items():
        predictor = Predictor.from_card(card)
        split = images.get(card)
        kernel, bias = (w.numpy() for w in predictor.model.get_layer("predictions").weights)
        outputs = {side: predictor.batch_outputs(split[side][1])
                   for side in ("guard_fit", "val")}
        outputs["other"] = predictor.batch_outputs(chosen_on)
        guard = FeatureGuard.fit(outputs["guard_fit"][1])
        candidates = {
            "max softmax": lambda probs, features: 1 - probs.max(axis=1),
            "energy": lambda probs, features: -logsumexp(features @ kernel + bias, axis=1),
            "PCA": lambda probs, features: pca_only(guard)(features),
            "PPCA": lambda probs, features: guard.score(features),
        }
        cells = []
        for score in candidates.values():
            rule = guard_rule(score(*outputs["val"]))
            cells.append(f"{np.mean(is_flagged(score(*outputs['other']), rule)):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
