"""Synthetic video-text shards: clips of shape events with captions in event order.

A clip is a sequence of events, one segment of `frames_per_event` frames each, over one
background: a shape appears (absent in the first half of its segment), disappears (present
only in the first half) or moves left/right/up/down across the frame. The caption names the
events in order ("a red circle appears, then a blue star moves left"). Every sample's json
holds `foil_caption`, the same caption with the events in another order: the temporal-order
probe. The foil describes the clip with its segments permuted, which has exactly the same set
of frames, so a model that averages frames (meanP) cannot beat chance on it, while a model
that sees frame order can. Within a segment, "appears" and "disappears" are also the same
frames in reverse order.

Sample `i` of seed `s` depends only on `(s, i)`; same seed -> byte-identical shards.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmpretrain.data.synthetic.captions import count_phrase
from mmpretrain.data.synthetic.shapes import (BACKGROUNDS, COLOURS, SHAPES, Scene, SceneObject,
                                              render_scene, sample_background)
from mmpretrain.data.video.encode import encode_mp4
from mmpretrain.data.wds.writer import ShardWriter

SUBCOMMAND = "video-text"
DESCRIPTION = ("short clips of shapes appearing, disappearing and moving, captions in event order, "
               "temporal-order foil captions (mp4, txt, json)")
ACTIONS: tuple[str, ...] = ("appears", "disappears", "moves left", "moves right", "moves up", "moves down")
CONNECTIVES: tuple[str, ...] = ("{}, then {}", "first {}, then {}", "{} and after that {}")
OBJECT_RADIUS = 0.2  # fraction of the frame side
MAX_EVENTS = 3


@dataclass(frozen=True)
class VideoTextOptions:
    num_samples: int = field(default=1000, metadata={"help": "clips to generate"})
    shard_size: int = field(default=128, metadata={"help": "clips per tar shard"})
    seed: int = field(default=0, metadata={"help": "random seed; same seed -> identical shards"})
    image_size: int = field(default=32, metadata={"help": "frame side in pixels (even)"})
    frames_per_event: int = field(default=8, metadata={"help": "frames per event segment"})
    min_events: int = field(default=2, metadata={"help": "fewest events per clip"})
    max_events: int = field(default=2, metadata={"help": f"most events per clip (<= {MAX_EVENTS})"})
    fps: int = field(default=8, metadata={"help": "frames per second written to the mp4"})

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.shard_size < 1:
            raise ValueError(f"num_samples and shard_size must be >= 1, got {self.num_samples}, {self.shard_size}")
        if self.image_size < 16 or self.image_size % 2:
            raise ValueError(f"image_size must be even and >= 16 pixels, got {self.image_size}")
        if self.frames_per_event < 2:
            raise ValueError(f"frames_per_event must be >= 2, got {self.frames_per_event}")
        if not 2 <= self.min_events <= self.max_events <= MAX_EVENTS:
            raise ValueError(f"need 2 <= min_events <= max_events <= {MAX_EVENTS}, "
                             f"got {self.min_events}, {self.max_events}")
        if self.fps < 1:
            raise ValueError(f"fps must be >= 1, got {self.fps}")


@dataclass(frozen=True)
class Event:
    colour: str
    shape: str
    action: str
    x: float  # resting position (appear/disappear), fractions of the side
    y: float

    def phrase(self) -> str:
        return f"{count_phrase(1, self.colour, self.shape)} {self.action}"


def sample_events(rng: random.Random, count: int) -> list[Event]:
    """`count` events on distinct "colour shape" objects, so reordering changes the caption."""
    objects = rng.sample([(c, s) for c in COLOURS for s in SHAPES], count)
    margin = OBJECT_RADIUS + 0.05
    return [Event(colour, shape, rng.choice(ACTIONS), rng.uniform(margin, 1 - margin),
                  rng.uniform(margin, 1 - margin)) for colour, shape in objects]


def event_object(event: Event, progress: float, size: int) -> SceneObject | None:
    """The event's object at `progress` in [0, 1] through its segment (None = not visible)."""
    if event.action == "appears" and progress < 0.5 or event.action == "disappears" and progress >= 0.5:
        return None
    margin = OBJECT_RADIUS + 0.02
    travel = margin + (1 - 2 * margin) * progress
    x, y = event.x, event.y
    if event.action == "moves left":
        x = 1 - travel
    elif event.action == "moves right":
        x = travel
    elif event.action == "moves up":
        y = 1 - travel
    elif event.action == "moves down":
        y = travel
    return SceneObject(event.shape, event.colour, x * size, y * size, OBJECT_RADIUS * size, 0.0)


def render_clip(events: list[Event], background, size: int, frames_per_event: int) -> list[np.ndarray]:
    frames = []
    for event in events:
        for f in range(frames_per_event):
            obj = event_object(event, f / (frames_per_event - 1), size)
            scene = Scene(size, size, background, () if obj is None else (obj,))
            frames.append(np.asarray(render_scene(scene)))
    return frames


def describe(events: list[Event], connective: str) -> str:
    text = events[0].phrase()
    for event in events[1:]:
        text = connective.format(text, event.phrase())
        connective = "{}, then {}"  # the chosen opening only shapes the first join
    return text


def foil_order(events: list[Event]) -> list[Event]:
    """Another order of the same events: reversed for two, rotated by one for three."""
    return events[::-1] if len(events) == 2 else events[1:] + events[:1]


def make_sample(index: int, options: VideoTextOptions) -> dict[str, Any]:
    rng = random.Random(f"{SUBCOMMAND}/{options.seed}/{index}")
    events = sample_events(rng, rng.randint(options.min_events, options.max_events))
    background = sample_background(rng, rng.choice(BACKGROUNDS))
    connective = rng.choice(CONNECTIVES)
    frames = render_clip(events, background, options.image_size, options.frames_per_event)
    key = f"{index:09d}"
    meta = {
        "key": key,
        "fps": options.fps,
        "num_frames": len(frames),
        "duration": len(frames) / options.fps,
        "width": options.image_size,
        "height": options.image_size,
        "events": [{"object": f"{e.colour} {e.shape}", "action": e.action} for e in events],
        "foil_caption": describe(foil_order(events), connective),
    }
    mp4 = encode_mp4(frames, fps=options.fps, gop=options.frames_per_event)
    return {"__key__": key, "mp4": mp4, "txt": describe(events, connective), "json": meta}


def generate_video_text(out_dir: str, options: VideoTextOptions, overwrite: bool = False,
                        on_sample: Callable[[], None] | None = None) -> str:
    """Write `options.num_samples` clips and sizes.json; return the shard spec."""
    with ShardWriter(out_dir, options.shard_size, overwrite=overwrite) as writer:
        for index in range(options.num_samples):
            writer.write(make_sample(index, options))
            if on_sample is not None:
                on_sample()
        spec = writer.close()
    return spec
