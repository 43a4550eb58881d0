"""python -m train.decisions: which models its ensemble record is written for."""

import pytest

from skin.cards import CardError
from skin.registry import Registry
from train.decisions import chosen_members


def test_the_ensemble_members_are_the_chosen_ones_or_the_registrys():
    seven, three = list("abcdefg"), list("abc")
    registry = Registry(cards={"a": {"classes": seven}, "b": {"classes": seven},
                               "c": {"classes": seven}, "d": {"classes": three}})
    assert chosen_members(registry, None) == ["a", "b", "c"]
    assert chosen_members(registry, "c, a") == ["a", "c"]
    with pytest.raises(CardError, match="no model named 'z'"):
        chosen_members(registry, "a,z")
    with pytest.raises(CardError, match="do not share one class list"):
        chosen_members(registry, "a,d")
