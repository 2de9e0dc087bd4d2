"""Objects from real scientific libraries (issue 13, item 9): an optional tier.

Each case builds an object the way a user of that library would (fitted,
with attributes, constraints, units, calculator results), saves and loads
it on every backend, and checks it three ways: isomorphic to pickle's copy
(types, values, sharing: :func:`objects_cases.assert_same_structure`),
equal to the original the library's own way (``Dataset.identical``,
``graphs_equal``, predictions, ...), and stored without pickle bytes.
A library that is not installed skips its cases; ``pip install
".[test-ecosystem]"`` installs them all.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from objects_cases import assert_no_pickle, assert_same_structure

import tinystore


def _ase_atoms():
    ase = pytest.importorskip("ase")
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixAtoms, FixBondLength, FixCartesian

    atoms = ase.Atoms(
        "H2OCu",
        positions=[[0, 0, 0], [0, 0, 0.96], [0.93, 0, -0.24], [2, 2, 2]],
        cell=[6, 6, 7],
        pbc=[True, True, False],
    )
    atoms.set_constraint([FixAtoms(indices=[3]), FixBondLength(0, 1), FixCartesian(2, [1, 0, 1])])
    atoms.set_initial_magnetic_moments([0, 0, 0, 0.5])
    atoms.info["label"] = "water on Cu"
    atoms.calc = SinglePointCalculator(
        atoms, energy=-14.25, forces=np.arange(12.0).reshape(4, 3), stress=np.zeros(6)
    )
    return atoms


def _same_atoms(a, b):
    assert a == b  # positions, numbers, cell, pbc
    assert a.info == b.info
    assert np.array_equal(a.get_initial_magnetic_moments(), b.get_initial_magnetic_moments())
    assert [c.todict() for c in a.constraints] == [c.todict() for c in b.constraints]
    assert a.get_potential_energy() == b.get_potential_energy()
    assert np.array_equal(
        a.get_forces(apply_constraint=False), b.get_forces(apply_constraint=False)
    )
    assert np.array_equal(a.get_forces(), b.get_forces())  # the constraints act on loaded atoms
    assert np.array_equal(a.calc.results["stress"], b.calc.results["stress"])


def _scipy_sparse():
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    return [
        sparse.random(30, 40, density=0.1, format="csr", random_state=rng),
        sparse.random(5, 6, density=0.3, format="csc", dtype=np.float32, random_state=rng),
        sparse.coo_matrix(([1, 2, 3], ([0, 1, 2], [2, 1, 0])), shape=(3, 3)),
        sparse.lil_matrix(np.eye(4)),
        sparse.dok_matrix(np.diag([1.0, 0, 2])),
        sparse.bsr_matrix(np.kron(np.eye(2), np.ones((2, 2)))),
        sparse.dia_matrix(np.diag([1, 2, 3])),
        sparse.csr_array(np.array([[0, 1j], [2, 0]])),
    ]


def _same_sparse(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y) and x.format == y.format
        assert x.dtype == y.dtype and x.shape == y.shape
        assert (x != y).nnz == 0


def _scipy_interpolators():
    pytest.importorskip("scipy")
    from scipy.interpolate import (
        CubicSpline,
        PchipInterpolator,
        RegularGridInterpolator,
        UnivariateSpline,
        interp1d,
    )

    x = np.linspace(0, 2, 12)
    return {
        "interp1d": interp1d(x, np.cos(x), kind="quadratic"),
        "cubic": CubicSpline(x, np.sin(x), bc_type="natural"),
        "pchip": PchipInterpolator(x, x**3),
        "spline": UnivariateSpline(x, np.exp(-x), s=0.01),
        "grid": RegularGridInterpolator((x, x[:5]), np.outer(x, x[:5]), method="linear"),
    }


def _same_interpolators(a, b):
    pts = np.linspace(0.1, 1.9, 7)
    for name in a:
        assert type(a[name]) is type(b[name])
        if name == "grid":
            grid = np.stack([pts, np.full(7, 0.5)], axis=-1)
            assert np.array_equal(a[name](grid), b[name](grid))
        else:
            assert np.array_equal(a[name](pts), b[name](pts))


def _xarray_dataset():
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(1)
    return xr.Dataset(
        {
            "temperature": (("time", "site"), rng.random((4, 3)), {"units": "K"}),
            "flag": ("site", np.array([True, False, True])),
            "label": ("site", np.array(["a", "bb", "ccc"])),
        },
        coords={
            "time": np.array(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"], "M8[ns]"),
            "site": [10, 20, 30],
            "height": ("site", [1.5, 2.5, 3.5]),
        },
        attrs={"title": "test", "version": 2},
    )


def _same_dataset(a, b):
    assert a.identical(b)


def _astropy_objects():
    units = pytest.importorskip("astropy.units")
    from astropy.table import QTable, Table
    from astropy.time import Time

    table = Table({"name": ["a", "b"], "mass": [1.0, 2.5] * units.kg, "n": [1, 2]}, meta={"k": 1})
    return {
        "quantity": np.arange(4.0) * units.m / units.s,
        "scalar": 3.0 * units.eV,
        "table": table,
        "qtable": QTable({"d": [1, 2] * units.pc, "f": [0.5, 0.25]}),
        "time": Time(["2020-01-01T00:00:00", "2021-06-01T12:00:00.5"], scale="tai"),
        "time_jd": Time(2451545.0, format="jd", scale="tt"),
    }


def _same_astropy(a, b):
    for key in ("quantity", "scalar"):
        assert a[key].unit == b[key].unit and np.array_equal(a[key].value, b[key].value)
    for key in ("table", "qtable"):
        assert a[key].pformat() == b[key].pformat() and a[key].meta == b[key].meta
        assert [c.unit for c in a[key].itercols()] == [c.unit for c in b[key].itercols()]
    for key in ("time", "time_jd"):
        assert a[key].scale == b[key].scale and a[key].format == b[key].format
        assert np.all(a[key] == b[key])


def _sympy_expressions():
    sympy = pytest.importorskip("sympy")
    x, y = sympy.symbols("x y", real=True)
    n = sympy.Symbol("n", integer=True, positive=True)
    return {
        "expr": sympy.sin(x) ** 2 + sympy.Rational(1, 3) * y - sympy.exp(-x * y),
        "integral": sympy.Integral(sympy.cos(n * x), (x, 0, sympy.pi)),
        "equation": sympy.Eq(x**2 - 2, 0),
        "matrix": sympy.Matrix([[x, 1], [sympy.sqrt(2), y]]),
        "poly": sympy.Poly(x**3 - 2 * x + 1, x),
        "piecewise": sympy.Piecewise((x, x > 0), (-x, True)),
        "numbers": [sympy.Float("1.25", 30), sympy.oo, sympy.zoo, sympy.I, sympy.nan],
    }


def _same_sympy(a, b):
    for key in a:
        assert a[key] == b[key] or (key == "numbers" and str(a[key]) == str(b[key]))
    x = sorted(a["expr"].free_symbols, key=str)[0]
    assert sorted(b["expr"].free_symbols, key=str)[0] == x  # assumptions kept: real=True
    assert b["integral"].doit() == a["integral"].doit()


def _sklearn_pipeline():
    pytest.importorskip("sklearn")
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.RandomState(0)
    X = rng.rand(40, 4)
    X[:, 3] = rng.randint(0, 3, 40)
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    pre = ColumnTransformer([("num", StandardScaler(), [0, 1, 2]), ("cat", OneHotEncoder(), [3])])
    models = {
        "logistic": Pipeline([("pre", pre), ("pca", PCA(3)), ("clf", LogisticRegression())]),
        "forest": make_pipeline(StandardScaler(), RandomForestClassifier(5, random_state=0)),
    }
    for model in models.values():
        model.fit(X, y)
    models["X"] = X
    return models


def _same_models(a, b):
    X = a["X"]
    for key in ("logistic", "forest"):
        assert np.array_equal(a[key].predict(X), b[key].predict(X))
        assert np.array_equal(a[key].predict_proba(X), b[key].predict_proba(X))
        assert repr(a[key].get_params()) == repr(b[key].get_params())


def _networkx_graphs():
    nx = pytest.importorskip("networkx")
    g = nx.karate_club_graph()
    g.graph["name"] = "karate"
    nx.set_node_attributes(g, {0: [1, 2], 33: {"role": "admin"}}, "tags")
    nx.set_edge_attributes(g, {(0, 1): 2.5}, "weight")
    d = nx.MultiDiGraph()
    d.add_edge("a", "b", key="k1", w=1)
    d.add_edge("a", "b", key="k2", w=2)
    d.add_node(("tuple", 1), pos=(0.5, 0.5))
    return {"graph": g, "multi": d, "digraph": nx.gn_graph(15, seed=3)}


def _same_graphs(a, b):
    nx = pytest.importorskip("networkx")
    for key in a:
        assert type(a[key]) is type(b[key])
        assert nx.utils.graphs_equal(a[key], b[key])


def _pint_quantities():
    pint = pytest.importorskip("pint")
    ureg = pint.get_application_registry()
    return {
        "scalar": ureg.Quantity(3.5, "m/s"),
        "array": ureg.Quantity(np.arange(3.0), "kg * m**2"),
        "offset": ureg.Quantity(21.0, "degC"),
        "unit": ureg.Unit("N"),
    }


def _same_pint(a, b):
    for key in a:
        assert type(a[key]) is type(b[key])
        assert np.all(a[key] == b[key])
    assert b["scalar"].to("km/h").magnitude == pytest.approx(12.6)


CASES = {
    "ase_atoms": (_ase_atoms, _same_atoms),
    "scipy_sparse": (_scipy_sparse, _same_sparse),
    "scipy_interpolators": (_scipy_interpolators, _same_interpolators),
    "xarray_dataset": (_xarray_dataset, _same_dataset),
    "astropy": (_astropy_objects, _same_astropy),
    "sympy": (_sympy_expressions, _same_sympy),
    "sklearn_pipeline": (_sklearn_pipeline, _same_models),
    "networkx": (_networkx_graphs, _same_graphs),
    "pint": (_pint_quantities, _same_pint),
}


@pytest.mark.parametrize("build, same", CASES.values(), ids=CASES.keys())
def test_library_objects(roundtrip, filename, build, same):
    obj = build()
    expected = pickle.loads(pickle.dumps(obj, protocol=4))
    loaded = roundtrip(obj)
    assert_same_structure(expected, loaded, new=False)
    same(obj, loaded)
    assert_no_pickle(filename)


#: case -> (a path inside the stored object, the part of the original found there)
PARTS = {
    "ase_atoms": ("arrays/positions", lambda o: o.positions),
    "scipy_sparse": ("0/indptr", lambda o: o[0].indptr),
    "scipy_interpolators": ("cubic/_c", lambda o: o["cubic"].c),
    "xarray_dataset": ("_attrs", lambda o: o.attrs),
    "astropy": ("scalar/s/1/_unit", lambda o: o["scalar"].unit),
    "sympy": ("matrix", lambda o: o["matrix"]),
    "sklearn_pipeline": ("logistic/steps/2/1/coef_", lambda o: o["logistic"][-1].coef_),
    "networkx": ("graph/graph", lambda o: o["graph"].graph),
    "pint": ("array/a/1", lambda o: o["array"].magnitude),
}


@pytest.mark.parametrize("name", CASES)
def test_library_objects_browsable(filename, name):
    """Saved whole, each object is nodes that can be browsed and loaded part by part."""
    build, same = CASES[name]
    obj = build()
    tinystore.save({"obj": obj}, filename)
    with tinystore.open(filename, "r") as s:
        assert s.node("obj").kind not in ("cloudpickle", "leaf")
        assert s.info()["fallbacks"] == 0
    path, original = PARTS[name]
    expected = original(obj)
    part = tinystore.load(filename, path=f"obj/{path}")
    assert type(part) is type(expected)
    if isinstance(expected, np.ndarray):
        assert np.array_equal(part, expected)
    else:
        assert part == expected
    same(obj, tinystore.load(filename, path="obj"))


def test_sympy_undefined_function(roundtrip):
    sympy = pytest.importorskip("sympy")
    x = sympy.Symbol("x")
    expr = sympy.Function("f")(x).diff(x) + sympy.Function("g")(x)
    loaded = roundtrip(expr)
    assert loaded == pickle.loads(pickle.dumps(expr, 4))


def test_sympy_lambdified_function_with_the_fallback(roundtrip, filename):
    # a generated function: only the fallback stores it; the expression stays nodes
    sympy = pytest.importorskip("sympy")
    cloudpickle = pytest.importorskip("cloudpickle")
    x = sympy.Symbol("x")
    expr = sympy.cos(x) * x
    obj = {"expr": expr, "f": sympy.lambdify(x, expr, "math")}
    reference = cloudpickle.loads(cloudpickle.dumps(obj))
    loaded = roundtrip(obj, cloudpickle_fallback=True)
    assert loaded["f"](0.5) == reference["f"](0.5) == obj["f"](0.5)
    assert loaded["expr"] == expr
    with tinystore.open(filename, "r") as s:
        assert s.info()["fallbacks"] == 1
        assert s.node("expr").kind != "cloudpickle"
