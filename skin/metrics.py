"""Evaluation metrics as plain functions of labels and probabilities.

One implementation for `train/`, `python -m skin evaluate` and the app. Labels are
integer class indices into `classes`; `probs` is an (n, n_classes) array of
probabilities. scikit-learn computes everything it has; ECE, the reliability bins and
the bootstrap are written here.
"""

import numpy as np
from sklearn import metrics as skm

SUMMARY_METRICS = (
    "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top3_accuracy",
    "auc_ovr", "ece",
)


def expected_calibration_error(y_true, probs, n_bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    bins = reliability_bins(y_true, probs, n_bins)
    n = sum(bins["count"])
    return float(sum(
        count * abs(acc - conf)
        for count, acc, conf in zip(bins["count"], bins["accuracy"], bins["confidence"])
        if count
    ) / n) if n else 0.0


def reliability_bins(y_true, probs, n_bins: int = 15) -> dict:
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


def summary_metrics(y_true, probs) -> dict:
    """The headline figures: accuracy, balanced accuracy, F1s, top-3, AUC, ECE."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    n_classes = probs.shape[1]
    y_pred = probs.argmax(axis=1)
    labels = np.arange(n_classes)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro",
                                       zero_division=0)),
        "weighted_f1": float(skm.f1_score(y_true, y_pred, labels=labels,
                                          average="weighted", zero_division=0)),
        "top3_accuracy": 1.0 if n_classes <= 3  # the true class is always in the top 3
        else float(skm.top_k_accuracy_score(y_true, probs, k=3, labels=labels)),
        "auc_ovr": auc_ovr(y_true, probs),
        "ece": expected_calibration_error(y_true, probs),
    }


def bootstrap_intervals(
    y_true, probs, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Percentile bootstrap intervals of every summary metric, resampling images."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    rng = np.random.default_rng(seed)
    samples = {name: [] for name in SUMMARY_METRICS}
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y_true), len(y_true))
        for name, value in summary_metrics(y_true[idx], probs[idx]).items():
            if value is not None:
                samples[name].append(value)
    tail = (1.0 - confidence) / 2 * 100
    return {
        name: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))]
        if v else None
        for name, v in samples.items()
    }


def paired_difference(
    y_true, probs_a, probs_b, metric: str = "balanced_accuracy",
    n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
) -> tuple[float, list[float]]:
    """metric(a) - metric(b) on the same images, with a percentile bootstrap interval
    that resamples images once for both: far narrower than comparing two separate
    intervals, since both models meet the same easy and hard images."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, not {n_resamples}")
    y_true, probs_a, probs_b = np.asarray(y_true), np.asarray(probs_a), np.asarray(probs_b)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y_true), len(y_true))
        a = summary_metrics(y_true[idx], probs_a[idx])[metric]
        b = summary_metrics(y_true[idx], probs_b[idx])[metric]
        if a is not None and b is not None:  # AUC is undefined on a one-class resample
            differences.append(a - b)
    tail = (1.0 - confidence) / 2 * 100
    difference = summary_metrics(y_true, probs_a)[metric] - summary_metrics(y_true, probs_b)[metric]
    return float(difference), [float(np.percentile(differences, tail)),
                               float(np.percentile(differences, 100 - tail))]


def evaluate(y_true, probs, classes, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Everything a model card records about one split: summary metrics, per-class
    precision/recall/F1/support, confusion matrix, reliability bins, 95% intervals."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
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
        "intervals_95": bootstrap_intervals(y_true, probs, n_resamples, 0.95, seed)
        if n_resamples else None,
    }
