"""Evaluation metrics as plain functions of labels and probabilities.

One implementation for `train/`, `python -m skin evaluate` and the app. Labels are
integer class indices into `classes`; `probs` is an (n, n_classes) array of
probabilities. scikit-learn computes everything it has; ECE, the reliability bins and
the bootstrap are written here.
"""

from functools import partial

import numpy as np
from sklearn import metrics as skm


def checked_labels_and_probs(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and probabilities (n, n_classes) as arrays, after checking that they
    describe the same n images and that every label is a class index: the one input
    check of this module and skin.comparison."""
    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=float)
    if y_true.ndim != 1 or not len(y_true):
        raise ValueError("y_true must be a non-empty 1-D array of class indices")
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probabilities must be ({len(y_true)}, n_classes), not {probs.shape}")
    if y_true.min() < 0 or y_true.max() >= probs.shape[1]:
        raise ValueError(f"labels must be class indices from 0 to {probs.shape[1] - 1}")
    return y_true, probs


def expected_calibration_error(y_true, probs, *, n_bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    bins = reliability_bins(y_true, probs, n_bins=n_bins)
    n = sum(bins["count"])
    return float(sum(
        count * abs(acc - conf)
        for count, acc, conf in zip(bins["count"], bins["accuracy"], bins["confidence"])
        if count
    ) / n) if n else 0.0


def reliability_bins(y_true, probs, *, n_bins: int = 15) -> dict:
    """Per confidence bin: its edges, mean confidence, accuracy and count (for a diagram)."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins = {"edges": edges.tolist(), "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        members = which == b
        count = int(members.sum())
        bins["count"].append(count)
        bins["confidence"].append(float(confidence[members].mean()) if count else None)
        bins["accuracy"].append(float(correct[members].mean()) if count else None)
    return bins


def auc_ovr(y_true, probs) -> float | None:
    """Macro one-vs-rest ROC AUC over the classes that have positives and negatives."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    aucs = [
        skm.roc_auc_score(y_true == k, probs[:, k])
        for k in range(probs.shape[1])
        if 0 < (y_true == k).sum() < len(y_true)
    ]
    return float(np.mean(aucs)) if aucs else None


def top3_accuracy(y_true, probs) -> float:
    """Share of images whose true class is among the three most probable."""
    n_classes = probs.shape[1]
    if n_classes <= 3:  # the true class is always in the top 3
        return 1.0
    return float(skm.top_k_accuracy_score(y_true, probs, k=3, labels=np.arange(n_classes)))


def _f1(y_true, probs, average: str) -> float:
    return float(skm.f1_score(y_true, probs.argmax(axis=1), labels=np.arange(probs.shape[1]),
                              average=average, zero_division=0))


# The headline figures, each a function of (labels, probabilities); None where undefined.
SUMMARY_METRICS = {
    "accuracy": lambda y, p: float(skm.accuracy_score(y, p.argmax(axis=1))),
    "balanced_accuracy": lambda y, p: float(skm.balanced_accuracy_score(y, p.argmax(axis=1))),
    "macro_f1": partial(_f1, average="macro"),
    "weighted_f1": partial(_f1, average="weighted"),
    "top3_accuracy": top3_accuracy,
    "auc_ovr": auc_ovr,
    "ece": expected_calibration_error,
}


def summary_metrics(y_true, probs) -> dict:
    """The headline figures: accuracy, balanced accuracy, F1s, top-3, AUC, ECE."""
    y_true, probs = checked_labels_and_probs(y_true, probs)
    return {name: metric(y_true, probs) for name, metric in SUMMARY_METRICS.items()}


def bootstrap_statistic(n: int, statistic, *, n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> dict:
    """Percentile intervals of statistic(indices) -> {name: value or None} over
    n_resamples resamples of n items with replacement; None where never defined."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, not {n_resamples}")
    rng = np.random.default_rng(seed)
    samples = {}
    for _ in range(n_resamples):
        for name, value in statistic(rng.integers(0, n, n)).items():
            samples.setdefault(name, [])
            if value is not None:  # AUC is undefined on a one-class resample
                samples[name].append(value)
    tail = (1.0 - confidence) / 2 * 100
    return {
        name: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]
        if v else None
        for name, v in samples.items()
    }


def bootstrap_intervals(
    y_true, probs, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Percentile bootstrap intervals of every summary metric, resampling images."""
    y_true, probs = checked_labels_and_probs(y_true, probs)
    return bootstrap_statistic(
        len(y_true), lambda idx: summary_metrics(y_true[idx], probs[idx]),
        n_resamples=n_resamples, confidence=confidence, seed=seed)


def paired_difference(
    y_true, probs_a, probs_b, *, metric: str = "balanced_accuracy",
    n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> tuple[float, list[float]]:
    """metric(a) - metric(b) on the same images, with a percentile bootstrap interval
    that resamples images once for both: far narrower than comparing two separate
    intervals, since both models meet the same easy and hard images."""
    return lead_over_best(y_true, probs_a, [probs_b], metric=metric, n_resamples=n_resamples,
                          confidence=confidence, seed=seed)


def lead_over_best(
    y_true, probs, rivals, *, metric: str = "balanced_accuracy",
    n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> tuple[float, list[float]]:
    """metric(probs) minus the best metric among rivals, with a paired bootstrap interval
    in which the best rival is chosen again in every resample. "Above the best of five"
    is then judged against whichever of the five a resample favours, not against the one
    that happened to lead on these images: that one's lead is partly luck."""
    y_true, probs = checked_labels_and_probs(y_true, probs)
    rivals = [checked_labels_and_probs(y_true, r)[1] for r in rivals]
    if not rivals:
        raise ValueError("lead_over_best needs at least one rival to compare with")
    if metric not in SUMMARY_METRICS:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(SUMMARY_METRICS)}")
    score = SUMMARY_METRICS[metric]

    def lead(idx):
        scores = [score(y_true[idx], p[idx]) for p in (probs, *rivals)]
        return {metric: None if None in scores else scores[0] - max(scores[1:])}

    observed = lead(np.arange(len(y_true)))[metric]
    if observed is None:
        raise ValueError(f"{metric} is undefined on these labels "
                         f"(classes present: {sorted(set(y_true.tolist()))})")
    interval = bootstrap_statistic(len(y_true), lead, n_resamples=n_resamples,
                                   confidence=confidence, seed=seed)[metric]
    return float(observed), interval


def evaluate(y_true, probs, classes, *, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Everything a model card records about one split: summary metrics, per-class
    precision/recall/F1/support, confusion matrix, reliability bins, 95% intervals."""
    y_true, probs = checked_labels_and_probs(y_true, probs)
    if probs.shape[1] != len(classes):
        raise ValueError(f"{probs.shape[1]} columns of probabilities for {len(classes)} classes")
    labels = np.arange(len(classes))
    y_pred = probs.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "n": int(len(y_true)),
        **summary_metrics(y_true, probs),
        "classes": list(classes),
        "per_class": {
            code: {"precision": float(p), "recall": float(r), "f1": float(f),
                   "support": int(s)}
            for code, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "reliability": reliability_bins(y_true, probs),
        "intervals_95": bootstrap_intervals(y_true, probs, n_resamples=n_resamples, seed=seed)
        if n_resamples else None,
    }
