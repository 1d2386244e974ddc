"""Data tools on remote shard sets: inspect (and write sizes.json to S3), rewrite to an S3 prefix."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from mmpretrain.data.wds.shard_spec import parse_shard_spec
from tests.remote_servers import I2D_SIZES, upload_directory

TOOLS = Path(__file__).resolve().parents[3] / "data_tools"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_remote_tool", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_inspect_writes_sizes_to_s3_and_annotate_writes_shards_there(s3_endpoint, http, remote_root, tmp_path,
                                                                      capsys):
    import fsspec

    upload_directory(remote_root / "i2d", "shards", "tools/i2d")
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    for stats in fs.glob("shards/tools/i2d/*_stats.json"):
        fs.rm(stats)  # a bare set: nothing but the shards
    assert parse_shard_spec("s3://shards/tools/i2d/").sizes_known is False
    report = tmp_path / "report.json"
    assert load_tool("inspect_shards").main(["s3://shards/tools/i2d/", "--write-sizes", "--quiet",
                                             "--json", str(report)]) == 0
    assert json.loads(report.read_text())["total"]["samples"] == sum(I2D_SIZES)
    assert json.loads(fs.cat("shards/tools/i2d/sizes.json")) == {f"{i:05d}.tar": n for i, n in enumerate(I2D_SIZES)}
    assert [s.size for s in parse_shard_spec("s3://shards/tools/i2d/").shards] == I2D_SIZES

    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("red\ncircle\n")
    assert load_tool("annotate_concepts").main([f"{http.url}/i2d/{{00000..00004}}.tar", "--out",
                                                "s3://shards/tools/annotated", "--vocabulary", str(vocabulary),
                                                "--shard-size", "20"]) == 0
    assert "s3://shards/tools/annotated/shard-{000000..000002}.tar" in capsys.readouterr().out
    annotated = parse_shard_spec("s3://shards/tools/annotated/")
    assert [s.size for s in annotated.shards] == [20, 20, 2] and fs.exists("shards/tools/annotated/sizes.json")
