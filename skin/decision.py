"""Decisions: the risk of malignancy, the referral rule, and the input guard.

The top class is what a model ranks first, not a decision. What a user can act on is the
probability that the lesion is malignant, compared with a threshold chosen on the
validation split so that a target share (95% by default) of malignant lesions there is
referred. Three decisions, in this order of precedence:

- `refer`: P(malignant) at or above the threshold ("possible malignancy: have it examined");
- `inconclusive`: below it, but the model is unsure of its answer (the uncertainty rule);
- `low risk`: neither.

A model whose card has no referral rule gives no decision (None), never a reassuring one.

The input guard flags images unlike the dermoscopic images a model was trained on: the
distance of the image's features from the training images' (FeatureGuard), above the
validation quantile that flags 5% of validation lesions. The ensemble's guard averages
its members' standardised scores, with a threshold chosen on validation the same way.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skin.classes import MALIGNANT
from skin.files import atomic_path, file_sha256
from skin.metrics import bootstrap_statistic

REFER, INCONCLUSIVE, LOW_RISK = "refer", "inconclusive", "low risk"
DEFAULT_TARGET_SENSITIVITY = 0.95
DEFAULT_GUARD_FLAG_RATE = 0.05

# Each decision in plain words: (headline, advice).
DECISION_TEXT = {
    REFER: ("Refer", "Possible malignancy: have this lesion examined by a dermatologist."),
    INCONCLUSIVE: ("Inconclusive", "The model is unsure. This does not rule out a "
                   "malignant lesion: have it examined if it worries you or changes."),
    LOW_RISK: ("Low risk", "By this model, which is not a diagnosis: have any lesion that "
               "changes, bleeds or worries you examined."),
    None: ("No referral decision", "This model has no referral threshold chosen on "
           "validation data, so it cannot say whether to have the lesion examined."),
}
NOT_DERMOSCOPY = ("This does not look like a dermoscopic image of one lesion: the models "
                  "were trained only on such images, so their answer below means little.")


def malignant_probability(probs, classes, malignant_classes=MALIGNANT) -> np.ndarray:
    """P(malignant) per row: the sum of the probabilities of the malignant classes."""
    columns = [i for i, code in enumerate(classes) if code in set(malignant_classes)]
    return np.asarray(probs)[..., columns].sum(axis=-1)


def choose_referral_threshold(is_malignant, p_malignant,
                              target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY) -> float:
    """The highest threshold that refers at least `target_sensitivity` of the malignant
    lesions given (P(malignant) >= threshold refers): the most specific rule that still
    reaches the target on these images."""
    if not 0 < target_sensitivity <= 1:
        raise ValueError(f"target_sensitivity must be in (0, 1], not {target_sensitivity}")
    positives = np.sort(np.asarray(p_malignant)[np.asarray(is_malignant, bool)])[::-1]
    if not len(positives):
        raise ValueError("no malignant lesions to choose a referral threshold on")
    needed = int(np.ceil(target_sensitivity * len(positives) - 1e-9))
    return float(positives[needed - 1])


def referral_rates(is_malignant, p_malignant, threshold: float) -> dict:
    """Sensitivity (malignant lesions referred) and specificity (benign ones not
    referred) of the rule P(malignant) >= threshold; None where a side is empty."""
    is_malignant = np.asarray(is_malignant, bool)
    referred = np.asarray(p_malignant) >= threshold
    return {
        "sensitivity": float(referred[is_malignant].mean()) if is_malignant.any() else None,
        "specificity": float((~referred[~is_malignant]).mean()) if (~is_malignant).any() else None,
    }


def referral_report(is_malignant, p_malignant, threshold: float, *, n_resamples: int = 1000,
                    seed: int = 0) -> dict:
    """The rule's sensitivity and specificity on these lesions, with their counts and
    95% bootstrap intervals."""
    is_malignant, p_malignant = np.asarray(is_malignant, bool), np.asarray(p_malignant)
    report = {"n_malignant": int(is_malignant.sum()), "n_benign": int((~is_malignant).sum()),
              **referral_rates(is_malignant, p_malignant, threshold)}
    if n_resamples:
        report["intervals_95"] = bootstrap_statistic(
            len(is_malignant),
            lambda idx: referral_rates(is_malignant[idx], p_malignant[idx], threshold),
            n_resamples=n_resamples, seed=seed)
    return report


def referral_rule(classes, val_labels, val_probs, test_labels=None, test_probs=None, *,
                  target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
                  malignant_classes=MALIGNANT, n_resamples: int = 1000, seed: int = 0) -> dict:
    """A card's `referral` block: the threshold chosen on validation (labels are class
    indices into `classes`), and what it gives on validation and, if given, on test;
    None where no rule can be chosen (no malignant class, or none in validation)."""
    classes = list(classes)
    malignant_classes = [c for c in classes if c in set(malignant_classes)]
    malignant_index = [classes.index(c) for c in malignant_classes]
    if not np.isin(val_labels, malignant_index).any():
        return None

    def sides(labels, probs):
        return np.isin(labels, malignant_index), malignant_probability(probs, classes,
                                                                        malignant_classes)

    val_truth, val_risk = sides(val_labels, val_probs)
    threshold = choose_referral_threshold(val_truth, val_risk, target_sensitivity)
    rule = {"malignant_classes": malignant_classes, "target_sensitivity": target_sensitivity,
            "threshold": threshold, "chosen_on": "val",
            "val": referral_report(val_truth, val_risk, threshold,
                                   n_resamples=n_resamples, seed=seed)}
    if test_labels is not None:
        rule["test"] = referral_report(*sides(test_labels, test_probs), threshold,
                                       n_resamples=n_resamples, seed=seed)
    return rule


def usable_referral(referral: dict | None, classes) -> dict | None:
    """The referral block if its malignant classes are all among `classes`; None (no
    rule, so no decision) for a block that names others: summing the wrong columns would
    give a confident "low risk"."""
    if referral is None or not set(referral["malignant_classes"]) <= set(classes):
        return None
    return referral


def decide(p_malignant: float, threshold: float | None, uncertain: bool) -> str | None:
    """refer, inconclusive or low risk, in that order of precedence; None without a
    threshold (no rule: no decision, and never a reassuring one)."""
    if threshold is None:
        return None
    if p_malignant >= threshold:
        return REFER
    return INCONCLUSIVE if uncertain else LOW_RISK


# The input guard -------------------------------------------------------------------

GUARD_COMPONENTS = 64  # principal components of the features the distance is taken in
GUARD_FIT_IMAGES = 2000  # training images the feature statistics are fitted on (at most)


@dataclass
class FeatureGuard:
    """How far an image's pooled features lie from the training images': a probabilistic
    PCA distance (the Mahalanobis distance in the top principal components of the
    training features, plus the squared residual outside them over its mean variance;
    after Lee et al., NeurIPS 2018). The residual term sees what the components cannot:
    features that leave the training images' subspace. Its score is the log distance."""

    mean: np.ndarray  # (d,) mean of the training features
    projection: np.ndarray  # (d, k) the top principal axes
    whitening: np.ndarray  # (k, k) Cholesky factor of the components' inverse covariance
    residual_variance: np.ndarray  # () mean variance per dimension outside the components

    @classmethod
    def fit(cls, features, components: int = GUARD_COMPONENTS) -> "FeatureGuard":
        features = np.asarray(features, np.float64)
        mean = features.mean(axis=0)
        centred = features - mean
        components = min(components, features.shape[1] - 1, len(features) - 1)
        _, _, axes = np.linalg.svd(centred, full_matrices=False)
        projection = axes[:components].T
        covariance = np.atleast_2d(np.cov((centred @ projection).T))
        precision = np.linalg.inv(covariance + 1e-6 * np.eye(components))
        residual = centred - centred @ projection @ projection.T
        residual_variance = (residual ** 2).sum(axis=1).mean() / (features.shape[1] - components)
        return cls(mean.astype(np.float32), projection.astype(np.float32),
                   np.linalg.cholesky(precision).astype(np.float32),
                   np.asarray(max(residual_variance, 1e-12), np.float32))

    def score(self, features) -> np.ndarray:
        """log distance per row of features: higher is less familiar."""
        centred = np.asarray(features, np.float64) - self.mean
        inside = centred @ self.projection
        outside = centred - inside @ self.projection.T
        distance = ((inside @ self.whitening) ** 2).sum(axis=-1) + \
            (outside ** 2).sum(axis=-1) / float(self.residual_variance)
        return np.log(np.maximum(distance, 1e-12))

    def save(self, path) -> None:
        with atomic_path(path, suffix=".npz") as target:
            with open(target, "wb") as file:
                np.savez(file, mean=self.mean, projection=self.projection,
                         whitening=self.whitening, residual_variance=self.residual_variance)

    @classmethod
    def load(cls, path) -> "FeatureGuard":
        with np.load(path) as arrays:
            return cls(*(arrays[k] for k in ("mean", "projection", "whitening",
                                             "residual_variance")))


def guard_rule(val_scores, test_scores=None, *,
               flag_rate: float = DEFAULT_GUARD_FLAG_RATE) -> dict:
    """The threshold of a `guard` block: the score above which an image is flagged, chosen
    to flag at most `flag_rate` of validation lesions; the share it flags
    on validation and, if given, on test (false alarms on real lesions); and the mean and
    spread of the validation scores (an ensemble averages its members' standardised)."""
    val_scores = np.sort(np.asarray(val_scores))[::-1]
    allowed = min(int(np.floor(flag_rate * len(val_scores) + 1e-9)), len(val_scores) - 1)
    threshold = float(val_scores[allowed])  # flags the `allowed` highest (ties: fewer)
    guard = {"threshold": threshold, "chosen_on": "val", "target_flag_rate": flag_rate,
             "val_flagged": float(np.mean(val_scores > threshold)),
             "val_mean": float(val_scores.mean()), "val_std": float(val_scores.std())}
    if test_scores is not None:
        guard["test_flagged"] = float(np.mean(np.asarray(test_scores) > threshold))
    return guard


def make_guard(train_features, val_features, test_features, path, *,
               flag_rate: float = DEFAULT_GUARD_FLAG_RATE) -> dict:
    """Fit a FeatureGuard on training features, save it to `path` (beside the card), and
    return the card's `guard` block: its file and sha256, and the threshold chosen on
    validation (guard_rule)."""
    guard = FeatureGuard.fit(train_features)
    guard.save(path)
    return {"method": "log probabilistic-PCA distance of the pooled features from the "
                      "training images' (skin.decision.FeatureGuard)",
            "components": int(guard.projection.shape[1]), "fit_images": len(train_features),
            "file": Path(path).name, "sha256": file_sha256(path),
            **guard_rule(guard.score(val_features), guard.score(test_features),
                         flag_rate=flag_rate)}


def standardised(score, guard: dict):
    """A member's guard score on the scale of its validation scores (mean 0, sd 1)."""
    return (np.asarray(score) - guard["val_mean"]) / guard["val_std"]


def is_flagged(score, guard: dict | None):
    """True where the score is above the guard's threshold; False without a guard or
    without a score."""
    if guard is None or score is None:
        return False
    return np.asarray(score) > guard["threshold"] if np.ndim(score) else \
        bool(score > guard["threshold"])
