"""Every page of the Streamlit app, driven by streamlit.testing.v1.AppTest with tiny
models trained by `python -m train` (and the shipped ones, when there are any)."""

import io
import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TIMEOUT = 120


def jpeg(colour=(200, 40, 40), size=(200, 150)) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def app_env(tiny_models, monkeypatch, tmp_path):
    monkeypatch.setenv("SKIN_MODEL_DIRS", str(tiny_models))
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "sample-1.jpg").write_bytes(jpeg((40, 40, 200)))
    monkeypatch.setenv("SKIN_SAMPLE_DIR", str(samples))
    return tiny_models


def page(name: str, secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.secrets.update(secrets or {})
    at.run()
    if name != "classify":
        at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "subheader", "warning", "error", "success",
                                  "info", "caption", "title", "header")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_classify_an_upload_with_each_model_and_the_ensemble(app_env):
    at = page("classify")
    at.file_uploader[0].set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    assert not at.exception
    shown = texts(at)
    assert "not a medical device" in shown
    assert "Ranked first by the model" in at.subheader[0].value
    assert at.get("plotly_chart") and len(at.image) == 2  # the photo and its Grad-CAM
    assert at.get("download_button")
    picker = at.selectbox(key="classify-model")
    assert picker.options[-1].startswith("Ensemble")
    for option in picker.options:
        at.selectbox(key="classify-model").select(option).run()
        assert not at.exception, option
    assert "ensemble(" in texts(at)


def models_with(tiny_models, folder, **fields):
    """A copy of the tiny models whose cards have `fields` changed (or the referral
    threshold, for `threshold`)."""
    for f in tiny_models.iterdir():
        text = f.read_bytes()
        if f.suffix == ".json":
            card = json.loads(text)
            if "threshold" in fields:
                card["referral"] = {**card["referral"], "threshold": fields["threshold"]}
            if "guard_threshold" in fields:
                card["guard"] = {**card["guard"], "threshold": fields["guard_threshold"]}
            card.update({k: v for k, v in fields.items()
                         if k not in ("threshold", "guard_threshold")})
            text = json.dumps(card).encode()
        (folder / f.name).write_bytes(text)
    return folder


def test_an_inconclusive_result_shows_no_benign_all_clear(tiny_models, monkeypatch, tmp_path):
    unsure = {"min_confidence": 1.1, "min_margin": 1.1}  # flags every prediction
    models_with(tiny_models, tmp_path, uncertainty=unsure, threshold=1.01)  # never refers
    monkeypatch.setenv("SKIN_MODEL_DIRS", str(tmp_path))
    at = page("classify")
    tiny = [o for o in at.selectbox(key="classify-model").options if o.startswith("tiny")]
    at.selectbox(key="classify-model").select(tiny[0]).run()
    for colour in ((200, 40, 40), (40, 40, 200), (40, 200, 40)):
        at.file_uploader[0].set_value(("lesion.jpg", jpeg(colour), "image/jpeg")).run()
        assert not at.exception
        assert any("Inconclusive" in w.value for w in at.warning)
        assert not at.success, at.success[0].value


def test_a_referred_image_never_shows_a_benign_or_green_verdict(tiny_models, monkeypatch,
                                                                tmp_path):
    models_with(tiny_models, tmp_path, threshold=0.0)  # every image is referred
    monkeypatch.setenv("SKIN_MODEL_DIRS", str(tmp_path))
    at = page("classify")
    tiny = [o for o in at.selectbox(key="classify-model").options if o.startswith("tiny")]
    for option in tiny:
        at.selectbox(key="classify-model").select(option).run()
        for colour in ((200, 40, 40), (40, 40, 200)):  # akiec-like and naevus-like
            at.file_uploader[0].set_value(("lesion.jpg", jpeg(colour), "image/jpeg")).run()
            assert not at.exception
            assert not at.success, at.success[0].value
            assert at.error and at.error[0].value.startswith("**Refer.**")
            assert "benign" not in at.error[0].value + "".join(w.value for w in at.warning)
    from skin import registry
    monkeypatch.setattr(registry, "SHIPPED_MODELS", tmp_path / "none")  # the tiny ones alone
    at = page("compare")
    at.file_uploader[0].set_value(("lesion.jpg", jpeg((40, 40, 200)), "image/jpeg")).run()
    assert not at.exception
    assert [e.value.split(" (")[0] for e in at.error] == ["Refer", "Refer"]  # both models
    assert not at.success
    # Their ensemble has no record of a threshold chosen for it: no decision, and it says so.
    assert any(w.value.startswith("**No referral decision.**") for w in at.warning)


def test_an_image_the_guard_flags_gets_no_green_low_risk(tiny_models, monkeypatch, tmp_path):
    sure = {"min_confidence": 0.0, "min_margin": 0.0}
    models_with(tiny_models, tmp_path, uncertainty=sure, threshold=1.01,  # low risk ...
                guard_threshold=-1e9)  # ... on an image the guard flags
    monkeypatch.setenv("SKIN_MODEL_DIRS", str(tmp_path))
    at = page("classify")
    tiny = [o for o in at.selectbox(key="classify-model").options if o.startswith("tiny")]
    at.selectbox(key="classify-model").select(tiny[0]).run()
    at.file_uploader[0].set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    assert not at.exception and not at.success, [s.value for s in at.success]
    assert any(w.value.startswith("**Not a dermoscopic image?**") for w in at.warning)
    assert any(i.value.startswith("**Low risk.**") for i in at.info)


def test_the_decision_leads_the_classify_page(app_env):
    at = page("classify")
    tiny = [o for o in at.selectbox(key="classify-model").options if o.startswith("tiny")]
    at.selectbox(key="classify-model").select(tiny[0]).run()
    at.file_uploader[0].set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    boxes = [*at.error, *at.warning, *at.success, *at.info]
    assert any(b.value.split(".**")[0] in ("**Refer", "**Inconclusive", "**Low risk")
               for b in boxes)
    assert "refers at" in texts(at) and "Ranked first by the model" in at.subheader[0].value


def test_classify_with_tta_and_opacity(app_env):
    at = page("classify")
    at.file_uploader[0].set_value(("lesion.png", jpeg(), "image/jpeg")).run()
    at.toggle[0].set_value(True).run()
    at.slider[-1].set_value(0.9).run()  # the heatmap opacity
    assert not at.exception and len(at.image) == 2


def test_classify_the_camera_input(app_env):
    at = page("classify")
    at.camera_input[0].set_value(("shot.jpg", jpeg((40, 200, 40)), "image/jpeg")).run()
    assert not at.exception
    assert "not a medical device" in texts(at) and len(at.image) == 2


def test_classify_a_sample(app_env):
    at = page("classify")
    at.selectbox(key="classify-sample").select("sample-1.jpg").run()
    assert not at.exception and len(at.image) == 2


@pytest.mark.parametrize("name, data", [
    ("notes.jpg", b"this is text, not a photo"),
    ("empty.png", b""),
    ("cut.jpg", jpeg()[:400]),
    ("huge.jpg", b"\xff\xd8\xff\xe0" + b"\0" * (21 * 2**20)),
])
def test_a_bad_upload_shows_an_error_and_the_page_goes_on(app_env, name, data):
    at = page("classify")
    at.file_uploader[0].set_value((name, data, "image/jpeg")).run()
    assert not at.exception
    assert at.error and "cannot be used" in at.error[0].value
    at.file_uploader[0].set_value(("ok.jpg", jpeg(), "image/jpeg")).run()
    assert not at.exception and not at.error


def test_compare_shows_every_model_and_the_metrics_table(app_env):
    at = page("compare")
    assert at.get("arrow_data_frame") or at.dataframe
    at.file_uploader[0].set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    assert not at.exception
    shown = texts(at)
    assert "tiny-mobilenetv2" in shown and "tiny-efficientnetb0" in shown
    assert "models rank" in shown and "Ensemble" in shown
    assert "not a medical device" in shown
    assert not at.status  # each model's "Loading" box goes once the model is ready
    # Every shipped model gets a map; InceptionV3's last map is 1x1 at 96 px, so its
    # Grad-CAM explains mixed7 (4x4) instead.
    from skin.registry import SHIPPED_MODELS, Registry
    for name in Registry.discover([SHIPPED_MODELS]).cards:  # (the tiny 32 px ones are 1x1)
        assert f"No Grad-CAM for {name}" not in shown
    captions = [img.caption for i in at.image for img in i.proto.imgs]
    assert any("4x4 grid (mixed7)" in c for c in captions), captions


def test_evaluation_page_switches_normalisation(app_env):
    at = page("evaluation")
    charts_before = len(at.get("plotly_chart"))
    assert charts_before >= 4  # two confusion matrices, reliability, curves
    at.radio(key="confusion-normalise").set_value("row-normalised (recall)").run()
    assert not at.exception and len(at.get("plotly_chart")) == charts_before


COMPARATOR_HEADERS = ["Which model for which class", "Paired differences in balanced accuracy",
                      "Cost against quality", "Agreement", "ROC and precision-recall",
                      "Downloads"]


def comparator_shown(at, n: int) -> None:
    headers = [h.value for h in at.header]
    assert all(h in headers for h in COMPARATOR_HEADERS), headers
    assert f"n = {n} images, the same for every model" in texts(at)
    assert len(at.get("download_button")) == 5


def test_evaluation_compares_the_shipped_models_on_the_test_split(app_env):
    at = page("evaluation")
    comparator_shown(at, 1431)
    shown = texts(at)
    assert "retraining one model with another seed" in shown
    assert "referral rule" in shown  # the operating points on the malignant-vs-benign ROC
    for cost in at.radio(key="cost-shipped").options:
        at.radio(key="cost-shipped").set_value(cost).run()
        assert not at.exception, cost
    at.selectbox(key="curve-class-shipped").select("mel").run()
    assert not at.exception
    at.multiselect(key="curve-models-shipped").set_value(["ensemble"]).run()
    assert not at.exception


def labelled_zip(ham10000, extra=()) -> bytes:
    """Three real HAM10000 images of each class with their metadata rows, plus extras
    (name, bytes, label or None)."""
    metadata = pd.read_csv(ham10000 / "metadata.csv")
    chosen = metadata.groupby("dx").head(3)
    rows = chosen[["image_id", "dx"]].values.tolist()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for image_id, _ in rows:
            archive.write(ham10000 / "images" / f"{image_id}.jpg", f"images/{image_id}.jpg")
        for name, data, label in extra:
            archive.writestr(f"images/{name}", data)
            if label:
                rows.append([name.rsplit(".", 1)[0], label])
        archive.writestr("labels.csv", pd.DataFrame(rows, columns=["image_id", "dx"])
                         .to_csv(index=False))
    return buffer.getvalue()


def test_evaluation_compares_the_models_on_an_uploaded_zip(app_env, ham10000):
    at = page("evaluation")
    at.radio(key="evaluation-source").set_value("Your own labelled images (zip)").run()
    data = labelled_zip(ham10000, extra=[("broken.jpg", b"\xff\xd8 not a jpeg", "mel"),
                                         ("odd.jpg", jpeg(), "xyz"),
                                         ("notes.txt", b"hello", None)])
    at.file_uploader(key="labelled-zip").set_value(("mine.zip", data, "application/zip")).run()
    assert not at.exception, at.exception
    comparator_shown(at, 21)
    warnings = "\n".join(w.value for w in at.warning)
    assert "xyz (1 image)" in warnings and "Skipped 2 file(s)" in warnings
    skipped = at.dataframe[0].value
    assert set(skipped["file or image"]) == {"broken", "images/notes.txt"}
    assert "mine.zip (your images)" in texts(at)
    # Widgets rerun the page; the images are not scored again.
    at.radio(key="cost-own").set_value(at.radio(key="cost-own").options[1]).run()
    assert not at.exception and len(at.get("download_button")) == 5


@pytest.mark.parametrize("data, message", [
    (b"not a zip", "not a zip file"),
    (None, "holds 0 CSV files"),
])
def test_a_bad_zip_gets_a_clear_message(app_env, data, message):
    if data is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("a.jpg", jpeg())
        data = buffer.getvalue()
    at = page("evaluation")
    at.radio(key="evaluation-source").set_value("Your own labelled images (zip)").run()
    at.file_uploader(key="labelled-zip").set_value(("bad.zip", data, "application/zip")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_about_page_lists_the_models(app_env):
    at = page("about")
    assert "not a medical device" in at.warning[0].value
    assert at.dataframe and "Train your own model" in texts(at)


def test_about_page_names_the_teachers_of_a_distilled_model(app_env, monkeypatch, tmp_path):
    card = json.loads((app_env / "tiny-mobilenetv2.json").read_text())
    card["name"] = "tiny-student"
    card["training"]["config"]["teachers"] = [{"name": "tiny-efficientnetb0", "sha256": "0" * 64},
                                              {"name": "tiny-mobilenetv2", "sha256": "1" * 64}]
    student = tmp_path / "student"
    student.mkdir()
    (student / "tiny-student.json").write_text(json.dumps(card))
    weights = card["source"]["file"]
    (student / weights).write_bytes((app_env / weights).read_bytes())
    monkeypatch.setenv("SKIN_MODEL_DIRS", os.pathsep.join([str(app_env), str(student)]))
    table = page("about").dataframe[0].value
    assert table.loc["tiny-student", "distilled from"] == "tiny-efficientnetb0, tiny-mobilenetv2"
    assert table.loc["tiny-mobilenetv2", "distilled from"] == ""


@pytest.mark.parametrize("name", ["classify", "compare", "evaluation", "about"])
def test_every_page_says_what_to_do_without_models(name, monkeypatch, tmp_path):
    from skin import registry
    monkeypatch.setenv("SKIN_MODEL_DIRS", "")
    monkeypatch.setattr(registry, "SHIPPED_MODELS", tmp_path)  # an installation without models
    at = page(name)
    assert "No model is" in texts(at)


def test_the_best_figure_is_marked_on_every_model_that_has_it():
    from ui.metrics_table import METRICS, best_per_column
    table = pd.DataFrame({m: [0.6, 0.6, 0.5] for m in METRICS}, index=["a", "b", "c"])
    table["ece"] = [0.05, 0.02, None]
    best = best_per_column(table)
    assert best["accuracy"] == {"a", "b"} and best["ece"] == {"b"}


def test_the_metrics_table_says_how_each_model_balanced_its_classes(tiny_models):
    from ui.metrics_table import metrics_table
    from skin.registry import Registry
    table = metrics_table(Registry.discover([tiny_models]).cards)
    assert set(table["class balance"]) == {"weights"}  # python -m train's default


def test_a_source_moved_by_st_secrets_keeps_what_still_holds():
    from skin.registry import moved_source
    shipped = {"file": "w.h5", "sha256": "a" * 64, "bytes": 5, "dtype": "float16"}
    assert moved_source(shipped, {"gdrive": "ID"}) == {
        "gdrive": "ID", "sha256": "a" * 64, "bytes": 5, "dtype": "float16"}
    assert moved_source(shipped, {"url": "https://x/w.h5", "sha256": "b" * 64}) == {
        "url": "https://x/w.h5", "sha256": "b" * 64, "dtype": "float16"}


def test_a_first_visit_says_what_the_models_are_before_any_image(app_env):
    at = page("classify")
    shown = texts(at)
    assert "New here?" in shown and "not a medical device" in shown
    assert "Samples" in shown and "held-out test images" in shown
    default = at.selectbox(key="classify-model").value
    assert f"Default: {default}, the best of these on the validation split" in shown
    at.file_uploader[0].set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    assert not at.exception and "New here?" not in texts(at)
