"""Registry, loading and prediction on tiny models trained by `python -m train`."""

import json
import shutil

import numpy as np
import pytest

from skin.cards import CardError, build_model, read_card
from skin.images import read_image
from skin.preprocessing import model_input
from skin.predict import (
    Ensemble, Predictor, choose_uncertainty_thresholds, ensemble_thresholds, flagging,
    summarise,
)
from skin.registry import ENSEMBLE, ModelLoadError, Registry, load_model, model_dirs
from tests.conftest import CLASS_COLOURS, write_image


@pytest.fixture(scope="module")
def predictors(tiny_models):
    registry = Registry.discover([tiny_models])
    return [Predictor.from_card(card) for card in registry.cards.values()]


@pytest.fixture
def red_image(tmp_path):
    return read_image(write_image(tmp_path / "red.png", CLASS_COLOURS["akiec"], (200, 150)))


def test_discovery_from_extra_folders(tiny_models, monkeypatch):
    monkeypatch.setenv("SKIN_MODEL_DIRS", str(tiny_models))
    assert model_dirs()[1] == tiny_models
    registry = Registry.discover()
    assert {"tiny-efficientnetb0", "tiny-mobilenetv2"} <= set(registry.cards)
    card = registry.get("tiny-mobilenetv2")
    assert card["source"]["dtype"] == "float16" and card["uncertainty"]["chosen_on"] == "val"
    assert set(card["evaluation"]["float32"]) >= {"accuracy", "balanced_accuracy", "macro_f1"}
    with pytest.raises(CardError, match="no model named 'nope'"):
        registry.get("nope")


@pytest.mark.parametrize("change, reason", [
    ({"name": "../../etc/evil"}, "may hold only letters"),
    ({"source": {"file": "../outside.weights.h5"}}, "plain file name"),
    ({"source": {"file": "/etc/passwd"}}, "plain file name"),
    ({"source": "https://example.com/w.h5"}, "must be an object"),
    ({"name": "ensemble"}, "give the model another name"),
    ({"preprocessing": {"colour_constancy": "retinex"}}, "unknown colour constancy 'retinex'"),
])
def test_cards_cannot_reach_outside_their_folder_or_take_a_reserved_name(tiny_models, tmp_path, change, reason):
    card = json.loads((tiny_models / "tiny-mobilenetv2.json").read_text())
    (tmp_path / "bad.json").write_text(json.dumps({**card, **change}))
    with pytest.raises(CardError, match=reason):
        read_card(tmp_path / "bad.json")
    registry = Registry.discover([tmp_path, tiny_models])
    assert len(registry.problems) == 1 and "tiny-mobilenetv2" in registry.cards


def test_float16_storage_halves_the_file_and_keeps_the_predictions(tiny_models, tmp_path):
    from train.export import to_float16
    card = read_card(tiny_models / "tiny-mobilenetv2.json")
    model = load_model(card)
    model.save_weights(tmp_path / "full.weights.h5")
    to_float16(tmp_path / "full.weights.h5", tmp_path / "half.weights.h5")
    half = (tmp_path / "half.weights.h5").stat().st_size
    assert half < 0.55 * (tmp_path / "full.weights.h5").stat().st_size
    reloaded = build_model(card)
    reloaded.load_weights(tmp_path / "half.weights.h5")
    assert all(w.dtype == "float32" for w in reloaded.weights)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=2e-3)


def test_weights_of_another_architecture_are_refused(tiny_models, tmp_path):
    for f in tiny_models.iterdir():
        shutil.copy(f, tmp_path)
    card_path = tmp_path / "tiny-mobilenetv2.json"
    card = json.loads(card_path.read_text())
    other = tmp_path / "tiny-efficientnetb0.weights.h5"
    card["source"] = {"file": other.name, "sha256": read_card(
        tmp_path / "tiny-efficientnetb0.json")["source"]["sha256"]}
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="do not fit a mobilenetv2"):
        load_model(read_card(card_path))


def test_prediction_fields(predictors, red_image):
    p = predictors[0].predict(red_image, top_k=3)
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert [t["code"] for t in p.top_k][0] == p.label
    probs = [t["probability"] for t in p.top_k]
    assert probs == sorted(probs, reverse=True) and len(probs) == 3
    assert p.name == {"akiec": "Actinic keratosis / intraepithelial carcinoma",
                      "bcc": "Basal cell carcinoma", "nv": "Melanocytic nevus"}[p.label]
    assert p.margin == pytest.approx(probs[0] - probs[1])
    assert 0 <= p.entropy <= np.log(3) + 1e-6 and p.latency_ms > 0
    json.dumps(p.to_dict())


def test_a_warmed_up_predictor_times_predictions_not_tracing(tiny_models, red_image):
    card = next(iter(Registry.discover([tiny_models]).cards.values()))
    predictor = Predictor.from_card(card).warm_up()

    def traces():
        return [f.experimental_get_tracing_count() for f in (predictor._single, predictor._tta)]

    assert traces() == [1, 1]
    predictor.predict(red_image)
    predictor.predict(red_image, tta=True)
    assert traces() == [1, 1]  # any size of image: no new trace inside the timed call


def test_tta_averages_eight_views_and_ignores_mirroring(predictors, red_image):
    predictor = predictors[0]
    tta = predictor.probabilities(red_image, tta=True)
    assert tta.shape == (3,) and tta.sum() == pytest.approx(1.0, abs=1e-4)
    # The eight views are every mirror and quarter turn, so a mirrored photo gives the
    # same views and the same averaged probabilities.
    np.testing.assert_allclose(predictor.probabilities(red_image[:, ::-1], tta=True), tta,
                               atol=1e-5)
    assert predictor.predict(red_image, tta=True).tta


def test_the_predictor_applies_the_colour_constancy_its_card_names(predictors, red_image):
    by_name = {p.name: p for p in predictors}
    assert by_name["tiny-efficientnetb0"].card["preprocessing"]["colour_constancy"] == "shades_of_gray"
    assert by_name["tiny-mobilenetv2"].colour_constancy == "none"
    predictor = by_name["tiny-efficientnetb0"]
    pixels = predictor.prepare(red_image)
    corrected = np.asarray(model_input(pixels, "efficientnetb0", "shades_of_gray"))
    np.testing.assert_array_equal(np.asarray(predictor.model_input(pixels)), corrected)
    # The red test image has a strong cast: the step changes what the network sees.
    assert np.abs(corrected - np.asarray(model_input(pixels, "efficientnetb0"))).max() > 10
    np.testing.assert_allclose(predictor._batch(pixels)[0].numpy(),
                               np.asarray(predictor.model(corrected)), atol=1e-5)


def test_batch_probabilities_match_single_predictions(predictors, red_image):
    predictor = predictors[0]
    batch = predictor.batch_probabilities([red_image, red_image[::-1]])
    np.testing.assert_allclose(batch[0], predictor.probabilities(red_image), atol=1e-5)


def test_ensemble_is_the_mean_of_calibrated_members(predictors, red_image):
    result = Ensemble(predictors).predict(red_image)
    mean = np.mean([p.probabilities(red_image) for p in predictors], axis=0)
    got = np.array([result.probabilities[c] for c in predictors[0].classes])
    np.testing.assert_allclose(got, mean, atol=1e-6)
    assert result.model.startswith("ensemble(")


@pytest.mark.parametrize("tta", [False, True])
def test_the_ensemble_of_the_members_own_predictions_is_the_same(predictors, red_image, tta):
    own = [p.predict(red_image, tta=tta) for p in predictors]
    combined = Ensemble(predictors).predict(red_image, tta=tta, member_predictions=own).to_dict()
    direct = Ensemble(predictors).predict(red_image, tta=tta).to_dict()
    assert combined["latency_ms"] == pytest.approx(sum(p.latency_ms for p in own))
    for key in ("latency_ms", "probabilities", "top_k", "entropy", "margin", "confidence",
                "malignant_probability", "ood_score"):
        combined.pop(key), direct.pop(key)
    assert combined == direct
    np.testing.assert_allclose(
        list(Ensemble(predictors).predict(red_image, tta=tta, member_predictions=own).probabilities.values()),
        list(Ensemble(predictors).predict(red_image, tta=tta).probabilities.values()), atol=1e-6)
    with pytest.raises(ValueError, match="the members' own"):
        Ensemble(predictors).predict(red_image, tta=not tta, member_predictions=own)


def test_uncertain_flag_follows_the_thresholds():
    thresholds = {"min_confidence": 0.5, "min_margin": 0.2}

    def flag(probs):
        return summarise("m", ["a", "b", "c"], np.array(probs), None,
                         {"uncertainty": thresholds}, 3, 1.0, False).uncertain
    assert not flag([0.8, 0.1, 0.1])
    assert flag([0.45, 0.1, 0.45])  # low confidence
    assert flag([0.55, 0.4, 0.05])  # confident enough, but a small margin


def test_thresholds_flag_what_summarise_flags_and_each_cuts_its_share():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=500)
    labels = rng.integers(0, 4, size=500)
    chosen = choose_uncertainty_thresholds(labels, probs, flag_fraction=0.2)
    uncertain = [summarise("m", list("abcd"), p, None, {"uncertainty": chosen}, 3, 1.0,
                           False).uncertain for p in probs]
    assert chosen["flagged_fraction"] == pytest.approx(np.mean(uncertain))
    # Either test flags 20%; together they flag more, fewer than 40%.
    assert 0.2 < chosen["flagged_fraction"] < 0.4
    correct = probs.argmax(axis=1) == labels
    kept = ~np.array(uncertain)
    assert chosen["accuracy_kept"] == pytest.approx(correct[kept].mean())
    nothing = flagging(labels, probs, {"min_confidence": 0.0, "min_margin": 0.0})
    assert nothing["flagged_fraction"] == 0 and nothing["accuracy_flagged"] is None


def test_ensemble_thresholds_are_the_members_mean():
    members = [{"min_confidence": 0.4, "min_margin": 0.1}, {"min_confidence": 0.6, "min_margin": 0.3}]
    assert ensemble_thresholds(members) == pytest.approx({"min_confidence": 0.5, "min_margin": 0.2})


def test_predictor_gradcam_for_the_predicted_and_a_named_class(predictors, red_image):
    predictor = predictors[0]
    heatmap, pixels = predictor.gradcam(red_image)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    assert heatmap.ndim == 2 and 0 <= heatmap.min() and heatmap.max() <= 1
    named, _ = predictor.gradcam(red_image, "nv")
    assert named.shape == heatmap.shape


def test_explain_is_the_prediction_and_the_map_of_one_graph_call(predictors, red_image):
    """The Compare page's one call per model: the same probabilities, guard score and
    decision as predict, and the same map as Grad-CAM computed eagerly here."""
    import tensorflow as tf

    from skin.preprocessing import center_crop_resize

    def eager_gradcam(predictor, pixels, index):
        with tf.GradientTape() as tape:
            conv, logits, _, _ = predictor._cam.network(predictor.model_input(pixels))
            logit = logits[:, index]
        weights = tf.reduce_mean(tape.gradient(logit, conv)[0], axis=(0, 1))
        cam = tf.nn.relu(tf.reduce_sum(conv[0] * weights, axis=-1)).numpy()
        return cam / cam.max() if cam.max() > 0 else cam

    for predictor in predictors:
        explained = predictor.explain(red_image)
        alone = predictor.predict(red_image)
        for code, probability in alone.probabilities.items():
            assert explained.prediction.probabilities[code] == pytest.approx(probability, abs=1e-5)
        assert explained.prediction.decision == alone.decision
        assert explained.prediction.ood_score == pytest.approx(alone.ood_score, abs=1e-4)
        pixels = center_crop_resize(red_image, predictor.size)[None]
        for code in (None, "nv"):
            index = predictor.classes.index(code or alone.label)
            reference = eager_gradcam(predictor, pixels, index)
            heatmap = predictor.explain(red_image, code).heatmap
            np.testing.assert_allclose(heatmap, reference, atol=1e-5)
        assert np.array_equal(explained.pixels, pixels[0].numpy())


@pytest.mark.parametrize("saved_as", ["evil.keras", "evil.h5"])
def test_code_in_a_model_file_never_runs(tiny_models, tmp_path, saved_as):
    """A whole-model file whose Lambda layer writes a marker file when the model is
    rebuilt from it: named as a card's weights, it is refused and its code never runs."""
    import keras

    from skin.files import file_sha256
    marker = tmp_path / "code-ran"
    evil = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Lambda(eval(  # a literal path: Keras stores the lambda's bytecode
            f"lambda x: x + 0 * len(str(open({str(marker)!r}, 'w').write('pwned')))")),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(7, activation="softmax"),
    ])
    evil.save(tmp_path / saved_as)
    marker.unlink()  # written while the model was built above
    # The threat is real: deserialising this file with safe mode off runs the code.
    keras.saving.load_model(tmp_path / saved_as, safe_mode=False)
    assert marker.read_text() == "pwned"
    marker.unlink()

    card = json.loads((tiny_models / "tiny-mobilenetv2.json").read_text())
    card["source"] = {"file": saved_as, "sha256": file_sha256(tmp_path / saved_as)}
    (tmp_path / "evil.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="do not fit a mobilenetv2"):
        load_model(read_card(tmp_path / "evil.json"))
    assert not marker.exists()
    with pytest.raises(ValueError, match="safe_mode"):  # and Keras's own default refuses
        keras.saving.load_model(tmp_path / saved_as)
    assert not marker.exists()


def test_the_ensemble_takes_the_largest_set_of_models_sharing_classes():
    seven, three = list("abcdefg"), list("abc")
    registry = Registry(cards={"a-seven": {"classes": seven}, "b-three": {"classes": three},
                               "c-three": {"classes": three}})
    assert registry.ensemble_members() == ["b-three", "c-three"]
    registry.cards["d-seven"] = {"classes": seven}  # a tie: the first model's set
    assert registry.ensemble_members() == ["a-seven", "d-seven"]
    assert Registry().ensemble_members() == []


def test_the_ensemble_record_names_its_members_where_they_are_all_registered():
    seven = list("abcdefg")
    cards = {n: {"classes": seven} for n in ("a", "b", "c")}
    registry = Registry(cards=dict(cards), ensemble_record={"members": ["c", "a"]})
    assert registry.ensemble_members() == ["a", "c"]  # chosen on validation: b left out
    assert registry.comparable_models() == ["a", "b", "c"]  # a comparison holds them all
    registry.ensemble_record = {"members": ["a", "z"]}  # z is not here: all that share classes
    assert registry.ensemble_members() == ["a", "b", "c"]


def test_the_default_model_is_the_best_on_validation():
    def card(score):
        return {"classes": ["x", "y"], "validation": {"balanced_accuracy": score}}
    registry = Registry(cards={"a": card(0.60), "b": card(0.70), "c": {"classes": ["x", "y"]}})
    assert registry.best_on_validation() == "b"
    registry.ensemble_record = {"members": ["a", "b"], "validation": {"balanced_accuracy": 0.72}}
    assert registry.best_on_validation() == ENSEMBLE
    registry.ensemble_record = {"members": ["a", "c"], "validation": {"balanced_accuracy": 0.72}}
    assert registry.best_on_validation() == ENSEMBLE  # a and c share classes: its members
    registry.ensemble_record["members"] = ["a"]  # a record for one model is no ensemble
    assert registry.best_on_validation() == "b"
    assert Registry().best_on_validation() is None
