"""make_synthetic.py video-text: determinism, captions in event order, foils that reorder
the same frames (what makes the temporal-order probe fair to mean pooling)."""

from __future__ import annotations

import random
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmpretrain.data.synthetic.shapes import sample_background
from mmpretrain.data.synthetic.video_text import (VideoTextOptions, describe, foil_order, make_sample,
                                                  render_clip, sample_events)
from mmpretrain.data.video.pyav_decoder import decode_frames

REPO = Path(__file__).resolve().parents[2]


def test_cli_writes_identical_shards_for_a_seed(tmp_path):
    def run(out):
        subprocess.run([sys.executable, str(REPO / "data_tools" / "make_synthetic.py"), "video-text",
                        "--out", str(out), "--num-samples", "6", "--shard-size", "4", "--seed", "3",
                        "--quiet"], check=True, capture_output=True, timeout=120)
        return {p.name: p.read_bytes() for p in sorted(out.iterdir())}

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second and sorted(first) == ["shard-000000.tar", "shard-000001.tar", "sizes.json"]
    with tarfile.open(tmp_path / "a" / "shard-000000.tar") as archive:
        assert Counter(m.name.rsplit(".", 1)[1] for m in archive.getmembers()) == {"mp4": 4, "txt": 4, "json": 4}


def test_sample_caption_names_events_in_order_and_the_foil_reorders_them():
    options = VideoTextOptions(min_events=3, max_events=3, frames_per_event=4)
    item = make_sample(0, options)
    events = item["json"]["events"]
    caption, foil = item["txt"], item["json"]["foil_caption"]
    positions = [caption.index(f"{e['object']} {e['action']}") for e in events]
    assert positions == sorted(positions)
    foil_positions = [foil.index(f"{e['object']} {e['action']}") for e in events]
    assert foil_positions != sorted(foil_positions)
    clip = decode_frames(item["mp4"], lambda n, fps: list(range(n)))
    assert clip.num_available == 12 and clip.frames_T3HW.shape[-1] == options.image_size


@pytest.mark.parametrize("count", [2, 3])
def test_foil_clip_has_the_same_frames_in_another_order(count):
    rng = random.Random(count)
    events = sample_events(rng, count)
    background = sample_background(rng, "striped")
    clip = render_clip(events, background, 32, 4)
    foil_clip = render_clip(foil_order(events), background, 32, 4)
    def as_bytes(frames):
        return sorted(frame.tobytes() for frame in frames)
    assert as_bytes(clip) == as_bytes(foil_clip)
    assert not all(np.array_equal(a, b) for a, b in zip(clip, foil_clip))
    assert describe(events, "{}, then {}") != describe(foil_order(events), "{}, then {}")


def test_appear_and_disappear_are_the_same_frames_reversed():
    rng = random.Random(0)
    event = sample_events(rng, 1)[0]
    background = sample_background(rng, "plain")
    appear = render_clip([event.__class__(**{**event.__dict__, "action": "appears"})], background, 32, 6)
    disappear = render_clip([event.__class__(**{**event.__dict__, "action": "disappears"})], background, 32, 6)
    assert all(np.array_equal(a, b) for a, b in zip(appear, disappear[::-1]))
    assert not np.array_equal(appear[0], appear[-1])
