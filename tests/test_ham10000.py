"""Integration on the real HAM10000 images: the whole dataset's split, and one short
training run on a lesion-grouped subset. Skipped where ../shared/data/ham10000 is absent."""

import hashlib
import json

import pandas as pd
import pytest

from skin.dataset import load_dataset
from skin.split import make_split
from train.__main__ import main


@pytest.fixture(scope="module")
def metadata(ham10000):
    return pd.read_csv(ham10000 / "metadata.csv")


def test_whole_dataset_split_is_lesion_grouped_and_stratified(ham10000):
    dataset = load_dataset(ham10000)
    assert len(dataset.table) == 10015 and dataset.classes == (
        "akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    split = make_split(dataset.table, seed=0)
    sides = dataset.table.assign(split=split.to_numpy())
    assert (sides.groupby("group")["split"].nunique() == 1).all()
    shares = sides["split"].value_counts(normalize=True)
    assert 0.12 < shares["test"] < 0.18 and 0.12 < shares["val"] < 0.18
    by_class = pd.crosstab(sides["label"], sides["split"], normalize="columns")
    assert (abs(by_class["test"] - by_class["train"]) < 0.01).all()


def test_short_training_run_on_a_lesion_grouped_subset(ham10000, metadata, tmp_path):
    # Up to 45 lesions per class, with every image of each chosen lesion.
    lesions = (metadata.drop_duplicates("lesion_id").groupby("dx").head(45)["lesion_id"])
    subset = metadata[metadata["lesion_id"].isin(set(lesions))]
    listing = tmp_path / "subset.csv"
    pd.DataFrame({
        "path": [str(ham10000 / "images" / f"{i}.jpg") for i in subset["image_id"]],
        "image_id": subset["image_id"], "label": subset["dx"], "group": subset["lesion_id"],
    }).to_csv(listing, index=False)
    out = tmp_path / "run"
    assert main(["--data", str(listing), "--backbone", "mobilenetv2", "--img-size", "48",
                 "--epochs", "3", "--bn-momentum", "0.9", "--init", "none",
                 "--out", str(out), "--bootstrap", "200", "--quiet"]) == 0

    split = pd.read_csv(out / "split.csv").merge(metadata, on="image_id")
    assert len(split) == len(subset)
    assert (split.groupby("lesion_id")["split"].nunique() == 1).all(), "a lesion on two sides"

    card = json.loads((out / "mobilenetv2-48.json").read_text())
    ev = card["evaluation"]
    test_rows = split[split["split"] == "test"]
    assert ev["n"] == len(test_rows)
    assert {c: v["support"] for c, v in ev["per_class"].items()} == \
        test_rows["dx"].value_counts().reindex(card["classes"], fill_value=0).to_dict()
    assert [sum(row) for row in ev["confusion_matrix"]] == \
        [ev["per_class"][c]["support"] for c in card["classes"]]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top3_accuracy",
                "auc_ovr", "ece"):
        low, high = ev["intervals_95"][key]
        assert low <= ev[key] <= high, key
    assert card["training"]["split_fingerprint"] == \
        hashlib.sha256((out / "split.csv").read_bytes()).hexdigest()
    assert len(card["training"]["history"]) == 3


def test_holding_out_rosendahl_puts_that_clinic_in_test_alone(ham10000, metadata):
    dataset = load_dataset(ham10000)
    sides = dataset.table.assign(
        split=make_split(dataset.table, seed=0, test_source="rosendahl").to_numpy())
    assert (sides.groupby("group")["split"].nunique() == 1).all()
    test = sides[sides["split"] == "test"]
    # Every rosendahl image, and nothing else but other images of its lesions (9 lesions
    # of HAM10000 were photographed at two sources).
    assert (sides["split"][sides["source"] == "rosendahl"] == "test").all()
    assert (test["source"] == "rosendahl").sum() == 2259 and len(test) < 2259 + 20
    assert set(sides["source"][sides["split"] == "train"]) == {
        "vidir_modern", "vidir_molemax", "vienna_dias"}
