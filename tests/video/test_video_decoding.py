"""PyAV decoder on real MP4s written in the test; skips of corrupt/short clips through the
stateful stream; the video-text schema and its image fallback."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader

from mmpretrain.data.sources.video_text import VideoTextDecoder
from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.video.encode import encode_mp4
from mmpretrain.data.video.frame_sampling import FrameSampler
from mmpretrain.data.video.pyav_decoder import decode_frames
from mmpretrain.data.video.transform import VideoTransform
from mmpretrain.data.wds.dataset import ShardStream
from mmpretrain.data.wds.skips import SkipSample

STEP = 6  # frame t is filled with grey level STEP * t


def grey_ramp_mp4(num_frames: int, size: int = 16, gop: int = 4) -> bytes:
    return encode_mp4([np.full((size, size, 3), STEP * t, np.uint8) for t in range(num_frames)], fps=8, gop=gop)


def grey_levels(frames_T3HW: torch.Tensor) -> list[int]:
    return [round(v / STEP) for v in frames_T3HW[:, :, 4:12, 4:12].float().mean(dim=(1, 2, 3)).tolist()]


@pytest.fixture(scope="module")
def ramp40() -> bytes:
    return grey_ramp_mp4(40)


def test_decodes_exactly_the_requested_frames_in_request_order(ramp40):
    clip = decode_frames(ramp40, lambda n, fps: [0, 5, 39, 38, 20])
    assert clip.num_available == 40 and clip.fps == 8.0
    assert clip.frames_T3HW.dtype == torch.uint8 and clip.frames_T3HW.shape == (5, 3, 16, 16)
    assert grey_levels(clip.frames_T3HW) == [0, 5, 39, 38, 20]


def test_seeking_gives_the_same_frames_as_decoding_through(ramp40):
    wanted = [1, 17, 33, 34]
    seeking = decode_frames(ramp40, lambda n, fps: wanted, seek_gap=2).frames_T3HW
    through = decode_frames(ramp40, lambda n, fps: wanted, seek_gap=1000).frames_T3HW
    assert torch.equal(seeking, through)
    assert grey_levels(seeking) == wanted


def test_picker_gets_frame_count_and_fps(ramp40):
    seen = []
    decode_frames(ramp40, lambda n, fps: seen.append((n, fps)) or [0])
    assert seen == [(40, 8.0)]


def test_corrupt_and_short_videos_raise_skip_reasons(ramp40):
    with pytest.raises(SkipSample) as corrupt:
        decode_frames(b"not a video at all" * 10, lambda n, fps: [0])
    assert corrupt.value.reason == "decode_error"
    with pytest.raises(SkipSample) as truncated:
        decode_frames(ramp40[: len(ramp40) // 3], lambda n, fps: [0])
    assert truncated.value.reason == "decode_error"
    with pytest.raises(SkipSample) as short:
        decode_frames(grey_ramp_mp4(3), lambda n, fps: [0, 1, 2], min_frames=4)
    assert short.value.reason == "short_video"


def make_decoder(num_frames=4, mode="uniform", min_frames=1) -> VideoTextDecoder:
    return VideoTextDecoder(FrameSampler(num_frames, mode, stride=2), VideoTransform(16, train=False),
                            Tokenizer(16), min_frames=min_frames)


def sample(key, mp4=None, caption="a clip", meta=None, **extra):
    raw = {"__key__": key, "txt": caption.encode()}
    if mp4 is not None:
        raw["mp4"] = mp4
    if meta is not None:
        raw["json"] = json.dumps(meta).encode()
    raw.update(extra)
    return raw


def test_schema_decodes_uniform_frames_and_collates_foils(ramp40):
    decoder = make_decoder()
    items = [decoder(sample(f"{i}", ramp40, meta={"foil_caption": "another order"})) for i in range(2)]
    # uniform 4 of 40 frames: centres 5, 15, 25, 35, then CLIP-normalised
    expected_levels = torch.tensor([5, 15, 25, 35]) * STEP / 255.0
    red = items[0]["video"][:, 0, 8, 8] * 0.26862954 + 0.48145466
    torch.testing.assert_close(red, expected_levels.float(), atol=2 / 255, rtol=0)
    batch = decoder.collate(items)
    assert batch["video"].shape == (2, 4, 3, 16, 16)
    assert batch["text"].shape == batch["foil_text"].shape == (2, 16)
    assert "foil_text" not in decoder.collate([decoder(sample("x", ramp40))] * 2)


def test_an_image_sample_becomes_a_static_clip():
    png = io.BytesIO()
    Image.new("RGB", (20, 20), (200, 10, 10)).save(png, format="PNG")
    item = make_decoder(num_frames=3)(sample("img", caption="a red image", png=png.getvalue()))
    assert item["video"].shape == (3, 3, 16, 16)
    assert torch.equal(item["video"][0], item["video"][2])


def test_stream_skips_and_counts_corrupt_short_and_missing_videos(tmp_path, ramp40):
    short = grey_ramp_mp4(2)
    path = str(tmp_path / "clips-000000.tar")
    bad = [sample("corrupt", b"\x00" * 300), sample("short", short), sample("novideo"),
           sample("badfoil", ramp40, meta={"foil_caption": 3})]
    members = [m for i in range(4) for m in (bad[i], sample(f"good{i}", ramp40))]
    with wds.TarWriter(path) as writer:
        for member in members:
            writer.write(member)
    decoder = make_decoder(min_frames=4)
    stream = ShardStream(path, decoder, batch_size=2, mode="exact", shuffle_buffer=0,
                         collate=decoder.collate, drop_last=False, num_workers=0)
    batches = list(DataLoader(stream, batch_size=None, num_workers=0))
    assert [k for b in batches for k in b["key"]] == ["good0", "good1", "good2", "good3"]
    assert batches[-1]["_data_state"]["skips"] == {"bad_json": 1, "decode_error": 1, "missing_video": 1,
                                                   "short_video": 1}
