"""Model creation, initialisation, freezing and the schedule's phases."""


import keras
import numpy as np
import pytest

from skin.backbones import BackboneError, build_classifier
from train.fit import (
    Phase, Schedule, TrainingState, cosine_learning_rate, make_loss, plan_phases,
)
from train.model import (
    InitError, backbone_layers, create_model, set_batchnorm_momentum, set_trainable,
)


def schedule(**changes):
    base = dict(epochs=10, head_epochs=2, unfreeze=5, unfreeze_step=0, unfreeze_every=0,
                learning_rate=1e-3, fine_tune_learning_rate=1e-4, patience=5, lr_patience=2,
                lr_schedule="plateau", warmup_epochs=0, monitor="balanced_accuracy",
                train_batchnorm=False)
    return Schedule(**{**base, **changes})


def test_two_stage_plan():
    assert plan_phases(schedule(), 100) == [Phase(1, 0, 2, 0, 1e-3), Phase(2, 2, 10, 5, 1e-4)]


def test_gradual_unfreezing_plan():
    phases = plan_phases(schedule(epochs=8, unfreeze_step=5, unfreeze_every=2), 12)
    assert [(p.start, p.end, p.trainable_layers) for p in phases] == [
        (0, 2, 0), (2, 4, 5), (4, 6, 10), (6, 8, 12)]


def test_from_scratch_plan_has_no_head_stage():
    assert plan_phases(schedule(head_epochs=0, unfreeze=10**6), 30) == [Phase(2, 0, 10, 30, 1e-4)]


def test_cosine_warms_up_then_decays_to_zero_over_stage_two():
    plan = schedule(epochs=12, head_epochs=2, warmup_epochs=2, lr_schedule="cosine")
    rates = [cosine_learning_rate(plan, epoch) for epoch in range(2, 12)]
    assert rates[:3] == pytest.approx([1e-4 / 3, 2e-4 / 3, 1e-4])  # warm-up, then the peak
    assert all(a > b for a, b in zip(rates[2:], rates[3:]))  # strictly decreasing
    assert rates[-1] == pytest.approx(1e-4 * 0.5 * (1 + np.cos(np.pi * 7 / 8)))
    assert cosine_learning_rate(plan, 12) == pytest.approx(0)  # the end of the last epoch


def test_a_rerun_resumes_with_more_patience_but_not_with_another_schedule(tmp_path):
    config = {"backbone": "mobilenetv2", "schedule": schedule().__dict__}
    state = TrainingState(config=config, epochs_done=7, best_score=0.5, history=[{}] * 7)
    state.save(tmp_path)
    (tmp_path / "last.weights.h5").write_bytes(b"weights")
    patient = {**config, "schedule": schedule(patience=40).__dict__}
    resumed = TrainingState.resume_or_new(tmp_path, patient)
    assert resumed.epochs_done == 7 and resumed.config == patient
    longer = {**config, "schedule": schedule(epochs=20).__dict__}
    assert TrainingState.resume_or_new(tmp_path, longer).epochs_done == 0


def test_set_trainable_counts_from_the_top_and_keeps_batchnorm_frozen():
    model = build_classifier("mobilenetv2", 3, 32)
    layers = backbone_layers(model)
    set_trainable(model, 6, train_batchnorm=False)
    trainable = [l for l in layers if l.trainable]
    assert trainable and all(l in layers[-6:] for l in trainable)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in trainable)
    assert model.get_layer("predictions").trainable
    set_trainable(model, 10**6, train_batchnorm=True)
    assert all(l.trainable for l in layers)


def test_batchnorm_momentum_is_set_everywhere():
    model = build_classifier("resnet50", 3, 32)
    set_batchnorm_momentum(model, 0.9)
    momenta = {l.momentum for l in model.layers if isinstance(l, keras.layers.BatchNormalization)}
    assert momenta == {0.9}


def test_input_size_below_the_backbone_minimum_is_refused():
    with pytest.raises(BackboneError, match="at least 75 px"):
        build_classifier("inceptionv3", 3, 64)
    with pytest.raises(BackboneError, match="choose one of"):
        build_classifier("vgg99", 3, 64)


def test_init_from_a_backbone_weights_file(tmp_path):
    donor = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    donor.save_weights(tmp_path / "backbone.weights.h5")
    model, init, provenance = create_model("mobilenetv2", ["a", "b"], 32,
                                           str(tmp_path / "backbone.weights.h5"), 0.3)
    assert init == "weights file backbone.weights.h5" and provenance is None
    np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0],
                                  donor.get_layer("Conv1").get_weights()[0])


def test_init_from_a_missing_path_is_an_init_error():
    with pytest.raises(InitError, match="expected none, imagenet"):
        create_model("mobilenetv2", ["a", "b"], 32, "no/such/file.h5", 0.3)


def test_focal_loss_carries_class_balance_in_alpha():
    weights = np.array([0.5, 1.0, 2.5])
    loss, class_weight = make_loss("focal", weights, 0.0)
    assert class_weight is None
    assert isinstance(loss, keras.losses.CategoricalFocalCrossentropy)
    y = np.eye(3)
    p = np.full((3, 3), 1 / 3)
    per_class = [float(loss(y[i:i + 1], p[i:i + 1])) for i in range(3)]
    assert per_class[0] < per_class[1] < per_class[2]  # rarer class, larger loss
    cce, class_weight = make_loss("cce", weights, 0.1)
    assert class_weight == {0: 0.5, 1: 1.0, 2: 2.5}
    assert cce.get_config()["label_smoothing"] == 0.1
