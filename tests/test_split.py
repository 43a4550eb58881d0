"""The lesion-grouped, stratified, seeded split and its file."""

import pandas as pd
import pytest

from skin.dataset import DatasetError, load_dataset
from skin.split import (check_split, make_split, read_split, remade_split_rows,
                         split_fingerprint, write_split)
from tests.conftest import make_ham_layout


@pytest.fixture
def dataset(tmp_path):
    return load_dataset(make_ham_layout(tmp_path / "ham", lesions_per_class=14, images_per_lesion=3))


def test_no_lesion_on_two_sides_and_every_class_everywhere(dataset):
    split = make_split(dataset.table, seed=1)
    sides = dataset.table.assign(split=split.to_numpy())
    assert (sides.groupby("group")["split"].nunique() == 1).all()
    assert set(split) == {"train", "val", "test"}
    for name in ("train", "val", "test"):
        assert set(sides["label"][sides["split"] == name]) == set(dataset.classes)
    check_split(dataset.table, split, "test")


def test_seeded_and_reproducible(dataset):
    assert make_split(dataset.table, seed=3).equals(make_split(dataset.table, seed=3))
    assert not make_split(dataset.table, seed=3).equals(make_split(dataset.table, seed=4))


def test_file_round_trip(dataset, tmp_path):
    split = make_split(dataset.table)
    write_split(split, tmp_path / "split.csv")
    assert list(pd.read_csv(tmp_path / "split.csv").columns) == ["image_id", "split"]
    assert read_split(tmp_path / "split.csv").loc[split.index].equals(split)


def test_a_split_that_separates_a_lesion_is_refused(dataset):
    split = make_split(dataset.table)
    lesion = dataset.table["group"].iloc[0]
    first_image = dataset.table["image_id"][dataset.table["group"] == lesion].iloc[0]
    split[first_image] = "test" if split[first_image] != "test" else "train"
    with pytest.raises(DatasetError, match="on more than one side"):
        check_split(dataset.table, split, "edited")


def test_a_split_of_another_dataset_is_refused(dataset):
    split = make_split(dataset.table).drop(dataset.table["image_id"].iloc[0])
    split["ISIC_9999999"] = "train"
    with pytest.raises(DatasetError, match="dataset lacks") as caught:
        check_split(dataset.table, split, "other")
    assert "the split lacks" in str(caught.value)


def test_a_cards_split_is_remade_from_its_seed_and_checked(dataset):
    split = make_split(dataset.table, seed=5)
    test = remade_split_rows(dataset.table, 5, split_fingerprint(split))
    assert list(test["image_id"]) == list(split.index[split == "test"])
    val = remade_split_rows(dataset.table, 5, split_fingerprint(split), "val")
    assert list(val["image_id"]) == list(split.index[split == "val"])
    with pytest.raises(DatasetError, match="not the one the model was trained on"):
        remade_split_rows(dataset.table, 6, split_fingerprint(split))
    with pytest.raises(DatasetError, match="not the one the model was trained on"):
        remade_split_rows(dataset.table.iloc[1:], 5, split_fingerprint(split))


def test_a_run_on_another_seeds_split_file_names_the_seed_that_remakes_it(dataset):
    from skin.cards import split_identity
    split = make_split(dataset.table, seed=0)
    record = {"seed": 1, "split_fingerprint": split_fingerprint(split), "config": {}}
    card = {"name": "seed-1-on-seed-0-split", "training": record}
    with pytest.raises(DatasetError, match="not the one the model was trained on"):
        remade_split_rows(dataset.table, *split_identity(card)[:2])
    record["split_seed"] = 0
    val = remade_split_rows(dataset.table, *split_identity(card)[:2], "val")
    assert list(val["image_id"]) == list(split.index[split == "val"])


def test_a_source_held_out_split_puts_one_source_and_its_lesions_in_test(dataset):
    table = dataset.table.copy()
    table["source"] = ["clinic-b" if i % 5 == 0 else "clinic-a" for i in range(len(table))]
    split = make_split(table, seed=0, test_source="clinic-b")
    sides = table.assign(split=split.to_numpy())
    assert (sides["split"][sides["source"] == "clinic-b"] == "test").all()
    # A lesion photographed at both clinics goes to test whole: no lesion on two sides.
    assert (sides.groupby("group")["split"].nunique() == 1).all()
    held_groups = set(sides["group"][sides["source"] == "clinic-b"])
    assert set(sides["group"][sides["split"] == "test"]) == held_groups
    assert {"train", "val"} <= set(split)
    remade = remade_split_rows(table, 0, split_fingerprint(split), test_source="clinic-b")
    assert set(remade["image_id"]) == set(sides["image_id"][sides["split"] == "test"])


@pytest.mark.parametrize("source, message", [("clinic-z", "no images come from"),
                                             ("clinic-a", "nothing is left to train on")])
def test_a_source_held_out_split_refuses_a_source_it_cannot_use(dataset, source, message):
    table = dataset.table.assign(source="clinic-a")
    with pytest.raises(DatasetError, match=message):
        make_split(table, test_source=source)
    with pytest.raises(DatasetError, match="needs each image's source"):
        make_split(dataset.table.drop(columns="source"), test_source=source)
