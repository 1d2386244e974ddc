"""make_synthetic.py continual: pool, held-out and task sets with disjoint concepts, per-set
classes.json, labels that index it, captions naming only the set's concepts."""

from __future__ import annotations

import json

from mmpretrain.data.synthetic.continual_stream import POOL_CONCEPTS, TASK_CONCEPTS
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples


def _samples(directory):
    for shard in sorted(directory.glob("*.tar")):
        yield from iter_tar_samples(str(shard), SkipCounter())


def test_stream_layout_and_concepts(continual_stream_shards):
    root = continual_stream_shards["root"]
    stream = json.loads((root / "stream.json").read_text())
    assert [t["name"] for t in stream["tasks"]] == [c.name for c in TASK_CONCEPTS]
    pool_classes = set(POOL_CONCEPTS.classnames)
    for task, concepts in zip(stream["tasks"], TASK_CONCEPTS):
        assert not pool_classes & set(concepts.classnames)  # every task's concepts are new
        for split in ("train", "eval"):
            directory = root / task[split]
            classnames = json.loads((directory / "classes.json").read_text())["classnames"]
            assert classnames == concepts.classnames
            sizes = json.loads((directory / "sizes.json").read_text())
            samples = list(_samples(directory))
            assert len(samples) == sum(sizes.values()) == (64 if split == "train" else 32)
            for sample in samples[:16]:
                meta = json.loads(sample["json"])
                assert set(meta["classes"]) <= set(classnames)
                assert classnames[meta["label"]] == meta["classes"][0]
                assert meta["background"] in concepts.backgrounds
                caption = sample["txt"].decode()
                assert not any(name in caption for name in pool_classes)
