"""Continual metrics: A_KA over seen tasks only, A_ZS over held-out sets, GM, stability-gap
dip, zero-shot top-1 against a reference, and the written results / method table."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F

from mmpretrain.eval.continual import (Evaluation, compare_runs, main, stability_dips, summarize,
                                       summary, write_results, zeroshot_top1)

TASK_SETS = {"t0": 0, "t1": 1}
HELDOUT = ["h0", "h1"]


def _evaluation(step, task, phase, t0, t1, h0, h1) -> Evaluation:
    return summarize(Evaluation(step, task, phase, {"t0": t0, "t1": t1, "h0": h0, "h1": h1}), TASK_SETS, HELDOUT)


def _stream() -> list[Evaluation]:
    return [_evaluation(0, 0, "start", 0.1, 0.1, 0.8, 0.6),
            _evaluation(2, 0, "probe", 0.3, 0.1, 0.5, 0.5),   # A_ZS dips 0.2 early in task 0
            _evaluation(4, 0, "end", 0.6, 0.1, 0.7, 0.5),
            _evaluation(6, 1, "probe", 0.5, 0.3, 0.6, 0.6),
            _evaluation(8, 1, "end", 0.4, 0.8, 0.6, 0.5)]


def test_accumulation_counts_only_tasks_seen_so_far():
    e = _stream()
    assert e[0].a_ka is None and e[0].a_zs == pytest.approx(0.7)
    assert e[2].a_ka == pytest.approx(0.6)  # after task 0: task 1's set does not count yet
    assert e[4].a_ka == pytest.approx(0.6) and e[4].a_zs == pytest.approx(0.55)
    assert e[4].gm == pytest.approx(math.sqrt(0.6 * 0.55))


def test_stability_dip_is_min_within_task_minus_its_start():
    dips = stability_dips(_stream())
    assert dips[0] == pytest.approx(0.5 - 0.7)
    assert dips[1] == pytest.approx(0.55 - 0.6)
    result = summary(_stream())
    assert result["min_dip"] == pytest.approx(-0.2) and result["tasks_done"] == 2
    assert result["a_zs_start"] == pytest.approx(0.7)
    assert result["mean_gm"] == pytest.approx((math.sqrt(0.6 * 0.6) + math.sqrt(0.6 * 0.55)) / 2)


def test_zeroshot_top1_matches_a_reference():
    gen = torch.Generator().manual_seed(0)
    text_table = torch.randn(5, 16, generator=gen)
    proj = torch.randn(3 * 4 * 4, 16, generator=gen)
    images = torch.randn(40, 3, 4, 4, generator=gen)
    prompts = torch.arange(5).view(5, 1, 1).repeat(1, 2, 3)  # 5 classes x 2 templates
    encode_text = lambda tokens: text_table[tokens[:, 0]]  # noqa: E731
    encode_image = lambda x: x.flatten(1) @ proj  # noqa: E731
    labels = torch.randint(5, (40,), generator=gen)
    logits = F.normalize(images.flatten(1) @ proj, dim=-1) @ F.normalize(text_table, dim=-1).T
    expected = (logits.argmax(-1) == labels).float().mean().item()
    assert zeroshot_top1(encode_image, encode_text, images, labels, prompts, chunk_size=7) == pytest.approx(expected)


def test_results_files_and_method_table(tmp_path, capsys):
    run = tmp_path / "ema_merge"
    write_results(run / "continual", _stream(), ["first", "second"], steps_per_task=4)
    rows = list(csv.DictReader(open(run / "continual" / "evaluations.csv")))
    assert [r["phase"] for r in rows] == ["start", "probe", "end", "probe", "end"] and rows[2]["t0"] == "0.6"
    markdown = (run / "continual" / "results.md").read_text()
    assert "| task 1 (second) | 8 | 60.0 | 55.0 | 57.4 | -5.0 |" in markdown
    assert (run / "continual" / "continual.png").stat().st_size > 1000
    assert json.loads((run / "continual" / "summary.json").read_text())["tasks_done"] == 2
    assert "| ema_merge | 2 | 60.0 | 55.0 | 57.4 | -20.0 | 70.0 |" in compare_runs([run])
    assert main([str(run), "--out", str(tmp_path / "table.md")]) == 0
    assert "ema_merge" in (tmp_path / "table.md").read_text()
    assert main([str(tmp_path / "missing")]) == 1
    assert "no continual summary" in capsys.readouterr().err
