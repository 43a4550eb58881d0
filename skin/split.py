"""Train/validation/test split: stratified by label, grouped by lesion, seeded, saved.

The split is a CSV file (image_id, split) that every backbone of one comparison reuses.
Its sha256 goes into each model card, so two cards can be checked to share a split.
"""

import hashlib

import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from skin.files import atomic_write_text
from skin.dataset import DatasetError, offenders

SPLITS = ("train", "val", "test")


def make_split(
    table: pd.DataFrame, val_fraction: float = 0.15, test_fraction: float = 0.15,
    seed: int = 0, *, test_source: str | None = None,
) -> pd.Series:
    """image_id -> "train" | "val" | "test"; no group (lesion) on two sides.

    StratifiedGroupKFold keeps class proportions as close as groups allow: one fold of
    round(1 / test_fraction) becomes the test set, then the same again for validation.
    With `test_source`, the test set is instead every image of that source (a clinic the
    model never sees: HAM10000's `dataset` column), and the rest is split as before.
    """
    def hold_out(part: pd.DataFrame, fraction: float):
        folds = StratifiedGroupKFold(n_splits=round(1 / fraction), shuffle=True,
                                     random_state=seed)
        keep, held = next(folds.split(part, part["label"], part["group"]))
        return part.iloc[keep], part.iloc[held]

    if test_source is None:
        rest, test = hold_out(table, test_fraction)
    else:
        rest, test = hold_out_source(table, test_source)
    train, val = hold_out(rest, val_fraction / (1 - test_fraction))
    assignment = pd.concat([
        pd.Series(name, index=part["image_id"]) for name, part in
        (("train", train), ("val", val), ("test", test))
    ])
    return assignment.loc[table["image_id"]].rename("split")


def hold_out_source(table: pd.DataFrame, source: str):
    """(the rest, the test part): every image of `source`, and every other image of a
    lesion photographed there too (a few HAM10000 lesions span two sources)."""
    if "source" not in table:
        raise DatasetError("a source-held-out split needs each image's source (HAM10000's "
                           "dataset column, or a source column in a CSV list)")
    sources = sorted(set(table["source"]) - {""})
    if source not in sources:
        raise DatasetError(f"no images come from the source {source!r}; the sources are: "
                           f"{', '.join(sources) or 'none'}")
    groups = set(table["group"][table["source"] == source])
    held = table["group"].isin(groups)
    if held.all():
        raise DatasetError(f"every image comes from {source}: nothing is left to train on")
    return table[~held], table[held]


def check_split(table: pd.DataFrame, assignment: pd.Series, source: str) -> None:
    """Raise DatasetError unless the split covers exactly this table's images, uses the
    known split names, keeps each group on one side and gives training every class."""
    listed, wanted = set(assignment.index), set(table["image_id"])
    problems = []
    if listed - wanted:
        problems.append(offenders("ids in the split that the dataset lacks", sorted(listed - wanted)))
    if wanted - listed:
        problems.append(offenders("dataset ids the split lacks", sorted(wanted - listed)))
    bad_names = assignment[~assignment.isin(SPLITS)]
    if len(bad_names):
        problems.append(offenders(f"rows whose split is not one of {', '.join(SPLITS)}",
                                [f"{i} ({s})" for i, s in bad_names.items()]))
    if not problems:
        sides = table.assign(split=assignment.loc[table["image_id"]].to_numpy())
        spanning = sides.groupby("group")["split"].nunique()
        if (spanning > 1).any():
            problems.append(offenders("groups (lesions) on more than one side",
                                    spanning[spanning > 1].index))
        missing = set(table["label"]) - set(sides["label"][sides["split"] == "train"])
        if missing:
            problems.append(f"the train split has no images of: {', '.join(sorted(missing))}")
    if problems:
        raise DatasetError(f"the split {source} does not fit this dataset:\n"
                           + "\n".join(f"  - {p}" for p in problems))


def read_split(path) -> pd.Series:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return frame.set_index("image_id")["split"]
    except (OSError, KeyError, pd.errors.ParserError) as e:
        raise DatasetError(f"cannot read the split file {path}: {e}; it needs the "
                           "columns image_id and split") from None


def split_csv(assignment: pd.Series) -> str:
    """The text of a split file; its sha256 is the fingerprint model cards record."""
    return assignment.rename_axis("image_id").reset_index().to_csv(index=False)


def split_fingerprint(assignment: pd.Series) -> str:
    return hashlib.sha256(split_csv(assignment).encode("utf-8")).hexdigest()


def write_split(assignment: pd.Series, path) -> None:
    atomic_write_text(path, split_csv(assignment))


def seed_that_remakes(table: pd.DataFrame, fingerprint: str, candidates, *,
                      test_source: str | None = None) -> int | None:
    """The first candidate seed whose split (default fractions) has this fingerprint, or
    None: what a card records as split_seed, so that its split can be re-made without the
    file."""
    for seed in dict.fromkeys(candidates):
        if split_fingerprint(make_split(table, seed=seed, test_source=test_source)) == fingerprint:
            return seed
    return None


def remade_split_rows(table: pd.DataFrame, seed: int, fingerprint: str,
                      side: str = "test", *, test_source: str | None = None) -> pd.DataFrame:
    """The rows of one side of a model card's split, re-made from its seed (and held-out
    source, if any) with the default fractions instead of read from the training run's
    folder; DatasetError unless the re-made split is the card's own."""
    if side not in SPLITS:
        raise ValueError(f"side must be one of {', '.join(SPLITS)}, not {side!r}")
    assignment = make_split(table, seed=seed, test_source=test_source)
    if split_fingerprint(assignment) != fingerprint:
        raise DatasetError(f"the split re-made from seed {seed} is not the one the model "
                           "was trained on (its fingerprint differs): the dataset or the "
                           "splitting code has changed, or the model's split had other "
                           "fractions or came from a file")
    return table[assignment.to_numpy() == side]
