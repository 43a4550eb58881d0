"""Dataset readers and validation.

Three layouts become one table with the columns image_id, path, label and group
(images of one lesion share a group, so a split never separates them):

- HAM10000: a folder with metadata.csv (image_id, lesion_id, dx, and dataset: the
  source, kept as the column source) and the images anywhere below it (images/, or
  Kaggle's HAM10000_images_part_1/ and _2/);
- a CSV file with the columns path and label, optionally group, image_id and source
  (paths relative to the CSV file);
- a folder with one sub-folder of images per class.

`load_dataset` validates the whole table before anything is trained or written, and
raises one DatasetError that lists every kind of problem with counts and examples.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from skin.classes import HAM10000_CLASSES
from skin.images import IMAGE_SUFFIXES

# Where the project's scripts and tests look for HAM10000 unless told: beside the
# checkout, as ../shared/data/ham10000 (it is never copied into the repository).
HAM10000_BESIDE_CHECKOUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000"

MIN_GROUPS_PER_CLASS = 3  # one for each of train, validation and test
SHOWN_OFFENDERS = 5


class DatasetError(Exception):
    """A dataset that cannot be trained on; the message says what to fix."""


@dataclass
class Dataset:
    table: pd.DataFrame  # image_id, path, label, group[, source]
    classes: tuple[str, ...]
    layout: str

    def fingerprint(self) -> str:
        """sha256 of what defines the data: ids, labels, groups and file sizes."""
        digest = hashlib.sha256()
        for row in self.table.sort_values("image_id").itertuples():
            size = os.path.getsize(row.path)
            digest.update(f"{row.image_id},{row.label},{row.group},{size}\n".encode())
        return digest.hexdigest()


# Readers ---------------------------------------------------------------------------

def read_ham10000(folder: Path) -> pd.DataFrame:
    meta = _read_csv(folder / "metadata.csv", required=("image_id", "lesion_id", "dx"))
    found = _index_images(folder)
    table = pd.DataFrame({
        "image_id": meta["image_id"],
        "path": [found.get(i, str(folder / "images" / f"{i}.jpg")) for i in meta["image_id"]],
        "label": meta["dx"],
        "group": meta["lesion_id"].where(meta["lesion_id"] != "", meta["image_id"]),
    })
    if "dataset" in meta:  # the source: clinic and acquisition system
        table["source"] = meta["dataset"]
    return table


def read_csv_list(csv_file: Path) -> pd.DataFrame:
    listing = _read_csv(csv_file, required=("path", "label"))
    paths = [str((csv_file.parent / p).resolve()) if p else "" for p in listing["path"]]
    ids = listing["image_id"] if "image_id" in listing else listing["path"]
    groups = listing["group"] if "group" in listing else ids
    table = pd.DataFrame({
        "image_id": ids, "path": paths, "label": listing["label"],
        "group": groups.where(groups != "", ids),
    })
    if "source" in listing:
        table["source"] = listing["source"]
    return table


def read_class_folders(folder: Path) -> pd.DataFrame:
    rows = [
        (file.stem, str(file), class_dir.name, file.stem)
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir())
        for file in sorted(class_dir.rglob("*"))
        if file.suffix.lower() in IMAGE_SUFFIXES
    ]
    return pd.DataFrame(rows, columns=["image_id", "path", "label", "group"])


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DatasetError(
            f"{path} lacks the column(s) {', '.join(missing)}; it has: "
            f"{', '.join(table.columns) or 'none'}"
        )
    return table.apply(lambda column: column.str.strip())


def _index_images(folder: Path) -> dict[str, str]:
    return {
        Path(name).stem: os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if Path(name).suffix.lower() in IMAGE_SUFFIXES
    }


def detect_layout(location: Path) -> str:
    if location.is_file() and location.suffix.lower() == ".csv":
        return "csv"
    if location.is_dir() and (location / "metadata.csv").is_file():
        return "ham10000"
    if location.is_dir() and any(p.is_dir() for p in location.iterdir()):
        return "class_folders"
    raise DatasetError(
        f"{location} is not a dataset: expected a folder with metadata.csv (HAM10000), "
        "a .csv file with path and label columns, or a folder with one sub-folder per class"
    )


READERS = {"ham10000": read_ham10000, "csv": read_csv_list, "class_folders": read_class_folders}


# Validation ------------------------------------------------------------------------

def offenders(description: str, values) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:SHOWN_OFFENDERS])
    more = f", ... ({len(values) - SHOWN_OFFENDERS} more)" if len(values) > SHOWN_OFFENDERS else ""
    return f"{len(values)} {description}: {shown}{more}"


def unusable_images(paths) -> dict[str, list[str]]:
    """Problem -> the files that have it, judged by the training pipeline's decoder (the app's);
    Pillow only names the format of a file that decoder cannot read."""
    from train.pipeline import undecodable  # imports TensorFlow

    found = {}
    for path in undecodable(paths):
        try:
            with Image.open(path) as image:
                image.load()
                problem = f"in {image.format} format"
        except Exception:  # not an image, truncated, missing: unreadable in any decoder
            problem = "unreadable"
        found.setdefault(problem, []).append(path)
    return found


def find_problems(table: pd.DataFrame, allowed_labels) -> list[str]:
    """Every reason this table cannot be trained on, one line per kind."""
    problems = []
    duplicated = table["image_id"][table["image_id"].duplicated()].unique()
    if len(duplicated):
        problems.append(offenders("duplicate image ids", duplicated)
                        + " (an image's id is its file name without the extension, so "
                        "names must be unique across folders; a CSV list with an "
                        "image_id column can give ids of its own)")
    empty = table["image_id"][table["label"] == ""]
    if len(empty):
        problems.append(offenders("images without a label", empty))
    unknown = table[(table["label"] != "") & ~table["label"].isin(allowed_labels)]
    if len(unknown):
        counts = unknown["label"].value_counts()
        problems.append(offenders(
            f"images with unknown labels (expected one of {', '.join(allowed_labels)})",
            [f"{i} ({label})" for i, label in zip(unknown["image_id"], unknown["label"])],
        ) + f" [by label: {', '.join(f'{k}={v}' for k, v in counts.items())}]")
    exists = table["path"].map(lambda p: bool(p) and os.path.isfile(p))
    if (~exists).any():
        problems.append(offenders("missing image files", table["path"][~exists]))
    # A full decode of every file with the pipeline's decoder (HAM10000: a few seconds).
    for problem, paths in unusable_images(table["path"][exists].tolist()).items():
        if problem == "unreadable":
            problems.append(offenders("unreadable image files", paths))
        else:
            problems.append(offenders(f"image files {problem}, which tf.data cannot decode "
                                      "(convert them to JPEG or PNG)", paths))
    groups_per_class = table[table["label"].isin(allowed_labels)].groupby("label")["group"].nunique()
    small = groups_per_class[groups_per_class < MIN_GROUPS_PER_CLASS]
    if len(small):
        problems.append(offenders(
            f"classes too small to split (each needs at least {MIN_GROUPS_PER_CLASS} "
            "distinct lesions/groups)",
            [f"{label} ({n})" for label, n in small.items()],
        ))
    if table["label"].isin(allowed_labels).sum() and groups_per_class.size < 2:
        problems.append("only one class: a classifier needs at least two")
    return problems


def load_dataset(location, classes=None, drop_unknown: bool = False) -> Dataset:
    """Read and validate a dataset; `classes` fixes the class set and its order."""
    location = Path(location)
    if not location.exists():
        raise DatasetError(f"{location} does not exist")
    layout = detect_layout(location)
    table = READERS[layout](location)
    if table.empty:
        raise DatasetError(f"{location} ({layout} layout) lists no images")
    present = set(table["label"]) - {""}
    if classes:
        allowed = tuple(classes)
    elif layout == "ham10000":  # HAM10000's own codes only: anything else is a typo
        allowed = tuple(c for c in HAM10000_CLASSES if c in present)
    else:
        allowed = tuple(sorted(present))
    if drop_unknown:
        table = table[table["label"].isin(allowed)].reset_index(drop=True)
    problems = find_problems(table, allowed)
    if problems:
        raise DatasetError(
            f"the dataset at {location} ({layout} layout, {len(table)} images) cannot be "
            "used:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    absent = [c for c in allowed if c not in set(table["label"])]
    if absent:
        raise DatasetError(f"classes with no images in {location}: {', '.join(absent)}")
    return Dataset(table=table, classes=allowed, layout=layout)
