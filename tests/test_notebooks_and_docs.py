"""The notebooks run in a real Jupyter kernel, and the docs build without warnings.

Both use the tinystore the tests import (the installed package in CI), never
the checkout by assumption (see ``helpers/procs.py``).
"""

from __future__ import annotations

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
