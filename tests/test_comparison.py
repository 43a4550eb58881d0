"""The comparator's figures, against small cases checked by hand."""

import numpy as np
import pandas as pd
import pytest

from skin.comparison import (
    HELD_OUT_SEED_SPREAD, SEED_SPREAD, agreement, balanced_accuracy_intervals, comparison_report,
    difference_matrix, format_report, mcnemar, paired_differences, pareto_front, per_class_recall,
    pretraining_effect, proportion, verdict,
)
from skin.metrics import bootstrap_intervals, paired_difference


def one_hot(predictions, n_classes=2):
    return np.eye(n_classes)[predictions]


# Four images, two classes. a: recall 1 and 1/2 (balanced accuracy 0.75); b: 1/2 and 1
# (0.75); c: always class 0 (0.5).
Y = np.array([0, 0, 1, 1])
PROBS = {"a": one_hot([0, 0, 1, 0]), "b": one_hot([0, 1, 1, 1]), "c": one_hot([0, 0, 0, 0])}


def test_per_class_recall_by_hand():
    table = per_class_recall(Y, PROBS, ["x", "y"])
    assert table.loc["a"].tolist() == [1.0, 0.5]
    assert table.loc["b"].tolist() == [0.5, 1.0]
    assert table.loc["c"].tolist() == [1.0, 0.0]
    three = per_class_recall(Y, {"a": np.eye(3)[[0, 0, 1, 0]]}, ["x", "y", "z"])
    assert np.isnan(three.loc["a", "z"])  # no image of z: no recall, not 0


def test_paired_differences_by_hand():
    pairs = paired_differences(Y, PROBS, n_resamples=200).set_index(["model_a", "model_b"])
    assert pairs.loc[("a", "b"), "difference"] == pytest.approx(0.0)
    assert pairs.loc[("a", "c"), "difference"] == pytest.approx(0.25)
    assert pairs.loc[("b", "c"), "difference"] == pytest.approx(0.25)
    # Only the third image is right for a and wrong for c; none the other way.
    assert pairs.loc[("a", "c"), ["a_only_correct", "b_only_correct"]].tolist() == [1, 0]
    assert pairs.loc[("a", "b"), ["a_only_correct", "b_only_correct"]].tolist() == [1, 1]
    assert pairs.loc[("a", "b"), "mcnemar_p"] == pytest.approx(1.0)
    assert (pairs["low"] <= pairs["difference"]).all() and (pairs["difference"] <= pairs["high"]).all()
    matrix = difference_matrix(pairs.reset_index(), list(PROBS))
    assert matrix.loc["c", "a"] == pytest.approx(-0.25) and np.isnan(matrix.loc["a", "a"])


def test_paired_intervals_are_those_of_paired_difference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    probs = {m: rng.random((300, 4)) + np.eye(4)[y] * rng.random() for m in "abc"}
    pairs = paired_differences(y, probs, n_resamples=300, seed=3)
    for row in pairs.itertuples():
        difference, interval = paired_difference(y, probs[row.model_a], probs[row.model_b],
                                                 n_resamples=300, seed=3)
        assert row.difference == pytest.approx(difference)
        assert [row.low, row.high] == pytest.approx(interval)


def test_balanced_accuracy_intervals_are_those_of_the_metrics_bootstrap():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    probs = {m: rng.random((200, 3)) + np.eye(3)[y] * rng.random() for m in "ab"}
    table = balanced_accuracy_intervals(y, probs, n_resamples=100, seed=2)
    for name, p in probs.items():
        expected = bootstrap_intervals(y, p, n_resamples=100, seed=2)["balanced_accuracy"]
        assert [table.loc[name, "low"], table.loc[name, "high"]] == pytest.approx(expected)


def test_mcnemar_exact_p_value():
    a = np.r_[np.ones(10, bool), np.ones(5, bool)]
    b = np.r_[np.zeros(10, bool), np.ones(5, bool)]
    result = mcnemar(a, b)  # ten discordant images, all a's: p = 2 / 2**10
    assert result == {"a_only_correct": 10, "b_only_correct": 0,
                      "mcnemar_p": pytest.approx(2 / 2**10)}
    assert mcnemar(a, a)["mcnemar_p"] == 1.0


def test_verdicts_read_the_interval_and_the_seed_spread():
    assert verdict(-0.01, 0.03, 0.01) == "not resolved"
    assert verdict(0.01, 0.05, 0.03) == "resolved, within seed spread"
    assert verdict(0.07, 0.12, 0.09) == "resolved"
    assert verdict(-0.12, -0.07, -SEED_SPREAD - 0.01) == "resolved"


def test_a_held_out_source_is_read_against_its_own_seed_spread_where_measured():
    # a is right on all 320 images, b wrong on 20 of the 160 of class 1 (-0.0625 balanced
    # accuracy): beyond the mixed split's spread of 0.061, within rosendahl's 0.065.
    y = np.repeat([0, 1], 160)
    b = y.copy()
    b[160:180] = 0
    probs = {"a": one_hot(y), "b": one_hot(b)}
    assert SEED_SPREAD < 0.0625 < HELD_OUT_SEED_SPREAD["rosendahl"]
    verdicts = {}
    for source in (None, "rosendahl", "vidir_modern"):
        report = comparison_report(y, probs, ["x", "y"], n_resamples=200, held_out_source=source)
        verdicts[source] = report["paired_differences"].verdict.item()
        assert f"on {report['seed_spread_measured_on']}:" in format_report(report)
    assert verdicts == {None: "resolved", "rosendahl": "resolved, within seed spread",
                        "vidir_modern": "resolved"}  # not measured there: the mixed split's


def test_agreement_by_hand():
    kappa, split = agreement(Y, PROBS)
    assert kappa.loc["a", "a"] == 1.0 and kappa.loc["a", "b"] == kappa.loc["b", "a"]
    # All three agree on the first image only (class 0, right).
    assert split["all_agree"]["n"] == 1 and split["all_agree"]["accuracy"]["value"] == 1.0
    assert split["disagree"]["n"] == 3
    assert split["disagree"]["accuracy_by_model"]["c"]["value"] == pytest.approx(1 / 3)


def test_wilson_interval():
    share = proportion([True] * 8 + [False] * 2)
    assert share["value"] == 0.8
    assert share["low"] == pytest.approx(0.490, abs=1e-3)
    assert share["high"] == pytest.approx(0.943, abs=1e-3)
    assert proportion([]) is None


def test_pareto_front():
    # cost, quality: (1, .5) and (2, .6) are on the front; (3, .55) is beaten by (2, .6).
    assert pareto_front([1, 2, 3], [0.5, 0.6, 0.55]).tolist() == [True, True, False]


def test_models_on_different_images_are_refused():
    with pytest.raises(ValueError, match=r"a: probabilities must be \(4, n_classes\)"):
        paired_differences(Y, {"a": one_hot([0, 1, 1])})
    with pytest.raises(ValueError, match="class indices from 0 to 1"):
        per_class_recall([0, 2, 1, 1], PROBS, ["x", "y"])


def test_the_pretraining_effect_is_imagenet_minus_scratch_of_one_backbone():
    pairs = pd.DataFrame([
        {"model_a": "m-scratch", "model_b": "m-imagenet", "difference": -0.07, "low": -0.11,
         "high": -0.03, "verdict": "resolved"},
        {"model_a": "m-imagenet", "model_b": "r-scratch", "difference": 0.05, "low": 0.01,
         "high": 0.09, "verdict": "resolved"},  # another backbone: not the effect
        {"model_a": "m-scratch", "model_b": "r-scratch", "difference": 0.01, "low": -0.02,
         "high": 0.04, "verdict": "not resolved"},
    ])
    effect = pretraining_effect(
        pairs, {"m-scratch": False, "m-imagenet": True, "r-scratch": False},
        {"m-scratch": "mobilenetv2", "m-imagenet": "mobilenetv2", "r-scratch": "resnet50"})
    assert effect.to_dict("records") == [{
        "backbone": "mobilenetv2", "imagenet": "m-imagenet", "scratch": "m-scratch",
        "difference": 0.07, "low": 0.03, "high": 0.11, "verdict": "resolved"}]
