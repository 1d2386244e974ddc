"""Synthetic interleaved image-text documents: shape scenes with text that refers to them.

A document is an optional intro sentence, then 1..`max_images` scenes, each followed by a
sentence about that scene: "the red circle is left of the blue square." (two or more objects)
or "a green star on a striped background." (one object), sometimes with a text-only linking
sentence. Colours, shapes and positions are drawn at random, so those words cannot be
predicted from the text alone: the language model's loss falls further when it looks at the
image. With probability `icon_probability` a position holds a tiny 8-pixel "icon" image that
the tiny-image filter must drop, and a fraction `inline_fraction` of the images are stored
inline as base64 instead of as tar members, so both storage forms are exercised.

Layout per sample: `{key}.json` with position-aligned `texts`/`images` (image entries name the
members `{key}.img{i}.jpg`, or hold `{"base64": ...}`), plus `url`; and the image members.
Sample `i` of seed `s` depends only on `(s, i)`.
"""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from mmpretrain.data.synthetic.captions import BACKGROUND_WORDS, article
from mmpretrain.data.synthetic.shapes import Scene, SceneObject, render_scene, sample_scene
from mmpretrain.data.wds.writer import ShardWriter

SUBCOMMAND = "interleaved"
DESCRIPTION = "documents of shape scenes interleaved with sentences about them (json + jpg members)"
ICON_SIZE = 8
INTROS: tuple[str, ...] = (
    "here are some pictures of shapes.",
    "a page about coloured shapes.",
    "look at these drawings.",
    "my collection of shape pictures.",
)
LINKS: tuple[str, ...] = ("next we see another picture.", "here is one more.", "the next drawing follows.")


@dataclass(frozen=True)
class InterleavedOptions:
    num_samples: int = field(default=1000, metadata={"help": "documents to generate"})
    shard_size: int = field(default=256, metadata={"help": "documents per tar shard"})
    seed: int = field(default=0, metadata={"help": "random seed; same seed -> identical shards"})
    image_size: int = field(default=32, metadata={"help": "image side in pixels"})
    max_images: int = field(default=4, metadata={"help": "most scenes per document"})
    icon_probability: float = field(default=0.1, metadata={"help": "chance of a tiny icon image per scene"})
    inline_fraction: float = field(default=0.1, metadata={"help": "fraction of images stored as base64"})
    jpeg_quality: int = field(default=90, metadata={"help": "JPEG quality (1-95)"})

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.shard_size < 1 or self.max_images < 1:
            raise ValueError(f"num_samples, shard_size and max_images must be >= 1, got "
                             f"{self.num_samples}, {self.shard_size}, {self.max_images}")
        if self.image_size < 2 * ICON_SIZE:
            raise ValueError(f"image_size must be >= {2 * ICON_SIZE} pixels, got {self.image_size}")
        if not (0 <= self.icon_probability <= 1 and 0 <= self.inline_fraction <= 1):
            raise ValueError("icon_probability and inline_fraction must be in [0, 1]")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95, got {self.jpeg_quality}")


def _relation(a: SceneObject, b: SceneObject) -> str:
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def describe_scene(scene: Scene, rng: random.Random) -> str:
    """One sentence that is true of the scene and names its colours and shapes."""
    first = scene.objects[0]
    if len(scene.objects) == 1:
        words = f"{first.colour} {first.shape}"
        return f"{article(words)} {words} on a {BACKGROUND_WORDS[scene.background.kind]} background."
    second = rng.choice(scene.objects[1:])
    return (f"the {first.colour} {first.shape} is {_relation(first, second)} "
            f"the {second.colour} {second.shape}.")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    encoded = io.BytesIO()
    image.save(encoded, format="JPEG", quality=quality)
    return encoded.getvalue()


def make_document(index: int, options: InterleavedOptions) -> dict[str, Any]:
    """One WebDataset sample: `__key__`, `json` (texts/images), `img{i}.jpg` members."""
    rng = random.Random(f"{SUBCOMMAND}/{options.seed}/{index}")
    key = f"{index:09d}"
    texts: list[str | None] = []
    images: list[Any] = []
    members: dict[str, bytes] = {}

    def add_image(data: bytes) -> None:
        texts.append(None)
        if rng.random() < options.inline_fraction:
            images.append({"base64": base64.b64encode(data).decode("ascii")})
        else:
            name = f"img{len(members)}.jpg"
            members[name] = data
            images.append(name)

    def add_text(text: str) -> None:
        texts.append(text)
        images.append(None)

    if rng.random() < 0.5:
        add_text(rng.choice(INTROS))
    for position in range(rng.randint(1, options.max_images)):
        if position > 0 and rng.random() < 0.3:
            add_text(rng.choice(LINKS))
        if rng.random() < options.icon_probability:
            icon = Image.new("RGB", (ICON_SIZE, ICON_SIZE), tuple(rng.randrange(256) for _ in range(3)))
            add_image(_jpeg(icon, options.jpeg_quality))
        scene = sample_scene(rng, options.image_size, min_objects=1, max_objects=3)
        add_image(_jpeg(render_scene(scene), options.jpeg_quality))
        add_text(describe_scene(scene, rng))
    meta = {"texts": texts, "images": images, "url": f"https://shapes-docs.example/{key}.html"}
    return {"__key__": key, "json": meta, **members}


def generate_interleaved(
    out_dir: str,
    options: InterleavedOptions,
    overwrite: bool = False,
    on_sample: Callable[[], None] | None = None,
) -> str:
    """Write `options.num_samples` documents and sizes.json; return the shard spec."""
    with ShardWriter(out_dir, options.shard_size, overwrite=overwrite) as writer:
        for index in range(options.num_samples):
            writer.write(make_document(index, options))
            if on_sample is not None:
                on_sample()
        return writer.close()
