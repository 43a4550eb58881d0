"""Atomic writes: a crash part-way through writing a card or weights never leaves a
half-written file under the real name."""

import subprocess
import sys

import pytest

from skin.files import atomic_path, atomic_write_text
from skin.registry import Registry
from tests.conftest import ROOT


def test_an_error_mid_write_keeps_the_old_file_and_no_temporary(tmp_path):
    card = tmp_path / "model.json"
    atomic_write_text(card, '{"old": true}')
    with pytest.raises(RuntimeError):
        with atomic_path(card) as tmp:
            tmp.write_text('{"new": ')
            raise RuntimeError("crash while writing")
    assert card.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_a_killed_writer_leaves_the_old_card_readable(tmp_path, tiny_models):
    card = tmp_path / "tiny-mobilenetv2.json"
    original = (tiny_models / card.name).read_text()
    card.write_text(original)
    crash = ("import os, signal, sys\n"
             "from skin.files import atomic_path\n"
             "with atomic_path(sys.argv[1]) as tmp:\n"
             "    tmp.write_text('{\"name\": \"half')\n"
             "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", crash, str(card)], cwd=ROOT)
    assert killed.returncode == -9
    assert card.read_text() == original  # the real name still holds the whole old card
    leftovers = [p.name for p in tmp_path.iterdir() if p != card]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tiny-mobilenetv2.json.")
    registry = Registry.discover([tmp_path])  # the stray temporary is not taken for a card
    assert list(registry.cards) == ["tiny-mobilenetv2"] and not registry.problems
