"""The models this installation knows: the cards in assets/models plus any folders named
in SKIN_MODEL_DIRS (separated by the OS path separator). Models load lazily, one at a
time; a model whose card or weights are broken is reported and the others still work.

A folder may also hold `ensemble.json`, the ensemble's record: its members, and the
referral rule and input guard chosen on validation for their mean (written by
`python -m train.decisions`). It applies only to exactly those members.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from skin.cards import CardError, build_model, read_card
from skin.decision import FeatureGuard
from skin.fetch import WEIGHT_LOCATIONS, FetchError, fetch, local_path
from skin.files import file_sha256

SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
ENSEMBLE_RECORD = "ensemble.json"
ENSEMBLE = "ensemble"  # best_on_validation's name for the ensemble


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
    ensemble_record: dict | None = None  # the first folder's ensemble.json, if any

    @classmethod
    def discover(cls, dirs=None, moved: dict | None = None) -> "Registry":
        """The cards in `dirs` (default: model_dirs()); `moved` puts a card's weights
        elsewhere: {name: {"gdrive" or "url": ..., "sha256": ...}}, the app's st.secrets
        [models] table."""
        registry = cls()
        found = {}
        for folder in dirs if dirs is not None else model_dirs():
            for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else ():
                if path.name == ENSEMBLE_RECORD:
                    registry._read_ensemble_record(path)
                    continue
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
        for name, override in (moved or {}).items():
            card = registry.cards.get(name)
            if card is None:
                registry.problems.append(
                    f"st.secrets [models.{name}] is ignored: no model is named {name} "
                    f"(registered: {', '.join(registry.cards) or 'none'})")
            elif "gdrive" in override or "url" in override:
                card["source"] = moved_source(card["source"], override)
        return registry

    def _read_ensemble_record(self, path: Path) -> None:
        if self.ensemble_record is not None:
            return
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record.get("members"), list):
                raise ValueError("it names no members")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
            self.problems.append(f"the ensemble record {path} was skipped: {e}")
            return
        self.ensemble_record = record

    def ensemble_members(self) -> list[str]:
        """The models the ensemble averages: those its record names, where all of them
        are registered and share one class list (the members chosen on validation);
        else every comparable model."""
        named = (self.ensemble_record or {}).get("members", [])
        if len(named) > 1 and all(n in self.cards for n in named) and self.share_classes(named):
            return sorted(named)
        return self.comparable_models()

    def share_classes(self, names) -> bool:
        """Whether these registered models have one class list (one ensemble, one table)."""
        return len({tuple(self.cards[n]["classes"]) for n in names}) == 1

    def comparable_models(self) -> list[str]:
        """The models one comparison can hold: the largest set sharing one class list (on
        a tie, the set of the first model by name)."""
        groups = {}
        for name, card in self.cards.items():
            groups.setdefault(tuple(card["classes"]), []).append(name)
        return max(groups.values(), key=len, default=[])

    def best_on_validation(self) -> str | None:
        """The model with the highest validation balanced accuracy, or ENSEMBLE where the
        ensemble's record scores higher still (the app's default); None without figures."""
        scores = {name: card["validation"]["balanced_accuracy"]
                  for name, card in self.cards.items()
                  if "balanced_accuracy" in (card.get("validation") or {})}
        record = ensemble_record_for(self.ensemble_record, self.ensemble_members())
        if record and "balanced_accuracy" in (record.get("validation") or {}):
            scores[ENSEMBLE] = record["validation"]["balanced_accuracy"]
        return max(scores, key=scores.get, default=None)

    def get(self, name: str) -> dict:
        try:
            return self.cards[name]
        except KeyError:
            known = ", ".join(self.cards) or "none"
            raise CardError(f"no model named {name!r}; registered: {known}") from None


def ensemble_record_for(record: dict | None, members) -> dict | None:
    """The ensemble record if it was chosen for exactly these members; None otherwise
    (an ensemble of other members has no rule of its own)."""
    if record is not None and sorted(record["members"]) == sorted(members):
        return record
    return None


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


def load_guard(card: dict) -> FeatureGuard | None:
    """The card's input-guard statistics, from the file its `guard` block names beside
    the card; None where the card has no guard, or its file is missing or altered (the
    model then predicts without the guard, and its predictions say so)."""
    guard = card.get("guard")
    if not guard or "_path" not in card:
        return None
    path = Path(card["_path"]).parent / guard["file"]
    try:
        if file_sha256(path) != guard["sha256"]:
            return None
        return FeatureGuard.load(path)
    except (OSError, KeyError, ValueError):
        return None


def moved_source(source: dict, override: dict) -> dict:
    """The card's source with its weights at the override's location (and sha256)."""
    sha256 = override.get("sha256", source.get("sha256"))
    moved = {k: v for k, v in source.items() if k not in WEIGHT_LOCATIONS}
    if sha256 != source.get("sha256"):
        moved.pop("bytes", None)  # other weights: their size is not known
    location = {k: override[k] for k in ("gdrive", "url") if k in override}
    return {**moved, **location, "sha256": sha256}
