"""The referral rule and the input guard (skin.decision), as plain functions of arrays,
and the decision a Prediction carries for a card with and without a referral block."""

import numpy as np
import pytest

from skin.decision import (
    INCONCLUSIVE, LOW_RISK, REFER, FeatureGuard, choose_referral_threshold, decide,
    guard_rule, is_flagged, malignant_probability, referral_rates, referral_rule,
)
from skin.predict import summarise

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
UNSURE_NEVER = {"min_confidence": 0.0, "min_margin": 0.0}


def test_malignant_probability_sums_the_malignant_classes():
    probs = np.array([[0.1, 0.2, 0.05, 0.05, 0.3, 0.25, 0.05]])
    assert malignant_probability(probs, CLASSES)[0] == pytest.approx(0.6)
    assert malignant_probability(probs, CLASSES, ["mel"])[0] == pytest.approx(0.3)


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 1.0])
def test_the_threshold_is_the_highest_that_reaches_the_target(target):
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.3
    risk = np.clip(truth * 0.3 + rng.random(400) * 0.7, 0, 1)
    threshold = choose_referral_threshold(truth, risk, target)
    assert referral_rates(truth, risk, threshold)["sensitivity"] >= target
    above = np.nextafter(threshold, 1.0)
    assert referral_rates(truth, risk, above)["sensitivity"] < target


def test_hand_checked_threshold_and_rates():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    risk = np.array([0.9, 0.8, 0.4, 0.2, 0.5, 0.3, 0.1, 0.05])
    # 3 of 4 malignant must be referred: the third highest malignant risk, 0.4
    assert choose_referral_threshold(truth, risk, 0.75) == 0.4
    assert referral_rates(truth, risk, 0.4) == {"sensitivity": 0.75, "specificity": 0.75}


@pytest.mark.parametrize("risk, uncertain, expected", [
    (0.30, False, REFER),  # at the threshold: refer
    (0.31, True, REFER),  # above it: refer, even when unsure (refer takes precedence)
    (0.29, True, INCONCLUSIVE),  # below it and unsure
    (0.29, False, LOW_RISK),  # below it and sure
])
def test_decide_at_above_and_below_the_threshold(risk, uncertain, expected):
    assert decide(risk, 0.30, uncertain) == expected


def test_no_threshold_is_no_decision():
    assert decide(0.0, None, False) is None


def predict_with(card_rules: dict, probs):
    return summarise("m", CLASSES, np.asarray(probs, float), None,
                     {"uncertainty": UNSURE_NEVER, **card_rules}, 3, 1.0, False)


def test_a_prediction_refers_on_risk_not_on_the_top_class():
    # The top class is a naevus (benign), but P(malignant) = 0.45 is above the threshold.
    probs = [0.05, 0.05, 0.05, 0.0, 0.35, 0.5, 0.0]
    rule = {"referral": {"malignant_classes": ["akiec", "bcc", "mel"], "threshold": 0.2}}
    prediction = predict_with(rule, probs)
    assert prediction.label == "nv" and prediction.decision == REFER
    assert prediction.malignant_probability == pytest.approx(0.45)
    assert prediction.to_dict()["refer_threshold"] == 0.2


def test_a_card_without_a_referral_block_gives_no_decision():
    prediction = predict_with({}, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    assert prediction.decision is None and prediction.refer_threshold is None
    assert prediction.not_dermoscopy is False and prediction.ood_score is None


def test_referral_rule_on_validation_reports_validation_and_test():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 300)
    probs = rng.dirichlet(np.ones(7), 300)
    probs[np.isin(labels, [0, 1, 4]), 4] += 1  # malignant lesions: more melanoma
    probs /= probs.sum(axis=1, keepdims=True)
    rule = referral_rule(CLASSES, labels, probs, labels, probs, n_resamples=50)
    assert rule["malignant_classes"] == ["akiec", "bcc", "mel"]
    assert rule["val"]["sensitivity"] >= 0.95 and rule["chosen_on"] == "val"
    assert rule["test"] == rule["val"]  # the same images: the same figures
    low, high = rule["test"]["intervals_95"]["specificity"]
    assert low <= rule["test"]["specificity"] <= high


def test_no_referral_rule_without_malignant_classes_or_lesions():
    probs = np.full((4, 3), 1 / 3)
    assert referral_rule(["cat", "dog", "fox"], [0, 1, 2, 0], probs) is None
    assert referral_rule(["mel", "nv", "bkl"], [1, 1, 2, 2], probs) is None


def test_the_feature_guard_flags_far_features_and_five_percent_of_validation(tmp_path):
    rng = np.random.default_rng(2)
    directions = rng.normal(size=(8, 100))
    def lesions(n):
        return rng.normal(size=(n, 8)) @ directions + rng.normal(0, 0.05, (n, 100))
    guard = FeatureGuard.fit(lesions(2000), components=8)
    rule = guard_rule(guard.score(lesions(1000)))
    assert rule["val_flagged"] == pytest.approx(0.05, abs=0.002)
    other = rng.normal(size=(50, 8)) @ directions * 6  # the same subspace, far out
    unrelated = rng.normal(size=(50, 100)) * 3  # another subspace altogether
    assert is_flagged(guard.score(other), rule).mean() > 0.9
    assert is_flagged(guard.score(unrelated), rule).all()
    guard.save(tmp_path / "g.npz")
    again = FeatureGuard.load(tmp_path / "g.npz")
    assert np.allclose(again.score(other), guard.score(other))
    assert is_flagged(None, rule) is False and is_flagged(99.0, None) is False
