"""Every notebook under notebooks/ executes top to bottom on a tiny run and tiny shards, and
draws its figures (so the notebooks cannot rot)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 120

# what each notebook must show: (figures drawn, text that proves the step ran on the data)
EXPECTED = {
    "01_quickstart.ipynb": (2, ["CLIP: ", "36 classes, 5 templates; on these 32 images: top-1", "Final metrics"]),
    "02_data.ipynb": (3, ["2 shards, 128 samples", "read 128 samples, skipped: none", "distinct concepts"]),
    "03_cabs.ipynb": (1, ["4 super-batches of B=32 -> b=8, skipped: none", "unique_concepts   max_concept_count"]),
    "04_continual.ipynb": (2, ["2 continual runs", "finetune: 3 tasks, ", "ema_merge: 3 tasks, ",
                               "| run | tasks | A_KA | A_ZS | GM |"]),
    "05_robot_video.ipynb": (2, ["window 0000000_000000: frames (8, 3, 24, 24), actions (8, 4), episode 0, "
                                 "labels: human, skipped: none", "clip 000000000: frames (8, 3, 32, 32)"]),
}


def check_cabs_table(text: str) -> None:
    """The printed table: DM spreads the batch over more concepts with a lower peak than iid;
    FM keeps the samples with the most objects."""
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in text.splitlines()
            if line.split()[:1] in (["iid"], ["cabs_dm"], ["cabs_fm"])}
    unique, peak, objects = 0, 1, 2
    assert rows["cabs_dm"][unique] > rows["iid"][unique] and rows["cabs_dm"][peak] < rows["iid"][peak]
    assert rows["cabs_fm"][objects] > max(rows["iid"][objects], rows["cabs_dm"][objects])


def check_caption_and_foil(text: str) -> None:
    """The foil names the same events as the caption, in another order."""
    caption = next(line for line in text.splitlines() if line.startswith("caption: ")).split(": ", 1)[1]
    foil = next(line for line in text.splitlines() if line.startswith("foil:    ")).split(": ", 1)[1].strip()
    assert caption != foil and sorted(caption.split()) == sorted(foil.split())


def check_continual_table(text: str) -> None:
    """One table row per run, with percentages in range and GM = sqrt(A_KA * A_ZS)."""
    rows = [line.strip("|").split("|") for line in text.splitlines()
            if line.startswith("| finetune |") or line.startswith("| ema_merge |")]
    assert len(rows) == 2
    for row in rows:
        a_ka, a_zs, gm = (float(v) for v in row[2:5])
        assert 0 <= a_ka <= 100 and 0 <= a_zs <= 100
        assert abs(gm - (a_ka * a_zs) ** 0.5) < 0.1


# checks on the values a notebook printed, beyond the snippets above
VALUE_CHECKS = {"03_cabs.ipynb": check_cabs_table, "04_continual.ipynb": check_continual_table,
                "05_robot_video.ipynb": check_caption_and_foil}


def test_every_notebook_has_expectations():
    assert sorted(p.name for p in NOTEBOOKS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tiny_run, tiny_continual_runs, image_text_shards, trajectory_shards,
                           video_text_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("MMPRETRAIN_RUN_DIR", str(tiny_run))
    monkeypatch.setenv("MMPRETRAIN_VAL_SHARDS", str(image_text_shards["val"]))
    monkeypatch.setenv("MMPRETRAIN_TRAJECTORY_SHARDS", str(trajectory_shards["val"]))
    monkeypatch.setenv("MMPRETRAIN_VIDEO_SHARDS", str(video_text_shards["val"]))
    monkeypatch.setenv("MMPRETRAIN_CONTINUAL_RUNS", os.pathsep.join(map(str, tiny_continual_runs)))
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
    if path.name in VALUE_CHECKS:
        VALUE_CHECKS[path.name](text)
