"""What a user installs is complete: every module, the metadata, the command.

CI installs the project non-editable and runs this suite from outside the
checkout, so ``tinystore`` here is the installed copy; these tests compare it
with the source tree and build a wheel from the checkout.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tinystore

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCE = CHECKOUT / "tinystore"
INSTALLED = Path(tinystore.__file__).resolve().parent


def _sources() -> set[str]:
    files = {p.relative_to(SOURCE).as_posix() for p in SOURCE.rglob("*.py")}
    return files | {"py.typed"}


def _installed_from_checkout() -> bool:
    return INSTALLED == SOURCE.resolve()


def test_every_package_folder_is_a_package():
    folders = {p.parent for p in SOURCE.rglob("*.py")} - {SOURCE}
    missing = sorted(
        str(f.relative_to(CHECKOUT)) for f in folders if not (f / "__init__.py").exists()
    )
    assert not missing, f"folders without __init__.py are left out of the wheel: {missing}"


def test_the_installed_copy_has_every_module():
    if _installed_from_checkout():
        pytest.skip("tinystore is imported from the checkout itself (not installed)")
    installed = {p.relative_to(INSTALLED).as_posix() for p in INSTALLED.rglob("*.py")}
    installed |= {"py.typed"} if (INSTALLED / "py.typed").exists() else set()
    assert _sources() - installed == set()


def test_every_module_imports_in_a_fresh_process(tmp_path):
    names = [m.name for m in pkgutil.walk_packages(tinystore.__path__, "tinystore.")]
    names.remove("tinystore.__main__")  # runs the command line; tested on its own
    assert "tinystore.objects.encode" in names and "tinystore.storage.hdf5" in names
    code = "import importlib, sys\nfor n in sys.argv[1:]: importlib.import_module(n)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *names],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_the_wheel_has_every_module(tmp_path):
    """Build a wheel from the checkout, as ``pip install .`` does, and list it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(CHECKOUT),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("tinystore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {n.removeprefix("tinystore/") for n in names if n.startswith("tinystore/")}
    assert _sources() - packaged == set()
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith("/LICENSE") for n in names)


def test_version_is_the_distribution_version():
    try:
        dist = importlib.metadata.version("tinystore")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tinystore is not installed (run from a checkout)")
    assert tinystore.__version__ == dist
    assert tinystore.__version__.count(".") >= 2


def test_metadata_declares_license_pythons_and_extras():
    try:
        meta = importlib.metadata.metadata("tinystore")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tinystore is not installed (run from a checkout)")
    assert meta.get("License-Expression", meta.get("License")) == "BSD-3-Clause"
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers
    requires = meta.get_all("Requires-Dist")
    (filelock,) = [r for r in requires if r.startswith("filelock")]
    assert 'sys_platform == "win32"' in filelock
    extras = set(meta.get_all("Provides-Extra"))
    assert {"test", "all"} <= extras


def test_license_file_matches_the_declared_license():
    text = (CHECKOUT / "LICENSE").read_text()
    assert "BSD 3-Clause License" in text
    assert "license = BSD-3-Clause" in (CHECKOUT / "setup.cfg").read_text()


def test_console_command_prints_the_version(tmp_path):
    command = Path(sys.executable).parent / "tinystore"
    if not command.exists():
        pytest.skip("the tinystore command is installed by `pip install .`")
    result = subprocess.run(
        [str(command), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tinystore {tinystore.__version__}"


def test_module_entry_point_prints_the_version(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tinystore", "--version"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tinystore {tinystore.__version__}"


def test_no_test_puts_the_checkout_on_the_path_of_a_child():
    """Child processes get their PYTHONPATH from helpers/procs.py only: a test
    that named the checkout there would test the source tree, not the package."""
    offenders = []
    for path in (CHECKOUT / "tests").rglob("*.py"):
        if path.name in ("procs.py", "test_packaging.py"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "PYTHONPATH" in line and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(CHECKOUT)}:{number}")
    assert offenders == [], "use procs.child_env() instead of setting PYTHONPATH"
