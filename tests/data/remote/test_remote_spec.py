"""URL shard specs: brace expansion, `::` mixtures, listing, sizes without scanning, redaction."""

from __future__ import annotations

import sys

import pytest

from mmpretrain.data.wds.dataset import ShardStream
from mmpretrain.data.wds.remote.locations import basename_of, redact
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples
from tests.remote_servers import I2D_SIZES

NAMES = [f"{i:05d}.tar" for i in range(len(I2D_SIZES))]


def test_http_and_s3_specs_mix_with_local_and_take_sizes_from_stats_json(http, s3_endpoint, remote_root):
    local = str(remote_root / "i2d" / "{00000..00004}.tar")
    spec = parse_shard_spec(f"{http.url}/i2d/{{00000..00004}}.tar :: s3://shards/laion/i2d/ :: {local}",
                            weights=[1, 1, 2])
    assert spec.num_sources == 3 and len(spec.shards) == 15
    assert [s.path for s in spec.shards[5:10]] == [f"s3://shards/laion/i2d/{n}" for n in NAMES]
    # img2dataset writes no sizes.json: every size comes from `{shard}_stats.json` `successes`
    assert [s.size for s in spec.shards] == I2D_SIZES * 3 and spec.total_size == 3 * sum(I2D_SIZES)
    assert [basename_of(s.path) for s in spec.shards] == NAMES * 3
    skips = SkipCounter()
    s3_keys = [raw["__key__"] for shard in spec.shards[5:10] for raw in iter_tar_samples(shard.path, skips)]
    local_keys = [raw["__key__"] for shard in spec.shards[10:] for raw in iter_tar_samples(shard.path, skips)]
    assert s3_keys == local_keys and len(s3_keys) == sum(I2D_SIZES) and skips.total == 0


def test_sizes_json_wins_over_stats_and_pipe_specs_find_sizes_at_their_url(http, remote_root):
    sizes = remote_root / "i2d" / "sizes.json"
    sizes.write_text('{"00000.tar": 12, "00002.tar": 10}')
    try:
        spec = parse_shard_spec(f"pipe:curl -sfL {http.url}/i2d/{{00000..00004}}.tar")
    finally:
        sizes.unlink()
    assert [s.size for s in spec.shards] == I2D_SIZES
    assert spec.shards[0].path == f"pipe:curl -sfL {http.url}/i2d/00000.tar"


def test_listing_errors_and_missing_sizes_say_what_to_do(http, remote_root):
    with pytest.raises(ValueError, match="HTTP cannot list a directory; name the shards with braces"):
        parse_shard_spec(f"{http.url}/i2d/")
    (remote_root / "bare").mkdir(exist_ok=True)
    (remote_root / "bare" / "a.tar").write_bytes((remote_root / "i2d" / "00000.tar").read_bytes())
    spec = parse_shard_spec(f"{http.url}/bare/a.tar")
    assert spec.shards[0].size is None
    with pytest.raises(ValueError, match="exact mode needs each shard's sample count.*--write-sizes.*resampled"):
        ShardStream(spec, dict, batch_size=2, mode="exact", num_workers=0)


def test_missing_client_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as on a machine without the gcs extra
    with pytest.raises(ImportError, match=r"needs the optional package 'gcsfs': pip install 'mmpretrain\[gcs\]'"):
        parse_shard_spec("gs://bucket/laion/{00000..00001}.tar")


def test_credentials_are_redacted():
    assert redact("https://user:secret@host/a.tar?X-Amz-Signature=abc") == "https://***@host/a.tar?***"
    assert redact("pipe:curl -sfL https://u:p@h/x.tar") == "pipe:curl -sfL https://***@h/x.tar"
    assert redact("s3://bucket/key.tar") == "s3://bucket/key.tar"


def test_zero_shot_classes_are_read_beside_remote_val_shards(http, remote_root):
    from mmpretrain.data.datamodule import WebDataModule
    from mmpretrain.data.synthetic.image_text import class_names, write_classes_file

    datamodule = WebDataModule(val_shards=f"{http.url}/i2d/{{00000..00004}}.tar", batch_size=2, num_workers=0,
                               context_length=16)
    assert datamodule.zeroshot_prompts() is None  # none there yet: zero-shot evaluation is skipped
    write_classes_file(remote_root / "i2d")
    try:
        classnames, tokens = datamodule.zeroshot_prompts()
    finally:
        (remote_root / "i2d" / "classes.json").unlink()
    assert classnames == class_names() and tokens.shape[0] == len(classnames) and tokens.shape[-1] == 16
