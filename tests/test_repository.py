"""The repository keeps its promises to a newcomer."""

import re

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
