"""The run configuration of `python -m train`: resolved once, and the resume key."""

import json
from pathlib import Path

import pytest

from train.__main__ import build_parser, parse_args
from train.config import OUTSIDE_THE_RUN, RunConfig

REQUIRED = ["--data", "d", "--backbone", "mobilenetv2", "--img-size", "96",
            "--epochs", "10", "--out", "o"]
CLASSES = ["a", "b"]
# Options whose effect reaches the configuration through what they load, not their text.
RESOLVED_FROM_FILES = {
    "classes": "the dataset's class list (a test of its own below)",
    "teacher": "train.distill.teacher_record of the cards it names",
}


TEXT_VALUES = {"data": "elsewhere", "backbone": "resnet50", "init": "imagenet",
               "init_weights": "imagenet.tflite",
               "test_source": "rosendahl"}


def changed_value(action) -> list[str]:
    """A command-line tail that sets `action` to something other than its default."""
    option = action.option_strings[0]
    if action.nargs == 0:  # a store_true flag
        return [option]
    if action.choices:
        return [option, next(c for c in action.choices if c != action.default)]
    if action.dest in TEXT_VALUES:
        return [option, TEXT_VALUES[action.dest]]
    whole = action.type is int or action.type.__name__ == "positive_int"
    if action.default is None:
        return [option, "3" if whole else "0.3"]
    return [option, str(action.default * 2 + 1)]


def config(argv, classes=CLASSES, teachers=()) -> dict:
    args = parse_args(argv)
    return RunConfig.resolve(args, classes, list(teachers)).record()


def test_every_option_that_changes_training_changes_the_resume_key():
    base = config(REQUIRED)
    options = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    unaccounted = []
    for action in options:
        if action.dest in OUTSIDE_THE_RUN or action.dest in RESOLVED_FROM_FILES:
            continue
        tail = changed_value(action)
        if action.dest == "distill_weight":
            tail = ["--teacher", "t.json", *tail]
            base_with_teacher = config(REQUIRED + ["--teacher", "t.json"])
            if config(REQUIRED + tail) == base_with_teacher:
                unaccounted.append(action.dest)
            continue
        if config(REQUIRED + tail) == base:
            unaccounted.append(action.dest)
    assert unaccounted == [], (
        f"options that change nothing in RunConfig: {unaccounted}; add them to RunConfig "
        "(they change training) or to OUTSIDE_THE_RUN (they do not)")


def test_outside_the_run_names_only_real_options():
    dests = {a.dest for a in build_parser()._actions}
    assert OUTSIDE_THE_RUN <= dests and set(RESOLVED_FROM_FILES) <= dests


def test_the_dataset_classes_and_teachers_are_in_the_key():
    assert config(REQUIRED)["classes"] == CLASSES
    assert config(REQUIRED, classes=["a", "b", "c"]) != config(REQUIRED)
    teacher = {"name": "t", "sha256": "0" * 64}
    assert config(REQUIRED, teachers=[teacher])["teachers"] == [teacher]


def test_defaults_that_depend_on_init_are_resolved_once():
    scratch = config(REQUIRED)
    transfer = config(REQUIRED[:-2] + ["--init", "imagenet", "--out", "o"])
    assert (scratch["bn_momentum"], scratch["schedule"]["head_epochs"],
            scratch["schedule"]["fine_tune_learning_rate"]) == (0.99, 0, 1e-3)
    assert (transfer["bn_momentum"], transfer["schedule"]["head_epochs"],
            transfer["schedule"]["fine_tune_learning_rate"]) == (None, 5, pytest.approx(1e-4))
    assert config(REQUIRED[:-4] + ["--epochs", "3", "--init", "imagenet", "--out", "o"]) \
        ["schedule"]["head_epochs"] == 3  # never more head epochs than epochs


def test_a_run_trained_before_the_config_existed_resolves_to_its_recorded_key():
    """The key of a card written by the old hand-written dict: runs in progress resume."""
    card = json.loads((Path(__file__).parents[1] / "docs" / "cards"
                       / "mobilenetv2-96-rosendahl-strong.json").read_text())
    recorded = card["training"]["config"]
    argv = ["--data", recorded["data"], "--backbone", "mobilenetv2", "--img-size", "96",
            "--epochs", "70", "--patience", "20", "--lr-schedule", "cosine",
            "--warmup-epochs", "2", "--loss", "cce", "--balance", "sampling", "--init", "none",
            "--test-source", "rosendahl", "--augment", "strong",
            "--out", "o", "--weights-dtype", "float16"]
    assert config(argv, classes=recorded["classes"]) == recorded
