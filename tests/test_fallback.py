"""The cloudpickle fallback at the right granularity (issue 13, item 7).

With ``cloudpickle_fallback=True``, the parts of one save that cannot be
decomposed are pickled together (one cloudpickle stream), so they keep what
they share, as one ``cloudpickle.dumps`` call would; a part that cloudpickle
cannot store either makes the smallest enclosing object that it can store
the fallback part.  ``cloudpickle`` itself is the reference: every case
checks that ``cloudpickle.loads(cloudpickle.dumps(obj))`` behaves the same.
Every test runs on every backend.
"""

from __future__ import annotations

import weakref

import cloudpickle
import pytest
from objects_cases import Point, assert_same_structure, node_kinds, stored_tree

import tinystore
from tinystore.errors import SharedNodeError, UnsafeLoadError, UnstorableError

COUNTER = 0


def _writer_and_reader():
    """Two local functions (cloudpickle pickles them by value) sharing a global."""

    def write(value):
        global COUNTER
        COUNTER = value

    def read():
        return COUNTER

    return write, read


def _reference(obj):
    return cloudpickle.loads(cloudpickle.dumps(obj))


def _kind(filename, path):
    with tinystore.open(filename, "r") as s:
        return s.node(path).kind


def _fallbacks(filename):
    with tinystore.open(filename, "r") as s:
        return s.info()["fallbacks"]


# -- one stream per save: the parts share what they share ----------------------------------


def test_functions_saved_together_share_their_globals(roundtrip, filename):
    write, read = _writer_and_reader()
    obj = {"write": write, "numbers": [1, 2, 3], "read": read}
    ref = _reference(obj)
    ref["write"](7)
    assert ref["read"]() == 7  # cloudpickle: one globals dict for both
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    assert loaded["read"]() == 0
    loaded["write"](5)
    assert loaded["read"]() == 5
    assert loaded["write"].__globals__ is loaded["read"].__globals__
    assert COUNTER == 0  # the saved functions' own module is untouched
    assert _fallbacks(filename) == 2
    assert _kind(filename, "numbers") == "list"  # the rest stays browsable


def test_functions_in_different_containers_share_their_globals(roundtrip):
    write, read = _writer_and_reader()
    loaded = roundtrip({"a": [1, {"w": write}], "b": (read, "x")}, cloudpickle_fallback=True)
    loaded["a"][1]["w"](3)
    assert loaded["b"][0]() == 3


def test_closures_over_one_list_share_it(roundtrip):
    acc = []
    obj = [lambda x: acc.append(x), lambda: len(acc)]
    ref = _reference(obj)
    ref[0](1)
    assert ref[1]() == 1
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    loaded[0](1)
    loaded[0](2)
    assert loaded[1]() == 2


@pytest.mark.parametrize("data_first", [True, False], ids=["written-before", "written-after"])
def test_object_shared_by_a_part_and_the_tree_stays_one(roundtrip, filename, data_first):
    data = [1, 2, Point(3, 4)]
    func = lambda: data  # noqa: E731
    obj = {"data": data, "f": func} if data_first else {"f": func, "data": data}
    ref = _reference(obj)
    assert ref["f"]() is ref["data"]
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    assert loaded["f"]() is loaded["data"]
    assert_same_structure(data, loaded["data"])
    # written before the part: decomposed, the part refers to it by anchor;
    # met after the part that holds it: stored in the same stream
    assert _kind(filename, "data") == ("list" if data_first else "cloudpickle")
    assert _fallbacks(filename) == (1 if data_first else 2)


def test_state_dict_shared_with_a_part(roundtrip):
    p = Point(1, 2)
    obj = [p, lambda: vars(p)]
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    assert loaded[1]() is vars(loaded[0])


def test_a_part_loaded_alone_loads_the_parts_before_it(filename):
    write, read = _writer_and_reader()
    tinystore.save({"w": write, "more": [1, {"r": read}]}, filename, cloudpickle_fallback=True)
    read2 = tinystore.load(filename, path="more/1/r")
    assert read2() == 0
    with tinystore.open(filename, "r") as s:
        part = s["more/1"]
        assert part["r"]() == 0


def test_a_part_others_depend_on_cannot_be_replaced_alone(filename):
    write, read = _writer_and_reader()
    with tinystore.open(filename, "w", cloudpickle_fallback=True) as s:
        s["x"] = {"w": write, "r": read, "n": 1}
    with tinystore.open(filename, "a") as s:
        with pytest.raises(SharedNodeError):
            s["x/w"] = 2  # the reader's part is pickled after it, in one stream
        s["x/r"] = 3  # nothing depends on the last part
        s["x/n"] = 4
    loaded = tinystore.load(filename, path="x")
    assert loaded["r"] == 3 and loaded["n"] == 4
    loaded["w"](9)
    assert loaded["w"].__globals__["COUNTER"] == 9


def test_safe_loading_refuses_the_parts(filename):
    write, read = _writer_and_reader()
    tinystore.save({"w": write, "r": read}, filename, cloudpickle_fallback=True)
    with pytest.raises(UnsafeLoadError):
        tinystore.load(filename, safe=True)
    with pytest.raises(UnsafeLoadError):
        tinystore.load(filename, path="r", safe=True)


# -- falling back on the smallest enclosing object cloudpickle can store --------------------


def test_weakset_is_stored_whole_and_keeps_its_items(roundtrip, filename):
    items = [Point(1, 2), Point(3, 4)]
    obj = {"items": items, "weak": weakref.WeakSet(items)}
    ref = _reference(obj)
    assert {id(x) for x in ref["weak"]} == {id(x) for x in ref["items"]}
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    assert type(loaded["weak"]) is weakref.WeakSet
    assert {id(x) for x in loaded["weak"]} == {id(x) for x in loaded["items"]}
    assert_same_structure(items, loaded["items"])
    assert _kind(filename, "weak") == "cloudpickle"
    assert _kind(filename, "items") == "list" and _kind(filename, "items/0") == "object"
    assert _fallbacks(filename) == 1


def test_only_the_weakset_falls_back_deep_inside(roundtrip, filename):
    obj = {"runs": [1, {"w": weakref.WeakSet([Point, int]), "n": [2]}]}
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    assert set(loaded["runs"][1]["w"]) == {Point, int} == set(_reference(obj)["runs"][1]["w"])
    assert _kind(filename, "runs/1") == "dict" and _kind(filename, "runs/1/n") == "list"
    assert _kind(filename, "runs/1/w") == "cloudpickle"
    kinds = node_kinds(stored_tree(filename))
    assert kinds["cloudpickle"] == 1, kinds


def test_up_to_the_whole_value(roundtrip, filename):
    obj = weakref.WeakSet([Point, int])
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    assert type(loaded) is weakref.WeakSet and set(loaded) == {Point, int}
    assert _kind(filename, "") == "cloudpickle"
    assert _fallbacks(filename) == 1


class Box:
    def __init__(self, items):
        self.items = items


def test_what_was_written_inside_the_enclosing_object_is_forgotten(roundtrip, filename):
    # tinystore is told to store a Box through a reduce whose arguments hold a
    # weakref (cloudpickle, which ignores that reducer, stores the Box as it is):
    # the shared list, written inside the Box, must not be referred to from "again"
    shared = [1, 2]
    box = Box(shared)
    reducers = {Box: lambda b: (Box, (b.items, weakref.ref(Box)))}
    obj = {"box": box, "again": shared, "tail": [shared]}
    ref = _reference(obj)
    assert ref["again"] is ref["box"].items
    loaded = roundtrip(obj, cloudpickle_fallback=True, reducers=reducers)
    assert type(loaded["box"]) is Box
    assert loaded["again"] is loaded["box"].items is loaded["tail"][0]
    assert loaded["again"] == [1, 2]
    assert _kind(filename, "box") == "cloudpickle"


def test_without_the_fallback_the_error_names_the_part(filename):
    obj = {"items": [1], "weak": weakref.WeakSet([Point])}
    with pytest.raises(UnstorableError, match=r"weak/s/data\[0\]"):
        tinystore.save(obj, filename)


def test_nothing_cloudpickle_can_store_names_the_part(filename):
    obj = {"a": [1, weakref.ref(Point)]}
    with pytest.raises(UnstorableError, match=r"a\[1\], not even with cloudpickle"):
        tinystore.save(obj, filename, cloudpickle_fallback=True)
    with pytest.raises(TypeError):  # what cloudpickle says of it
        cloudpickle.dumps(obj)


def test_a_single_pickle_node_of_earlier_files_still_loads(filename):
    # before the stream, each part was one standalone pickle with no ``seq``
    from tinystore.storage.base import Tree

    blob = cloudpickle.dumps({"v": [1, 2]})
    with tinystore.open(filename, "w") as s:
        s["x"] = Tree({"t": "list"}, [1, Tree({"t": "cloudpickle"}, [blob])])
    assert tinystore.load(filename, path="x") == [1, {"v": [1, 2]}]


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"seq": 1, "st": 4, "prev": 4}, "parts stored before it"),
        ({"seq": "1", "st": 4}, "damaged"),
        ({"seq": 0}, "damaged"),
    ],
    ids=["missing-earlier-part", "bad-seq", "no-stream"],
)
def test_damaged_parts_raise_unloadable(filename, attrs, message):
    from tinystore.errors import UnloadableError
    from tinystore.storage.base import Tree

    blob = cloudpickle.dumps([1])
    with tinystore.open(filename, "w") as s:
        s["x"] = Tree({"t": "list"}, [Tree({"t": "cloudpickle", "id": 5, **attrs}, [blob])])
    with pytest.raises(UnloadableError, match=message):
        tinystore.load(filename, path="x")


def test_a_part_referring_to_a_missing_object_raises_unloadable(filename):
    from tinystore.errors import UnloadableError
    from tinystore.objects.codec import ObjectCodec

    data = [1, 2]
    tinystore.save({"data": data, "f": lambda: data}, filename, cloudpickle_fallback=True)
    with tinystore.open(filename, "r") as s:
        tree = s.read_tree()
    assert tree.children["data"].attrs.get("id") is not None
    tree.children["data"] = [1, 2]  # the anchor the part refers to is gone
    with pytest.raises(UnloadableError, match="cannot be resolved"):
        ObjectCodec().decode(tree)


def test_too_deep_for_cloudpickle_stops_at_once(filename):
    # every object around a part that is too deep for cloudpickle is deeper still:
    # the fallback gives up there instead of trying each of them
    head = weakref.ref(Point)
    for _ in range(5000):
        head = [head]
    with pytest.raises(
        UnstorableError, match=r"^cannot store ReferenceType at \[0\]\[0\].*not even"
    ):
        tinystore.save(head, filename, cloudpickle_fallback=True)


def test_an_object_a_part_refers_to_cannot_be_replaced_alone(filename):
    data = [1, 2]
    with tinystore.open(filename, "w", cloudpickle_fallback=True) as s:
        s["x"] = {"data": data, "f": lambda: data}
    with tinystore.open(filename, "a") as s:
        with pytest.raises(SharedNodeError, match="x/f"):
            s["x/data"] = [3]  # the part would be left pointing at nothing
    loaded = tinystore.load(filename, path="x")
    assert loaded["f"]() is loaded["data"] and loaded["data"] == [1, 2]
