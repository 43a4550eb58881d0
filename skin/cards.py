"""Model cards: the JSON that joins a trained model to everything that serves it.

A card names its backbone, classes, input size, preprocessing, weight source (with its
sha256), temperature, how it was trained and how it scored. Models are rebuilt from
the card by code in this project and only their weights are read from the file, so no
code from a file is ever executed.
"""

import json
import re
from pathlib import Path
from typing import TypedDict

CARD_FORMAT = 1
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RESERVED_NAMES = {"all", "ensemble"}
COLOUR_CONSTANCY = ("none", "shades_of_gray")  # skin.preprocessing applies them


class TrainingRecord(TypedDict, total=False):
    """card["training"]: how `python -m train` made the model."""
    config: dict  # the run's resolved arguments
    seed: int
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    seconds: float
    data_layout: str
    data_fingerprint: str
    split_file: str
    split_fingerprint: str  # sha256 of split.csv: one split, one fingerprint
    split_seed: int  # the seed that re-makes the split (another run's, for a run that
                     # reused its split file with --split); absent: none does, or a card
                     # older than the field, read as `seed`
    split_counts: dict
    history: list  # one dict per epoch


class Card(TypedDict, total=False):
    """A model card (CARD_FORMAT) as train/export.py writes it. Read it through the
    functions below rather than nested .get() calls."""
    format: int
    name: str  # required, like backbone, classes, input_size and source
    backbone: str  # a key of skin.backbones.BACKBONES
    classes: list  # class codes in the model's output order
    class_names: dict
    input_size: int
    init: str  # scratch, imagenet, "transfer from NAME" or "weights file NAME"
    init_weights: dict  # ImageNet initialisation only: label, file, sha256, licence, batchnorm
    preprocessing: dict  # resize, mode, colour_constancy
    parameters: int
    source: dict  # file | url | gdrive, sha256, bytes, dtype
    temperature: float
    uncertainty: dict
    referral: dict | None  # the rule chosen on validation, with its test figures
    guard: dict | None
    evaluation: dict  # the test split's figures (skin.metrics.evaluate)
    validation: dict
    versions: dict
    training: TrainingRecord


class CardError(Exception):
    """A model card that cannot be read or does not describe a usable model."""


def read_card(path) -> Card:
    path = Path(path)
    if path.is_dir():
        cards = sorted(path.glob("*.json"))
        if len(cards) != 1:
            raise CardError(f"{path} holds {len(cards)} model cards (*.json); name one")
        path = cards[0]
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e  # without the path again
        raise CardError(f"cannot read the model card {path}: {reason}") from None
    missing = [k for k in ("name", "backbone", "classes", "input_size", "source") if k not in card]
    if missing:
        raise CardError(f"{path} is not a model card: it lacks {', '.join(missing)}")
    _check_names(card, path)
    if colour_constancy(card) not in COLOUR_CONSTANCY:
        raise CardError(f"{path}: unknown colour constancy {colour_constancy(card)!r} "
                        f"(this version knows {', '.join(COLOUR_CONSTANCY)}); update the app")
    card["_path"] = str(path)
    return card


def training(card: Card) -> TrainingRecord:
    """How the model was trained; empty for a card without its training record."""
    return card.get("training") or {}


def training_config(card: Card) -> dict:
    """The training run's resolved arguments; empty without a training record."""
    return training(card).get("config") or {}


def split_identity(card: Card) -> tuple:
    """(seed, split fingerprint, held-out source or None): what re-makes the split the
    model was trained, validated and tested on (skin.split.remade_split_rows, which
    refuses a seed that does not make the fingerprinted split)."""
    record = training(card)
    if "split_fingerprint" not in record:
        raise CardError(f"{card.get('_path', card['name'])} records no split fingerprint: "
                        "its split cannot be re-made")
    return (record.get("split_seed", record["seed"]), record["split_fingerprint"],
            training_config(card).get("test_source"))


def test_evaluation(card: Card) -> dict:
    """The test split's figures; empty for a card that was not evaluated."""
    return card.get("evaluation") or {}


def referral_on_test(referral: dict | None) -> dict:
    """A referral rule's sensitivity and specificity on the test split (with their
    intervals); empty without a rule or its test figures."""
    return (referral or {}).get("test") or {}


def class_balance(card: Card) -> str | None:
    """How training balanced the classes: "weights" (class-weighted loss), "sampling"
    (class-balanced batches), "sampling_by_source" (and source-balanced within a class) or
    "none"; None for a card without its training record."""
    return training_config(card).get("balance")


def init_label(card: Card) -> str:
    """How the model's weights started, as every table and page says it: "from scratch",
    "ImageNet (MobileNetV2, 8-bit, Google, Apache-2.0)", "transfer from NAME", ..."""
    init = card.get("init", "unknown")
    if init == "scratch":
        return "from scratch"
    if init == "imagenet":
        return (card.get("init_weights") or {}).get("label", "ImageNet")
    return init


def colour_constancy(card: Card) -> str:
    """The colour constancy the model was trained with: "none" or "shades_of_gray"."""
    return card.get("preprocessing", {}).get("colour_constancy", "none")


def _check_names(card: dict, path: Path) -> None:
    """A card may only name a file beside itself: no folders, no '..', no absolute path."""
    if not isinstance(card["name"], str) or not SAFE_NAME.match(card["name"]):
        raise CardError(f"{path}: the model name {card['name']!r} may hold only letters, "
                        "digits, '.', '_' and '-'")
    if card["name"] in RESERVED_NAMES:
        raise CardError(f"{path}: {card['name']!r} names a choice of models in `python -m "
                        "skin` (--model all|ensemble); give the model another name")
    source = card["source"]
    if not isinstance(source, dict):
        raise CardError(f"{path}: 'source' must be an object (file, url or gdrive, + sha256)")
    file = source.get("file")
    if file is not None and (not isinstance(file, str) or not SAFE_NAME.match(file)):
        raise CardError(f"{path}: the weights file {file!r} must be a plain file name in "
                        "the card's own folder")


def build_model(card: dict):
    """The card's architecture with random weights; a card naming an unknown backbone or
    a size it cannot take is a CardError."""
    from skin.backbones import BackboneError, build_classifier  # imports TensorFlow

    try:
        return build_classifier(card["backbone"], len(card["classes"]), card["input_size"],
                                dropout=training_config(card).get("dropout", 0.3))
    except BackboneError as e:
        raise CardError(f"{card.get('_path', card['name'])}: {e}") from None
