"""Every model's probabilities on one set of labelled images: what the comparator shows.

Made by scoring images with the models (a user's zip in the app; the HAM10000 test split
by benchmarks/comparison.py, shipped in assets/comparison so the app needs no dataset),
written as a CSV (one row per image: id, label, then a column per model and class) with a
JSON beside it (what the images are, the cards scored, seconds per image).
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skin.files import atomic_write_text
from skin.images import InvalidImage, read_image
from skin.predict import ensemble_probabilities
from skin.registry import ENSEMBLE

SHIPPED_TEST_SCORES = Path(__file__).resolve().parents[1] / "assets" / "comparison" / "test-split.csv"
CHUNK = 32  # images in memory at once


class ScoresError(Exception):
    """Scores that cannot be read."""


@dataclass
class Scores:
    description: str  # what the images are, e.g. "HAM10000 test split (lesion-grouped)"
    classes: list
    image_ids: list
    labels: list  # class codes, one per image
    probs: dict  # model name -> (n, n_classes) calibrated probabilities
    seconds_per_image: dict = field(default_factory=dict)  # model name -> measured cost
    models: dict = field(default_factory=dict)  # model name -> what identifies its card
    ensemble_members: list = field(default_factory=list)  # averaged as ENSEMBLE, if there

    @property
    def y(self) -> np.ndarray:
        return np.array([self.classes.index(label) for label in self.labels])

    def table(self) -> pd.DataFrame:
        """One row per image: image_id, label, then "model:class" probabilities."""
        columns = {"image_id": self.image_ids, "label": self.labels}
        for name, probs in self.probs.items():
            columns.update({f"{name}:{c}": probs[:, k] for k, c in enumerate(self.classes)})
        return pd.DataFrame(columns)

    def write(self, csv_path) -> None:
        """The table as CSV (probabilities to 6 places) and its description as JSON."""
        csv_path = Path(csv_path)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(csv_path, self.table().to_csv(index=False, float_format="%.6f"))
        meta = {"description": self.description, "classes": self.classes,
                "models": self.models, "ensemble_members": self.ensemble_members,
                "seconds_per_image": self.seconds_per_image}
        atomic_write_text(csv_path.with_suffix(".json"), json.dumps(meta, indent=1))

    @classmethod
    def read(cls, csv_path) -> "Scores":
        """The scores written by `write`; a ScoresError if they cannot be read."""
        csv_path = Path(csv_path)
        try:
            meta = json.loads(csv_path.with_suffix(".json").read_text())
            table = pd.read_csv(csv_path, dtype={"image_id": str, "label": str})
            classes = meta["classes"]
            names = list(dict.fromkeys(c.rsplit(":", 1)[0] for c in table.columns[2:]))
            probs = {n: table[[f"{n}:{c}" for c in classes]].to_numpy() for n in names}
            return cls(meta["description"], classes, table["image_id"].tolist(),
                       table["label"].tolist(), probs, meta["seconds_per_image"],
                       meta["models"], meta["ensemble_members"])
        except (OSError, ValueError, KeyError, pd.errors.ParserError) as e:
            raise ScoresError(f"cannot read the scores {csv_path} ({type(e).__name__}: {e}); "
                              "write them again with this version") from None

    def stale_models(self, cards: dict) -> list[str]:
        """Models scored here whose card is gone or has other weights or temperature."""
        return [name for name, scored in self.models.items()
                if name not in cards or card_identity(cards[name]) != scored]


def card_identity(card: dict) -> dict:
    """What decides a model's probabilities: its weights and its temperature."""
    return {"weights_sha256": card["source"]["sha256"],
            "temperature": float(card.get("temperature", 1.0))}


@dataclass
class ModelOutputs:
    """What each model gives for the images that could be read, in their order."""
    kept: list  # positions, in the image ids given, of the images that were read
    probs: dict  # model name -> (n, n_classes) calibrated probabilities
    guard_scores: dict  # model name -> (n,) input-guard scores, or None without a guard
    seconds: dict  # model name -> seconds spent predicting
    skipped: list  # (image id, reason) of the images that could not be read

    def add_ensemble(self, members: list[str]) -> None:
        """The members' mean as the model ENSEMBLE, its cost the sum of theirs."""
        self.probs[ENSEMBLE] = ensemble_probabilities([self.probs[n] for n in members])
        self.seconds[ENSEMBLE] = sum(self.seconds[n] for n in members)


def score_in_chunks(predictors, image_ids, load, *, skip_unreadable: bool = True,
                    on_progress=None, chunk: int = CHUNK) -> ModelOutputs:
    """Every predictor's outputs on the images, read `chunk` at a time (a test set of
    full-resolution photos would not fit in memory at once). load(image_id) gives the
    image's bytes or path; an image that cannot be read is skipped, or with
    skip_unreadable=False raises InvalidImage naming it. on_progress(done, total) is
    called after each chunk."""
    probs = {p.name: [] for p in predictors}
    guards = {p.name: [] for p in predictors}
    seconds = {p.name: 0.0 for p in predictors}
    kept, skipped = [], []
    for start in range(0, len(image_ids), chunk):
        images = []
        for position in range(start, min(start + chunk, len(image_ids))):
            image_id = image_ids[position]
            try:
                images.append(read_image(load(image_id)))
            except InvalidImage as e:
                if not skip_unreadable:
                    raise InvalidImage(f"{load(image_id)}: {e}") from None
                skipped.append((image_id, str(e)))
                continue
            kept.append(position)
        for predictor in predictors:
            if images:
                started = time.perf_counter()
                chunk_probs, chunk_guard_scores = predictor.batch_scores(images)
                seconds[predictor.name] += time.perf_counter() - started
                probs[predictor.name].append(chunk_probs)
                guards[predictor.name].append(chunk_guard_scores)
        if on_progress:
            on_progress(min(start + chunk, len(image_ids)), len(image_ids))
    return ModelOutputs(
        kept,
        {p.name: np.concatenate(probs[p.name]) if probs[p.name]
         else np.empty((0, len(p.classes))) for p in predictors},
        {name: None if not parts or any(part is None for part in parts)
         else np.concatenate(parts) for name, parts in guards.items()},
        seconds, skipped)


def score_images(predictors, image_ids, labels, load, description: str,
                 ensemble_members=(), on_progress=None) -> tuple[Scores, list]:
    """Score labelled images with every predictor (and the ensemble of the named members
    when they are all there), a chunk at a time. load(image_id) gives the image's bytes
    or path; an image that cannot be read is skipped and returned as (id, reason).
    on_progress(done, total) is called after each chunk."""
    if any(p.classes != predictors[0].classes for p in predictors):
        raise ValueError("models compared on the same images need the same classes")
    outputs = score_in_chunks(predictors, image_ids, load, on_progress=on_progress)
    members = [p.name for p in predictors if p.name in ensemble_members]
    if len(members) > 1 and len(members) == len(ensemble_members):
        outputs.add_ensemble(members)
    else:
        members = []
    per_image = {name: s / max(len(outputs.kept), 1) for name, s in outputs.seconds.items()}
    models = {p.name: card_identity(p.card) for p in predictors}
    return Scores(description, list(predictors[0].classes),
                  [image_ids[i] for i in outputs.kept], [labels[i] for i in outputs.kept],
                  outputs.probs, per_image, models, members), outputs.skipped
