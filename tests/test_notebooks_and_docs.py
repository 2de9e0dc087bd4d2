"""The notebooks run in a real Jupyter kernel, and the docs build without warnings.

Both use the tinystore the tests import (the installed package in CI), never
the checkout by assumption (see ``helpers/procs.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


def _execute(notebook: Path, workdir: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    book = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    # MPLBACKEND: the kernel's inline backend makes the figures; nothing opens a window
    client.execute(env=child_env(MPLBACKEND="module://matplotlib_inline.backend_inline"))
    return book


def _outputs(book) -> list[dict]:
    return [out for cell in book.cells if cell.cell_type == "code" for out in cell.outputs]


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, object]:
    """Every notebook, executed top to bottom in a fresh kernel (once per run)."""
    return {nb.stem: _execute(nb, tmp_path_factory.mktemp(nb.stem)) for nb in NOTEBOOKS}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_in_a_kernel(notebook, executed):
    book = executed[notebook.stem]
    errors = [out for out in _outputs(book) if out.output_type == "error"]
    assert not errors, errors
    code_cells = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code_cells and all(cell.execution_count for cell in code_cells)


def test_a_notebook_shows_a_plot(executed):
    images = [
        name
        for name, book in executed.items()
        for out in _outputs(book)
        if "image/png" in out.get("data", {})
    ]
    assert images, "no notebook output an image"


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="sphinx is installed by the test extra")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(ROOT / "docs"),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "html" / "index.html").exists()


def _stream(book, name: str) -> str:
    return "".join(out.get("text", "") for out in _outputs(book) if out.get("name") == name)


def test_the_project_notebook_plots_the_stored_runs(executed):
    book = executed["02_hierarchical_project"]
    assert any("image/png" in out.get("data", {}) for out in _outputs(book))
    stdout = _stream(book, "stdout")
    assert "2000 rows x 4 columns" in stdout and "column 'energy_eV'  float64" in stdout


def test_the_archiving_notebook_shows_a_warning_and_refusals(executed):
    book = executed["03_archiving"]
    stderr = _stream(book, "stderr")
    assert "VersionWarning" in stderr
    assert "labtools: version stored '1.0', installed '2.0'" in stderr
    stdout = _stream(book, "stdout")
    assert "refused: '/' was written by other code versions: labtools" in stdout
    assert "refused: safe loading refuses to import posix:system" in stdout or (
        "refused: safe loading refuses to import nt:system" in stdout
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_committed_notebooks_have_no_outputs(notebook):
    book = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_the_cluster_notebook_writes_forty_jobs_and_plots(executed):
    book = executed["04_cluster"]
    assert any("image/png" in out.get("data", {}) for out in _outputs(book))
    stdout = _stream(book, "stdout")
    assert "40 jobs saved by 4 workers" in stdout and "41 snapshots, 40 of them jobs" in stdout
    assert "jobs: 40" in stdout and "JobSummary(job=7" in stdout
    assert "at 'job " in stdout and "now: 40 jobs" in stdout
