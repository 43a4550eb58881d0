"""Prediction: preprocessing, one compiled forward pass, temperature, test-time
augmentation, top-k with full class names, latency, entropy, margin, and an honest
"uncertain" flag; and the ensemble of several models.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from skin.classes import full_name, is_malignant
from skin.gradcam import GradCam
from skin.preprocessing import center_crop_resize, model_input

# Used when a card records no thresholds of its own (cards record theirs, chosen on the
# validation split by train/export.py).
DEFAULT_UNCERTAINTY = {"min_confidence": 0.5, "min_margin": 0.15}
DISCLAIMER = "Research demo, not a medical device: not a diagnosis."


@dataclass
class Prediction:
    model: str
    label: str
    name: str
    confidence: float
    malignant: bool
    top_k: list  # [{"code", "name", "probability"}], most probable first
    probabilities: dict  # code -> calibrated probability
    entropy: float  # nats; 0 = certain, log(n_classes) = uniform
    margin: float  # top-1 minus top-2 probability
    uncertain: bool
    latency_ms: float
    tta: bool

    def to_dict(self) -> dict:
        """The prediction as JSON-ready data, with the disclaimer (it travels with the file)."""
        return {**asdict(self), "disclaimer": DISCLAIMER}


def is_uncertain(confidence, margin, thresholds: dict):
    """The rule of the "inconclusive" flag (scalars or arrays): a low top probability,
    or a small lead over the second class."""
    return (confidence < thresholds["min_confidence"]) | (margin < thresholds["min_margin"])


def confidence_and_margin(probs):
    """Top probability, and its lead over the second, along the last axis."""
    ranked = np.sort(np.asarray(probs), axis=-1)
    return ranked[..., -1], ranked[..., -1] - ranked[..., -2]


def summarise(model: str, classes, probs: np.ndarray, thresholds: dict, top_k: int,
              latency_ms: float, tta: bool) -> Prediction:
    order = np.argsort(probs)[::-1]
    top, second = probs[order[0]], probs[order[1]] if len(probs) > 1 else 0.0
    label = classes[order[0]]
    return Prediction(
        model=model, label=label, name=full_name(label), confidence=float(top),
        malignant=is_malignant(label),
        top_k=[{"code": classes[i], "name": full_name(classes[i]),
                "probability": float(probs[i])} for i in order[:top_k]],
        probabilities={c: float(p) for c, p in zip(classes, probs)},
        entropy=float(-np.sum(probs * np.log(np.clip(probs, 1e-12, 1)))),
        margin=float(top - second),
        uncertain=bool(is_uncertain(top, top - second, thresholds)),
        latency_ms=latency_ms, tta=tta,
    )


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of log(probs) / T along the last axis (temperature scaling)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def choose_uncertainty_thresholds(labels, probs, flag_fraction: float = 0.2) -> dict:
    """Thresholds on top probability and on margin, each flagging the least confident
    `flag_fraction` of validation predictions (together somewhat more: an image is
    flagged by either), with the share flagged and the accuracy of what is kept and flagged."""
    confidence, margin = confidence_and_margin(probs)
    thresholds = {"min_confidence": float(np.quantile(confidence, flag_fraction)),
                  "min_margin": float(np.quantile(margin, flag_fraction))}
    return {**thresholds, "chosen_on": "val", **flagging(labels, probs, thresholds)}


def flagging(labels, probs, thresholds: dict) -> dict:
    """The share of predictions the thresholds flag, and the accuracy of the kept and the
    flagged ones."""
    confidence, margin = confidence_and_margin(probs)
    flagged = is_uncertain(confidence, margin, thresholds)
    correct = np.asarray(probs).argmax(axis=1) == np.asarray(labels)
    return {"flagged_fraction": float(flagged.mean()),
            "accuracy_kept": float(correct[~flagged].mean()) if (~flagged).any() else None,
            "accuracy_flagged": float(correct[flagged].mean()) if flagged.any() else None}


def tta_views(batch):
    """The image, its mirror, and both rotated by 90, 180 and 270 degrees (8 views)."""
    views = []
    for image in (batch, tf.image.flip_left_right(batch)):
        views.extend(tf.image.rot90(image, k) for k in range(4))
    return tf.concat(views, axis=0)


class Predictor:
    """One model ready to predict: call `predict(rgb_array)`.

    Cropping, resizing and the backbone's preprocessing run inside the same compiled
    graph as the model, so a prediction costs one graph call (see BENCHMARKS.md).
    """

    def __init__(self, card: dict, model):
        self.card, self.model = card, model
        self.name, self.classes = card["name"], list(card["classes"])
        self.size, self.backbone = card["input_size"], card["backbone"]
        self.temperature = float(card.get("temperature", 1.0))
        self.thresholds = {**DEFAULT_UNCERTAINTY, **card.get("uncertainty", {})}
        image = tf.TensorSpec([None, None, 3], tf.uint8)
        batch = tf.TensorSpec([None, self.size, self.size, 3], tf.uint8)
        self._single = tf.function(lambda x: self._forward(self.prepare(x)), input_signature=[image])
        self._tta = tf.function(lambda x: self._forward(tta_views(self.prepare(x))),
                                input_signature=[image])
        self._batch = tf.function(self._forward, input_signature=[batch])
        self._gradcam = None  # built on first use

    def warm_up(self, tta: bool = True) -> "Predictor":
        """Trace the single-image graph, and the TTA graph unless tta=False, now (a second
        or more per model), so that the first latency a user sees is a prediction's, not
        TensorFlow's tracing."""
        blank = np.zeros((self.size, self.size, 3), np.uint8)
        self._single(blank)
        if tta:
            self._tta(blank)
        return self

    def _forward(self, pixels):
        return self.model(model_input(pixels, self.backbone), training=False)

    def prepare(self, image) -> tf.Tensor:
        """RGB uint8 HxWx3 -> the 1 x size x size x 3 model input (uint8 pixels)."""
        return center_crop_resize(image, self.size)[None]

    def probabilities(self, image: np.ndarray, tta: bool = False) -> np.ndarray:
        """Calibrated class probabilities (mean over the views with TTA)."""
        probs = (self._tta if tta else self._single)(image).numpy()
        return calibrate(probs, self.temperature).mean(axis=0)

    def batch_probabilities(self, images, batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities (n, n_classes) of many RGB images, in batches."""
        rows = []
        for start in range(0, len(images), batch_size):
            pixels = tf.concat([self.prepare(image) for image in images[start:start + batch_size]], 0)
            rows.append(self._batch(pixels).numpy())
        return calibrate(np.concatenate(rows), self.temperature)

    def gradcam(self, image: np.ndarray, class_code: str | None = None):
        """(heatmap over the last conv grid, the model's input image as uint8) for the
        given class, or the predicted one."""
        if self._gradcam is None:
            self._gradcam = GradCam(self.model, self.backbone)
        pixels = self.prepare(image)
        index = (self.classes.index(class_code) if class_code
                 else int(np.argmax(self._batch(pixels).numpy()[0])))
        return self._gradcam.heatmap(model_input(pixels, self.backbone), index), pixels[0].numpy()

    def predict(self, image: np.ndarray, top_k: int = 3, tta: bool = False) -> Prediction:
        started = time.perf_counter()
        probs = self.probabilities(image, tta)
        latency = (time.perf_counter() - started) * 1000
        return summarise(self.name, self.classes, probs, self.thresholds, top_k, latency, tta)


def ensemble_thresholds(members: list[dict]) -> dict:
    """The ensemble's uncertainty thresholds: the mean of its members' (the ensemble has
    no validation run of its own; benchmarks/validation_tta.py measures what they flag)."""
    return {k: float(np.mean([m[k] for m in members])) for k in DEFAULT_UNCERTAINTY}


def ensemble(predictors, image: np.ndarray, top_k: int = 3, tta: bool = False) -> Prediction:
    """Mean of the members' calibrated probabilities; they must share one class list."""
    classes = predictors[0].classes
    if any(p.classes != classes for p in predictors):
        raise ValueError("an ensemble needs models with the same classes in the same order")
    started = time.perf_counter()
    probs = np.mean([p.probabilities(image, tta) for p in predictors], axis=0)
    latency = (time.perf_counter() - started) * 1000
    thresholds = ensemble_thresholds([p.thresholds for p in predictors])
    name = "ensemble(" + "+".join(p.name for p in predictors) + ")"
    return summarise(name, classes, probs, thresholds, top_k, latency, tta)
