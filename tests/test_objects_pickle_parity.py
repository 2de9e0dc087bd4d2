"""Pickle parity: the reduce protocol, state and slots behave exactly as in ``pickle``.

Each case is loaded through tinystore on every backend and compared with
``pickle.loads(pickle.dumps(obj, 4))`` by :func:`assert_same_structure`:
the two results must be isomorphic (types, values, sharing), so any
difference in which methods run (``__setstate__``, ``append``/``extend``,
``__post_init__``, ``__new__`` arguments, ...) shows up.  Nothing may be
stored as pickle bytes.
"""

from __future__ import annotations

import copyreg
import pickle

import pytest
from conftest import ICECHUNK_S3, OBJECT_BACKENDS, S3_BACKENDS
from objects_cases import (
    REDUCE_EX_SINGLETON,
    SINGLETON,
    AppendOnly,
    BadReduce,
    CallCounting,
    Child,
    Container,
    CustomError,
    CycleThroughSetstate,
    DictLike,
    DictSlotsPair,
    DropsCache,
    Empty,
    FalsyState,
    FalsyStateNoSetstate,
    ListLike,
    MyDict,
    MyList,
    NewArgs,
    NewArgsEx,
    OddDictKeys,
    PairState,
    Point,
    Reduce2,
    Reduce3,
    ReduceEx,
    ReduceWithBoundMethod,
    Registered,
    SharedState,
    Slotted,
    SlottedChild,
    SlottedWithDict,
    StateNone,
    TupleState,
    Weakrefable,
    WithMeta,
    WithStateSetter,
    node_kinds,
    stored_tree,
)

import tinystore
from tinystore.errors import UnstorableError
from tinystore.objects.encode import PROTOCOL


@pytest.fixture(params=OBJECT_BACKENDS + S3_BACKENDS + ICECHUNK_S3)
def backend(request) -> str:
    """Every backend, the reference backend of the developer contract, and zarr on S3."""
    return request.param


def _build(cls, *args, **attrs):
    obj = cls(*args)
    for k, v in attrs.items():
        setattr(obj, k, v)
    return obj


def _list_like(n):
    obj = ListLike()
    obj.items.extend(range(n))
    return obj


def _append_only(n):
    obj = AppendOnly()
    obj.items.extend(range(n))
    return obj


def _dict_like():
    obj = DictLike()
    obj.pairs = [("b", 1), (2, [3]), ((4,), None)]
    obj.tag = "tagged"
    return obj


def _cycle_through_setstate():
    parent = CycleThroughSetstate()
    parent.children = [Child(parent), Child(parent)]
    return parent


def _new_args_cycle():
    obj = NewArgs([], "b")
    obj.a.append(obj)
    return obj


def _slotted_dict_name_clash():
    obj = SlottedWithDict("slot-x")
    obj.__dict__["x"] = "dict-x"  # same name in the slot and in __dict__
    return obj


CASES = {
    "reduce2": lambda: Reduce2([1], "b"),
    "reduce3_state": lambda: _build(Reduce3, [1], extra={"e": 1}),
    "reduce3_state_none_value": lambda: Reduce3("a"),
    "listitems_extend": lambda: _list_like(3),
    "listitems_empty": lambda: _list_like(0),
    "listitems_one": lambda: _list_like(1),
    "listitems_append_only": lambda: _append_only(3),
    "listitems_append_only_one": lambda: _append_only(1),
    "list_subclass_append_vs_extend": lambda: [CallCounting([1]), CallCounting([1, 2])],
    "list_subclass_batches": lambda: CallCounting(range(2_500)),
    "dictitems_in_order": _dict_like,
    "state_setter": lambda: WithStateSetter({"v": [1]}),
    "reduce_ex_protocol": lambda: ReduceEx(),
    "reduce_string": lambda: [SINGLETON, SINGLETON],
    "reduce_ex_string": lambda: REDUCE_EX_SINGLETON,
    "copyreg_dispatch_table": lambda: Registered(21),
    "getnewargs": lambda: NewArgs(1, [2]),
    "getnewargs_ex": lambda: NewArgsEx([1], b={"k": 2}),
    "getnewargs_cycle": _new_args_cycle,
    "tuple_state": lambda: TupleState(1, [2]),
    "tuple_state_looking_like_slots": lambda: TupleState({"a": 1}, {"b": 2}),
    "tuple_state_overlapping_dicts": lambda: TupleState({"a": 1}, {"a": 2}),
    "falsy_state_zero": lambda: FalsyState(0),
    "falsy_state_empty_tuple": lambda: FalsyState(()),
    "falsy_state_empty_dict": lambda: FalsyState({}),
    "falsy_state_false": lambda: FalsyState(False),
    "empty_dict_state_no_setstate": FalsyStateNoSetstate,
    "empty_instance_dict": Empty,
    "getstate_none": StateNone,
    "cycle_through_setstate": _cycle_through_setstate,
    "slots": lambda: Slotted(1, [2]),
    "slots_partly_unset": lambda: Slotted(1),
    "slots_with_dict": lambda: _build(SlottedWithDict, 1, extra=[2]),
    "slots_and_dict_same_name": _slotted_dict_name_clash,
    "slots_inherited_and_private": lambda: SlottedChild(1, 2, 3),
    "slots_weakref": lambda: Weakrefable([1]),
    "getstate_dict_slots_pair": lambda: DictSlotsPair("s", {"d": 1}),
    "getstate_drops_cache": lambda: DropsCache([1, 2, 3]),
    "reduce_classmethod_callable": lambda: ReduceWithBoundMethod([1]),
    "exception_with_attrs": lambda: CustomError("boom", 42),
    "builtin_exception": lambda: ValueError("bad value", [1]),
    "metaclass_instance_class": lambda: [WithMeta, WithMeta()],
    "nested_class_instance": lambda: Container.Nested([1]),
    "odd_instance_dict_keys": OddDictKeys,
    "instance_dict_non_str_key": lambda: _with_int_attr(Point(1, 2)),
    "plain_object": object,
    "list_subclass_recursive": lambda: _recursive_mylist(),
    "dict_subclass_with_int_keys": lambda: _build(MyDict, {1: "a", "b": [2]}, tag="t"),
}


def _with_int_attr(obj):
    obj.__dict__[7] = "seven"
    return obj


def _recursive_mylist():
    obj = MyList()
    obj.append(obj)
    obj.me = obj
    return obj


@pytest.mark.parametrize("factory", CASES.values(), ids=CASES.keys())
def test_matches_pickle(parity, factory):
    parity(factory())


@pytest.mark.parametrize("factory", CASES.values(), ids=CASES.keys())
def test_matches_pickle_when_shared(parity, factory):
    obj = factory()
    loaded = parity([obj, {"again": obj}])
    assert loaded[0] is loaded[1]["again"]


# -- explicit checks of what pickle promises ------------------------------------------------


def test_setstate_not_called_for_empty_instance(parity):
    loaded = parity(Empty())
    assert not hasattr(loaded, "setstate_called_with")


def test_setstate_called_for_falsy_state(parity):
    loaded = parity(FalsyState(0))
    assert loaded.setstate_called and loaded.value == 0


def test_tuple_state_goes_through_setstate(parity):
    loaded = parity(TupleState("x", "y"))
    assert loaded.restored and (loaded.x, loaded.y) == ("x", "y")


def test_reduce_ex_gets_the_protocol(parity):
    assert parity(ReduceEx()).protocol == PROTOCOL >= 2


def test_copyreg_dispatch_table_wins_over_reduce(parity):
    assert copyreg.dispatch_table[Registered] is not None
    loaded = parity(Registered(5))
    assert loaded.derived == 10


def test_newobj_passes_arguments_to_new(parity):
    loaded = parity(NewArgs("a", "b"))
    assert loaded.new_args == ("a", "b")
    loaded = parity(NewArgsEx(1, b=2))
    assert (loaded.a, loaded.b) == (1, 2)


def test_state_setter_used_instead_of_setstate(parity):
    assert parity(WithStateSetter(3)).via_setter == 3


def test_reduce_by_name_returns_the_global(parity):
    assert parity(SINGLETON) is SINGLETON
    assert parity(REDUCE_EX_SINGLETON) is REDUCE_EX_SINGLETON


def test_cycle_through_setstate_closes(parity):
    loaded = parity(_cycle_through_setstate())
    assert all(child.parent is loaded for child in loaded.children)


def test_recursive_newobj_arguments(parity):
    loaded = parity(_new_args_cycle())
    assert loaded.a[0] is loaded


def test_slots_unset_stay_unset(parity):
    loaded = parity(Slotted(1))
    assert loaded.x == 1 and not hasattr(loaded, "y")


def test_inherited_and_private_slots(parity):
    loaded = parity(SlottedChild(1, 2, 3))
    assert (loaded.x, loaded.y, loaded.z, loaded._SlottedChild__private) == (1, 2, 3, -3)


def test_getstate_can_drop_attributes(parity):
    loaded = parity(DropsCache([1, 2]))
    assert loaded.cache == 3


def test_exception_keeps_args_and_attributes(parity):
    loaded = parity(CustomError("boom", 42))
    assert loaded.args == ("boom", 42) and loaded.code == 42


def test_listitems_fill_like_pickle(parity):
    loaded = parity([CallCounting(), CallCounting([1]), CallCounting(range(1001))])
    calls = [getattr(x, "calls", []) for x in loaded]
    assert calls == [[], ["extend(1)"], ["extend(1000)", "extend(1)"]]


def test_listitems_empty_calls_nothing(parity):
    loaded = parity(_list_like(0))
    assert loaded.extended == 0


def test_dictitems_keep_order(parity):
    loaded = parity(_dict_like())
    assert loaded.pairs == [("b", 1), (2, [3]), ((4,), None)] and loaded.tag == "tagged"


def test_state_dict_shared_with_others_stays_shared(parity):
    params = {"cutoff": 4.5}
    for obj in ([SharedState(params), params], [params, SharedState(params)]):
        loaded = parity(obj)
        a, b = loaded
        assert (a if type(a) is dict else a.params) is (b if type(b) is dict else b.params)
    loaded = parity([SharedState(params), SharedState(params)])
    assert loaded[0].params is loaded[1].params


def test_state_dict_containing_its_owner(parity):
    params = {}
    obj = SharedState(params)
    params["owner"] = obj
    params["self"] = params
    loaded = parity(obj)
    assert loaded.params["owner"] is loaded and loaded.params["self"] is loaded.params


def test_custom_pair_state_keeps_identity(parity):
    first, second = {"a": 1}, {"b": 2}
    loaded = parity([PairState(first, second), first, second])
    assert loaded[0].first is loaded[1] and loaded[0].second is loaded[2]


def test_instance_dict_referenced_elsewhere(parity):
    p = Point(1, 2)
    p.d = p.__dict__
    loaded = parity([p, p.__dict__])
    assert loaded[0].d is loaded[1]


@pytest.mark.parametrize(
    "value",
    [
        (),
        (BadReduce,),
        (len, (), None, None, None, None, None),
        ("not callable", ()),
        (len, [1]),
        5,
    ],
    ids=["empty", "one_item", "seven_items", "not_callable", "args_not_tuple", "not_a_tuple"],
)
def test_invalid_reduce_values_are_refused_like_pickle(filename, value):
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(BadReduce(value))
    with pytest.raises(UnstorableError, match=r"at x\[1\]"):
        tinystore.save({"x": [1, BadReduce(value)]}, filename)


# -- browsing: "class plus state" objects are laid out attribute by attribute ----------


def test_plain_objects_have_one_child_per_attribute(filename):
    tinystore.save({"p": Point(1, [2]), "s": Slotted(3, 4), "c": DropsCache([5])}, filename)
    assert tinystore.load(filename, path="p/y") == [2]
    assert tinystore.load(filename, path="s/y") == 4
    assert tinystore.load(filename, path="c/values") == [5]
    assert node_kinds(stored_tree(filename))["reduce"] == 0


def test_custom_setstate_objects_are_browsable(filename):
    shared = {"k": 1}
    tinystore.save([SharedState(shared), shared], filename)
    assert tinystore.load(filename, path="0/k") == 1
    loaded = tinystore.load(filename)
    assert loaded[0].params is loaded[1]


def test_per_call_and_process_reducers(filename):
    tinystore.save([Point(1, 2)], filename, reducers={Point: lambda p: (Reduce2, (p.x, p.y))})
    loaded = tinystore.load(filename)
    assert type(loaded[0]) is Reduce2 and (loaded[0].a, loaded[0].b) == (1, 2)
    tinystore.register_reducer(Point, lambda p: (Point, (p.y, p.x)))
    try:
        tinystore.save(Point(1, 2), filename)
    finally:
        tinystore.register_reducer(Point, None)
    loaded = tinystore.load(filename)
    assert (loaded.x, loaded.y) == (2, 1)
    tinystore.save(Point(1, 2), filename)
    assert tinystore.load(filename).x == 1
