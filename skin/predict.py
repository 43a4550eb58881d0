"""Prediction: preprocessing, one compiled forward pass, temperature, test-time
augmentation, top-k with full class names, latency, entropy, margin, an honest
"uncertain" flag, the referral decision and the input guard (skin.decision); and the
ensemble of several models.
"""

import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from skin.backbones import with_features
from skin.cards import colour_constancy
from skin.classes import MALIGNANT, full_name
from skin.decision import (
    decide, is_flagged, malignant_probability, standardised, usable_referral,
)
from skin.gradcam import GradCam, normalised
from skin.preprocessing import center_crop_resize, model_input
from skin.registry import ensemble_record_for, load_guard, load_model

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
    top_k: list  # [{"code", "name", "probability"}], most probable first
    probabilities: dict  # code -> calibrated probability
    entropy: float  # nats; 0 = certain, log(n_classes) = uniform
    margin: float  # top-1 minus top-2 probability
    uncertain: bool
    malignant_probability: float  # the sum over the referral rule's malignant classes
    refer_threshold: float | None  # None: the model has no referral rule
    decision: str | None  # refer, inconclusive, low risk; None without a rule
    ood_score: float | None  # the input guard's score: higher is less like the training
    # images (None: no guard for this model)
    not_dermoscopy: bool  # the input guard fired
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


def summarise(model: str, classes, probs: np.ndarray, ood_score: float | None, rules: dict,
              top_k: int, latency_ms: float, tta: bool) -> Prediction:
    """The Prediction of calibrated probabilities under a model's (or the ensemble's)
    rules: `uncertainty` thresholds, and optional `referral` and `guard` blocks."""
    order = np.argsort(probs)[::-1]
    top, second = probs[order[0]], probs[order[1]] if len(probs) > 1 else 0.0
    label = classes[order[0]]
    uncertain = bool(is_uncertain(top, top - second, rules["uncertainty"]))
    referral = rules.get("referral")
    risk = float(malignant_probability(
        probs, classes, referral["malignant_classes"] if referral else MALIGNANT))
    threshold = referral["threshold"] if referral else None
    return Prediction(
        model=model, label=label, name=full_name(label), confidence=float(top),
        top_k=[{"code": classes[i], "name": full_name(classes[i]),
                "probability": float(probs[i])} for i in order[:top_k]],
        probabilities={c: float(p) for c, p in zip(classes, probs)},
        entropy=float(-np.sum(probs * np.log(np.clip(probs, 1e-12, 1)))),
        margin=float(top - second), uncertain=uncertain,
        malignant_probability=risk, refer_threshold=threshold,
        decision=decide(risk, threshold, uncertain),
        ood_score=None if ood_score is None else float(ood_score),
        not_dermoscopy=bool(is_flagged(ood_score, rules.get("guard"))),
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


class Explained(NamedTuple):
    """A prediction with its Grad-CAM map (in [0, 1], over the explained layer's grid) and
    the model's input image (size x size x 3 uint8) the map lies over."""
    prediction: Prediction
    heatmap: np.ndarray
    pixels: np.ndarray


class Predictor:
    """One model ready to predict: call `predict(rgb_array)`.

    Cropping, resizing and the backbone's preprocessing run inside the same compiled
    graph as the model, so a prediction costs one graph call (see BENCHMARKS.md).
    """

    def __init__(self, card: dict, model):
        self.card, self.model = card, model
        self.name, self.classes = card["name"], list(card["classes"])
        self.size, self.backbone = card["input_size"], card["backbone"]
        self.colour_constancy = colour_constancy(card)
        self.temperature = float(card.get("temperature", 1.0))
        self.thresholds = {**DEFAULT_UNCERTAINTY, **card.get("uncertainty", {})}
        self.rules = {"uncertainty": self.thresholds,
                      "referral": usable_referral(card.get("referral"), self.classes),
                      "guard": card.get("guard")}
        self.guard = load_guard(card)
        self._network = with_features(model)
        image = tf.TensorSpec([None, None, 3], tf.uint8)
        batch = tf.TensorSpec([None, self.size, self.size, 3], tf.uint8)
        self._single = tf.function(lambda x: self._forward(self.prepare(x)), input_signature=[image])
        self._tta = tf.function(lambda x: self._forward(tta_views(self.prepare(x))),
                                input_signature=[image])
        self._batch = tf.function(self._forward, input_signature=[batch])
        self._explain = tf.function(self._explained, input_signature=[
            image, tf.TensorSpec([], tf.int32)])
        self._gradcam = None  # built on first use

    @classmethod
    def from_card(cls, card: dict) -> "Predictor":
        """The card's model, rebuilt by skin.registry.load_model (weights fetched and
        verified by their sha256), ready to predict."""
        return cls(card, load_model(card))

    def warm_up(self, single: bool = True, tta: bool = True, explain: bool = False) -> "Predictor":
        """Trace the chosen graphs now (a second or more each per model), so that the
        first latency a user sees is a prediction's, not TensorFlow's tracing: the
        single-image prediction, its TTA version, and the prediction with its Grad-CAM
        (`explain`, which is all the app's Compare page runs)."""
        blank = np.zeros((self.size, self.size, 3), np.uint8)
        if single:
            self._single(blank)
        if tta:
            self._tta(blank)
        if explain:
            self.explain(blank)
        return self

    def _forward(self, pixels):
        """(probabilities, pooled features) of a batch of uint8 pixels."""
        return self._network(self.model_input(pixels), training=False)

    def model_input(self, pixels):
        """uint8 pixels -> the float tensor the network takes (the card's preprocessing)."""
        return model_input(pixels, self.backbone, self.colour_constancy)

    def prepare(self, image) -> tf.Tensor:
        """RGB uint8 HxWx3 -> the 1 x size x size x 3 model input (uint8 pixels)."""
        return center_crop_resize(image, self.size)[None]

    def guard_scores(self, features) -> np.ndarray | None:
        return None if self.guard is None else self.guard.score(features)

    def scores(self, image: np.ndarray, tta: bool = False) -> tuple[np.ndarray, float | None]:
        """Calibrated class probabilities and the input guard's score (each the mean
        over the views with TTA; the score is None without a guard)."""
        probs, features = (self._tta if tta else self._single)(image)
        guard_scores = self.guard_scores(features.numpy())
        return (calibrate(probs.numpy(), self.temperature).mean(axis=0),
                None if guard_scores is None else float(guard_scores.mean()))

    def probabilities(self, image: np.ndarray, tta: bool = False) -> np.ndarray:
        """Calibrated class probabilities (mean over the views with TTA)."""
        return self.scores(image, tta)[0]

    def batch_outputs(self, images, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (n, n_classes) and pooled features (n, d) of many
        RGB images, in batches."""
        probs, features = [], []
        for start in range(0, len(images), batch_size):
            pixels = tf.concat([self.prepare(image) for image in images[start:start + batch_size]], 0)
            batch_probs, batch_features = self._batch(pixels)
            probs.append(batch_probs.numpy())
            features.append(batch_features.numpy())
        return calibrate(np.concatenate(probs), self.temperature), np.concatenate(features)

    def batch_scores(self, images, batch_size: int = 64):
        """(calibrated probabilities (n, n_classes), input-guard scores (n,) or None
        without a guard) of many RGB images."""
        probs, features = self.batch_outputs(images, batch_size)
        return probs, self.guard_scores(features)

    def batch_probabilities(self, images, batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities (n, n_classes) of many RGB images, in batches."""
        return self.batch_scores(images, batch_size)[0]

    @property
    def _cam(self) -> GradCam:
        if self._gradcam is None:  # built on first use, outside any graph being traced
            self._gradcam = GradCam(self.model, self.backbone)
        return self._gradcam

    @property
    def gradcam_layer(self) -> str:
        """The layer Grad-CAM explains (skin.gradcam.gradcam_layer)."""
        return self._cam.layer

    def _explained(self, image, class_index):
        pixels = self.prepare(image)
        probs, features, cam = self._cam.explain(self.model_input(pixels), class_index)
        return probs, features, cam, pixels[0]

    def explain(self, image: np.ndarray, class_code: str | None = None,
                top_k: int = 3) -> Explained:
        """The prediction and the Grad-CAM map of one image in one graph call: the map is
        the given class's, or the most probable one's."""
        self._cam  # noqa: B018  (builds the map's Keras network now, not inside the trace)
        started = time.perf_counter()
        index = self.classes.index(class_code) if class_code else -1
        probs, features, cam, pixels = self._explain(image, tf.constant(index, tf.int32))
        guard_scores = self.guard_scores(features.numpy())
        latency = (time.perf_counter() - started) * 1000
        prediction = summarise(
            self.name, self.classes, calibrate(probs.numpy(), self.temperature)[0],
            None if guard_scores is None else float(guard_scores[0]), self.rules, top_k,
            latency, False)
        return Explained(prediction, normalised(cam.numpy()), pixels.numpy())

    def gradcam(self, image: np.ndarray, class_code: str | None = None):
        """(heatmap over the Grad-CAM layer's grid, the model's input image as uint8) for
        the given class, or the predicted one."""
        explained = self.explain(image, class_code)
        return explained.heatmap, explained.pixels

    def predict(self, image: np.ndarray, top_k: int = 3, tta: bool = False) -> Prediction:
        started = time.perf_counter()
        probs, score = self.scores(image, tta)
        latency = (time.perf_counter() - started) * 1000
        return summarise(self.name, self.classes, probs, score, self.rules, top_k, latency, tta)


def ensemble_probabilities(member_probs) -> np.ndarray:
    """The ensemble's probabilities: the mean of its members' calibrated probabilities
    (for one image or many; the members share one class list)."""
    return np.mean(member_probs, axis=0)


def ensemble_thresholds(members: list[dict]) -> dict:
    """The ensemble's uncertainty thresholds: the mean of its members' (the ensemble has
    no validation run of its own; benchmarks/validation_tta.py measures what they flag)."""
    return {k: float(np.mean([m[k] for m in members])) for k in DEFAULT_UNCERTAINTY}


def ensemble_guard_score(scores, guards):
    """The mean of the members' standardised guard scores; None if one has no guard."""
    if any(s is None for s in scores) or any(g is None for g in guards):
        return None
    return np.mean([standardised(s, g) for s, g in zip(scores, guards)], axis=0)


class Ensemble:
    """Several Predictors with one class list, used like one: the mean of their calibrated
    probabilities and guard scores. `record` (the registry's ensemble record) gives the
    referral rule and guard chosen on validation for exactly these members; without it,
    or for other members, the ensemble makes no referral decision."""

    def __init__(self, members: list[Predictor], record: dict | None = None):
        self.members, self.classes = list(members), list(members[0].classes)
        if any(m.classes != self.classes for m in self.members):
            raise ValueError("an ensemble needs models with the same classes in the same order")
        names = [m.name for m in self.members]
        self.name = "ensemble(" + "+".join(names) + ")"
        record = ensemble_record_for(record, names) or {}
        self.thresholds = ensemble_thresholds([m.thresholds for m in self.members])
        self.rules = {"uncertainty": self.thresholds,
                      "referral": usable_referral(record.get("referral"), self.classes),
                      "guard": record.get("guard")}

    def predict(self, image: np.ndarray, top_k: int = 3, tta: bool = False, *,
                member_predictions=None) -> Prediction:
        """The ensemble's Prediction of one image. `member_predictions`, the members' own
        Predictions of this image (with the same tta), are combined instead of running the
        members again."""
        if member_predictions is None:
            started = time.perf_counter()
            outputs = [m.scores(image, tta) for m in self.members]
            latency = (time.perf_counter() - started) * 1000
        else:
            if [p.model for p in member_predictions] != [m.name for m in self.members] or \
                    any(p.tta != tta for p in member_predictions):
                raise ValueError("member_predictions must be the members' own, in their order")
            outputs = [(np.array([p.probabilities[c] for c in self.classes]), p.ood_score)
                       for p in member_predictions]
            latency = sum(p.latency_ms for p in member_predictions)
        probs = ensemble_probabilities([probs for probs, _ in outputs])
        score = ensemble_guard_score([score for _, score in outputs],
                                     [m.card.get("guard") for m in self.members])
        return summarise(self.name, self.classes, probs, score, self.rules, top_k, latency, tta)

    def batch_probabilities(self, images, batch_size: int = 64) -> np.ndarray:
        """The ensemble's probabilities (n, n_classes) of many RGB images."""
        return ensemble_probabilities([m.batch_probabilities(images, batch_size)
                                       for m in self.members])
