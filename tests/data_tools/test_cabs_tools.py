"""Offline concept tools: caption annotation, concept statistics, MetaCLIP balancing, CLIP-score filtering."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image

from mmpretrain.data.sampling.caption_concepts import CaptionConceptMatcher, singular
from mmpretrain.data.sampling.concepts import ConceptReader, load_concept_table
from mmpretrain.data.wds.rewrite import iter_raw_samples
from mmpretrain.data.wds.writer import ShardWriter

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / "data_tools"


def run_tool(name: str, *args: str) -> str:
    """Run a tool's main(argv) in this process (a subprocess would re-import torch each time)."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), TOOLS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert module.main(list(args)) == 0
    return stdout.getvalue()


def classes_by_key(shards) -> dict[str, list[str]]:
    return {raw["__key__"]: json.loads(raw["json"]).get("classes", []) for raw in iter_raw_samples(str(shards))}


def test_singular_and_number_words():
    assert [singular(w) for w in ["boxes", "cherries", "people", "glasses", "bus", "stars", "knives"]] == \
        ["box", "cherry", "person", "glass", "bus", "star", "knife"]
    matcher = CaptionConceptMatcher(["person", "traffic light", "dog"], {"person": ["man", "woman"]})
    assert matcher("three men near two traffic lights and a dog") == \
        ["person"] * 3 + ["traffic light"] * 2 + ["dog"]
    assert matcher("two very small dogs with a woman") == ["dog", "dog", "person"]
    assert matcher("dogs") == ["dog"]


PLURALS = {"shoes": "shoe", "buses": "bus", "canoes": "canoe", "horseshoes": "horseshoe", "toes": "toe",
           "potatoes": "potato", "heroes": "hero", "houses": "house", "causes": "cause", "viruses": "virus",
           "movies": "movie", "cookies": "cookie", "prizes": "prize", "buzzes": "buzz", "waltzes": "waltz",
           "quizzes": "quiz", "headaches": "headache", "beaches": "beach", "lenses": "lens", "cases": "case"}


def test_singular_of_e_and_s_ending_nouns():
    assert {w: singular(w) for w in PLURALS} == PLURALS
    assert all(singular(s) == s for s in PLURALS.values())  # vocabulary entries stay as they are
    assert CaptionConceptMatcher(["shoe", "bus", "canoe"])("two shoes, three buses and canoes") == \
        ["shoe"] * 2 + ["bus"] * 3 + ["canoe"]


def test_caption_annotation_recovers_synthetic_classes(image_text_shards, tmp_path):
    out = tmp_path / "annotated"
    run_tool("annotate_concepts.py", str(image_text_shards["val"]), "--out", str(out),
             "--vocabulary", str(image_text_shards["val"] / "classes.json"), "--replace")
    original, derived = classes_by_key(image_text_shards["val"]), classes_by_key(out)
    assert derived.keys() == original.keys()
    assert all(Counter(derived[k]) == Counter(original[k]) for k in original)
    assert json.loads((out / "sizes.json").read_text())


def test_parquet_annotations_are_merged(image_text_shards, tmp_path):
    keys = sorted(classes_by_key(image_text_shards["val"]))[:3]
    table = pa.table({"key": keys, "classes": [["cat", "cat"], ["dog"], []],
                      "scores": [[0.9, 0.8], [0.7], []]})
    pq.write_table(table, tmp_path / "dets.parquet")
    out = tmp_path / "merged"
    run_tool("annotate_concepts.py", str(image_text_shards["val"]), "--out", str(out),
             "--parquet", str(tmp_path / "dets.parquet"), "--replace")
    derived = classes_by_key(out)
    assert [derived[k] for k in keys] == [["cat", "cat"], ["dog"], []]
    assert sum(1 for v in derived.values() if v) == 2


def test_concepts_parquet_matches_the_written_shards(image_text_shards, tmp_path):
    out, table = tmp_path / "annotated", tmp_path / "concepts.parquet"
    run_tool("annotate_concepts.py", str(image_text_shards["val"]), "--out", str(out),
             "--vocabulary", str(image_text_shards["val"] / "classes.json"), "--concepts-parquet", str(table))
    written = classes_by_key(out)
    reader = ConceptReader(str(table))
    assert load_concept_table(str(table)) == written
    # the selector reads the same concepts from the parquet as from the json sidecars
    assert all(reader({"__key__": raw["__key__"], "json": b"{}"}) == written[raw["__key__"]]
               for raw in iter_raw_samples(str(out)))
    assert sum(map(len, written.values())) > len(written)


def test_concept_stats_counts_and_plot(image_text_shards, tmp_path):
    stdout = run_tool("concept_stats.py", str(image_text_shards["val"]), "--plot", str(tmp_path / "c.png"),
                      "--json", str(tmp_path / "c.json"), "--top", "5")
    stats = json.loads((tmp_path / "c.json").read_text())
    expected = Counter(c for v in classes_by_key(image_text_shards["val"]).values() for c in v)
    assert stats["objects_by_concept"] == dict(expected)
    assert stats["samples"] == 128 and stats["objects"] == sum(expected.values())
    assert f"unique concepts {len(expected)}" in stdout
    with Image.open(tmp_path / "c.png") as image:
        assert image.size[0] > 500


def write_head_tail_set(path: Path) -> None:
    with ShardWriter(str(path), 64) as writer:
        for i in range(150):
            writer.write({"__key__": f"h{i:04d}", "txt": "x", "json": {"classes": ["head"]}})
        for i in range(50):
            writer.write({"__key__": f"t{i:04d}", "txt": "x", "json": {"classes": [f"tail{i}", "head"][:1]}})
        writer.write({"__key__": "none", "txt": "x", "json": {}})


def test_metaclip_balancing_caps_head_concepts(tmp_path):
    write_head_tail_set(tmp_path / "in")
    for out in ("a", "b"):
        run_tool("balance_concepts.py", str(tmp_path / "in"), "--out", str(tmp_path / out), "--threshold", "10")
    kept = classes_by_key(tmp_path / "a")
    assert kept == classes_by_key(tmp_path / "b")  # deterministic
    assert sum(1 for k in kept if k.startswith("t")) == 50  # tail concepts (F_c <= t) always kept
    assert 3 <= sum(1 for k in kept if k.startswith("h")) <= 20  # ~ t of 150 head samples
    assert "none" not in kept
    assert sum(json.loads((tmp_path / "a" / "sizes.json").read_text()).values()) == len(kept)


def test_clip_score_filter_keeps_top_fraction(image_text_shards, tmp_path):
    sys.path.insert(0, str(TOOLS))
    from filter_by_clip_score import build_decoder, build_task, load_config, load_task, score_shards

    # the experiment config's model section, shrunk so scoring stays fast
    config = load_config([str(REPO_ROOT / "configs" / "exp" / "cabs" / "iid.yaml")])
    towers = config["model"]["init_args"]["model"]["init_args"]
    towers["vision"]["init_args"].update(patch_size=16, width=32, layers=1, heads=2, output_dim=32)
    towers["text"]["init_args"].update(width=32, layers=1, heads=2, output_dim=32)
    config_path = tmp_path / "scorer.yaml"
    config_path.write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    task = build_task(config)
    torch.save({"state_dict": task.state_dict(), "epoch": 0}, tmp_path / "model.ckpt")
    run_tool("filter_by_clip_score.py", str(image_text_shards["val"]), "--out", str(tmp_path / "top"),
             "--config", str(config_path), "--checkpoint", str(tmp_path / "model.ckpt"), "--keep-fraction", "0.25")
    scores, _ = score_shards(str(image_text_shards["val"]), load_task(config, str(tmp_path / "model.ckpt")),
                             build_decoder(config), 64)
    kept = {raw["__key__"]: json.loads(raw["json"])["clip_score"] for raw in iter_raw_samples(str(tmp_path / "top"))}
    best = sorted(scores, key=scores.get, reverse=True)[:32]
    assert sorted(kept) == sorted(best)
    assert all(kept[k] == pytest.approx(scores[k], abs=1e-5) for k in kept)
