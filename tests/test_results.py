"""The results table made from the cards."""

import json

import pytest

from skin.cards import init_label
from skin.registry import SHIPPED_MODELS, Registry
from skin.results import END, START, ResultsError, results_table, update, with_table


def test_every_figure_comes_from_its_card():
    registry = Registry.discover([SHIPPED_MODELS])
    table = results_table(registry)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]
            if line.startswith("| ")}
    for name, card in registry.cards.items():
        ev = card["evaluation"]
        low, high = ev["intervals_95"]["balanced_accuracy"]
        assert f"| {ev['balanced_accuracy']:.3f} [{low:.3f}, {high:.3f}] |" in rows[name]
        assert f"{card['referral']['test']['sensitivity']:.3f}" in rows[name]
        assert f"| {init_label(card)} |" in rows[name]
    assert any(name.startswith("**ensemble**") for name in rows)
    assert f"{registry.ensemble_record['evaluation']['balanced_accuracy']:.3f}" in \
        rows[f"**ensemble** (mean of {len(registry.ensemble_record['members'])})"]


def test_the_table_replaces_what_is_between_its_markers(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(f"intro\n{START}\nold table\n{END}\nafter\n")
    assert update(path, "new table") is True
    assert path.read_text() == f"intro\n{START}\nnew table\n{END}\nafter\n"
    assert update(path, "new table") is False
    with pytest.raises(ResultsError, match="one pair of results-table markers"):
        with_table("no markers here", "table")


def test_a_registry_without_evaluations_says_so(tmp_path):
    card = json.loads((SHIPPED_MODELS / "mobilenetv2-96-distilled.json").read_text())
    del card["evaluation"]
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ResultsError, match="carries an evaluation"):
        results_table(Registry.discover([tmp_path]))


def test_the_initialisation_says_scratch_or_which_imagenet_weights():
    assert init_label({"init": "scratch"}) == "from scratch"
    label = "ImageNet (MobileNetV2, 8-bit, Google, Apache-2.0)"
    assert init_label({"init": "imagenet", "init_weights": {"label": label}}) == label
    assert init_label({"init": "imagenet"}) == "ImageNet"
    assert init_label({"init": "transfer from m"}) == "transfer from m"
