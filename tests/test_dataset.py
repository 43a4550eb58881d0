"""Dataset readers and every validation rule, on tiny datasets the tests make."""

import pytest

from skin.dataset import DatasetError, load_dataset


def test_ham_layout_reads_ids_labels_and_lesion_groups(ham_layout):
    dataset = load_dataset(ham_layout)
    assert dataset.layout == "ham10000"
    assert dataset.classes == ("akiec", "bcc", "nv")  # HAM10000 order, present classes
    assert len(dataset.table) == 36
    first = dataset.table.iloc[0]
    assert first["group"] == "HAM_akiec_0" and first["path"].endswith("ISIC_0000000.jpg")


def test_ham_layout_finds_images_in_kaggle_part_folders(ham_layout):
    (ham_layout / "images").rename(ham_layout / "HAM10000_images_part_1")
    assert len(load_dataset(ham_layout).table) == 36


def test_csv_listing_paths_are_relative_to_the_csv(csv_listing):
    dataset = load_dataset(csv_listing)
    assert dataset.layout == "csv" and dataset.classes == ("akiec", "bcc", "nv")
    assert dataset.table["group"].nunique() == 12


def test_class_folders_label_by_folder(class_folders):
    dataset = load_dataset(class_folders)
    assert dataset.layout == "class_folders"
    assert sorted(dataset.table["label"].unique()) == ["akiec", "bcc", "nv"]


def test_classes_option_fixes_order(class_folders):
    assert load_dataset(class_folders, classes=["nv", "bcc", "akiec"]).classes == ("nv", "bcc", "akiec")


def test_fingerprint_changes_with_a_label(csv_listing):
    before = load_dataset(csv_listing).fingerprint()
    text = csv_listing.read_text().replace("img/nv_0.png,nv", "img/nv_0.png,bcc")
    csv_listing.write_text(text)
    assert load_dataset(csv_listing).fingerprint() != before


# One test per validation rule -----------------------------------------------------------

def expect_problem(location, *fragments, **kwargs):
    with pytest.raises(DatasetError) as caught:
        load_dataset(location, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_files_are_listed_with_a_count(ham_layout):
    for i in range(7):
        (ham_layout / "images" / f"ISIC_{i:07d}.jpg").unlink()
    message = expect_problem(ham_layout, "7 missing image files", "ISIC_0000000.jpg", "(2 more)")
    assert message.count("ISIC_") == 5  # the first five offenders, then a count


def test_unreadable_files_text_and_truncated(ham_layout):
    (ham_layout / "images" / "ISIC_0000000.jpg").write_text("not an image")
    truncated = ham_layout / "images" / "ISIC_0000001.jpg"
    truncated.write_bytes(truncated.read_bytes()[:200])
    expect_problem(ham_layout, "2 unreadable image files", "ISIC_0000000.jpg", "ISIC_0000001.jpg")


def test_formats_the_pipeline_cannot_decode(class_folders):
    """Training decodes what the app decodes (skin.images): TIFF and WebP, not ICO."""
    from PIL import Image
    Image.open(class_folders / "nv" / "nv_0.png").save(class_folders / "nv" / "nv_9.tiff")
    Image.open(class_folders / "nv" / "nv_1.png").save(class_folders / "nv" / "nv_8.webp")
    Image.open(class_folders / "nv" / "nv_2.png").resize((64, 64)).save(
        class_folders / "nv" / "nv_7.png", format="ICO")  # an icon named .png
    message = expect_problem(class_folders, "1 image files in ICO format", "nv_7.png",
                             "convert them to JPEG or PNG")
    assert "tiff" not in message and "webp" not in message


def test_unknown_labels_in_ham_metadata(ham_layout):
    meta = ham_layout / "metadata.csv"
    meta.write_text(meta.read_text().replace(",nv,", ",naevus,", 3))
    expect_problem(ham_layout, "3 images with unknown labels", "naevus=3")


def test_unknown_labels_against_classes_option(class_folders):
    expect_problem(class_folders, "8 images with unknown labels", "(nv)", classes=["akiec", "bcc"])
    assert load_dataset(class_folders, classes=["akiec", "bcc"], drop_unknown=True).classes == ("akiec", "bcc")


def test_empty_labels(csv_listing):
    csv_listing.write_text(csv_listing.read_text().replace("img/nv_0.png,nv,", "img/nv_0.png,,"))
    expect_problem(csv_listing, "1 images without a label")


def test_duplicate_ids(ham_layout):
    meta = ham_layout / "metadata.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines + lines[1:3]) + "\n")
    expect_problem(ham_layout, "2 duplicate image ids", "ISIC_0000000")


def test_duplicate_ids_across_class_folders(class_folders):
    (class_folders / "nv" / "bcc_0.png").write_bytes((class_folders / "bcc" / "bcc_0.png").read_bytes())
    expect_problem(class_folders, "duplicate image ids", "bcc_0", "unique across folders")


def test_classes_too_small_to_split(csv_listing):
    lines = csv_listing.read_text().splitlines()
    kept = [l for l in lines if ",nv," not in l or "nv-lesion-0" in l]  # nv: one lesion left
    csv_listing.write_text("\n".join(kept) + "\n")
    expect_problem(csv_listing, "classes too small to split", "nv (1)")


def test_a_single_class_is_refused(class_folders):
    expect_problem(class_folders, "only one class", classes=["nv"], drop_unknown=True)


def test_missing_columns(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("file,diagnosis\na.png,nv\n")
    expect_problem(listing, "lacks the column(s) path, label", "file, diagnosis")


def test_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    expect_problem(tmp_path, "is not a dataset")
    expect_problem(tmp_path / "absent", "does not exist")


def test_several_problems_reported_together(ham_layout):
    (ham_layout / "images" / "ISIC_0000000.jpg").unlink()
    (ham_layout / "images" / "ISIC_0000001.jpg").write_text("junk")
    expect_problem(ham_layout, "missing image files", "unreadable image files")
