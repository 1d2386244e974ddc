"""Every notebook under notebooks/ executes top to bottom on a tiny run and tiny shards, and
draws its figures (so the notebooks cannot rot)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 120

# what each notebook must show: (figures drawn, text that proves the step ran on the data)
EXPECTED = {
    "01_quickstart.ipynb": (2, ["CLIP: ", "36 classes, 5 templates; on these 32 images: top-1", "Final evaluation"]),
    "02_data.ipynb": (3, ["2 shards, 128 samples", "read 128 samples, skipped: none", "distinct concepts"]),
}


def test_every_notebook_has_expectations():
    assert sorted(p.name for p in NOTEBOOKS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tiny_run, image_text_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("MMPRETRAIN_RUN_DIR", str(tiny_run))
    monkeypatch.setenv("MMPRETRAIN_VAL_SHARDS", str(image_text_shards["val"]))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    figures = sum("image/png" in out.get("data", {}) for out in outputs)
    text = "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in outputs)
    min_figures, snippets = EXPECTED[path.name]
    assert figures >= min_figures, f"{path.name}: {figures} figures drawn"
    for snippet in snippets:
        assert snippet in text, f"{path.name}: {snippet!r} not in its output:\n{text[:3000]}"
