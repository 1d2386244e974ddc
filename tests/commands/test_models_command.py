"""`mmpretrain models`: the architectures table, native/wrapped counts, params, tags."""

from __future__ import annotations

import json

import open_clip

from mmpretrain.commands.models import main
from mmpretrain.models.meta_build import meta_device


def test_table_counts_params_and_tags(capsys):
    assert main(["RN50", "RN50-quickgelu", "--params"]) == 0
    out = capsys.readouterr().out
    with meta_device():
        expected = sum(p.numel() for p in open_clip.model.CLIP(
            **open_clip.get_model_config("RN50")).parameters())
    assert f"{expected / 1e6:.1f}M" in out and "openai, yfcc15m, cc12m" in out
    assert out.strip().endswith("2 architectures: 2 native, 0 wrapped")
    assert main(["--wrapped", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 10 and {row["kind"] for row in rows} == {"wrapped"}
    assert main(["no-such-*"]) == 2
