"""Per-image scores: written and read back, checked against the cards, and made by the
serving code."""

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from skin.images import read_image
from skin.registry import SHIPPED_MODELS, Registry
from skin.scores import SHIPPED_TEST_SCORES, Scores, ScoresError, card_identity, score_images
from tests.conftest import CLASS_COLOURS, write_image


def small_scores() -> Scores:
    rng = np.random.default_rng(0)
    probs = {name: rng.dirichlet(np.ones(3), 5) for name in ("a", "b")}
    return Scores("five drawn images", ["akiec", "bcc", "nv"], [f"i{k}" for k in range(5)],
                  ["akiec", "bcc", "nv", "nv", "bcc"], probs, {"a": 0.01, "b": 0.02},
                  {"a": {"weights_sha256": "1", "temperature": 1.0},
                   "b": {"weights_sha256": "2", "temperature": 0.9}}, ["a", "b"])


def test_scores_written_and_read_back(tmp_path):
    scored = small_scores()
    scored.write(tmp_path / "s" / "scores.csv")
    back = Scores.read(tmp_path / "s" / "scores.csv")
    assert back.labels == scored.labels and back.image_ids == scored.image_ids
    assert back.models == scored.models and back.ensemble_members == ["a", "b"]
    for name in scored.probs:
        np.testing.assert_allclose(back.probs[name], scored.probs[name], atol=1e-6)
    assert back.y.tolist() == [0, 1, 2, 2, 1]
    assert list(back.table().columns[:4]) == ["image_id", "label", "a:akiec", "a:bcc"]


def test_scores_of_changed_models_are_stale():
    scored = small_scores()
    cards = {"a": {"source": {"sha256": "1"}, "temperature": 1.0},
             "b": {"source": {"sha256": "2"}, "temperature": 1.0}}  # b's temperature moved
    assert scored.stale_models(cards) == ["b"]
    assert scored.stale_models({"b": cards["b"]}) == ["a", "b"]


def test_unreadable_scores_say_so(tmp_path):
    small_scores().write(tmp_path / "scores.csv")
    meta = json.loads((tmp_path / "scores.json").read_text())
    del meta["ensemble_members"]
    (tmp_path / "scores.json").write_text(json.dumps(meta))
    with pytest.raises(ScoresError, match="write them again"):
        Scores.read(tmp_path / "scores.csv")
    with pytest.raises(ScoresError, match="cannot read"):
        Scores.read(tmp_path / "missing.csv")


def test_the_shipped_test_scores_are_those_of_the_shipped_cards():
    registry = Registry.discover([SHIPPED_MODELS])
    scored = Scores.read(SHIPPED_TEST_SCORES)
    assert scored.stale_models(registry.cards) == []
    assert set(scored.models) == set(registry.cards)
    assert scored.ensemble_members == registry.ensemble_members()
    for name, card in registry.cards.items():
        assert len(scored.labels) == card["evaluation"]["n"]
        served = balanced_accuracy_score(scored.y, scored.probs[name].argmax(axis=1))
        assert served == pytest.approx(card["evaluation"]["balanced_accuracy"], abs=1e-4)
    mean = np.mean([scored.probs[n] for n in scored.ensemble_members], axis=0)
    np.testing.assert_allclose(scored.probs["ensemble"], mean, atol=1e-5)


def test_score_images_skips_what_cannot_be_read_and_adds_the_ensemble(tiny_models, tmp_path):
    from skin.predict import Predictor
    registry = Registry.discover([tiny_models])
    predictors = [Predictor.from_card(card) for card in registry.cards.values()]
    files = {code: write_image(tmp_path / f"{code}.png", colour, (200, 150))
             for code, colour in CLASS_COLOURS.items()}
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    files["broken"] = tmp_path / "broken.png"
    seen = []
    scored, skipped = score_images(
        predictors, list(files), ["akiec", "bcc", "nv", "nv"], files.get, "drawn",
        ensemble_members=list(registry.cards), on_progress=lambda done, total: seen.append(done))
    assert [image_id for image_id, _ in skipped] == ["broken"] and "image" in skipped[0][1]
    assert scored.image_ids == list(CLASS_COLOURS) and scored.labels == ["akiec", "bcc", "nv"]
    assert seen == [4]
    images = [files[code] for code in CLASS_COLOURS]
    for predictor in predictors:
        expected = predictor.batch_probabilities([read_image(f) for f in images])
        np.testing.assert_allclose(scored.probs[predictor.name], expected, atol=1e-6)
        assert scored.models[predictor.name] == card_identity(predictor.card)
        assert scored.seconds_per_image[predictor.name] > 0
    np.testing.assert_allclose(scored.probs["ensemble"],
                               np.mean([scored.probs[p.name] for p in predictors], axis=0))
