"""skin.metrics against hand-computed values."""

import numpy as np
import pytest

from skin.metrics import (
    auc_ovr, bootstrap_intervals, evaluate, expected_calibration_error, lead_over_best,
    paired_difference, summary_metrics,
)


def one_hot_probs(predicted, n_classes, confidence=1.0):
    probs = np.full((len(predicted), n_classes), (1 - confidence) / (n_classes - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_perfect_predictions():
    y = np.array([0, 1, 2, 2, 1, 0])
    m = summary_metrics(y, one_hot_probs(y, 3))
    assert m["accuracy"] == m["balanced_accuracy"] == m["macro_f1"] == m["auc_ovr"] == 1.0
    assert m["ece"] == pytest.approx(0.0)


def test_imbalanced_majority_guess_has_high_accuracy_but_chance_balanced_accuracy():
    y = np.array([0] * 8 + [1, 2])
    m = summary_metrics(y, one_hot_probs(np.zeros(10, int), 3, 0.9))
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx(1 / 3)
    assert m["macro_f1"] == pytest.approx((2 * 0.8 / 1.8) / 3)  # only class 0 scores


def test_top3_and_auc_by_hand():
    y = np.array([0, 1, 2, 3])
    probs = np.array([
        [0.1, 0.2, 0.3, 0.4],  # true class ranked 4th
        [0.1, 0.6, 0.2, 0.1],
        [0.5, 0.1, 0.3, 0.1],  # true class ranked 2nd
        [0.1, 0.2, 0.3, 0.4],
    ])
    m = summary_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["top3_accuracy"] == pytest.approx(0.75)


def test_auc_skips_classes_without_positives():
    y = np.array([0, 0, 1, 1])  # class 2 absent
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    assert auc_ovr(y, probs) == pytest.approx(1.0)


def test_ece_of_an_overconfident_model():
    y = np.array([0, 1, 0, 1])
    probs = one_hot_probs(np.array([0, 0, 0, 0]), 2, 0.9)  # 90% sure, 50% right
    assert expected_calibration_error(y, probs) == pytest.approx(0.4)


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 3, n)
        predicted = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
        return y, one_hot_probs(predicted, 3, 0.8)
    small, large = sample(60), sample(2000)
    ci_small = bootstrap_intervals(*small, n_resamples=200)["accuracy"]
    ci_large = bootstrap_intervals(*large, n_resamples=200)["accuracy"]
    assert ci_small[0] <= summary_metrics(*small)["accuracy"] <= ci_small[1]
    assert ci_large[1] - ci_large[0] < ci_small[1] - ci_small[0]


def test_paired_difference_resolves_what_separate_intervals_cannot():
    # b is a with 20 of 1,000 right answers turned wrong: 2 points of accuracy lower,
    # on the same images. Separately their intervals overlap; paired, every resample
    # sees b lose on those 20 images and nothing else, so the interval excludes zero.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 1000)
    predicted_a = np.where(rng.random(1000) < 0.7, y, (y + 1) % 3)
    predicted_b = predicted_a.copy()
    right = np.flatnonzero(predicted_a == y)[:20]
    predicted_b[right] = (y[right] + 1) % 3
    a, b = one_hot_probs(predicted_a, 3, 0.8), one_hot_probs(predicted_b, 3, 0.8)
    difference, interval = paired_difference(y, a, b, metric="accuracy", n_resamples=300)
    assert difference == pytest.approx(0.02)
    assert 0 < interval[0] <= difference <= interval[1]
    separate_a = bootstrap_intervals(y, a, n_resamples=300)["accuracy"]
    separate_b = bootstrap_intervals(y, b, n_resamples=300)["accuracy"]
    assert separate_a[0] < separate_b[1]  # unpaired, the two intervals overlap
    assert paired_difference(y, a, a, n_resamples=50) == (0.0, [0.0, 0.0])
    with pytest.raises(ValueError, match="at least 1"):
        paired_difference(y, a, b, n_resamples=0)
    with pytest.raises(ValueError, match="unknown metric 'recall'.*balanced_accuracy"):
        paired_difference(y, a, b, metric="recall")
    one_class = np.zeros(len(y), dtype=int)  # AUC needs positives and negatives
    with pytest.raises(ValueError, match=r"auc_ovr is undefined .*classes present: \[0\]"):
        paired_difference(one_class, a, b, metric="auc_ovr")


def test_lead_over_best_chooses_the_best_rival_in_every_resample():
    # Two rivals equally good in truth, each right on a different 75% of the images;
    # whichever leads on the full sample leads partly by luck, and resamples where the
    # other leads pull the lead over "the best" below the lead over that one.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 800)
    def model(p_right):
        return one_hot_probs(np.where(rng.random(len(y)) < p_right, y, (y + 1) % 3), 3, 0.8)
    a, b, c = model(0.78), model(0.75), model(0.75)
    leader = max((b, c), key=lambda r: summary_metrics(y, r)["accuracy"])
    observed, interval = lead_over_best(y, a, [b, c], metric="accuracy", n_resamples=300)
    against_leader, leader_interval = paired_difference(y, a, leader, metric="accuracy", n_resamples=300)
    assert observed == pytest.approx(against_leader)
    assert interval[0] < leader_interval[0] and interval[1] < leader_interval[1]
    # A model is never above a set of rivals that includes itself.
    observed, interval = lead_over_best(y, a, [b, a], metric="accuracy", n_resamples=100)
    assert observed <= 0 and interval[1] <= 0
    with pytest.raises(ValueError, match="unknown metric"):
        lead_over_best(y, a, [b], metric="recall")
    with pytest.raises(ValueError, match="at least one rival"):
        lead_over_best(y, a, [])


def test_evaluate_report_is_consistent():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2, 0])
    report = evaluate(y, one_hot_probs(predicted, 3, 0.7), ["a", "b", "c"], n_resamples=50)
    assert report["n"] == 7
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert report["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0,
                                        "f1": pytest.approx(0.8), "support": 2}
    assert sum(report["reliability"]["count"]) == 7
    assert set(report["intervals_95"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "ece"}


def test_labels_and_probabilities_that_do_not_match_are_refused():
    probs = one_hot_probs(np.array([0, 1, 2]), 3, 0.7)
    with pytest.raises(ValueError, match=r"must be \(2, n_classes\), not \(3, 3\)"):
        summary_metrics([0, 1], probs)
    with pytest.raises(ValueError, match="class indices from 0 to 2"):
        evaluate([0, 1, 3], probs, ["a", "b", "c"], n_resamples=0)
    with pytest.raises(ValueError, match="3 columns of probabilities for 2 classes"):
        evaluate([0, 1, 1], probs, ["a", "b"], n_resamples=0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        summary_metrics([[0, 1, 2]], probs)
