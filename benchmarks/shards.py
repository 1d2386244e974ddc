"""Benchmark shards: synthetic image-text JPEGs larger than the model resolution, like web data.

Generated once with `data_tools/make_synthetic.py` and reused (they are deterministic per seed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def ensure_shards(root: Path, image_size: int, num_samples: int, shard_size: int, seed: int = 0) -> Path:
    """Directory of shards of `num_samples` JPEGs of `image_size` px, generated if absent."""
    out = root / f"image_text_{image_size}px_{num_samples}"
    if (out / "sizes.json").exists():
        return out
    print(f"  generating {num_samples} {image_size}px samples -> {out}", flush=True)
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "data_tools" / "make_synthetic.py"), "image-text",
         "--out", str(out), "--num-samples", str(num_samples), "--shard-size", str(shard_size),
         "--image-size", str(image_size), "--seed", str(seed), "--quiet", "--overwrite"],
        check=True)
    return out


def shard_pattern(directory: Path) -> str:
    """Brace pattern over the shards of `directory` (open_clip's `--train-data` syntax)."""
    tars = sorted(p.name for p in directory.glob("*.tar"))
    if not tars:
        raise FileNotFoundError(f"no .tar shards in {directory}")
    stem, first, last = tars[0].rsplit("-", 1)[0], tars[0], tars[-1]
    lo, hi = first[len(stem) + 1:-4], last[len(stem) + 1:-4]
    return str(directory / f"{stem}-{{{lo}..{hi}}}.tar")
