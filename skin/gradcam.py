"""Grad-CAM (Selvaraju et al., 2017) for any backbone of the table.

The layer comes from the backbone table (`gradcam_layers`), never from the model file:
the last candidate whose map is at least 3x3 at the model's input size, so that the map
has something to localise. Gradients are taken of the class logit (before the softmax,
which saturates): the head's pooled features times its own kernel.
"""

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from skin.backbones import get_backbone

MIN_GRID = 3


def gradcam_layer(model: keras.Model, backbone: str) -> str:
    """The backbone's first candidate layer with a map of at least 3x3 in this model (the
    last candidate if none is)."""
    candidates = get_backbone(backbone).gradcam_layers
    for name in candidates:
        height, width = model.get_layer(name).output.shape[1:3]
        if min(height, width) >= MIN_GRID:
            return name
    return candidates[-1]


class GradCam:
    """Grad-CAM maps of one classifier built by skin.backbones.build_classifier, computed
    in the same graph as its prediction."""

    def __init__(self, model: keras.Model, backbone: str):
        self.layer = gradcam_layer(model, backbone)
        head = model.get_layer("predictions")
        pooled = model.get_layer("head_pool").output
        logits = keras.ops.matmul(pooled, head.kernel) + head.bias
        self.network = keras.Model(model.inputs, [model.get_layer(self.layer).output, logits,
                                                  model.output, pooled])

    def explain(self, model_input, class_index):
        """(probabilities, pooled features, raw map over the layer's grid) of one
        preprocessed image batch (1, size, size, 3); a negative class_index explains the
        most probable class. Tensors in and out, so that it compiles into a caller's graph:
        eager, the gradient tape costs 0.1 to 1 s per map (benchmarks/compare_page.py)."""
        with tf.GradientTape() as tape:
            conv, logits, probs, features = self.network(model_input, training=False)
            index = tf.where(class_index < 0, tf.argmax(logits[0], output_type=tf.int32),
                             class_index)
            logit = tf.gather(logits[0], index)
        grads = tape.gradient(logit, conv)[0]
        weights = tf.reduce_mean(grads, axis=(0, 1))
        return probs, features, tf.nn.relu(tf.reduce_sum(conv[0] * weights, axis=-1))

    def heatmap(self, model_input, class_index: int) -> np.ndarray:
        """A (h, w) map in [0, 1] for one preprocessed image batch (1, size, size, 3)."""
        return normalised(self._compiled(tf.convert_to_tensor(model_input, tf.float32),
                                         tf.constant(class_index, tf.int32))[2])

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32),
                                  tf.TensorSpec([], tf.int32)])
    def _compiled(self, model_input, class_index):
        return self.explain(model_input, class_index)


def normalised(cam) -> np.ndarray:
    """A raw Grad-CAM map scaled to [0, 1] (all zeros stays all zeros)."""
    cam = np.asarray(cam)
    top = cam.max()
    return cam / top if top > 0 else cam


def colourise(heatmap: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 with a blue-cyan-yellow-red ramp (a jet-like colour map)."""
    stops = np.array([0.0, 0.35, 0.65, 1.0])
    colours = np.array([[0, 0, 160], [0, 200, 255], [255, 230, 0], [220, 0, 0]], float)
    rgb = np.stack([np.interp(heatmap, stops, colours[:, c]) for c in range(3)], axis=-1)
    return rgb.astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """The heatmap, upsampled to the image (HxWx3 uint8) and blended over it."""
    height, width = image.shape[:2]
    upsampled = np.asarray(
        Image.fromarray((heatmap * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR),
        dtype=np.float32) / 255.0
    blended = (1 - opacity) * image.astype(np.float32) + opacity * colourise(upsampled)
    return np.clip(blended, 0, 255).astype(np.uint8)
