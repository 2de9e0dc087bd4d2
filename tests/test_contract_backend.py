"""The developer contract, and the reference backend that implements only it.

``tinystore.storage.reference.DictStorage`` writes ``__getitem__``,
``_set``, ``__delitem__``, ``create_group``, ``name`` and
``list_nodes``/``list_groups`` on dicts, like a third-party backend would:
its ``_set`` refuses anything but simple leaves, and everything else comes
from the base class.  (The conformance suite runs on it in
``test_storage_backends.py``; the object suites through the ``reference``
backend of ``conftest.py``.)
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import OBJECT_BACKENDS, location
from objects_cases import assert_same_structure
from test_objects_pickle_parity import CASES, PROTOCOL

import tinystore
from tinystore.errors import InvalidKeyError, SharedNodeError
from tinystore.objects.codec import ObjectCodec
from tinystore.storage.base import META_KEY, GenericStorage, Tree
from tinystore.storage.reference import DictStorage


def reference() -> DictStorage:
    s = DictStorage()
    s.codec = ObjectCodec()
    return s


def test_the_abstract_methods_are_the_seed_contract():
    assert GenericStorage.__abstractmethods__ == {
        "__getitem__",
        "_set",
        "__delitem__",
        "create_group",
        "name",
        "list_nodes",
        "list_groups",
    }
    assert DictStorage.supports == frozenset()  # no optional capability


def test_a_backend_of_the_contract_alone_can_be_written_and_used():
    class Minimal(GenericStorage):  # what the requirements describe, nothing more
        def __init__(self, name=""):
            self._name, self._d = name, {}

        def __getitem__(self, key):
            return self._d[key]

        def _set(self, key, value):
            if type(value) not in (int, str):
                raise TypeError(type(value).__name__)
            self._d[key] = value

        def __delitem__(self, key):
            del self._d[key]

        def create_group(self, key):
            return self._d.setdefault(key, Minimal(key))

        @property
        def name(self):
            return self._name

        def list_nodes(self):
            return [k for k, v in self._d.items() if not isinstance(v, Minimal)]

        def list_groups(self):
            return [k for k, v in self._d.items() if isinstance(v, Minimal)]

    s = Minimal()
    s.codec = ObjectCodec()
    s["x"] = {"a": (1, 2.5), "b": [np.arange(3)], "c": "s"}
    back = s["x"]
    assert type(back["a"]) is tuple and back["a"] == (1, 2.5) and back["c"] == "s"
    assert np.array_equal(back["b"][0], np.arange(3))
    assert s["x/a/1"] == 2.5  # floats are encoded leaves on this backend
    assert list(s) == ["x"] and s.list_nodes() == ["x"] and s.list_groups() == []
    g = s.create_group("jobs/one")
    assert g.path == "jobs/one" and g.name == "one" and s.list_groups() == ["jobs"]


@pytest.mark.parametrize("factory", CASES.values(), ids=CASES.keys())
def test_objects_round_trip_on_the_reference_backend(factory):
    obj = factory()
    expected = pickle.loads(pickle.dumps([obj, {"again": obj}], protocol=PROTOCOL))
    s = reference()
    s["x"] = [obj, {"again": obj}]
    loaded = s["x"]
    assert_same_structure(expected, loaded, new=False)
    assert loaded[0] is loaded[1]["again"]


def test_plain_containers_and_sequences():
    shared = tuple([1, "a"])
    obj = {
        # (a last item of another type: a list of tuples only would be a table node)
        "pairs": [(i, i * 0.5, "w") for i in range(100)] + [None],
        "shared": [shared, shared],
        "dicts": [{"k": 1}, {}],
        "nested": [[1, 2], [], [[3]]],
    }
    s = reference()
    s["obj"] = obj
    loaded = s["obj"]
    assert loaded == obj and list(loaded) == list(obj)
    assert type(loaded["pairs"][5]) is tuple and type(loaded["nested"][2][0]) is list
    assert loaded["shared"][0] is loaded["shared"][1]
    assert s["obj/pairs/7"] == (7, 3.5, "w")
    assert s["obj/nested/2"] == [[3]]
    # the metadata is the base class's: it never shows among the keys
    assert META_KEY not in s.read_tree("obj").children
    assert type(s.read_tree("obj").children["pairs"].children) is list


def test_trees_given_directly_keep_their_sequences():
    s = DictStorage()  # the storage layer alone: leaves and Trees
    tree = Tree({"t": "x"}, [1, Tree({}, {"a": 2.5}), Tree({}, [3, "s"])])
    s["t"] = tree
    back = s.read_tree("t")
    assert back == tree and type(back.children) is list
    assert tree.attrs == {"t": "x"}  # what was given is left as it was


def test_leaves_are_stored_as_copies_and_others_are_encoded():
    s = DictStorage()
    arr = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    s["a"] = arr
    s["c"] = 1 + 2j
    s["big"] = 3**80
    s["ba"] = bytearray(b"xy")
    arr[0, 0] = 99.0
    back = s["a"]
    assert back[0, 0] == 0.0 and back.flags.f_contiguous
    assert s["c"] == 1 + 2j and s["big"] == 3**80 and s["ba"] == bytearray(b"xy")
    assert type(s["ba"]) is bytearray
    assert s.list_nodes() == ["a", "c", "big", "ba"] and s.list_groups() == []


def test_user_keys_cannot_collide_with_the_metadata():
    s = DictStorage()
    with pytest.raises(InvalidKeyError):
        s[META_KEY] = 1
    s["@record"] = 1  # other keys starting with "@" stay the user's
    assert list(s) == ["@record"]


def test_partial_load_update_and_delete():
    s = reference()
    s["run"] = {"energy": -1.0, "steps": [1, 2, 3], "cell": np.eye(3)}
    assert s["run/steps/1"] == 2
    s["run/energy"] = -2.0
    s["run/steps/3"] = 4  # append to a sequence
    del s["run/steps/0"]
    back = s["run"]
    assert back["energy"] == -2.0 and back["steps"] == [2, 3, 4]
    assert list(back) == ["energy", "steps", "cell"]
    with pytest.raises(InvalidKeyError):
        s["run/steps/7"] = 1


def test_partial_update_of_a_shared_part_raises_and_changes_nothing():
    shared = [1, 2]
    s = reference()
    s["obj"] = {"a": shared, "b": shared}
    with pytest.raises(SharedNodeError):
        s["obj/a"] = [3]
    with pytest.raises(SharedNodeError):
        del s["obj/a"]
    back = s["obj"]
    assert back == {"a": [1, 2], "b": [1, 2]} and back["a"] is back["b"]


def test_group_attrs_and_readonly_object_metadata():
    s = reference()
    g = s.create_group("g")
    g.attrs["unit"] = "eV"
    g["x"] = 1
    assert dict(s["g"].attrs) == {"unit": "eV"} and list(s["g"]) == ["x"]
    s["obj"] = {"a": 1}
    assert s.node("obj").type == "builtins.dict"


def test_registered_reference_backend_works_with_save_load_convert(tmp_path):
    from tinystore.cli import main
    from tinystore.storage.reference import SPEC
    from tinystore.storage.registry import backend_specs, register_backend

    registered = backend_specs().get("reference")
    register_backend(SPEC)  # (conftest.py registers it too, for the object suites)
    try:
        obj = {"x": [1, (2, 3)], "arr": np.arange(4.0), "self": None}
        obj["self"] = obj
        tinystore.save(obj, "reference://saved")
        back = tinystore.load("reference://saved")
        assert back["self"] is back and back["x"] == [1, (2, 3)]
        assert tinystore.load("reference://saved", path="x/1") == (2, 3)
        tinystore.save(5, "reference://saved", path="extra")  # only with path: a group
        dst = tmp_path / "copy.json"
        tinystore.save({"a": 1}, "reference://two")
        assert main(["convert", "reference://two", str(dst), "--quiet"]) == 0
        assert tinystore.load(dst) == {"a": 1}
        assert main(["convert", str(dst), "reference://three", "--quiet"]) == 0
        assert tinystore.load("reference://three") == {"a": 1}
        tinystore.delete("reference://two")
        with pytest.raises(FileNotFoundError):
            tinystore.load("reference://two")
    finally:
        if registered is None:
            backend_specs().pop("reference", None)


@pytest.mark.parametrize("backend", OBJECT_BACKENDS)
def test_dict_keys_with_the_reserved_prefix_are_still_stored(backend, tmp_path):
    # the object model knows them as keys it cannot use as child names (one rule: _paths)
    loc = location(backend, tmp_path)
    obj = {"@ts:meta": 1, "@ts:data": [2], "k": {"@ts:meta": (3,)}}
    tinystore.save(obj, loc)
    back = tinystore.load(loc)
    assert back == obj and list(back) == list(obj) and type(back["k"]["@ts:meta"]) is tuple
    tinystore.delete(loc)


def test_speed_capabilities_have_defaults_on_the_reference_backend():
    s = reference()
    with s.hold():
        s["a"] = 1
    with s.batch():
        s["b"] = (2, 3)
    s.flush()
    assert s.root_group() is s and s["a"] == 1 and s["b"] == (2, 3)
    s.replace_root(Tree({"t": "leaf"}, [5]))
    assert s.codec.load_root(s) == 5 and not s.is_group
    assert s.enclosing_object("") is s
