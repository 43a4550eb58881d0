"""Labelled images a user brings: a CSV of labels, and a zip of images with its CSV.

`python -m skin evaluate` reads a folder and a CSV; the app's Evaluation page reads a zip.
Both read labels here: a column of class codes (HAM10000's image_id,dx or image,label),
or, as in the ISIC 2018 ground truth, one 1/0 column per class.
"""

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pandas as pd

from skin.images import HEIF_SUFFIXES, IMAGE_SUFFIXES

MAX_ZIP_MB = 100
MAX_IMAGES = 1000
MAX_UNPACKED_BYTES = 2**30  # a zip that unpacks to more is refused before any is read


class LabelsError(ValueError):
    """Labels that cannot be used; the message says what to change."""


def read_labels(source, id_column: str, label_column: str, codes: list[str],
                name: str | None = None) -> pd.Series:
    """image id -> class code, from a CSV (a path or a file object). Codes match the
    models' in any case ("MEL" is "mel"); labels outside `codes` are kept as written."""
    name = name or str(source)
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise LabelsError(f"cannot read the labels {name}: {e}") from None
    if table.empty:
        raise LabelsError(f"the labels {name} list no images (a header and no rows)")
    table.columns = [c.strip() for c in table.columns]
    has = f"it has {', '.join(table.columns)}"
    if id_column not in table.columns:
        raise LabelsError(f"{name} has no column {id_column!r} (name the image id column "
                          f"with --id-column); {has}")
    ids = table[id_column].str.strip()
    blank, repeated = ids[ids == ""].index, sorted(set(ids[ids.duplicated()]))
    if len(blank) or repeated:
        raise LabelsError(f"{name}: every image needs one row with its id; "
                          + (f"rows {', '.join(str(i + 2) for i in blank[:5])} have none"
                             if len(blank) else f"repeated: {', '.join(repeated[:5])}"))
    if label_column in table.columns:
        named = table[label_column].str.strip()
    else:
        one_hot = table.drop(columns=id_column).apply(pd.to_numeric, errors="coerce")
        clear = one_hot.isin((0, 1)).all(axis=1) & (one_hot.sum(axis=1) == 1)
        if one_hot.shape[1] < 2 or not clear.all():
            raise LabelsError(
                f"{name} has no column {label_column!r} (name the label column with "
                f"--label-column), and its other columns are not one 1/0 column per "
                f"class (1 for the true class); {has}"
                + (f"; unclear rows: {', '.join(ids[~clear][:5])}" if one_hot.shape[1] > 1
                   else ""))
        named = pd.Series(one_hot.columns[one_hot.to_numpy().argmax(axis=1)])
    by_lower_case = {code.lower(): code for code in codes}
    return pd.Series([by_lower_case.get(n.lower(), n) for n in named], index=ids.to_numpy())


@dataclass
class LabelledZip:
    """The usable images of a zip (id -> member name, and their labels, in the CSV's
    order), and what was left out and why."""
    archive: zipfile.ZipFile
    files: dict
    labels: pd.Series
    unknown_labels: dict = field(default_factory=dict)  # label -> images, known to no model
    skipped: list = field(default_factory=list)  # (file or id, reason)

    def read(self, image_id: str) -> bytes:
        return self.archive.read(self.files[image_id])


def open_labelled_zip(data: bytes, codes: list[str], max_images: int = MAX_IMAGES) -> LabelledZip:
    """A zip holding images and one CSV of labels (image_id,dx; image,label; or one 1/0
    column per class), matched by file name without its extension. Images without a
    label, labels without an image and labels no model knows are reported, not used."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()
                   and not PurePosixPath(m.filename).name.startswith(".")
                   and "__MACOSX" not in m.filename]
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise LabelsError(f"this is not a zip file that can be read ({e})") from None
    if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
        raise LabelsError(f"the zip unpacks to more than {MAX_UNPACKED_BYTES // 2**30} GiB; "
                          "send fewer or smaller images")
    csvs = [m for m in members if m.filename.lower().endswith(".csv")]
    if len(csvs) != 1:
        raise LabelsError(f"the zip holds {len(csvs)} CSV files; put exactly one in it, with "
                          "a row per image (image_id,dx or image,label)")
    labels_file = csvs[0].filename
    try:
        text = io.StringIO(archive.read(labels_file).decode("utf-8-sig"))
    except (UnicodeDecodeError, zipfile.BadZipFile, OSError) as e:
        raise LabelsError(f"cannot read {labels_file}: {e}") from None
    header = text.readline()
    columns = {c.strip() for c in header.split(",")}
    text.seek(0)
    id_column = "image_id" if "image_id" in columns else "image"
    label_column = "dx" if "dx" in columns else "label"
    if id_column not in columns:
        raise LabelsError(f"{labels_file} needs an image_id or image column naming each image "
                          f"by its file name; it has {header.strip()}")
    labels = read_labels(text, id_column, label_column, codes, name=labels_file)

    suffixes = IMAGE_SUFFIXES + HEIF_SUFFIXES
    files, skipped = {}, []
    for member in members:
        path = PurePosixPath(member.filename)
        if member.filename == labels_file:
            continue
        if path.suffix.lower() not in suffixes:
            skipped.append((member.filename, "not an image file name"))
        elif path.stem in files:
            skipped.append((member.filename, f"a second file for image {path.stem}"))
        else:
            files[path.stem] = member.filename
    unlabelled = sorted(set(files) - set(labels.index))
    skipped += [(files.pop(i), "no label in the CSV") for i in unlabelled]
    skipped += [(i, "listed in the CSV, but no image in the zip")
                for i in labels.index if i not in files]
    labels = labels[labels.index.isin(list(files))]
    known = labels.isin(codes)
    unknown_labels = labels[~known].value_counts().to_dict()
    labels = labels[known]
    if len(labels) > max_images:
        raise LabelsError(f"the zip has {len(labels)} labelled images; at most {max_images} "
                          "are evaluated here (use `python -m skin evaluate` for more)")
    if labels.empty:
        raise LabelsError("no image in the zip has both a file and a label the models know"
                          + (f" (labels found: {', '.join(map(str, unknown_labels))}; the "
                             f"models know {', '.join(codes)})" if unknown_labels else ""))
    return LabelledZip(archive, {i: files[i] for i in labels.index}, labels,
                       unknown_labels, skipped)
