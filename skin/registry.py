"""The models this installation knows: the cards in assets/models plus any folders named
in SKIN_MODEL_DIRS (separated by the OS path separator). Models load lazily, one at a
time; a model whose card or weights are broken is reported and the others still work.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from skin.cards import CardError, build_model, read_card
from skin.fetch import FetchError, fetch, local_path

SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


class ModelLoadError(Exception):
    """Weights that were fetched but do not fit the model their card describes."""


# What load_model raises for one broken model (its card, its download, its weights).
LOAD_ERRORS = (CardError, FetchError, ModelLoadError)


def model_dirs() -> list[Path]:
    extra = os.environ.get("SKIN_MODEL_DIRS", "")
    return [SHIPPED_MODELS] + [Path(p) for p in extra.split(os.pathsep) if p]


@dataclass
class Registry:
    cards: dict = field(default_factory=dict)  # name -> card, sorted by name
    problems: list = field(default_factory=list)  # cards that could not be read

    @classmethod
    def discover(cls, dirs=None) -> "Registry":
        registry = cls()
        found = {}
        for folder in dirs if dirs is not None else model_dirs():
            for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else ():
                try:
                    card = read_card(path)
                except CardError as e:
                    registry.problems.append(f"a model card was skipped: {e}")
                    continue
                if card["name"] in found:
                    registry.problems.append(
                        f"{path}: a model named {card['name']} is already registered from "
                        f"{found[card['name']]['_path']}; this card is ignored")
                    continue
                found[card["name"]] = card
        registry.cards = dict(sorted(found.items()))
        return registry

    def ensemble_members(self) -> list[str]:
        """The models an ensemble may average: the largest set sharing one class list
        (on a tie, the set of the first model by name)."""
        groups = {}
        for name, card in self.cards.items():
            groups.setdefault(tuple(card["classes"]), []).append(name)
        return max(groups.values(), key=len, default=[])

    def get(self, name: str) -> dict:
        try:
            return self.cards[name]
        except KeyError:
            known = ", ".join(self.cards) or "none"
            raise CardError(f"no model named {name!r}; registered: {known}") from None


def weights_present(card: dict) -> bool:
    path = local_path(card)
    return bool(path and path.is_file())


def load_model(card: dict):
    """The card's architecture (built by this project's code) with its verified weights.

    Only weights are read from the file (an HDF5 archive of arrays), never code. Weights
    stored as float16 load into the float32 model.
    """
    path = fetch(card)
    model = build_model(card)
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as e:
        raise ModelLoadError(f"model {card['name']}: the weights in {path.name} do not fit "
                             f"a {card['backbone']} with {len(card['classes'])} classes "
                             f"({e})") from None
    return model

