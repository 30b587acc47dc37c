"""examples/article.ipynb, executed top to bottom in a real Jupyter kernel: the article's table, its two
pictures and the overlaid sweep come out; the notebook is kept in git without outputs."""

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ARTICLE_ROWS, REPO

pytestmark = pytest.mark.slow  # real processes or many runs

NOTEBOOK = REPO / "examples" / "article.ipynb"


def test_the_notebook_is_kept_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def text_of(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def images_of(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.outputs)


def test_the_notebook_runs_the_article_top_to_bottom(tmp_path):
    # As a user opens it: from examples/ in a checkout (its runs go to examples/runs, here in tmp_path).
    (tmp_path / "examples").mkdir()
    shutil.copy(NOTEBOOK, tmp_path / "examples")
    (tmp_path / "configs").symlink_to(REPO / "configs")
    notebook = nbformat.read(tmp_path / "examples" / NOTEBOOK.name, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path / "examples")}}
    ).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    fit_cell = next(cell for cell in code if "gd_torch.fit(ARTICLE" in cell.source)
    table = [" ".join(line.split()) for line in text_of(fit_cell).splitlines() if line.startswith("Step ")]
    assert table == ARTICLE_ROWS
    pictures = [cell for cell in code if "Image(" in cell.source]
    assert [images_of(cell) for cell in pictures] == [1, 1]  # trajectory.png and loss.png
    sweep = next(cell for cell in code if "learning_rate in [" in cell.source)
    assert images_of(sweep) == 1
    assert (tmp_path / "examples" / "runs" / "article_sweep").is_dir()
