from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mmpretrain.data.sources.image_text import ImageTextDecoder
from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.data.wds.dataset import ShardStream
from mmpretrain.data.wds.epoch_plan import exact_worker_shards
from mmpretrain.data.wds.shard_spec import parse_shard_spec
from mmpretrain.data.wds.skips import SkipSample


@pytest.fixture(scope="module")
def decoder() -> ImageTextDecoder:
    return ImageTextDecoder(ImageTransform(16, train=False), Tokenizer(context_length=12))


def test_decodes_and_collates_to_the_batch_contract(decoder, tar_tools):
    raws = [{"__key__": f"k{i}", "jpg": tar_tools.jpeg(i, 20), "txt": f" caption {i} ".encode(),
             **({"json": json.dumps({"label": i}).encode()} if i else {})} for i in range(3)]
    samples = [decoder(raw) for raw in raws]
    assert samples[1]["caption"] == "caption 1" and samples[1]["json"] == {"label": 1}
    batch = decoder.collate(samples)
    assert batch["image"].shape == (3, 3, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["text"].shape == (3, 12) and batch["text"].dtype == torch.int64
    assert torch.equal(batch["text"], decoder.tokenizer(["caption 0", "caption 1", "caption 2"]))
    assert batch["label"].tolist() == [-1, 1, 2] and batch["label"].dtype == torch.int64
    assert batch["key"] == ["k0", "k1", "k2"] and batch["json"] == [{}, {"label": 1}, {"label": 2}]


@pytest.mark.parametrize("raw, reason", [
    ({"txt": b"no image"}, "missing_image"),
    ({"jpg": b"..."}, "missing_caption"),
    ({"jpg": b"...", "txt": b"   "}, "missing_caption"),
    ({"jpg": b"not an image", "txt": b"caption"}, "decode_error"),
    ({"jpg": b"...", "txt": b"caption", "json": b"{broken"}, "bad_json"),
    ({"jpg": b"...", "txt": b"caption", "json": b"[1, 2]"}, "bad_json"),
    ({"jpg": b"...", "txt": b"caption", "json": b'{"label": "cat"}'}, "bad_json"),
])
def test_bad_samples_raise_skip_with_reason(decoder, raw, reason):
    with pytest.raises(SkipSample) as skip:
        decoder({"__key__": "k", **raw})
    assert skip.value.reason == reason


@pytest.mark.parametrize("ext, fmt", [("png", "PNG"), ("webp", "WEBP"), ("jpeg", "JPEG")])
def test_other_image_keys_are_accepted(decoder, ext, fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buffer, format=fmt)
    sample = decoder({"__key__": "p", ext: buffer.getvalue(), "txt": b"caption"})
    assert sample["image"].shape == (3, 16, 16)


def test_corrupt_shards_are_skipped_and_counted_exactly(decoder, tmp_path, tar_tools):
    def good(i: int) -> dict:
        return tar_tools.image_text_sample(f"g{i}", i)

    tar_tools.write(tmp_path / "c-000000.tar", [
        good(0),
        {"__key__": "garbage", "jpg": b"\xff\xd8\xff garbage", "txt": "x"},
        {"__key__": "notext", "jpg": tar_tools.jpeg(1)},
        {"__key__": "emptyjpg", "jpg": b"", "txt": "x"},
        good(1),
    ])
    truncated = tar_tools.write(tmp_path / "c-000001.tar", [good(10 + i) for i in range(4)])
    with tarfile.open(truncated) as archive:
        cut = next(m for m in archive.getmembers() if m.name == "g12.jpg")
    truncated.write_bytes(truncated.read_bytes()[: cut.offset_data + 50])
    spec = parse_shard_spec(str(tmp_path / "c-{000000..000001}.tar"))
    # the truncation is only reported with a later batch, so read the truncated shard first
    seed = next(s for s in range(20)
                if exact_worker_shards(spec.with_counted_sizes().shards, s, 0, 0, 1, 0, 1)[0].path == str(truncated))
    stream = ShardStream(spec, decoder, batch_size=1, mode="exact", seed=seed, shuffle_buffer=0,
                         collate=decoder.collate, drop_last=False, num_workers=0)
    batches = list(DataLoader(stream, batch_size=None))
    assert sorted(k for b in batches for k in b["key"]) == ["g0", "g1", "g10", "g11"]
    assert batches[-1]["_data_state"]["skips"] == {
        "decode_error": 1, "empty_member": 1, "missing_caption": 1, "missing_image": 1, "truncated_tar": 1}
