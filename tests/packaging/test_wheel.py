"""The wheel alone runs the quickstart: packaged configs, the data tools as console scripts.

The wheel is built from a copy of the sources and installed with --no-deps into a fresh venv
that sees the test venv's site-packages (core dependencies, no editable mmpretrain) through a
.pth path entry, so nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "requirements.txt",
           "requirements-dev.txt", "mmpretrain", "configs", "data_tools"]


def _run(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(root / "dist"),
          str(source)], cwd=root)
    (wheel,) = (root / "dist").glob("mmpretrain-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "test_venv_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
          "--no-deps", "--ignore-installed", "--no-index", str(wheel)], cwd=root)
    return venv


def test_wheel_runs_the_quickstart_from_packaged_configs(wheel_venv, tmp_path):
    bin_dir = wheel_venv / "bin"
    located = _run([str(bin_dir / "python"), "-c",
                    "import mmpretrain, mmpretrain.resources as r; print(mmpretrain.__file__); "
                    "print(r.configs_dir()); print(r.data_tools_dir())"], cwd=tmp_path)
    package_file, configs, tools = located.split()
    assert Path(package_file).is_relative_to(wheel_venv)
    assert configs.endswith("mmpretrain/_configs") and tools.endswith("mmpretrain/_data_tools")
    assert (Path(configs) / "exp" / "clip" / "quickstart.yaml").is_file()

    # the quickstart config reads data/synthetic/train relative to the working directory; one
    # shard set serves as train and val (`mmpretrain data TOOL` is checked in test_core_only.py)
    out = _run([str(bin_dir / "mmpretrain-data"), "make_synthetic", "image-text",
                "--out", "data/synthetic/train", "--num-samples", "64", "--shard-size", "32"], cwd=tmp_path)
    assert "wrote 64 samples" in out

    out = _run([str(bin_dir / "mmpretrain"), "fit", "-c", "mmpretrain://trainer/cpu.yaml",
                "-c", "mmpretrain://exp/clip/quickstart.yaml", "--trainer.fast_dev_run", "1",
                "--data.init_args.val_shards", "data/synthetic/train",
                "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0"], cwd=tmp_path)
    assert "`Trainer.fit` stopped: `max_steps=1` reached" in out
    # the start line, our parameter summary, and no third-party tips
    assert "run runs/quickstart | devices 1 cpu (SingleDevice) | precision 32-true | attention sdpa" in out
    assert "model ContrastiveTask: 8.0 M parameters" in out
    assert "litlogger" not in out and "FLOPs" not in out
