"""A model for phones and edge devices: one TensorFlow Lite or ONNX file, with its card.

    python -m skin export --model NAME [--format tflite|onnx] [--out DIR] [--float16]

The exported graph takes what `Predictor.prepare` makes (uint8 pixels, centre-cropped and
resized to the card's input size) and returns calibrated probabilities: the backbone's
preprocessing, the card's colour constancy and its temperature are inside it, so an app
on a phone only crops, resizes and reads the classes from the card. The card travels
with it (NAME.tflite.json or NAME.onnx.json, with an `export` block naming the file and
its sha256).
"""

import contextlib
import io
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from skin.cards import colour_constancy
from skin.files import atomic_path, atomic_write_text, file_sha256
from skin.preprocessing import model_input


class ExportError(Exception):
    pass


class Serving(keras.layers.Layer):
    """uint8 (n, size, size, 3) -> calibrated probabilities (n, n_classes), as Predictor:
    the card's preprocessing, the network, then its temperature."""

    def __init__(self, card: dict, model, **kwargs):
        super().__init__(**kwargs)
        self.network, self.backbone = model, card["backbone"]
        self.step, self.temperature = colour_constancy(card), float(card.get("temperature", 1.0))

    def call(self, pixels):
        probs = self.network(model_input(pixels, self.backbone, self.step), training=False)
        logits = tf.math.log(tf.clip_by_value(probs, 1e-12, 1.0)) / self.temperature
        return tf.nn.softmax(logits, axis=-1)


def serving_model(card: dict, model) -> keras.Model:
    size = card["input_size"]
    pixels = keras.Input((size, size, 3), dtype="uint8", name="pixels")
    return keras.Model(pixels, Serving(card, model)(pixels), name=f"{card['name']}-serving")


def to_tflite(card: dict, model, float16: bool = False) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(serving_model(card, model))
    # float16: weights stored as float16 (half the file), computed in float32; batch norm
    # is folded into the convolutions first, so the probabilities move (by up to 6e-3 on
    # HAM10000 images: BENCHMARKS.md).
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the graph it saves
        return converter.convert()


def to_onnx(card: dict, model, float16: bool = False) -> bytes:
    if float16:
        raise ExportError("--float16 is for TensorFlow Lite; ONNX is written in float32")
    try:
        import tf2onnx
    except ImportError:
        raise ExportError("ONNX export needs tf2onnx: pip install tf2onnx onnx") from None
    size = card["input_size"]
    signature = (tf.TensorSpec((None, size, size, 3), tf.uint8, name="pixels"),)
    proto, _ = tf2onnx.convert.from_keras(serving_model(card, model),
                                          input_signature=signature, opset=17)
    return proto.SerializeToString()


FORMATS = {"tflite": to_tflite, "onnx": to_onnx}


def export(card: dict, model, out_dir, fmt: str = "tflite", float16: bool = False) -> Path:
    """Write NAME.<fmt> and NAME.<fmt>.json into out_dir; return the model's path."""
    out_dir = Path(out_dir)
    path = out_dir / f"{card['name']}.{fmt}"
    try:
        data = FORMATS[fmt](card, model, float16)
    except ExportError:
        raise
    except Exception as e:  # the converters raise ConverterError and others, all bare
        raise ExportError(f"{card['name']} could not be converted to {fmt}: {e}") from None
    with atomic_path(path, suffix=path.suffix) as partial:
        partial.write_bytes(data)
    exported = {k: v for k, v in card.items() if not k.startswith("_")}
    exported["export"] = {
        "format": fmt, "file": path.name, "sha256": file_sha256(path),
        "bytes": path.stat().st_size, "weights": "float16" if float16 else "float32",
        "input": f"uint8 (n, {card['input_size']}, {card['input_size']}, 3): the image "
                 "centre-cropped to a square and resized (antialiased)",
        "output": "calibrated probabilities of the card's classes, in order",
    }
    atomic_write_text(out_dir / f"{path.name}.json", json.dumps(exported, indent=1))
    return path


class ExportedModel:
    """An exported file run by its own runtime (the TensorFlow Lite interpreter or ONNX
    Runtime): `probabilities(pixels)`, as the graph inside it computes them."""

    def __init__(self, path):
        path = Path(path)
        if path.suffix == ".onnx":
            import onnxruntime
            session = onnxruntime.InferenceSession(str(path))
            name = session.get_inputs()[0].name
            self._run = lambda pixels: session.run(None, {name: pixels})[0]
        else:
            self._interpreter = tf.lite.Interpreter(model_path=str(path))
            self._shape = None
            self._run = self._run_tflite

    def _run_tflite(self, pixels):
        interpreter = self._interpreter
        source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        if pixels.shape != self._shape:  # allocating takes longer than a call
            interpreter.resize_tensor_input(source["index"], pixels.shape)
            interpreter.allocate_tensors()
            self._shape = pixels.shape
        interpreter.set_tensor(source["index"], pixels)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])

    def probabilities(self, pixels) -> np.ndarray:
        return self._run(np.ascontiguousarray(pixels, dtype=np.uint8))
