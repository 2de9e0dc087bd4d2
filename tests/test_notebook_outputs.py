"""What the notebooks show: a plot of the stored runs, a version warning, refusals.

The notebooks run in a real Jupyter kernel (nbclient), which imports the
installed ``tinystore`` (CI installs the package; locally, install it or
put it on ``PYTHONPATH``).  Committed notebooks carry no outputs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def _kernel_imports_tinystore(tmp_path) -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import tinystore"], cwd=tmp_path, env=dict(os.environ)
    )
    return probe.returncode == 0


@pytest.fixture
def execute(tmp_path):
    for module in ("nbclient", "nbformat", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is installed by the test extra")
    if not _kernel_imports_tinystore(tmp_path):
        pytest.skip("tinystore is not installed (CI installs it before running the tests)")
    import nbclient
    import nbformat

    def run(name: str) -> list:
        book = nbformat.read(NOTEBOOKS / name, as_version=4)
        client = nbclient.NotebookClient(
            book, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
        )
        client.execute()
        return [output for cell in book.cells for output in cell.get("outputs", [])]

    return run


def _texts(outputs: list, stream: str) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("name") == stream)


def test_the_project_notebook_plots_the_stored_runs(execute):
    outputs = execute("02_hierarchical_project.ipynb")
    assert any("image/png" in o.get("data", {}) for o in outputs)
    stdout = _texts(outputs, "stdout")
    assert "2000 rows x 4 columns" in stdout and "column 'energy_eV'  float64" in stdout


def test_the_archiving_notebook_shows_a_warning_and_refusals(execute):
    outputs = execute("03_archiving.ipynb")
    stderr = _texts(outputs, "stderr")
    assert (
        "VersionWarning" in stderr and "labtools: version stored '1.0', installed '2.0'" in stderr
    )
    stdout = _texts(outputs, "stdout")
    assert "refused: '/' was written by other code versions: labtools" in stdout
    assert "refused: safe loading refuses to import posix:system" in stdout or (
        "refused: safe loading refuses to import nt:system" in stdout
    )


def test_committed_notebooks_have_no_outputs():
    import json

    for path in NOTEBOOKS.glob("*.ipynb"):
        book = json.loads(path.read_text(encoding="utf-8"))
        for cell in book["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path.name
