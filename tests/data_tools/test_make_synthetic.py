"""data_tools/make_synthetic.py: CLI surface, determinism per seed, sizes.json vs tar contents."""

import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "data_tools" / "make_synthetic.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("make_synthetic_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_cli(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_help_lists_subcommands_and_flags():
    top = run_cli("--help")
    sub = run_cli("image-text", "--help")
    assert top.returncode == 0 and "image-text" in top.stdout
    assert sub.returncode == 0
    for flag in ("--out", "--num-samples", "--shard-size", "--seed", "--image-size",
                 "--min-objects", "--max-objects", "--overwrite"):
        assert flag in sub.stdout


def test_cli_run_writes_consistent_shards(tmp_path):
    result = run_cli("image-text", "--out", str(tmp_path), "--num-samples", "25",
                     "--shard-size", "10", "--seed", "3", "--quiet")

    assert result.returncode == 0, result.stderr
    assert f"{tmp_path}/shard-{{000000..000002}}.tar" in result.stdout
    sizes = json.loads((tmp_path / "sizes.json").read_text())
    assert sizes == {"shard-000000.tar": 10, "shard-000001.tar": 10, "shard-000002.tar": 5}
    for shard_index, (name, count) in enumerate(sizes.items()):
        with tarfile.open(tmp_path / name) as tar:
            names = tar.getnames()
        first = shard_index * 10
        assert names == [f"{i:09d}.{ext}" for i in range(first, first + count)
                         for ext in ("jpg", "json", "txt")]
    classes = json.loads((tmp_path / "classes.json").read_text())
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        meta = json.loads(tar.extractfile("000000000.json").read())
    assert 0 <= meta["label"] < len(classes["classnames"])


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    tool = load_tool()
    common = ["--num-samples", "12", "--shard-size", "5", "--quiet"]
    assert tool.main(["image-text", "--out", str(tmp_path / "a"), "--seed", "1", *common]) == 0
    assert tool.main(["image-text", "--out", str(tmp_path / "b"), "--seed", "1", *common]) == 0
    assert tool.main(["image-text", "--out", str(tmp_path / "c"), "--seed", "2", *common]) == 0

    first, again, other = (shard_bytes(tmp_path / d) for d in "abc")
    assert first == again
    assert first.keys() == other.keys()
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar"):
        assert first[name] != other[name]


def test_existing_output_needs_overwrite_and_bad_options_are_reported(tmp_path, capsys):
    tool = load_tool()
    args = ["image-text", "--out", str(tmp_path), "--num-samples", "3", "--quiet"]
    assert tool.main(args) == 0
    assert tool.main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert tool.main([*args, "--overwrite", "--num-samples", "2"]) == 0
    assert json.loads((tmp_path / "sizes.json").read_text()) == {"shard-000000.tar": 2}

    bad = run_cli("image-text", "--out", str(tmp_path / "x"), "--max-objects", "0")
    assert bad.returncode == 2 and "max_objects" in bad.stderr
