"""`python -m skin` as a user runs it: a subprocess, its exit code, stdout and stderr."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from skin.registry import SHIPPED_MODELS, Registry
from tests.conftest import CLASS_COLOURS, ROOT, write_image
from tests.corpus import CORPUS


def run_skin(*args, models_dir=None, cache=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SKIN_MODEL_DIRS": str(models_dir or ""),
           "SKIN_CACHE_DIR": str(cache or "/nonexistent-cache")}
    return subprocess.run([sys.executable, "-m", "skin", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    rows = ["image_id,dx"]
    for code, colour in CLASS_COLOURS.items():
        for i in range(4):
            write_image(root / "images" / f"{code}{i}.jpg", colour, (200, 150), seed=i)
            rows.append(f"{code}{i},{code}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def run_evaluate(folder, labels, *options, models_dir):
    """`python -m skin evaluate` on the images of `folder` against the file `labels`."""
    return run_skin("evaluate", "--images", str(folder / "images"), "--labels", str(labels),
                    *options, models_dir=models_dir)


def evaluation_report(folder, labels, *options, models_dir) -> dict:
    """The --json report of an evaluation that succeeds (20 bootstrap resamples)."""
    result = run_evaluate(folder, labels, *options, "--json", "--bootstrap", "20",
                          models_dir=models_dir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["models"]


def test_models_lists_the_registered_models(tiny_models):
    result = run_skin("models", "--json", models_dir=tiny_models)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["models"]}
    assert rows["tiny-mobilenetv2"]["backbone"] == "mobilenetv2"
    assert rows["tiny-mobilenetv2"]["weights_present"] is True
    assert rows["tiny-efficientnetb0"]["input_size"] == 32
    assert rows["tiny-mobilenetv2"]["initialisation"] == "from scratch"


def test_predict_json_and_text(tiny_models, labelled_folder):
    image = labelled_folder / "images" / "bcc0.jpg"
    result = run_skin("predict", str(image), "--model", "all", "--json", models_dir=tiny_models)
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"][str(image)]
    shipped = set(Registry.discover([SHIPPED_MODELS]).cards)  # served alongside
    models = {p["model"] for p in predictions}
    ensembles = {m for m in models if m.startswith("ensemble(")}
    assert models - ensembles == {"tiny-mobilenetv2", "tiny-efficientnetb0"} | shipped
    assert len(ensembles) == (1 if len(shipped) > 1 else 0)  # --model all adds the ensemble
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-4 for p in predictions)
    for p in predictions:  # every model, and the ensemble, with its referral decision
        assert 0 <= p["malignant_probability"] <= 1
        assert p["decision"] in ("refer", "inconclusive", "low risk")
        assert (p["decision"] == "refer") == (p["malignant_probability"] >= p["refer_threshold"])
        assert isinstance(p["not_dermoscopy"], bool) and "malignant" not in p
    text = run_skin("predict", str(image), "--model", "ensemble", "--tta", models_dir=tiny_models)
    assert text.returncode == 0 and "ensemble(" in text.stdout
    decision_line = text.stdout.splitlines()[1]  # the decision comes first, before the classes
    assert re.search(r"(REFER|INCONCLUSIVE|LOW RISK): P\(malignant\) 0\.\d\d", decision_line)
    assert "ranked first:" in text.stdout
    assert "not a medical device" in text.stderr


def test_a_card_without_referral_and_guard_blocks_makes_no_decision(tiny_models, tmp_path,
                                                                    labelled_folder):
    for file in tiny_models.glob("tiny-mobilenetv2*"):
        shutil.copy(file, tmp_path)
    card = tmp_path / "tiny-mobilenetv2.json"
    card.write_text(json.dumps({k: v for k, v in json.loads(card.read_text()).items()
                                if k not in ("referral", "guard")}))
    image = str(labelled_folder / "images" / "bcc0.jpg")
    result = run_skin("predict", image, "--model", "tiny-mobilenetv2", "--json",
                      models_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    prediction = json.loads(result.stdout)["predictions"][image][0]
    assert prediction["decision"] is None and prediction["refer_threshold"] is None
    assert prediction["ood_score"] is None and prediction["not_dermoscopy"] is False
    text = run_skin("predict", image, "--model", "tiny-mobilenetv2", models_dir=tmp_path)
    assert "NO REFERRAL DECISION" in text.stdout and "no referral threshold" in text.stdout
    report = evaluation_report(labelled_folder, labelled_folder / "labels.csv", "--model",
                               "tiny-mobilenetv2", models_dir=tmp_path)["tiny-mobilenetv2"]
    assert report["referral"] is None and report["guard_flagged"] is None


def test_predict_a_bad_image_is_one_line_and_non_zero(tiny_models, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_text("not really a photo")
    result = run_skin("predict", str(bad), models_dir=tiny_models)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {bad}: this file is not an image that can be read (JPEG, PNG, WebP, BMP, "
        "TIFF or GIF expected)"]
    as_json = run_skin("predict", str(bad), "--json", models_dir=tiny_models)
    assert as_json.returncode == 2
    report = json.loads(as_json.stdout)  # still the one JSON object --json promises
    assert report["predictions"] == {} and "not an image" in report["errors"][str(bad)]


def test_predict_the_whole_corpus_of_bad_and_odd_files(tiny_models, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    paths = {}
    for kind, name, data, expected in CORPUS:
        path = folder / f"{len(paths):02d}-{name}"
        path.write_bytes(data)
        paths[kind] = (str(path), expected)
    before = sorted(folder.iterdir())
    result = run_skin("predict", *[p for p, _ in paths.values()], "--json",
                      "--model", "tiny-mobilenetv2", models_dir=tiny_models)
    assert result.returncode == 2  # some files were refused
    report = json.loads(result.stdout)
    for kind, (path, expected) in paths.items():
        if expected is None:
            assert report["predictions"][path][0]["label"], kind
        else:
            assert expected in report["errors"][path], kind
            assert f"error: {path}: " in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(folder.iterdir()) == before  # nothing written beside the inputs


def test_evaluate_json_keys(tiny_models, labelled_folder):
    result = run_evaluate(labelled_folder, labelled_folder / "labels.csv", "--model",
                          "tiny-mobilenetv2", "--json", "--bootstrap", "20",
                          models_dir=tiny_models)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["models"]["tiny-mobilenetv2"]
    for key in ("n", "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1",
                "top3_accuracy", "auc_ovr", "ece", "classes", "confusion_matrix", "per_class",
                "referral", "guard_flagged"):
        assert key in report
    referral = report["referral"]  # akiec and bcc are malignant, nv benign: 8 and 4
    assert (referral["n_malignant"], referral["n_benign"]) == (8, 4)
    assert 0 <= referral["sensitivity"] <= 1 and 0 <= referral["specificity"] <= 1
    assert set(referral["intervals_95"]) == {"sensitivity", "specificity"}
    text = run_evaluate(labelled_folder, labelled_folder / "labels.csv", "--model",
                        "tiny-mobilenetv2", "--bootstrap", "20", models_dir=tiny_models)
    assert re.search(r"referral \(P\(malignant\) >= [\d.]+\): sensitivity [\d.]+ "
                     r"\[[\d.]+, [\d.]+\] on 8 malignant, specificity", text.stdout)
    assert report["n"] == 12 and sum(map(sum, report["confusion_matrix"])) == 12
    assert "loading tiny-mobilenetv2" in result.stderr
    assert "predicting 12 images with tiny-mobilenetv2 ..." in result.stderr


def test_evaluate_reads_the_images_a_chunk_at_a_time(tiny_models, labelled_folder,
                                                      monkeypatch, capsys):
    import skin.__main__ as command
    monkeypatch.setenv("SKIN_MODEL_DIRS", str(tiny_models))
    argv = ["evaluate", "--images", str(labelled_folder / "images"), "--labels",
            str(labelled_folder / "labels.csv"), "--model", "tiny-mobilenetv2", "--json",
            "--bootstrap", "20"]
    assert command.main(argv) == 0
    whole = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(command, "EVALUATION_CHUNK", 5)
    assert command.main(argv) == 0
    printed = capsys.readouterr()
    assert [line for line in printed.err.splitlines() if line.startswith("predicted")] == [
        "predicted 5 of 12 images", "predicted 10 of 12 images", "predicted 12 of 12 images"]
    assert json.loads(printed.out) == whole


def test_evaluate_scores_the_ensemble_as_the_mean_of_its_members(tiny_models, labelled_folder):
    def report(model):
        return evaluation_report(labelled_folder, labelled_folder / "labels.csv", "--model",
                                 model, models_dir=tiny_models)

    registry = Registry.discover([SHIPPED_MODELS, tiny_models])  # what the command sees
    every = report("all")
    assert set(every) == {*registry.cards, "ensemble"}
    members = every["ensemble"]["members"]
    assert members == registry.ensemble_members() and len(members) >= 2
    assert every["ensemble"]["n"] == 12

    from skin.images import read_image
    from skin.metrics import summary_metrics
    from skin.predict import Predictor
    labels = pd.read_csv(labelled_folder / "labels.csv")
    images = [read_image(labelled_folder / "images" / f"{i}.jpg") for i in labels["image_id"]]
    cards = [registry.cards[name] for name in members]
    mean = np.mean([Predictor.from_card(card).batch_probabilities(images)
                    for card in cards], axis=0)
    y = [cards[0]["classes"].index(label) for label in labels["dx"]]
    expected = confusion_matrix(y, mean.argmax(axis=1), labels=range(len(cards[0]["classes"])))
    assert every["ensemble"]["confusion_matrix"] == expected.tolist()
    assert every["ensemble"]["macro_f1"] == pytest.approx(summary_metrics(y, mean)["macro_f1"])
    assert report("ensemble") == {"ensemble": every["ensemble"]}
    assert set(report("tiny-mobilenetv2")) == {"tiny-mobilenetv2"}


def test_evaluate_compare_prints_and_writes_the_paired_and_per_class_tables(
        tiny_models, labelled_folder, tmp_path):
    out = tmp_path / "comparison"
    result = run_evaluate(labelled_folder, labelled_folder / "labels.csv", "--compare",
                          "--out", str(out), "--bootstrap", "50", "--json",
                          models_dir=tiny_models)
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)["comparison"]
    assert comparison["n"] == 12 and comparison["support"]["nv"] == 4

    from skin.comparison import paired_differences, per_class_recall
    from skin.scores import Scores
    scored = Scores.read(out / "predictions.csv")
    assert scored.labels == pd.read_csv(labelled_folder / "labels.csv")["dx"].tolist()
    names = list(scored.probs)
    assert "ensemble" in names and len(names) >= 3
    assert list(comparison["per_class_recall"]) == names
    assert len(comparison["paired_differences"]) == len(names) * (len(names) - 1) // 2
    # The written probabilities reproduce the printed tables.
    pairs = paired_differences(scored.y, scored.probs, n_resamples=50)
    written = pd.read_csv(out / "paired_differences.csv")
    np.testing.assert_allclose(written["difference"], pairs["difference"], atol=1e-9)
    np.testing.assert_allclose(written[["low", "high"]], pairs[["low", "high"]], atol=1e-9)
    recall = pd.read_csv(out / "per_class_recall.csv", index_col="model")
    pd.testing.assert_frame_equal(recall, per_class_recall(scored.y, scored.probs, scored.classes),
                                  check_names=False)

    text = run_evaluate(labelled_folder, labelled_folder / "labels.csv", "--compare",
                        "--bootstrap", "50", models_dir=tiny_models)
    assert text.returncode == 0, text.stderr
    assert "per-class recall (12 images" in text.stdout
    lines = re.findall(r"^  (\S+) - (\S+): [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\], "
                       r"McNemar p \S+: (?:not resolved|resolved)", text.stdout, re.M)
    assert len(lines) == len(comparison["paired_differences"])
    assert "another seed" in text.stdout


def isic_ground_truth(labelled_folder, path, edit=lambda rows: rows):
    """The labels in the ISIC 2018 Task 3 layout: `image` and one 1.0/0.0 column per class."""
    codes = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    rows = [[image_id] + ["1.0" if code.lower() == dx else "0.0" for code in codes]
            for image_id, dx in pd.read_csv(labelled_folder / "labels.csv").to_numpy()]
    path.write_text("\n".join(",".join(row) for row in [["image", *codes], *edit(rows)]) + "\n")
    return path


def test_evaluate_reads_isic_one_hot_ground_truth(tiny_models, labelled_folder, tmp_path):
    def report(labels, *options):
        return evaluation_report(labelled_folder, labels, "--model", "tiny-mobilenetv2",
                                 *options, models_dir=tiny_models)["tiny-mobilenetv2"]

    from_codes = report(labelled_folder / "labels.csv")
    one_hot = isic_ground_truth(labelled_folder, tmp_path / "truth.csv")
    assert report(one_hot, "--id-column", "image") == from_codes
    upper = tmp_path / "upper.csv"
    upper.write_text((labelled_folder / "labels.csv").read_text().replace(",nv", ",NV"))
    assert report(upper) == from_codes


def edit_second_row(values: list[str] | None = None, image_id: str | None = None):
    def edit(rows):
        row = [rows[1][0] if image_id is None else image_id, *(values or rows[1][1:])]
        return [rows[0], row, *rows[2:]]
    return edit


# Ground-truth columns: image, MEL, NV, BCC, AKIEC, BKL, DF, VASC; the second row is akiec1.
@pytest.mark.parametrize("edit, message", [
    (edit_second_row(["0.0"] * 7), "unclear rows: akiec1$"),
    (edit_second_row(["0.0", "1.0", "1.0", "0.0", "0.0", "0.0", "0.0"]), "unclear rows: akiec1$"),
    (edit_second_row(["0.0", "0.0", "yes", "0.0", "0.0", "0.0", "0.0"]), "unclear rows: akiec1$"),
    (edit_second_row(["1.0", "0.0", "0.0", "0.0", "0.0", "0.0", "0.0"]),
     "labels outside the classes of tiny-mobilenetv2 .*: MEL$"),
    (lambda rows: rows + rows[:1], "every image needs one row with its id; repeated: akiec0$"),
    (edit_second_row(image_id=""), "every image needs one row with its id; rows 3 have none$"),
])
def test_evaluate_refuses_unclear_ground_truth(tiny_models, labelled_folder, tmp_path,
                                               edit, message):
    labels = isic_ground_truth(labelled_folder, tmp_path / "truth.csv", edit)
    result = run_evaluate(labelled_folder, labels, "--id-column", "image", "--model",
                          "tiny-mobilenetv2", models_dir=tiny_models)
    assert result.returncode == 2, result.stderr
    assert re.search(message, result.stderr.strip().splitlines()[-1]), result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_says_which_column_to_name(tiny_models, labelled_folder, tmp_path):
    labels = isic_ground_truth(labelled_folder, tmp_path / "truth.csv")
    result = run_evaluate(labelled_folder, labels, "--model", "tiny-mobilenetv2",
                          models_dir=tiny_models)
    assert result.returncode == 2 and "--id-column" in result.stderr
    renamed = tmp_path / "renamed.csv"
    renamed.write_text((labelled_folder / "labels.csv").read_text().replace(",dx", ",diagnosis"))
    result = run_evaluate(labelled_folder, renamed, "--model", "tiny-mobilenetv2",
                          models_dir=tiny_models)
    assert result.returncode == 2 and "--label-column" in result.stderr
    assert "it has image_id, diagnosis" in result.stderr


def test_evaluate_matches_class_codes_in_any_case(tiny_models, labelled_folder, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    card = json.loads((models / "tiny-mobilenetv2.json").read_text())
    card["classes"] = [code.upper() for code in card["classes"]]
    (models / "tiny-mobilenetv2.json").write_text(json.dumps(card))
    reports = [evaluation_report(labelled_folder, labels, *options, "--model",
                                 "tiny-mobilenetv2", models_dir=models)["tiny-mobilenetv2"]
               for labels, options in [
                   (labelled_folder / "labels.csv", []),
                   (isic_ground_truth(labelled_folder, tmp_path / "truth.csv"),
                    ["--id-column", "image"])]]
    assert reports[0] == reports[1] and reports[0]["classes"] == card["classes"]
    assert reports[0]["n"] == 12


def test_evaluate_all_leaves_out_models_without_the_labels_classes(tiny_models,
                                                                  labelled_folder, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text((labelled_folder / "labels.csv").read_text().replace("bcc0,bcc", "bcc0,mel"))
    result = run_evaluate(labelled_folder, labels, "--json", "--bootstrap", "20",
                          models_dir=tiny_models)
    shipped = Registry.discover([SHIPPED_MODELS]).cards
    if not any("mel" in card["classes"] for card in shipped.values()):
        assert result.returncode == 2 and "no registered model has every class" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["models"]) - {"ensemble"} == set(shipped)
    for tiny in ("tiny-mobilenetv2", "tiny-efficientnetb0"):
        assert f"leaving out {tiny}: labels outside the classes" in result.stderr


def test_evaluate_refuses_labels_outside_the_classes(tiny_models, labelled_folder, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text((labelled_folder / "labels.csv").read_text().replace("bcc0,bcc", "bcc0,mel"))
    result = run_evaluate(labelled_folder, labels, "--model", "tiny-mobilenetv2",
                          models_dir=tiny_models)
    assert result.returncode == 2 and "labels outside the classes" in result.stderr
    assert "mel" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["", "image_id,dx\n"], ids=["empty", "header-only"])
def test_evaluate_refuses_a_labels_file_without_rows(tiny_models, labelled_folder, tmp_path,
                                                     text):
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    result = run_evaluate(labelled_folder, labels, models_dir=tiny_models)
    assert result.returncode == 2, result.stderr
    assert str(labels) in result.stderr and "Traceback" not in result.stderr


def tiny_models_with_a_broken_card(tiny_models, folder, **change) -> str:
    """A copy of the tiny models where the efficientnetb0 card has `change` applied."""
    for f in tiny_models.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    card_path = folder / "tiny-efficientnetb0.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), **change}))
    return "tiny-efficientnetb0"


def test_a_model_whose_download_fails_does_not_stop_the_others(tiny_models, tmp_path):
    tiny_models_with_a_broken_card(
        tiny_models, tmp_path, source={"url": "http://127.0.0.1:9/w.h5", "sha256": "0" * 64})
    result = run_skin("fetch", "--model", "all", models_dir=tmp_path, cache=tmp_path / "c")
    assert result.returncode == 1
    assert "tiny-mobilenetv2:" in result.stdout
    assert "error: model tiny-efficientnetb0" in result.stderr and "cannot connect" in result.stderr
    alone = run_skin("fetch", "--model", "tiny-efficientnetb0", models_dir=tmp_path,
                     cache=tmp_path / "c")
    assert alone.returncode == 2 and "cannot connect" in alone.stderr


def test_a_model_that_cannot_load_is_left_out_of_all(tiny_models, labelled_folder, tmp_path):
    broken = tiny_models_with_a_broken_card(tiny_models, tmp_path, backbone="vgg99")
    image = str(labelled_folder / "images" / "bcc0.jpg")
    result = run_skin("predict", image, "--model", "all", "--json", models_dir=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert "unknown backbone 'vgg99'" in report["unavailable_models"][broken]
    assert "tiny-mobilenetv2" in {p["model"] for p in report["predictions"][image]}
    assert all("not a medical device" in p["disclaimer"] for p in report["predictions"][image])
    assert f"error: leaving out {broken}" in result.stderr

    alone = run_skin("predict", image, "--model", broken, models_dir=tmp_path)
    assert alone.returncode == 2 and "unknown backbone 'vgg99'" in alone.stderr
    assert "Traceback" not in alone.stderr

    evaluated = run_evaluate(labelled_folder, labelled_folder / "labels.csv", "--json",
                             "--bootstrap", "20", models_dir=tmp_path)
    assert evaluated.returncode == 1, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert broken in report["unavailable_models"] and "tiny-mobilenetv2" in report["models"]


def test_no_models_registered_says_what_to_do(tmp_path, monkeypatch, capsys):
    from skin import registry
    from skin.__main__ import main
    monkeypatch.setattr(registry, "SHIPPED_MODELS", tmp_path / "no-models")
    monkeypatch.setenv("SKIN_MODEL_DIRS", "")
    image = write_image(tmp_path / "x.png", (10, 10, 10), (64, 64))
    assert main(["predict", str(image)]) == 2
    assert "no models are registered" in capsys.readouterr().err
