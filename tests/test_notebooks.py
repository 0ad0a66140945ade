"""The notebooks in notebooks/ run from top to bottom without error (nbclient, the venv's kernel).

Each notebook generates its own synthetic data into a temporary folder, so it runs anywhere.
They are committed without outputs; the test checks that too.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == ["iowa_walkthrough.ipynb", "parents_for_parents_walkthrough.ipynb", "prevention_example.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_error(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    t0 = time.perf_counter()
    # "python3" is the kernel of the interpreter running the tests (ipykernel in the venv)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    elapsed = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the walkthrough draws its figures"
    assert elapsed < 90, f"{path.name} took {elapsed:.0f} s"
