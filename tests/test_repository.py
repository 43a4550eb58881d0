"""The repository keeps its promises to a newcomer."""

import re

from skin.registry import SHIPPED_MODELS, Registry
from skin.results import END, START, results_table
from tests.conftest import ROOT


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(python3 -m venv .*pytest.*)\n```", readme)
    assert len(commands) == 1, "the README should show one test command"
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[0] in ci_lines


def test_no_dataset_images_are_in_the_repository():
    images = [p for p in ROOT.rglob("ISIC_*") if ".venv" not in p.parts]
    assert not images


def test_the_readme_results_table_is_the_one_the_cards_make():
    readme = (ROOT / "README.md").read_text()
    shown = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == results_table(Registry.discover([SHIPPED_MODELS])), (
        "the README's results table is stale: run `python -m skin results --update README.md`")


def test_the_readme_is_a_page_a_newcomer_reads_in_minutes():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
