"""Synthetic shape scenes: geometry, rendering, captions and image-text samples agree."""

import io
import json
import random
import re
import tarfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from mmpretrain.data.synthetic.captions import NUMBER_WORDS, make_caption, plural
from mmpretrain.data.synthetic.image_text import (
    DOMAINS,
    TEMPLATES,
    ImageTextOptions,
    class_names,
    generate_image_text,
    make_sample,
)
from mmpretrain.data.synthetic.shapes import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    render_background,
    render_scene,
    sample_background,
    sample_scene,
)

_COUNT_WORDS = {"a": 1, "an": 1, **{word: n for n, word in NUMBER_WORDS.items()}}
_SHAPE_BY_NOUN = {**{s: s for s in SHAPES}, **{plural(s): s for s in SHAPES}}
_MENTION = re.compile(
    rf"\b({'|'.join(_COUNT_WORDS)}) (?:(?:large|big|small) )?({'|'.join(COLOURS)}) "
    rf"({'|'.join(_SHAPE_BY_NOUN)})\b"
)


def classes_mentioned(caption: str) -> Counter:
    counts = Counter()
    for count_word, colour, noun in _MENTION.findall(caption):
        counts[f"{colour} {_SHAPE_BY_NOUN[noun]}"] += _COUNT_WORDS[count_word]
    return counts


def _boxes_overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_scenes_have_a_clearly_largest_visible_primary_and_no_overlaps():
    rng = random.Random(0)
    for _ in range(300):
        scene = sample_scene(rng, image_size=64, min_objects=1, max_objects=4)
        assert 1 <= len(scene.objects) <= 4
        for other in scene.objects[1:]:
            assert scene.objects[0].box_area() >= 1.99 * other.box_area()
            assert scene.objects[0].filled_area() >= 1.99 * other.filled_area()
        primary_box = scene.objects[0].bbox()
        assert min(primary_box[2] - primary_box[0], primary_box[3] - primary_box[1]) >= 0.2 * 64
        boxes = [obj.bbox() for obj in scene.objects]
        for box in boxes:
            assert 0 <= box[0] < box[2] <= 64 and 0 <= box[1] < box[3] <= 64
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not _boxes_overlap(boxes[i], boxes[j])


def test_render_paints_every_object_in_its_colour():
    rng = random.Random(1)
    for _ in range(50):
        scene = sample_scene(rng, image_size=64, min_objects=2, max_objects=4)
        pixels = np.asarray(render_scene(scene), dtype=np.int32)
        assert pixels.shape == (64, 64, 3)
        for obj in scene.objects:
            centre = pixels[int(obj.cy), int(obj.cx)]
            assert np.abs(centre - np.array(COLOURS[obj.colour])).max() <= 3, obj


@pytest.mark.parametrize("kind, min_colours, max_colours", [
    ("plain", 1, 1), ("striped", 2, 2), ("checkered", 2, 2), ("gradient", 10, None),
    ("noise", 50, None),
])
def test_background_patterns(kind, min_colours, max_colours):
    background = sample_background(random.Random(3), kind)
    pixels = render_background(background, 64, 64)
    distinct = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert distinct >= min_colours and (max_colours is None or distinct <= max_colours)


def test_captions_mention_exactly_the_drawn_objects():
    rng = random.Random(2)
    phrasings = set()
    for _ in range(300):
        scene = sample_scene(rng, image_size=64, min_objects=1, max_objects=6)
        caption = make_caption(scene, rng)
        assert classes_mentioned(caption) == Counter(obj.classname for obj in scene.objects)
        phrasings.add(caption.split()[0])
    assert len(phrasings) >= 4


def test_class_set_and_templates():
    names = class_names()
    assert len(names) == len(set(names)) == len(COLOURS) * len(SHAPES)
    assert 30 <= len(names) <= 48
    assert 4 <= len(TEMPLATES) <= 6 and all(t.count("{}") == 1 for t in TEMPLATES)


def test_sample_annotations_are_consistent():
    options = ImageTextOptions(num_samples=200, seed=5)
    names = class_names()
    domains = set()
    for index in range(200):
        sample = make_sample(index, options, names)
        meta = sample["json"]
        assert meta["key"] == sample["__key__"] == f"{index:09d}"
        assert (meta["width"], meta["height"]) == (64, 64)
        assert len(meta["classes"]) == len(meta["bounding_boxes"]) == len(meta["scores"]) >= 1
        assert all(score == 1.0 for score in meta["scores"])
        for x1, y1, x2, y2 in meta["bounding_boxes"]:
            assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in meta["bounding_boxes"]]
        largest = meta["classes"][int(np.argmax(areas))]
        assert names[meta["label"]] == largest
        assert classes_mentioned(sample["txt"]) == Counter(meta["classes"])
        assert meta["background"] in BACKGROUNDS
        domain = re.match(r"https://([^/]+)/", meta["url"]).group(1)
        assert domain in DOMAINS
        domains.add(domain)
        image = Image.open(io.BytesIO(sample["jpg"]))
        assert image.format == "JPEG" and image.size == (64, 64)
    assert domains == set(DOMAINS)


def test_samples_are_deterministic_per_seed_and_index():
    names = class_names()
    first = make_sample(7, ImageTextOptions(seed=11), names)
    again = make_sample(7, ImageTextOptions(seed=11), names)
    other_seed = make_sample(7, ImageTextOptions(seed=12), names)
    other_index = make_sample(8, ImageTextOptions(seed=11), names)
    assert first == again
    assert first["jpg"] != other_seed["jpg"] and first["jpg"] != other_index["jpg"]


def test_generate_image_text_writes_shards_sizes_and_classes(tmp_path):
    options = ImageTextOptions(num_samples=10, shard_size=4, seed=0, image_size=48)
    spec = generate_image_text(str(tmp_path), options)

    assert spec == f"{tmp_path}/shard-{{000000..000002}}.tar"
    sizes = json.loads((tmp_path / "sizes.json").read_text())
    assert sizes == {"shard-000000.tar": 4, "shard-000001.tar": 4, "shard-000002.tar": 2}
    classes = json.loads((tmp_path / "classes.json").read_text())
    assert classes["classnames"] == class_names() and classes["templates"] == list(TEMPLATES)
    with tarfile.open(tmp_path / "shard-000002.tar") as tar:
        assert tar.getnames() == [
            f"00000000{i}.{ext}" for i in (8, 9) for ext in ("jpg", "json", "txt")]
        meta = json.loads(tar.extractfile("000000009.json").read())
    assert (meta["width"], meta["height"]) == (48, 48)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_samples": 0}, "num_samples"),
    ({"min_objects": 3, "max_objects": 2}, "min_objects"),
    ({"image_size": 8}, "image_size"),
])
def test_options_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageTextOptions(**kwargs)
