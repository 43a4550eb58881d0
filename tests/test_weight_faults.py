"""Weight faults seen from the running app (AppTest, Compare page): each fault is reported
for its model only while the other model keeps classifying, the download cache is left
clean, and the first attempt after the fault is fixed succeeds.

One tiny model keeps its weights beside its card (a file source); the other downloads
them from a server on 127.0.0.1 (a URL source), which the tests break in each way.
"""

import json
import shutil
import time

import pytest
import streamlit as st

from skin import fetch as fetch_module
from skin import registry
from tests.test_app import jpeg, page, texts
from tests.weights_server import url_of_a_closed_port, weights_server

LOCAL, REMOTE = "tiny-mobilenetv2", "tiny-efficientnetb0"


@pytest.fixture
def server(tiny_models):
    card = json.loads((tiny_models / f"{REMOTE}.json").read_text())
    with weights_server((tiny_models / card["source"]["file"]).read_bytes()) as server:
        yield server


@pytest.fixture
def models(tiny_models, server, tmp_path, monkeypatch):
    """A copy of the tiny models in which REMOTE's weights live on the server."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    card_path = folder / f"{REMOTE}.json"
    card = json.loads(card_path.read_text())
    (folder / card["source"]["file"]).unlink()
    card["source"] = {"url": server.url, "sha256": card["source"]["sha256"]}
    card_path.write_text(json.dumps(card))
    monkeypatch.setenv("SKIN_MODEL_DIRS", str(folder))
    monkeypatch.setattr(registry, "SHIPPED_MODELS", tmp_path / "none")  # these two only
    monkeypatch.setenv("SKIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SKIN_SAMPLE_DIR", str(tmp_path / "no-samples"))
    monkeypatch.setattr(fetch_module, "READ_TIMEOUT_S", 1)
    st.cache_resource.clear()  # no model loaded by an earlier test
    yield folder
    st.cache_resource.clear()


def compare_an_upload(secrets: dict | None = None):
    at = page("compare", secrets)
    at.file_uploader[0].set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    assert not at.exception, at.exception
    return at


def unavailable(at) -> list[str]:
    """The error boxes that say a model could not be loaded (a referral decision is a red
    box too)."""
    return [e.value for e in at.error if " is unavailable" in e.value]


def assert_only_unavailable(at, broken: str, working: str, reason: str):
    errors = unavailable(at)
    assert len(errors) == 1 and errors[0].startswith(f"Model {broken} is unavailable"), errors
    assert reason in errors[0], errors[0]
    shown = texts(at)
    assert f"**{working}**" in shown and f"**{broken}**" not in shown
    assert "Ranked first: 1 of 1 models rank" in shown


def assert_both_classify(at):
    assert not unavailable(at), unavailable(at)
    assert f"**{LOCAL}**" in texts(at) and f"**{REMOTE}**" in texts(at)


def cache_files(models) -> list[str]:
    cache = models.parent / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@pytest.mark.parametrize("fault, reason", [
    ("html", "HTML page instead of the weights"),
    ("truncated", "download failed"),
    ("wrong", "does not match the sha256"),
    ("slow", "did not answer within 1 s"),
])
def test_a_bad_download_affects_that_model_only(models, server, fault, reason):
    server.fault = fault
    at = compare_an_upload()
    assert_only_unavailable(at, REMOTE, LOCAL, reason)
    assert cache_files(models) == []  # nothing partial or unverified kept

    server.fault = None  # the source is fixed: the next run of the page succeeds
    at.run()
    assert_both_classify(at)
    assert len(cache_files(models)) == 1 and cache_files(models)[0].startswith(REMOTE)


def test_a_source_that_is_down(models, monkeypatch):
    card_path = models / f"{REMOTE}.json"
    good = card_path.read_text()
    card = json.loads(good)
    card["source"]["url"] = url_of_a_closed_port()
    card_path.write_text(json.dumps(card))
    started = time.monotonic()
    at = compare_an_upload()
    assert time.monotonic() - started < 60  # no long hang (the connect timeout is 5 s)
    assert_only_unavailable(at, REMOTE, LOCAL, "cannot connect")
    assert cache_files(models) == []
    card_path.write_text(good)
    at.run()
    assert_both_classify(at)


@pytest.mark.parametrize("damage, reason", [
    ("missing", "is missing"),
    ("truncated", "does not match the sha256"),
    ("replaced", "does not match the sha256"),
])
def test_a_damaged_local_weights_file_affects_that_model_only(models, damage, reason):
    weights = models / json.loads((models / f"{LOCAL}.json").read_text())["source"]["file"]
    original = weights.read_bytes()
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(original[: len(original) // 3])
    else:
        weights.write_bytes(b"\x89HDF\r\n\x1a\n" + original[8:][::-1])
    at = compare_an_upload()
    assert_only_unavailable(at, LOCAL, REMOTE, reason)

    weights.write_bytes(original)  # restored: the next run of the page succeeds
    at.run()
    assert_both_classify(at)


def test_a_card_naming_an_unknown_backbone_affects_that_model_only(models):
    card_path = models / f"{LOCAL}.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "backbone": "vgg99"}))
    at = compare_an_upload()
    assert_only_unavailable(at, LOCAL, REMOTE, "unknown backbone 'vgg99'")


def test_an_ensemble_missing_a_member_says_which_models_it_averages(models, server):
    server.fault = "gone"
    at = page("classify")
    at.file_uploader[0].set_value(("lesion.jpg", jpeg(), "image/jpeg")).run()
    ensemble_option = at.selectbox(key="classify-model").options[-1]
    at.selectbox(key="classify-model").select(ensemble_option).run()
    assert not at.exception, at.exception
    assert f"averages the 1 of its 2 models that loaded: {LOCAL}." in texts(at)
    assert any(e.value.startswith(f"Model {REMOTE} is unavailable") for e in at.error)


def test_st_secrets_move_a_models_weights(models, server):
    card_path = models / f"{REMOTE}.json"
    card = json.loads(card_path.read_text())
    card["source"]["url"] = url_of_a_closed_port()  # only the secrets know where they are
    card_path.write_text(json.dumps(card))
    at = compare_an_upload(secrets={"models": {REMOTE: {"url": server.url},
                                               "no-such-model": {"gdrive": "x"}}})
    assert_both_classify(at)
    assert "st.secrets [models.no-such-model] is ignored: no model is named" in texts(at)
