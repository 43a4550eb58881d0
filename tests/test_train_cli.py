"""`python -m train` end to end on tiny datasets: outputs, errors, transfer, resume."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import ROOT, make_class_folders, make_csv_listing
from tests.test_imagenet import internet_reachable
from skin.backbones import build_classifier
from train.__main__ import main, parse_args
from train.fit import Schedule, cosine_learning_rate
from train.imagenet import DEFAULT_LOCAL_FILES
from train.model import backbone_layers, set_trainable

FAST = ["--img-size", "32", "--batch-size", "8", "--bootstrap", "50", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short from-scratch run on a CSV dataset, shared by the tests below."""
    root = tmp_path_factory.mktemp("trained")
    listing = make_csv_listing(root / "data", per_class=10)
    out = root / "out"
    code = main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "2",
                 "--init", "none", "--out", str(out), "--strategy", "mirrored", *FAST])
    assert code == 0
    return out, listing


def test_outputs_card_weights_and_split(trained):
    out, _ = trained
    assert sorted(p.name for p in out.iterdir()) == [
        "mobilenetv2-32.guard.npz", "mobilenetv2-32.json", "mobilenetv2-32.weights.h5",
        "split.csv"]  # no .work left
    card = json.loads((out / "mobilenetv2-32.json").read_text())
    weights = out / card["source"]["file"]
    assert card["source"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert card["classes"] == ["akiec", "bcc", "nv"] and card["init"] == "scratch"
    assert card["input_size"] == 32 and card["preprocessing"] == {
        "resize": "center_crop", "mode": "tf", "colour_constancy": "none"}
    split = pd.read_csv(out / "split.csv")
    assert list(split.columns) == ["image_id", "split"]
    assert set(split["split"]) == {"train", "val", "test"}
    ev = card["evaluation"]
    assert ev["split"] == "test" and ev["n"] == (split["split"] == "test").sum()
    assert sum(map(sum, ev["confusion_matrix"])) == ev["n"]
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "top3_accuracy", "ece"):
        assert 0.0 <= ev[key] <= 1.0
    training = card["training"]
    assert training["split_fingerprint"] == hashlib.sha256((out / "split.csv").read_bytes()).hexdigest()
    assert [h["epoch"] for h in training["history"]] == [1, 2]
    assert card["temperature"] > 0
    # The referral rule and the input guard, chosen on validation (akiec, bcc malignant).
    referral = card["referral"]
    assert referral["malignant_classes"] == ["akiec", "bcc"] and referral["chosen_on"] == "val"
    assert referral["val"]["sensitivity"] >= 0.95 and "test" in referral
    guard = card["guard"]
    assert guard["file"] == "mobilenetv2-32.guard.npz" and guard["val_flagged"] <= 0.05
    assert guard["sha256"] == hashlib.sha256((out / guard["file"]).read_bytes()).hexdigest()


def test_a_shared_split_file_is_reused_whatever_the_seed(trained, tmp_path):
    _, listing = trained
    shared = tmp_path / "shared-split.csv"
    records = []
    for seed in ("1", "2"):
        out = tmp_path / f"run{seed}"
        assert main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "1",
                     "--init", "none", "--out", str(out), "--split", str(shared),
                     "--seed", seed, *FAST]) == 0
        records.append(json.loads((out / "mobilenetv2-32.json").read_text())["training"])
    assert records[0]["split_fingerprint"] == records[1]["split_fingerprint"]
    # Seed 1 made the split; no card lies beside the shared file to tell seed 2's run so.
    assert records[0]["split_seed"] == 1 and "split_seed" not in records[1]
    assert shared.read_bytes() == (tmp_path / "run1" / "split.csv").read_bytes()


def test_a_card_names_the_seed_that_remakes_its_split(trained, tmp_path):
    """A run on another run's split file records that run's seed (read from the card
    beside the file), so benchmarks can re-make the split without the file."""
    out, listing = trained
    card = json.loads((out / "mobilenetv2-32.json").read_text())["training"]
    assert card["seed"] == card["split_seed"] == 0
    other = tmp_path / "seed3"
    assert main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "1",
                 "--init", "none", "--out", str(other), "--split", str(out / "split.csv"),
                 "--seed", "3", *FAST]) == 0
    record = json.loads((other / "mobilenetv2-32.json").read_text())["training"]
    assert record["seed"] == 3 and record["split_seed"] == 0
    assert record["split_fingerprint"] == card["split_fingerprint"]


def test_transfer_to_a_class_subset_with_focal_loss_and_gradual_unfreezing(trained, tmp_path):
    out, listing = trained
    new = tmp_path / "subset"
    code = main(["--data", str(listing), "--classes", "akiec,nv", "--drop-unknown",
                 "--backbone", "mobilenetv2", "--init", str(out / "mobilenetv2-32.json"),
                 "--epochs", "3", "--head-epochs", "1", "--unfreeze", "3",
                 "--unfreeze-step", "3", "--unfreeze-every", "1", "--loss", "focal",
                 "--out", str(new), "--name", "subset", *FAST])
    assert code == 0
    card = json.loads((new / "subset.json").read_text())
    assert card["init"] == "transfer from mobilenetv2-32"
    assert card["classes"] == ["akiec", "nv"]
    history = card["training"]["history"]
    assert [h["stage"] for h in history] == [1, 2, 2]
    # The top 3, then 6, weighted layers unfreeze; batch norm stays frozen (pretrained).
    model = build_classifier("mobilenetv2", 2, 32)
    expected = []
    for last_n in (0, 3, 6):
        set_trainable(model, last_n, train_batchnorm=False)
        expected.append(sum(l.trainable for l in backbone_layers(model)))
    assert expected[0] == 0 < expected[1] < expected[2]
    assert [h["trainable_backbone_layers"] for h in history] == expected


def test_source_balanced_sampling_needs_the_sources_and_trains_with_them(trained, tmp_path,
                                                                         capsys):
    _, listing = trained
    args = ["--backbone", "mobilenetv2", "--epochs", "1", "--init", "none",
            "--balance", "sampling_by_source", *FAST]
    assert main(["--data", str(listing), "--out", str(tmp_path / "none"), *args]) == 2
    assert "needs every image's source" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    table = pd.read_csv(listing)
    with_sources = listing.with_name("list-with-sources.csv")
    table.assign(source=["clinic-a", "clinic-b"] * (len(table) // 2)).to_csv(with_sources,
                                                                            index=False)
    assert main(["--data", str(with_sources), "--out", str(tmp_path / "out"), *args]) == 0
    card = json.loads((tmp_path / "out" / "mobilenetv2-32.json").read_text())
    assert card["training"]["config"]["balance"] == "sampling_by_source"


def test_sampling_with_strong_augmentation_trains_and_the_card_says_so(trained, tmp_path):
    default_out, listing = trained
    default_card = json.loads((default_out / "mobilenetv2-32.json").read_text())
    assert default_card["training"]["config"]["augment"] == "standard"
    out = tmp_path / "sampled"
    code = main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "2",
                 "--init", "none", "--balance", "sampling", "--augment", "strong",
                 "--out", str(out), *FAST])
    assert code == 0
    card = json.loads((out / "mobilenetv2-32.json").read_text())
    assert card["training"]["config"]["balance"] == "sampling"
    assert card["training"]["config"]["augment"] == "strong"
    assert [h["epoch"] for h in card["training"]["history"]] == [1, 2]


def test_a_distilled_run_trains_towards_its_teacher_and_the_card_names_it(trained, tmp_path):
    teacher_out, listing = trained
    teacher = teacher_out / "mobilenetv2-32.json"
    out = tmp_path / "student"
    code = main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "1",
                 "--init", "none", "--balance", "sampling", "--teacher", str(teacher),
                 "--split", str(teacher_out / "split.csv"), "--out", str(out), *FAST])
    assert code == 0
    config = json.loads((out / "mobilenetv2-32.json").read_text())["training"]["config"]
    sha256 = json.loads(teacher.read_text())["source"]["sha256"]
    assert config["teachers"] == [{"name": "mobilenetv2-32", "sha256": sha256}]
    assert config["distill_weight"] == 0.5


def test_soft_targets_mix_the_labels_with_the_teachers_probabilities(trained):
    from skin.cards import read_card
    from skin.predict import Predictor
    from train.distill import soft_targets

    out, listing = trained
    card = read_card(out / "mobilenetv2-32.json")
    rows = pd.read_csv(listing).head(6)
    paths = [listing.parent / path for path in rows["path"]]
    labels = [card["classes"].index(label) for label in rows["label"]]
    teacher = Predictor.from_card(card).batch_probabilities(
        [np.asarray(Image.open(path).convert("RGB")) for path in paths])
    one_hot = np.eye(len(card["classes"]))[labels]
    assert np.allclose(soft_targets([card], paths, labels, 0.0), one_hot)
    assert np.allclose(soft_targets([card], paths, labels, 1.0), teacher, atol=1e-6)
    mixed = soft_targets([card, card], paths, labels, 0.25)
    assert np.allclose(mixed, 0.75 * one_hot + 0.25 * teacher, atol=1e-6)
    assert np.allclose(mixed.sum(axis=1), 1.0, atol=1e-5)


def test_a_resumed_run_reuses_the_teachers_targets_and_a_changed_weight_does_not(trained,
                                                                                 tmp_path):
    import shutil

    from skin.cards import read_card
    from train.distill import TeacherError, cached_soft_targets

    out, listing = trained
    for name in ("mobilenetv2-32.json", "mobilenetv2-32.weights.h5"):
        shutil.copy(out / name, tmp_path / name)
    card = read_card(tmp_path / "mobilenetv2-32.json")
    rows = pd.read_csv(listing).head(6)
    paths = [listing.parent / path for path in rows["path"]]
    labels = [card["classes"].index(label) for label in rows["label"]]
    work = tmp_path / "work"
    work.mkdir()
    first = cached_soft_targets(work, [card], paths, labels, 0.5)
    (tmp_path / "mobilenetv2-32.weights.h5").unlink()  # the teacher can no longer be scored
    assert np.array_equal(cached_soft_targets(work, [card], paths, labels, 0.5), first)
    with pytest.raises(TeacherError):
        cached_soft_targets(work, [card], paths, labels, 0.25)


def test_a_teacher_from_another_split_is_refused_before_anything_is_written(trained, tmp_path,
                                                                            capsys):
    teacher_out, listing = trained
    code = main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "1",
                 "--init", "none", "--teacher", str(teacher_out / "mobilenetv2-32.json"),
                 "--seed", "7", "--out", str(tmp_path / "o"), *FAST])
    assert code == 2
    assert "was not trained on this run's split" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_teacher_without_its_weights_is_refused_before_anything_is_written(trained, tmp_path,
                                                                             capsys):
    teacher_out, listing = trained
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    card = (teacher_out / "mobilenetv2-32.json").read_bytes()
    (teacher / "mobilenetv2-32.json").write_bytes(card)  # and no weights beside it
    code = main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "1",
                 "--init", "none", "--teacher", str(teacher / "mobilenetv2-32.json"),
                 "--split", str(teacher_out / "split.csv"), "--out", str(tmp_path / "o"), *FAST])
    assert code == 2
    assert "teacher mobilenetv2-32" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_teacher_card_that_cannot_be_read_is_named_once_and_nothing_is_written(
        trained, tmp_path, capsys):
    teacher_out, listing = trained
    missing = tmp_path / "no-such-teacher.json"
    code = main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "1",
                 "--init", "none", "--teacher", str(missing),
                 "--split", str(teacher_out / "split.csv"), "--out", str(tmp_path / "o"), *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot read the model card" in err and err.count(str(missing)) == 1
    assert not (tmp_path / "o").exists()


def test_every_augmentation_strength_can_be_chosen_on_the_command_line(tmp_path):
    from train.pipeline import AUGMENTATIONS
    required = ["--data", "d", "--backbone", "mobilenetv2", "--img-size", "32",
                "--epochs", "1", "--out", str(tmp_path)]
    for name in AUGMENTATIONS:
        assert parse_args([*required, "--augment", name]).augment == name


def snapshot(folder):
    return sorted((p.name, p.stat().st_size) for p in folder.iterdir())


def test_a_data_error_exits_non_zero_and_leaves_out_as_it_was(tmp_path, capsys):
    data = make_class_folders(tmp_path / "data")
    (data / "nv" / "nv_0.png").write_text("not a png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    before = snapshot(out)
    code = main(["--data", str(data), "--backbone", "mobilenetv2", "--epochs", "1",
                 "--init", "none", "--out", str(out), *FAST])
    assert code == 2
    assert "1 unreadable image files" in capsys.readouterr().err
    assert snapshot(out) == before
    assert main(["--data", str(data), "--backbone", "mobilenetv2", "--epochs", "1",
                 "--init", "none", "--out", str(tmp_path / "new"), *FAST]) == 2
    assert not (tmp_path / "new").exists()


def test_a_bad_backbone_or_size_exits_non_zero(tmp_path, capsys):
    data = make_class_folders(tmp_path / "data")
    args = ["--data", str(data), "--epochs", "1", "--init", "none", "--out", str(tmp_path / "o")]
    assert main([*args, "--backbone", "vgg99", "--img-size", "64"]) == 2
    assert main([*args, "--backbone", "xception", "--img-size", "64"]) == 2
    err = capsys.readouterr().err
    assert "unknown backbone 'vgg99'" in err and "at least 71 px" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option, message", [
    (["--epochs", "0"], "--epochs: must be 1 or more"),
    (["--epochs", "2", "--lr-patience", "0"], "--lr-patience: must be 1 or more"),
    (["--epochs", "2", "--val-fraction", "0"], "--val-fraction: must be between 0 and 1"),
    (["--epochs", "2", "--val-fraction", "0.5", "--test-fraction", "0.5"],
     "must leave images to train on"),
    (["--epochs", "2", "--lr=0"], "--lr: must be above 0"),
    (["--epochs", "2", "--distill-weight", "0.5"], "--distill-weight needs --teacher"),
])
def test_an_impossible_option_is_refused_before_anything_is_written(tmp_path, capsys,
                                                                     option, message):
    with pytest.raises(SystemExit) as exited:
        main(["--data", str(tmp_path / "data"), "--backbone", "mobilenetv2", "--img-size",
              "32", "--init", "none", "--out", str(tmp_path / "o"), *option])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(internet_reachable(), reason="ImageNet weights are downloadable here")
def test_imagenet_offline_stops_at_once_and_writes_nothing(tmp_path, capsys):
    """ResNet50 has no local ImageNet file this project can import."""
    data = make_class_folders(tmp_path / "data")
    code = main(["--data", str(data), "--backbone", "resnet50", "--img-size", "96",
                 "--epochs", "1", "--init", "imagenet", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "could not download" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_killed_run_resumes_where_it_stopped(tmp_path):
    """Killed at a random point, the rerun continues the epochs and the cosine schedule."""
    listing = make_csv_listing(tmp_path / "data", per_class=10)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "train", "--data", str(listing), "--backbone",
               "mobilenetv2", "--epochs", "12", "--patience", "100", "--init", "none",
               "--out", str(out), "--img-size", "32", "--batch-size", "8", "--bootstrap", "20",
               "--lr-schedule", "cosine", "--warmup-epochs", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    # A random point: after a random number of epochs, then a random part of the next.
    seed = int(os.environ.get("KILL_SEED", time.time()))
    rng = random.Random(seed)
    kill_after, extra = rng.randint(1, 9), rng.uniform(0, 1.5)
    print(f"KILL_SEED={seed}: kill after epoch {kill_after} + {extra:.2f} s")
    state = out / ".work" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= kill_after:
            time.sleep(extra)
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = json.loads(state.read_text())["epochs_done"]
    assert kill_after <= done < 12, "the first run should have been killed mid-way"
    assert not list(out.glob("*.json"))  # no card from a killed run

    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"resuming after epoch {done}" in second.stdout
    assert f"epochs {done + 1}-12" in second.stdout
    card = json.loads((out / "mobilenetv2-32.json").read_text())
    history = card["training"]["history"]
    assert [h["epoch"] for h in history] == list(range(1, 13))
    plan = Schedule(**card["training"]["config"]["schedule"])
    assert [h["learning_rate"] for h in history] == pytest.approx(
        [cosine_learning_rate(plan, epoch) for epoch in range(12)])


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_LOCAL_FILES["mobilenetv2"].is_file(),
                    reason="Google's TFLite MobileNetV2 is not in ../shared/weights")
def test_imagenet_run_records_where_its_weights_came_from(tmp_path):
    tflite = DEFAULT_LOCAL_FILES["mobilenetv2"]
    listing = make_csv_listing(tmp_path / "data", per_class=10)
    code = main(["--data", str(listing), "--backbone", "mobilenetv2", "--epochs", "2",
                 "--head-epochs", "1", "--init", "imagenet", "--init-weights", str(tflite),
                 "--pretrained-batchnorm", "reestimated", "--out", str(tmp_path / "o"), *FAST])
    assert code == 0
    card = json.loads((tmp_path / "o" / "mobilenetv2-32.json").read_text())
    assert card["init"] == "imagenet"
    assert card["init_weights"] == {
        "label": "ImageNet (MobileNetV2, 8-bit, Google, Apache-2.0)", "file": tflite.name,
        "sha256": hashlib.sha256(tflite.read_bytes()).hexdigest(),
        "licence": card["init_weights"]["licence"], "batchnorm": "reestimated"}
    assert card["training"]["config"]["schedule"]["train_batchnorm"] is True
