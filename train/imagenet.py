"""ImageNet weights for a backbone: Keras's own download, or a local file imported here.

`keras.applications` downloads its ImageNet weights from storage.googleapis.com. Where that
cannot be reached, MobileNetV2's can come from Google's 8-bit TensorFlow Lite model
(`../shared/weights/mobilenet_v2_imagenet/`, Apache-2.0): its CONV_2D and
DEPTHWISE_CONV_2D ops, in graph order, are the Conv2D and DepthwiseConv2D layers of
`keras.applications.MobileNetV2` (alpha 1.0), then a 1x1 conv that is the 1001-way
ImageNet classifier (index 0: "background"). Batch normalisation is folded into each conv
(the kernel scaled, the shift in the conv's bias), so each BatchNormalization layer
becomes the identity plus that bias; `reestimate_batchnorm` then gives them dermoscopy
images' own statistics without changing what they output.
"""

import socket
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from skin.backbones import build_classifier
from skin.files import file_sha256

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"
# The local file each backbone takes when Keras cannot download its weights.
DEFAULT_LOCAL_FILES = {
    "mobilenetv2": SHARED_WEIGHTS / "mobilenet_v2_imagenet" / "tf2_mobilenet_v2_1.0_224_ptq.tflite",
}
IMAGENET_LICENCE = "ImageNet's own terms are for non-commercial research"
TFLITE_LABEL = "ImageNet (MobileNetV2, 8-bit, Google, Apache-2.0)"
BATCHNORM_EPSILON = 1e-3  # keras.applications.MobileNetV2's


class InitError(Exception):
    """The requested initial weights cannot be had; the message says what to do."""


@dataclass(frozen=True)
class Provenance:
    """Where a model's ImageNet weights came from: the card's `init_weights`."""
    label: str  # what the app and the results table show
    file: str  # the local file's name, or "keras.applications download"
    sha256: str | None
    licence: str

    def record(self) -> dict:
        return asdict(self)


def imagenet_classifier(backbone: str, num_classes: int, input_size: int, dropout: float, *,
                        local_file: str | None = None, log=print):
    """(classifier with an ImageNet backbone, its Provenance).

    From `local_file` when given; else Keras's download; where that fails, the backbone's
    default local file. No silent fallback to random weights: InitError names both ways.
    """
    if local_file:
        return _from_local_file(backbone, num_classes, input_size, dropout, Path(local_file))
    try:
        return _from_keras_download(backbone, num_classes, input_size, dropout)
    except InitError as download_error:
        default = DEFAULT_LOCAL_FILES.get(backbone)
        if default is None or not default.is_file():
            raise InitError(
                f"{download_error}. Either train where Keras can download them (internet), or "
                f"pass a local copy with --init-weights PATH"
                + (f" (the default, {default}, is absent)" if default else
                   f" (this project imports local ImageNet weights for "
                   f"{', '.join(DEFAULT_LOCAL_FILES)} only)")) from None
        log(f"{download_error}; importing the local file {default} instead")
        return _from_local_file(backbone, num_classes, input_size, dropout, default)


def _from_keras_download(backbone, num_classes, input_size, dropout):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # keras.utils.get_file has no timeout of its own
    try:
        model = build_classifier(backbone, num_classes, input_size, dropout, weights="imagenet")
    except Exception as e:  # Keras raises a bare Exception for a failed download
        raise InitError(f"Keras could not download the ImageNet weights of {backbone} ({e})") \
            from None
    finally:
        socket.setdefaulttimeout(previous)
    return model, Provenance(f"ImageNet ({backbone}, Keras)", "keras.applications download",
                             None, f"Keras applications' weights; {IMAGENET_LICENCE}")


def _from_local_file(backbone, num_classes, input_size, dropout, path: Path):
    if backbone != "mobilenetv2":
        raise InitError(f"--init-weights: this project imports local ImageNet weights for "
                        f"mobilenetv2 only, not {backbone}; for a Keras *_notop.h5 file, "
                        "pass it to --init instead")
    if not path.is_file():
        raise InitError(f"--init-weights {path}: no such file")
    model = build_classifier(backbone, num_classes, input_size, dropout)
    load_tflite_mobilenet_v2(model, path)
    return model, Provenance(TFLITE_LABEL, path.name, file_sha256(path),
                             f"Apache-2.0 (Google, google-coral/test_data); {IMAGENET_LICENCE}")


# The TensorFlow Lite import ---------------------------------------------------------

def read_tflite_convs(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel in Keras's layout, bias) of every conv op in graph order, dequantised."""
    import tensorflow as tf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice that LiteRT replaces it
        try:
            interpreter = tf.lite.Interpreter(model_path=str(path))
        except ValueError as e:
            raise InitError(f"{path} is not a TensorFlow Lite model: {e}") from None
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def dequantised(index):
        q = tensors[index]["quantization_parameters"]
        values = interpreter.get_tensor(index).astype(np.float32)
        if not len(q["scales"]):  # a float tensor
            return values
        shape = [1] * values.ndim
        shape[q["quantized_dimension"]] = -1
        return (values - q["zero_points"].reshape(shape)) * q["scales"].reshape(shape)

    convs = []
    for op in interpreter._get_ops_details():  # the public API has no op list
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            _, kernel, bias = op["inputs"]
            # TFLite: [out, kh, kw, in], depthwise [1, kh, kw, C]; Keras: [kh, kw, in, out]
            # and [kh, kw, C, 1]: the same transpose for both.
            convs.append((dequantised(kernel).transpose(1, 2, 3, 0), dequantised(bias)))
    return convs


def load_tflite_mobilenet_v2(model: keras.Model, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Put the TFLite MobileNetV2's weights into the MobileNetV2 layers of `model`, each
    batch normalisation as the identity plus the folded bias; return the ImageNet
    classifier's (kernel [1280, 1001], bias [1001]), which `model` does not hold."""
    convs = read_tflite_convs(path)
    conv_types = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    layers = [l for l in model.layers
              if isinstance(l, (*conv_types, keras.layers.BatchNormalization))]
    pairs = [(conv, bn) for conv, bn in zip(layers, layers[1:])
             if isinstance(conv, conv_types) and isinstance(bn, keras.layers.BatchNormalization)]
    if len(convs) != len(pairs) + 1:
        raise InitError(f"{path} has {len(convs)} convolutions; MobileNetV2 (alpha 1.0) "
                        f"needs {len(pairs) + 1}: not the model this importer knows")
    for (kernel, bias), (conv, bn) in zip(convs, pairs):
        if kernel.shape != tuple(conv.kernel.shape):
            raise InitError(f"{path}: a {kernel.shape} kernel for {conv.name}, which takes "
                            f"{tuple(conv.kernel.shape)}: not MobileNetV2 (alpha 1.0)")
        conv.set_weights([kernel])
        ones = np.ones_like(bias)
        bn.set_weights([ones, bias, np.zeros_like(bias), ones - BATCHNORM_EPSILON])
    head_kernel, head_bias = convs[-1]
    return head_kernel[0, 0], head_bias


# Batch normalisation on dermoscopy images ------------------------------------------

def reestimate_batchnorm(model: keras.Model, images) -> None:
    """Give every BatchNormalization layer the per-channel mean and variance of its input
    on `images` (batches of model inputs, or (inputs, labels) pairs) and rescale its gamma
    and beta so that its output is unchanged: the model predicts exactly as before, and
    training-mode batch statistics start where inference-mode ones are."""
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    probe = keras.Model(model.inputs, [bn.input for bn in bns])
    sums, squares, counts = [0.0] * len(bns), [0.0] * len(bns), [0] * len(bns)
    for batch in images:
        x = batch[0] if isinstance(batch, tuple) else batch
        for i, out in enumerate(probe(x, training=False)):
            out = np.asarray(out, dtype=np.float64).reshape(-1, out.shape[-1])
            sums[i] = sums[i] + out.sum(axis=0)
            squares[i] = squares[i] + (out ** 2).sum(axis=0)
            counts[i] += len(out)
    for bn, total, total_sq, count in zip(bns, sums, squares, counts):
        mean = total / count
        var = np.maximum(total_sq / count - mean ** 2, 0.0)
        gamma, beta, old_mean, old_var = bn.get_weights()
        old_scale = gamma / np.sqrt(old_var + bn.epsilon)
        bn.set_weights([old_scale * np.sqrt(var + bn.epsilon),
                        beta + old_scale * (mean - old_mean),
                        mean, var])
