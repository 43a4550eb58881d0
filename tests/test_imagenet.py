"""ImageNet weights from a local file: the import is real (it recognises ImageNet's
classes and matches the TensorFlow Lite interpreter), batch-norm re-estimation keeps the
outputs, and every way of asking for ImageNet weights that cannot be had fails clearly."""

import socket
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from train.imagenet import (
    DEFAULT_LOCAL_FILES, TFLITE_LABEL, InitError, imagenet_classifier,
    load_tflite_mobilenet_v2, reestimate_batchnorm,
)
from train.model import create_model

TFLITE = DEFAULT_LOCAL_FILES["mobilenetv2"]
needs_tflite = pytest.mark.skipif(not TFLITE.is_file(),
                                  reason=f"Google's TFLite MobileNetV2 is not at {TFLITE}")
# The Keras model computes in float32, the TFLite model in 8 bits; their logits differ by
# a few of the logits' quantisation steps (0.063). Measured on the photos below: at most
# 0.53, on average 0.05 to 0.11.
MAX_LOGIT_DIFFERENCE, MEAN_LOGIT_DIFFERENCE = 1.0, 0.2
EXPECTED = {  # scikit-image's sample photo: ImageNet classes any of which may come first
    "chelsea": {"tabby, tabby cat", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup"},
    "rocket": {"missile", "projectile, missile", "space shuttle"},
}


def internet_reachable() -> bool:
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=2).close()
        return True
    except OSError:
        return False


offline = pytest.mark.skipif(internet_reachable(), reason="Keras's ImageNet weights are downloadable here")


def sample_photos() -> dict[str, np.ndarray]:
    """scikit-image's photos at 224 px, as uint8 RGB."""
    skimage_data = pytest.importorskip("skimage.data")
    def at_224(photo):
        resized = tf.image.resize(photo[None].astype("float32"), (224, 224)).numpy()[0]
        return np.clip(np.round(resized), 0, 255).astype(np.uint8)
    return {name: at_224(getattr(skimage_data, name)()) for name in EXPECTED}


def imported_imagenet_model() -> keras.Model:
    """keras.applications.MobileNetV2 with the imported weights and ImageNet classifier."""
    inputs = keras.Input((224, 224, 3))
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_tensor=inputs)
    kernel, bias = load_tflite_mobilenet_v2(backbone, TFLITE)
    classifier = keras.layers.Dense(1001)
    logits = classifier(keras.layers.GlobalAveragePooling2D()(backbone.output))
    classifier.set_weights([kernel, bias])
    return keras.Model(inputs, logits)


def tflite_logits(photo: np.ndarray) -> np.ndarray:
    """The TFLite model's own logits (the input of its softmax), dequantised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(TFLITE),
                                          experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], photo[None])
    interpreter.invoke()
    softmax = next(op for op in interpreter._get_ops_details() if op["op_name"] == "SOFTMAX")
    index = softmax["inputs"][0]
    scale, zero_point = interpreter.get_tensor_details()[index]["quantization"]
    return (interpreter.get_tensor(index).astype(np.float32).reshape(-1) - zero_point) * scale


@needs_tflite
def test_the_imported_model_recognises_imagenet_classes_as_tflite_does():
    labels = (TFLITE.parent / "imagenet_labels.txt").read_text().splitlines()
    model = imported_imagenet_model()
    for name, photo in sample_photos().items():
        x = keras.applications.mobilenet_v2.preprocess_input(photo[None].astype("float32"))
        ours = model.predict(x, verbose=0)[0]
        theirs = tflite_logits(photo)
        assert labels[int(ours.argmax())] in EXPECTED[name], (name, labels[int(ours.argmax())])
        assert list(np.argsort(-ours)[:3]) == list(np.argsort(-theirs)[:3]), name
        difference = np.abs(ours - theirs)
        assert difference.max() < MAX_LOGIT_DIFFERENCE and difference.mean() < MEAN_LOGIT_DIFFERENCE


@needs_tflite
def test_reestimated_batchnorm_keeps_the_outputs_and_holds_real_statistics():
    model, _ = imagenet_classifier("mobilenetv2", 3, 64, 0.0, local_file=str(TFLITE))
    images = np.random.default_rng(0).uniform(-1, 1, (16, 64, 64, 3)).astype("float32")
    before = model.predict(images, verbose=0)
    reestimate_batchnorm(model, [images[:8], images[8:]])
    np.testing.assert_allclose(model.predict(images, verbose=0), before, atol=1e-4)
    first_bn = model.get_layer("bn_Conv1")
    measured = np.asarray(model.get_layer("Conv1")(images)).reshape(-1, 32)
    np.testing.assert_allclose(first_bn.moving_mean.numpy(), measured.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(first_bn.moving_variance.numpy(), measured.var(axis=0), rtol=1e-3)


@needs_tflite
@offline
def test_offline_imagenet_takes_the_local_file_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached Keras weights
    messages = []
    model, init, provenance = create_model("mobilenetv2", ["a", "b"], 64, "imagenet", 0.3,
                                           log=messages.append)
    assert init == "imagenet" and provenance.label == TFLITE_LABEL
    assert provenance.file == TFLITE.name and len(provenance.sha256) == 64
    assert "Apache-2.0" in provenance.licence
    assert any(str(TFLITE) in m and "could not download" in m for m in messages)


@offline
def test_offline_without_a_local_file_names_both_ways(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(DEFAULT_LOCAL_FILES, "mobilenetv2", tmp_path / "absent.tflite")
    with pytest.raises(InitError, match="internet.*--init-weights PATH.*absent.tflite"):
        create_model("mobilenetv2", ["a", "b"], 64, "imagenet", 0.3)
    with pytest.raises(InitError, match="internet.*--init-weights PATH.*mobilenetv2 only"):
        create_model("resnet50", ["a", "b"], 64, "imagenet", 0.3)


def test_a_bad_local_file_is_an_init_error(tmp_path):
    with pytest.raises(InitError, match="no such file"):
        create_model("mobilenetv2", ["a", "b"], 64, "imagenet", 0.3,
                     init_weights=str(tmp_path / "absent.tflite"))
    (tmp_path / "broken.tflite").write_bytes(b"not a model")
    with pytest.raises(InitError, match="not a TensorFlow Lite model"):
        create_model("mobilenetv2", ["a", "b"], 64, "imagenet", 0.3,
                     init_weights=str(tmp_path / "broken.tflite"))
    with pytest.raises(InitError, match="mobilenetv2 only"):
        create_model("resnet50", ["a", "b"], 64, "imagenet", 0.3,
                     init_weights=str(tmp_path / "broken.tflite"))
    with pytest.raises(InitError, match="add --init imagenet"):
        create_model("mobilenetv2", ["a", "b"], 64, "none", 0.3,
                     init_weights=str(tmp_path / "broken.tflite"))
