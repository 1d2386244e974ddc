"""Synthetic image-text shards: shape scenes + captions + CABS-style concept annotations.

Sample `i` of a run with seed `s` depends only on `(s, i)` (its own `random.Random`), so runs
are byte-identical per seed and any sample can be regenerated on its own. Each sample holds
`jpg` (the scene), `txt` (a caption) and `json` (`key`, `url`, `width`, `height`, `classes` one
"colour shape" per object, normalized xyxy `bounding_boxes`, `scores`, `label` = index in
`classes.json` of the largest object, `background`; with `long_captions`, a multi-sentence
`long_caption`). The URL domain is drawn per sample and
each domain prefers one background style, so URL metadata carries real (if weak) signal for
metadata-conditioning experiments. `classes.json` lists every "colour shape" combination and
prompt templates for zero-shot evaluation.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmpretrain.data.synthetic.captions import NUMBER_WORDS, make_caption, make_long_caption
from mmpretrain.data.synthetic.shapes import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    render_scene,
    sample_scene,
)
from mmpretrain.data.wds.writer import ShardWriter, write_json_atomic

SUBCOMMAND = "image-text"
DESCRIPTION = "coloured-shape scenes with captions and box annotations (jpg, txt, json)"
CLASSES_FILENAME = "classes.json"
TEMPLATES: tuple[str, ...] = (
    "a large {}.",
    "a picture of a large {}.",
    "a big {} on a background.",
    "an image showing a large {}.",
    "a drawing of a big {}.",
)
# One domain per background style: a sample's domain picks its background with this probability.
DOMAINS: tuple[str, ...] = tuple(f"shapes-{k}.example" for k in range(len(BACKGROUNDS)))
DOMAIN_BACKGROUND_PROBABILITY = 0.7
MAX_OBJECTS_LIMIT = max(NUMBER_WORDS)


def class_names() -> list[str]:
    return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


@dataclass(frozen=True)
class ImageTextOptions:
    num_samples: int = field(default=1000, metadata={"help": "samples to generate"})
    shard_size: int = field(default=256, metadata={"help": "samples per tar shard"})
    seed: int = field(default=0, metadata={"help": "random seed; same seed -> identical shards"})
    image_size: int = field(default=64, metadata={"help": "image side in pixels"})
    min_objects: int = field(default=1, metadata={"help": "fewest shapes per image"})
    max_objects: int = field(
        default=4, metadata={"help": f"most shapes per image (<= {MAX_OBJECTS_LIMIT})"}
    )
    jpeg_quality: int = field(default=90, metadata={"help": "JPEG quality (1-95)"})
    long_captions: bool = field(
        default=False, metadata={"help": "also write a multi-sentence json `long_caption`"}
    )

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 pixels, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects <= MAX_OBJECTS_LIMIT:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= {MAX_OBJECTS_LIMIT}, "
                f"got min_objects={self.min_objects}, max_objects={self.max_objects}"
            )
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in 1..95, got {self.jpeg_quality}")


def sample_rng(seed: int, index: int) -> random.Random:
    # A str seed is hashed with SHA-512 by `random`, independent of PYTHONHASHSEED.
    return random.Random(f"{SUBCOMMAND}/{seed}/{index}")


def make_sample(index: int, options: ImageTextOptions, classnames: list[str]) -> dict[str, Any]:
    """One WebDataset sample: `__key__`, `jpg` bytes, `txt` caption, `json` annotations."""
    rng = sample_rng(options.seed, index)
    domain_index = rng.randrange(len(DOMAINS))
    if rng.random() < DOMAIN_BACKGROUND_PROBABILITY:
        background = BACKGROUNDS[domain_index]
    else:
        background = rng.choice(BACKGROUNDS)
    scene = sample_scene(
        rng, options.image_size, options.min_objects, options.max_objects, background
    )
    caption = make_caption(scene, rng)
    encoded = io.BytesIO()
    render_scene(scene).save(encoded, format="JPEG", quality=options.jpeg_quality)

    key = f"{index:09d}"
    areas = [obj.box_area() for obj in scene.objects]
    largest = max(range(len(areas)), key=areas.__getitem__)
    annotations = {
        "key": key,
        "url": f"https://{DOMAINS[domain_index]}/images/{key}.jpg",
        "width": scene.width,
        "height": scene.height,
        "classes": [obj.classname for obj in scene.objects],
        "bounding_boxes": [[round(v, 4) for v in box] for box in scene.normalized_boxes()],
        "scores": [1.0] * len(scene.objects),
        "label": classnames.index(scene.objects[largest].classname),
        "background": scene.background.kind,
    }
    if options.long_captions:
        # its own RNG stream: the default outputs stay byte-identical with the option off
        long_rng = random.Random(f"{SUBCOMMAND}/long/{options.seed}/{index}")
        annotations["long_caption"] = make_long_caption(scene, long_rng)
    return {"__key__": key, "jpg": encoded.getvalue(), "txt": caption, "json": annotations}


def write_classes_file(out_dir: str | Path) -> Path:
    path = Path(out_dir) / CLASSES_FILENAME
    write_json_atomic(path, {"classnames": class_names(), "templates": list(TEMPLATES)})
    return path


def generate_image_text(
    out_dir: str,
    options: ImageTextOptions,
    overwrite: bool = False,
    on_sample: Callable[[], None] | None = None,
) -> str:
    """Write `options.num_samples` samples, sizes.json and classes.json; return the spec."""
    classnames = class_names()
    with ShardWriter(out_dir, options.shard_size, overwrite=overwrite) as writer:
        for index in range(options.num_samples):
            writer.write(make_sample(index, options, classnames))
            if on_sample is not None:
                on_sample()
        spec = writer.close()
    write_classes_file(out_dir)
    return spec
