"""The object model on a backend of the plain developer contract.

``tests/helpers/dict_backend.py`` implements only ``_get``/``_set``/
``_delete``/``_create_group``/``_list`` on dicts, like a third-party
backend would: its ``_set`` refuses anything but leaves and Trees, and
reading goes through the base class.  Every object of the pickle-parity
corpus must round-trip through it as through the built-in backends.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
from objects_cases import assert_same_structure
from test_objects_pickle_parity import CASES, PROTOCOL

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from dict_backend import DictStorage  # noqa: E402

from tinystore.storage.base import SEQUENCE_ATTR, Tree  # noqa: E402


@pytest.mark.parametrize("factory", CASES.values(), ids=CASES.keys())
def test_objects_round_trip_on_a_contract_backend(factory):
    obj = factory()
    expected = pickle.loads(pickle.dumps([obj, {"again": obj}], protocol=PROTOCOL))
    s = DictStorage()
    s["x"] = [obj, {"again": obj}]
    loaded = s["x"]
    assert_same_structure(expected, loaded, new=False)
    assert loaded[0] is loaded[1]["again"]


def test_plain_containers_and_sequences_on_a_contract_backend():
    shared = tuple([1, "a"])
    obj = {
        "pairs": [(i, i * 0.5, "w") for i in range(100)],
        "shared": [shared, shared],
        "dicts": [{"k": 1}, {}],
        "nested": [[1, 2], [], [[3]]],
    }
    s = DictStorage()
    s["obj"] = obj
    loaded = s["obj"]
    assert loaded == obj
    assert type(loaded["pairs"][5]) is tuple and type(loaded["nested"][2][0]) is list
    assert loaded["shared"][0] is loaded["shared"][1]
    assert s["obj/pairs/7"] == (7, 3.5, "w")
    assert s["obj/nested/2"] == [[3]]
    # the marker is the storage's business: it never shows in what the codec reads
    read = s._get("obj")._read_tree()
    stack = [read]
    while stack:
        t = stack.pop()
        assert SEQUENCE_ATTR not in t.attrs
        values = t.children if type(t.children) is list else t.children.values()
        stack.extend(v for v in values if type(v) is Tree)
    assert type(read.children["pairs"].children) is list


def test_trees_given_directly_keep_their_sequences_on_a_contract_backend():
    s = DictStorage()
    s.codec = None  # the storage layer alone: leaves and Trees
    tree = Tree({"t": "x"}, [1, Tree({}, {"a": 2.5}), Tree({}, [3, "s"])])
    s["t"] = tree
    back = s._get("t")._read_tree()
    assert back == tree and type(back.children) is list
    assert tree.attrs == {"t": "x"}  # what was given is left as it was
