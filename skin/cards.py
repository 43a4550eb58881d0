"""Model cards: the JSON that joins a trained model to everything that serves it.

A card names its backbone, classes, input size, preprocessing, weight source (with its
sha256), temperature, how it was trained and how it scored. Models are rebuilt from
the card by code in this project and only their weights are read from the file, so no
code from a file is ever executed.
"""

import json
import re
from pathlib import Path

CARD_FORMAT = 1
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RESERVED_NAMES = {"all", "ensemble"}
COLOUR_CONSTANCY = ("none", "shades_of_gray")  # skin.preprocessing applies them


class CardError(Exception):
    """A model card that cannot be read or does not describe a usable model."""


def read_card(path) -> dict:
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


def class_balance(card: dict) -> str | None:
    """How training balanced the classes: "weights" (class-weighted loss), "sampling"
    (class-balanced batches) or "none"; None for a card without its training record."""
    return card.get("training", {}).get("config", {}).get("balance")


def colour_constancy(card: dict) -> str:
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


# Streamlit calls keras.backend.clear_session() after every script run, which restarts
# Keras's automatic layer names ("conv2d", "conv2d_1", ...) in every thread: a model being
# built for another session at that moment gets two layers of one name and Keras refuses
# it. Building it again, with the names restarted, is enough.
BUILD_ATTEMPTS = 3
NAME_CLASH = re.compile(r'The name "[^"]+" is used \d+ times in the model')


def build_model(card: dict):
    """The card's architecture with random weights; a card naming an unknown backbone or
    a size it cannot take is a CardError."""
    from skin.backbones import BackboneError, build_classifier  # imports TensorFlow

    for attempt in range(1, BUILD_ATTEMPTS + 1):
        try:
            return build_classifier(
                card["backbone"], len(card["classes"]), card["input_size"],
                dropout=card.get("training", {}).get("config", {}).get("dropout", 0.3),
            )
        except BackboneError as e:
            raise CardError(f"{card.get('_path', card['name'])}: {e}") from None
        except ValueError as e:
            if not NAME_CLASH.search(str(e)) or attempt == BUILD_ATTEMPTS:
                raise
