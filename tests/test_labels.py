"""A user's labelled zip: what is used, what is reported, and what is refused."""

import io
import zipfile

import pytest

from skin.labels import LabelsError, open_labelled_zip

CODES = ["akiec", "bcc", "nv"]


def zipped(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("labels", [
    "image_id,dx\na,akiec\nb,NV\n",  # HAM10000's metadata (codes in any case)
    "image,label\na,akiec\nb,nv\n",
    "image,AKIEC,BCC,NV\na,1.0,0.0,0.0\nb,0.0,0.0,1.0\n",  # ISIC 2018 ground truth
])
def test_the_three_label_layouts(labels):
    found = open_labelled_zip(zipped({"x/a.jpg": b"1", "x/b.png": b"2", "x/truth.csv": labels}),
                              CODES)
    assert found.labels.to_dict() == {"a": "akiec", "b": "nv"}
    assert found.read("b") == b"2" and not found.skipped and not found.unknown_labels


def test_what_cannot_be_used_is_reported_not_dropped_silently():
    found = open_labelled_zip(zipped({
        "a.jpg": b"1", "b.jpg": b"2", "c.jpg": b"3", "unlabelled.jpg": b"4", "notes.txt": b"",
        "__MACOSX/._a.jpg": b"", "labels.csv": "image_id,dx\na,akiec\nb,mel\nc,xyz\nmissing,nv\n",
    }), CODES)
    assert found.labels.to_dict() == {"a": "akiec"}
    assert found.unknown_labels == {"mel": 1, "xyz": 1}
    assert sorted(found.skipped) == [("missing", "listed in the CSV, but no image in the zip"),
                                     ("notes.txt", "not an image file name"),
                                     ("unlabelled.jpg", "no label in the CSV")]


@pytest.mark.parametrize("files, message", [
    ({"a.jpg": b"1"}, "holds 0 CSV files"),
    ({"a.jpg": b"1", "l.csv": "image,label\na,nv\n", "m.csv": "x"}, "holds 2 CSV files"),
    ({"a.jpg": b"1", "l.csv": "name,label\na,nv\n"}, "needs an image_id or image column"),
    ({"a.jpg": b"1", "l.csv": "image,label\nb,nv\n"}, "no image in the zip has both"),
    ({"a.jpg": b"1", "l.csv": "image,label\na,mel\n"}, "the models know akiec, bcc, nv"),
    ({"a.jpg": b"1", "l.csv": "image,label\na,nv\na,bcc\n"}, "repeated: a"),
])
def test_unusable_zips_say_what_to_change(files, message):
    with pytest.raises(LabelsError, match=message):
        open_labelled_zip(zipped(files), CODES)


def test_not_a_zip_and_too_many_images_are_refused():
    with pytest.raises(LabelsError, match="not a zip file"):
        open_labelled_zip(b"PK but not really", CODES)
    files = {f"{i}.jpg": b"1" for i in range(5)}
    files["l.csv"] = "image,label\n" + "".join(f"{i},nv\n" for i in range(5))
    with pytest.raises(LabelsError, match="5 labelled images; at most 4"):
        open_labelled_zip(zipped(files), CODES, max_images=4)


def test_a_zip_that_unpacks_to_too_much_is_refused_before_reading(monkeypatch):
    monkeypatch.setattr("skin.labels.MAX_UNPACKED_BYTES", 1000)
    data = zipped({"a.jpg": b"\0" * 2000, "l.csv": "image,label\na,nv\n"})
    with pytest.raises(LabelsError, match="unpacks to more than"):
        open_labelled_zip(data, CODES)


def test_the_server_accepts_a_zip_as_large_as_the_page_says():
    import tomllib

    from skin.labels import MAX_ZIP_MB
    from tests.conftest import ROOT
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_ZIP_MB
