"""Training over a shard set with every fault of data_tools/corrupt_shards.py injected completes,
counts every skip by reason, trains on every valid sample exactly once and refuses the
decompression bomb by its pixel count."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BATCH = 8


@pytest.fixture(scope="module")
def dirty_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dirty")
    subprocess.run([sys.executable, str(REPO_ROOT / "data_tools" / "make_synthetic.py"), "image-text",
                    "--out", str(root / "clean"), "--num-samples", "128", "--shard-size", "16",
                    "--image-size", "32", "--quiet"], check=True, capture_output=True, text=True)
    # 5 complete samples before the cut: 128 - 16 (missing) - 11 (truncated) - 5 = 96 valid
    subprocess.run([sys.executable, str(REPO_ROOT / "data_tools" / "corrupt_shards.py"),
                    str(root / "clean"), "--out", str(root / "train"), "--truncate-keep", "5"],
                   check=True, capture_output=True, text=True)
    return root / "train"


def test_training_over_corrupted_shards_loses_no_valid_sample(tiny, dirty_shards, tmp_path, caplog):
    manifest = json.loads((dirty_shards / "faults.json").read_text())
    valid = manifest["valid_keys"]
    assert {f["fault"] for f in manifest["faults"]} == {
        "truncated_tar", "missing_shard", "empty_shard", "garbage_image", "zero_byte_image",
        "missing_caption", "non_utf8_caption", "decompression_bomb", "duplicate_key"}
    assert len(valid) == 96 and manifest["samples_lost"] == 32

    # sizes.json still claims 128 samples, so exact mode plans 16 batches and fills the 32
    # missing ones with a second pass over the shards (counted as `refill`)
    with caplog.at_level(logging.INFO, logger="mmpretrain.callbacks.data_stats"):
        cli = tiny.cli(tmp_path, dirty_shards, "--trainer.max_steps=-1", "--trainer.max_epochs=1")
    assert cli.trainer.state.finished and cli.trainer.global_step == 128 // BATCH

    trained = [k for _, keys in tiny.keys(tmp_path) for k in keys]
    first_pass, refill = trained[:len(valid)], trained[len(valid):]
    assert sorted(first_pass) == valid  # every valid sample, once, before any repeat
    assert set(refill) <= set(valid) and len(refill) == 32

    assert cli.datamodule.skip_counts == {
        "truncated_tar": 1, "unreadable_shard": 1,      # cut shard, missing shard
        "decode_error": 2,                               # garbage image, non-UTF-8 caption
        "empty_member": 1, "missing_image": 1,           # zero-byte image member
        "missing_caption": 1, "too_many_pixels": 1, "duplicate_key": 1, "refill": 32}
    report = [r.getMessage() for r in caplog.records if "skipped samples by reason" in r.getMessage()]
    assert report and "too_many_pixels=1" in report[-1] and "refill=32" in report[-1]


def test_decompression_bomb_is_refused_by_pixel_count_before_decoding():
    sys.path.insert(0, str(REPO_ROOT / "data_tools"))
    from corrupt_shards import decompression_bomb_png  # noqa: PLC0415

    from mmpretrain.data.transforms import decode_image
    from mmpretrain.data.wds.skips import SkipSample

    bomb = decompression_bomb_png()
    assert len(bomb) < 100_000  # 144 megapixels in a few kB
    with pytest.raises(SkipSample) as refused:
        decode_image(bomb)
    assert refused.value.reason == "too_many_pixels" and "144000000 pixels" in str(refused.value)


def test_corrupt_tool_refuses_a_non_empty_output(dirty_shards, tmp_path):
    (tmp_path / "x.tar").write_bytes(b"")
    result = subprocess.run([sys.executable, str(REPO_ROOT / "data_tools" / "corrupt_shards.py"),
                             str(dirty_shards.parent / "clean"), "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "already holds shards" in result.stderr
    assert Counter(p.suffix for p in tmp_path.iterdir()) == Counter({".tar": 1})
