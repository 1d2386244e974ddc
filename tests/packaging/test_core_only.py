"""With only the core requirements, mmpretrain imports and its CLI works; a feature whose extra
is missing ends with one line naming the extra. Optional libraries are hidden from a child
interpreter by a meta-path blocker (tests/packaging/block_extras.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mmpretrain.extras import EXTRA_OF_MODULE

REPO_ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = sorted(set(EXTRA_OF_MODULE) - {"fsspec", "aiohttp"})  # lightning itself needs fsspec[http]

# One child interpreter for every check (imports cost seconds); each prints a marker line.
CHILD = r"""
import io, sys, contextlib
sys.path.insert(0, {tests!r})
from block_extras import BlockModules
sys.meta_path.insert(0, BlockModules(set({blocked!r})))
import mmpretrain
from mmpretrain.cli import main

def run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as exn:
            code = exn.code
    return code, out.getvalue(), err.getvalue()

code, out, err = run(["--help"])
print("HELP", code, "fit" in out and "data" in out)
code, out, err = run(["data", "make_synthetic", "image-text", "--out", {shards!r}, "--num-samples", "8",
                      "--shard-size", "8"])
print("IMAGE_TEXT", code)
code, out, err = run(["data", "make_synthetic", "video-text", "--out", {video!r}, "--num-samples", "2"])
print("VIDEO", code, [l for l in err.splitlines() if l.startswith("error:")])
code, out, err = run(["data", "record_env", "--env", "CartPole-v1", "--out", {video!r}])
print("ROBOT", code, [l for l in err.splitlines() if l.startswith("error:")])
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in set({blocked!r})))
"""


def test_core_only_imports_and_names_missing_extras(tmp_path):
    code = CHILD.format(tests=str(Path(__file__).parent), blocked=OPTIONAL,
                        shards=str(tmp_path / "image_text"), video=str(tmp_path / "video"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["HELP"] == "0 True"
    assert lines["IMAGE_TEXT"] == "0"
    assert (tmp_path / "image_text" / "sizes.json").is_file()
    assert lines["VIDEO"] == ("2 [\"error: video encoding needs the optional package 'av': "
                              "pip install 'mmpretrain[video]'\"]")
    assert lines["ROBOT"].startswith("2 [\"error: ") and "pip install 'mmpretrain[robot]'" in lines["ROBOT"]
    assert lines["LOADED"] == "[]"
