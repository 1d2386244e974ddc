"""Synthetic continual-pretraining benchmark: a pretraining pool and a stream of tasks whose
concepts shift (new colours, new shapes, new backgrounds), plus held-out sets.

Layout under `--out`:

    pool/                 pretraining pool (red/green/blue x circle/square/triangle, plain or
                          noise backgrounds): the starting model is pretrained here, and it is
                          the replay pool P of the stream
    heldout/              held-out eval set of the pool concepts (zero-shot retention, A_ZS)
    task{k}/train         adaptation data of task k (its own classes and background)
    task{k}/eval          eval set of task k (knowledge accumulation, A_KA)
    stream.json           the tasks in order: name, classnames, background

Every directory holds `sizes.json` and a `classes.json` with only its own classnames, so
zero-shot evaluation of a set is over that set's concepts. Scenes reuse `shapes.sample_scene`
and are redrawn until every object belongs to the set's concepts (captions never mention a
concept from elsewhere); `json.label` is the index of the largest object's class in the
directory's classes.json. Sample `i` of a set depends only on `(seed, set, i)`.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmpretrain.data.synthetic.captions import make_caption
from mmpretrain.data.synthetic.image_text import CLASSES_FILENAME, TEMPLATES
from mmpretrain.data.synthetic.shapes import Scene, render_scene, sample_scene
from mmpretrain.data.wds.writer import ShardWriter, write_json_atomic

SUBCOMMAND = "continual"
DESCRIPTION = "continual stream: pretraining pool + tasks with shifting concepts + held-out sets"
STREAM_FILENAME = "stream.json"
MAX_DRAWS = 10_000


@dataclass(frozen=True)
class ConceptSet:
    name: str
    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    backgrounds: tuple[str, ...]

    @property
    def classnames(self) -> list[str]:
        return [f"{colour} {shape}" for colour in self.colours for shape in self.shapes]


_RGB, _WARM = ("red", "green", "blue"), ("yellow", "purple", "orange")
POOL_CONCEPTS = ConceptSet("pool", _RGB, ("circle", "square", "triangle"), ("plain", "noise"))
TASK_CONCEPTS: tuple[ConceptSet, ...] = (
    ConceptSet("warm_round", _WARM, ("circle", "square"), ("striped",)),
    ConceptSet("new_shapes", _RGB, ("star", "cross"), ("checkered",)),
    ConceptSet("warm_pointed", _WARM, ("triangle", "star"), ("gradient",)),
    ConceptSet("diamonds", _RGB + _WARM, ("diamond",), ("striped",)),
    ConceptSet("warm_crosses", _WARM, ("cross",), ("checkered",)),
)


@dataclass(frozen=True)
class ContinualStreamOptions:
    num_samples: int = field(default=1024, metadata={"help": "training samples per task"})
    pool_samples: int = field(default=4096, metadata={"help": "samples in the pretraining pool"})
    eval_samples: int = field(default=256, metadata={"help": "samples per eval / held-out set"})
    num_tasks: int = field(default=5, metadata={"help": f"tasks (1..{len(TASK_CONCEPTS)})"})
    shard_size: int = field(default=256, metadata={"help": "samples per tar shard"})
    seed: int = field(default=0, metadata={"help": "random seed; same seed -> identical shards"})
    image_size: int = field(default=32, metadata={"help": "image side in pixels"})
    max_objects: int = field(default=2, metadata={"help": "most shapes per image (1..4)"})

    def __post_init__(self) -> None:
        for name in ("num_samples", "pool_samples", "eval_samples", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.num_tasks <= len(TASK_CONCEPTS):
            raise ValueError(f"num_tasks must be in 1..{len(TASK_CONCEPTS)}, got {self.num_tasks}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 pixels, got {self.image_size}")
        if not 1 <= self.max_objects <= 4:
            raise ValueError(f"max_objects must be in 1..4, got {self.max_objects}")


def sample_concept_scene(rng: random.Random, concepts: ConceptSet, options: ContinualStreamOptions) -> Scene:
    """A scene whose objects all belong to `concepts`, on one of its backgrounds."""
    allowed = set(concepts.classnames)
    background = rng.choice(concepts.backgrounds)
    for _ in range(MAX_DRAWS):
        scene = sample_scene(rng, options.image_size, 1, options.max_objects, background)
        if all(obj.classname in allowed for obj in scene.objects):
            return scene
    raise RuntimeError(f"no scene of concepts {concepts.name!r} in {MAX_DRAWS} draws")


def concept_sample(index: int, split: str, concepts: ConceptSet, options: ContinualStreamOptions) -> dict[str, Any]:
    rng = random.Random(f"{SUBCOMMAND}/{options.seed}/{split}/{index}")
    scene = sample_concept_scene(rng, concepts, options)
    encoded = io.BytesIO()
    render_scene(scene).save(encoded, format="JPEG", quality=90)
    key = f"{index:09d}"
    meta = {"key": key, "classes": [obj.classname for obj in scene.objects],
            "label": concepts.classnames.index(scene.objects[0].classname),
            "background": scene.background.kind, "concepts": concepts.name}
    return {"__key__": key, "jpg": encoded.getvalue(), "txt": make_caption(scene, rng), "json": meta}


def write_concept_set(out_dir: Path, split: str, concepts: ConceptSet, num_samples: int,
                      options: ContinualStreamOptions, overwrite: bool,
                      on_sample: Callable[[], None] | None = None) -> str:
    with ShardWriter(str(out_dir), options.shard_size, overwrite=overwrite) as writer:
        for index in range(num_samples):
            writer.write(concept_sample(index, split, concepts, options))
            if on_sample is not None:
                on_sample()
        spec = writer.close()
    write_json_atomic(out_dir / CLASSES_FILENAME, {"classnames": concepts.classnames, "templates": list(TEMPLATES)})
    return spec


def generate_continual_stream(out_dir: str, options: ContinualStreamOptions, overwrite: bool = False,
                              on_sample: Callable[[], None] | None = None) -> str:
    """Write pool, held-out and per-task train/eval sets plus stream.json; return `out_dir`."""
    root = Path(out_dir)
    write_concept_set(root / "pool", "pool", POOL_CONCEPTS, options.pool_samples, options, overwrite)
    write_concept_set(root / "heldout", "heldout", POOL_CONCEPTS, options.eval_samples, options, overwrite)
    tasks = []
    for index, concepts in enumerate(TASK_CONCEPTS[: options.num_tasks]):
        task_dir = root / f"task{index}"
        write_concept_set(task_dir / "train", f"task{index}/train", concepts, options.num_samples,
                          options, overwrite, on_sample)
        write_concept_set(task_dir / "eval", f"task{index}/eval", concepts, options.eval_samples,
                          options, overwrite)
        tasks.append({"name": concepts.name, "train": f"task{index}/train", "eval": f"task{index}/eval",
                      "classnames": concepts.classnames, "backgrounds": list(concepts.backgrounds)})
    write_json_atomic(root / STREAM_FILENAME, {"pool": "pool", "heldout": ["heldout"], "tasks": tasks})
    return str(root)
