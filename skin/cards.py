"""Model cards: the JSON that joins a trained model to everything that serves it.

A card names its backbone, classes, input size, preprocessing, weight source (with its
sha256), temperature, how it was trained and how it scored. Models are rebuilt from
the card by code in this project and only their weights are read from the file, so no
code from a file is ever executed.
"""

import json
from pathlib import Path

from skin.backbones import build_classifier

CARD_FORMAT = 1


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
        raise CardError(f"cannot read the model card {path}: {e}") from None
    missing = [k for k in ("name", "backbone", "classes", "input_size", "source") if k not in card]
    if missing:
        raise CardError(f"{path} is not a model card: it lacks {', '.join(missing)}")
    card["_path"] = str(path)
    return card


def local_weights_path(card: dict) -> Path:
    """The weights file of a card whose source is a file beside it."""
    file = card["source"].get("file")
    if not file:
        raise CardError(f"model {card['name']}: its weights are not a local file")
    return Path(card["_path"]).parent / file


def build_model(card: dict, input_size: int | None = None):
    """The card's architecture with random weights (input size overridable)."""
    return build_classifier(
        card["backbone"], len(card["classes"]), input_size or card["input_size"],
        dropout=card.get("training", {}).get("config", {}).get("dropout", 0.3),
    )
