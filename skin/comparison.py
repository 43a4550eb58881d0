"""Comparing models on the same labelled images: per-class recall, paired differences with
bootstrap intervals and McNemar's test, agreement, and the cost-quality front.

Plain functions of arrays, shared by `python -m skin evaluate --compare`, the app's
Evaluation page and the benchmarks. `y_true` holds class indices into one list of classes
that every model shares; `probs` maps a model's name to its (n, n_classes) probabilities
on the same images, in the same order.
"""

import json
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

from skin.metrics import checked_labels_and_probs

# The largest move of one model's test balanced accuracy between two training seeds of
# one recipe (MobileNetV2 -6.1 points, EfficientNetB0 +5.2: docs/training-log.md,
# 2026-12-05). A paired interval covers these images, not the next training run.
SEED_SPREAD = 0.061

# The same on a HAM10000 source held out of training, where it was measured: three seeds
# of the MobileNetV2 96 px recipe on rosendahl (docs/training-log.md, 2026-12-07).
HELD_OUT_SEED_SPREAD = {"rosendahl": 0.065}


def seed_spread_for(source: str | None = None) -> tuple[float, str]:
    """The seed spread to read a paired difference on this held-out source's images
    against (None: the mixed split), and where it was measured: on that source where it
    has been, else on the mixed split."""
    if source in HELD_OUT_SEED_SPREAD:
        return HELD_OUT_SEED_SPREAD[source], source
    return SEED_SPREAD, "the mixed split"


def checked(y_true, probs: dict) -> tuple[np.ndarray, dict]:
    """Labels and probabilities as arrays, after checking they describe the same images."""
    if not probs:
        raise ValueError("no models to compare")
    arrays = {}
    for name, p in probs.items():
        try:
            y_true, arrays[name] = checked_labels_and_probs(y_true, p)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    if len({p.shape for p in arrays.values()}) != 1:
        raise ValueError("every model needs probabilities of one shape; got "
                         + ", ".join(f"{n} {p.shape}" for n, p in arrays.items()))
    return y_true, arrays


def per_class_recall(y_true, probs: dict, classes: list[str]) -> pd.DataFrame:
    """Recall of each model (rows) on each class (columns); NaN for a class without images."""
    y_true, probs = checked(y_true, probs)
    support = np.bincount(y_true, minlength=len(classes))
    rows = {}
    for name, p in probs.items():
        hits = np.bincount(y_true, weights=p.argmax(axis=1) == y_true, minlength=len(classes))
        with np.errstate(invalid="ignore"):
            rows[name] = hits / support
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(classes))


def class_support(y_true, classes: list[str]) -> dict:
    """How many images each class has."""
    return dict(zip(classes, np.bincount(np.asarray(y_true), minlength=len(classes)).tolist()))


def _resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n): how often each image is drawn in each bootstrap resample. The
    draws are those of skin.metrics.bootstrap_statistic with the same seed."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                     for _ in range(n_resamples)]).astype(float)


def _balanced_accuracies(y_true, predictions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Balanced accuracy of each model (columns of predictions, (n, m)) under each row of
    image weights ((r, n)): the mean recall over the classes present in that row."""
    n_classes = int(max(y_true.max(), predictions.max())) + 1
    one_hot = np.eye(n_classes)[y_true]  # (n, k)
    support = weights @ one_hot  # (r, k)
    correct = predictions == y_true[:, None]  # (n, m)
    hits = weights @ (one_hot[:, :, None] * correct[:, None, :]).reshape(len(y_true), -1)
    hits = hits.reshape(len(weights), n_classes, -1)  # (r, k, m)
    present = support > 0
    recall = np.where(present[:, :, None], hits / np.maximum(support, 1)[:, :, None], 0)
    return recall.sum(axis=1) / present.sum(axis=1, keepdims=True)  # (r, m)


def mcnemar(correct_a, correct_b) -> dict:
    """McNemar's exact test on two models' right/wrong answers to the same images: the
    images only one of them gets right, and the two-sided binomial p-value that the two
    are equally often the one."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    a_only, b_only = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    p_value = 1.0 if a_only + b_only == 0 else binomtest(a_only, a_only + b_only, 0.5).pvalue
    return {"a_only_correct": a_only, "b_only_correct": b_only, "mcnemar_p": float(p_value)}


def verdict(low: float, high: float, difference: float, *, seed_spread: float = SEED_SPREAD) -> str:
    """What a paired difference says: not resolved (its interval holds 0), resolved but
    within what retraining one model with another seed moves, or beyond that too."""
    if low <= 0 <= high:
        return "not resolved"
    return "resolved, within seed spread" if abs(difference) < seed_spread else "resolved"


def paired_differences(y_true, probs: dict, *, n_resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0,
                       seed_spread: float = SEED_SPREAD) -> pd.DataFrame:
    """For every pair of models (a, b): balanced accuracy of a minus b on the same images,
    with a percentile bootstrap interval that resamples the images once for both, and
    McNemar's test on their accuracy. One row per pair, in the order the models come."""
    y_true, probs = checked(y_true, probs)
    names = list(probs)
    predictions = np.stack([probs[name].argmax(axis=1) for name in names], axis=1)
    observed = _balanced_accuracies(y_true, predictions, np.ones((1, len(y_true))))[0]
    resampled = _balanced_accuracies(
        y_true, predictions, _resample_counts(len(y_true), n_resamples, seed))
    tail = (1 - confidence) / 2 * 100
    rows = []
    for i, j in combinations(range(len(names)), 2):
        difference = float(observed[i] - observed[j])
        low, high = np.percentile(resampled[:, i] - resampled[:, j], [tail, 100 - tail])
        rows.append({
            "model_a": names[i], "model_b": names[j], "difference": difference,
            "low": float(low), "high": float(high),
            "verdict": verdict(low, high, difference, seed_spread=seed_spread),
            **mcnemar(predictions[:, i] == y_true, predictions[:, j] == y_true),
        })
    return pd.DataFrame(rows, columns=["model_a", "model_b", "difference", "low", "high",
                                       "verdict", "a_only_correct", "b_only_correct",
                                       "mcnemar_p"])


def balanced_accuracy_intervals(y_true, probs: dict, *, n_resamples: int = 1000,
                                confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Each model's balanced accuracy with its percentile bootstrap interval (columns
    value, low, high; one row per model)."""
    y_true, probs = checked(y_true, probs)
    predictions = np.stack([p.argmax(axis=1) for p in probs.values()], axis=1)
    observed = _balanced_accuracies(y_true, predictions, np.ones((1, len(y_true))))[0]
    resampled = _balanced_accuracies(
        y_true, predictions, _resample_counts(len(y_true), n_resamples, seed))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail], axis=0)
    return pd.DataFrame({"value": observed, "low": low, "high": high}, index=list(probs))


def difference_matrix(pairs: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The paired table as a square matrix of row model minus column model."""
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for row in pairs.itertuples():
        matrix.loc[row.model_a, row.model_b] = row.difference
        matrix.loc[row.model_b, row.model_a] = -row.difference
    return matrix


def agreement(y_true, probs: dict) -> tuple[pd.DataFrame, dict]:
    """Cohen's kappa between the top classes of every pair of models (a square matrix),
    and the accuracy of the models' shared answer on the images where all agree against
    each model's accuracy where they do not, with how many images each is."""
    y_true, probs = checked(y_true, probs)
    names = list(probs)
    predictions = {name: p.argmax(axis=1) for name, p in probs.items()}
    kappa = pd.DataFrame(1.0, index=names, columns=names)
    for a, b in combinations(names, 2):
        kappa.loc[a, b] = kappa.loc[b, a] = cohen_kappa_score(predictions[a], predictions[b])
    stacked = np.stack(list(predictions.values()), axis=1)
    agree = (stacked == stacked[:, :1]).all(axis=1)
    correct = stacked == y_true[:, None]
    split = {
        "all_agree": {"n": int(agree.sum()), "accuracy": proportion(correct[agree, 0])},
        "disagree": {"n": int((~agree).sum()), "accuracy_by_model": {
            name: proportion(correct[~agree, i]) for i, name in enumerate(names)}},
    }
    return kappa, split


def proportion(successes) -> dict | None:
    """The share of True in a boolean array with its 95% Wilson interval (the counts may
    be small); None for an empty array."""
    successes = np.asarray(successes, bool)
    if not successes.size:
        return None
    interval = binomtest(int(successes.sum()), successes.size).proportion_ci(method="wilson")
    return {"value": float(successes.mean()), "low": float(interval.low),
            "high": float(interval.high)}


def pareto_front(cost, quality) -> np.ndarray:
    """Which points no other point beats: none costs as little or less and scores as
    much or more, with one of the two strictly better."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    dominated = ((cost[None, :] <= cost[:, None]) & (quality[None, :] >= quality[:, None])
                 & ((cost[None, :] < cost[:, None]) | (quality[None, :] > quality[:, None])))
    return ~dominated.any(axis=1)


def comparison_report(y_true, probs: dict, classes: list[str], *, n_resamples: int = 1000,
                      seed: int = 0, held_out_source: str | None = None) -> dict:
    """The comparator's tables: images per class, per-class recall (a DataFrame), the
    paired differences (a DataFrame) and the seed spread to read them against, that of
    the held-out source the images come from where it has been measured."""
    spread, measured_on = seed_spread_for(held_out_source)
    return {"n": int(len(y_true)), "support": class_support(y_true, classes),
            "per_class_recall": per_class_recall(y_true, probs, classes),
            "paired_differences": paired_differences(y_true, probs, n_resamples=n_resamples,
                                                     seed=seed, seed_spread=spread),
            "seed_spread": spread, "seed_spread_measured_on": measured_on}


def report_as_json(report: dict) -> dict:
    """The report with its tables as plain dicts and lists (NaN recall as null)."""
    return {**report,
            "per_class_recall": json.loads(report["per_class_recall"].to_json(orient="index")),
            "paired_differences": report["paired_differences"].to_dict(orient="records")}


def format_report(report: dict) -> str:
    """The report as text: a recall table, then one line per pair of models."""
    recall, pairs = report["per_class_recall"], report["paired_differences"]
    lines = [f"per-class recall ({report['n']} images; images per class in brackets):"]
    table = recall.rename(columns={c: f"{c} ({n})" for c, n in report["support"].items()})
    lines.append(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
    lines.append("\nbalanced accuracy, a minus b on the same images (95% paired bootstrap); "
                 "McNemar's p on accuracy:")
    for row in pairs.itertuples():
        lines.append(f"  {row.model_a} - {row.model_b}: {row.difference:+.3f} "
                     f"[{row.low:+.3f}, {row.high:+.3f}], McNemar p {row.mcnemar_p:.3g}: "
                     f"{row.verdict}")
    lines.append(f"  (one model retrained with another seed moved by up to "
                 f"{report['seed_spread']:.3f} on {report['seed_spread_measured_on']}: "
                 "docs/training-log.md)")
    return "\n".join(lines)


def pretraining_effect(pairs: pd.DataFrame, pretrained: dict, backbone: dict) -> pd.DataFrame:
    """For each backbone with a from-scratch and an ImageNet-initialised model among the
    paired table's models: balanced accuracy of the ImageNet one minus the scratch one,
    with its paired interval and verdict. `pretrained` and `backbone` map each model name
    to whether it started from ImageNet and to its backbone."""
    rows = []
    for row in pairs.itertuples():
        a, b = row.model_a, row.model_b
        if a not in pretrained or b not in pretrained or backbone[a] != backbone[b] \
                or pretrained[a] == pretrained[b]:
            continue
        sign = 1 if pretrained[a] else -1
        low, high = sorted((sign * row.low, sign * row.high))
        rows.append({"backbone": backbone[a], "imagenet": a if pretrained[a] else b,
                     "scratch": b if pretrained[a] else a, "difference": sign * row.difference,
                     "low": low, "high": high, "verdict": row.verdict})
    return pd.DataFrame(rows, columns=["backbone", "imagenet", "scratch", "difference",
                                       "low", "high", "verdict"])
