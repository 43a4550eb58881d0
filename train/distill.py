"""Knowledge distillation: train a model towards the probabilities of teacher models.

A teacher is a model card of this project trained on the same split. Its calibrated
probabilities on each (unaugmented) training image, averaged over the teachers (the
ensemble the app serves), are mixed with the one-hot label:

    target = (1 - weight) * one_hot(label) + weight * mean of the teachers' probabilities

Hinton et al. (2015), "Distilling the knowledge in a neural network": one network can
learn much of what an ensemble knows from its soft targets. The teachers are scored once,
by the serving code, before the first epoch, on the images as the training pipeline
decodes them.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from skin.cards import read_card, training
from skin.fetch import fetch
from skin.files import atomic_path
from skin.registry import LOAD_ERRORS


class TeacherError(Exception):
    """A teacher that cannot be used: unreadable, other classes, or another split."""


def read_teachers(paths, classes: list[str], split_fingerprint: str) -> list[dict]:
    """The teachers' cards, checked (and their weights fetched) before anything is
    written. A teacher trained on another split may have learned the student's validation
    or test images, and its targets would carry them into training, so only the student's
    own split is allowed."""
    cards = []
    for path in paths:
        try:
            card = read_card(path)
        except LOAD_ERRORS as e:
            raise TeacherError(f"teacher: {e}") from None  # e names the path
        if list(card["classes"]) != list(classes):
            raise TeacherError(f"teacher {card['name']} predicts {','.join(card['classes'])}, "
                               f"not this run's classes {','.join(classes)} in that order")
        if training(card).get("split_fingerprint") != split_fingerprint:
            raise TeacherError(f"teacher {card['name']} was not trained on this run's split "
                               "(its card's split_fingerprint differs): it may have seen the "
                               "validation or test images; pass the split it was trained on "
                               "with --split")
        try:
            fetch(card)
        except LOAD_ERRORS as e:
            raise TeacherError(f"teacher {card['name']}: {e}") from None
        cards.append(card)
    return cards


def teacher_record(cards: list[dict]) -> list[dict]:
    """What the training config records of the teachers: enough to tell them apart."""
    return [{"name": c["name"], "sha256": c["source"]["sha256"]} for c in cards]


def soft_targets(cards: list[dict], image_paths, labels, weight: float) -> np.ndarray:
    """(n, n_classes) float32 targets: the one-hot labels mixed with the teachers' mean
    calibrated probabilities on the images."""
    from skin.predict import Ensemble, Predictor  # imports TensorFlow
    from train.pipeline import decode  # the training pipeline's own pixels

    images = [decode(str(path)).numpy() for path in image_paths]
    teachers = []
    for card in cards:
        try:
            teachers.append(Predictor.from_card(card))
        except LOAD_ERRORS as e:
            raise TeacherError(f"teacher {card['name']}: {e}") from None
    one_hot = np.eye(len(cards[0]["classes"]), dtype=np.float32)[np.asarray(labels)]
    return ((1 - weight) * one_hot
            + weight * Ensemble(teachers).batch_probabilities(images)).astype(np.float32)


def cached_soft_targets(work_dir: Path, cards: list[dict], image_paths, labels,
                        weight: float) -> np.ndarray:
    """soft_targets, kept in the run's work folder under a key of everything they depend
    on, so that a resumed run does not score the training images with every teacher again
    (minutes for the big backbones)."""
    labels = [int(y) for y in labels]
    key = json.dumps([teacher_record(cards), weight, [str(p) for p in image_paths], labels])
    path = Path(work_dir) / f"targets-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path)
    targets = soft_targets(cards, image_paths, labels, weight)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, targets)
    return targets
