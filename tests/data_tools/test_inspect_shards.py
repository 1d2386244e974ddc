"""data_tools/inspect_shards.py: counts and caption stats, truncated/garbage/corrupt shards."""

import importlib.util
import io
import json
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from mmpretrain.data.synthetic.image_text import ImageTextOptions, generate_image_text
from mmpretrain.data.wds.writer import ShardWriter

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "data_tools" / "inspect_shards.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("inspect_shards_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _tiny_jpeg():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="JPEG")
    return buffer.getvalue()


def run_report(tool, spec, tmp_path):
    report_path = tmp_path / "report.json"
    code = tool.main([spec, "--json", str(report_path), "--quiet"])
    return code, json.loads(report_path.read_text())


@pytest.fixture
def shards(tmp_path):
    folder = tmp_path / "shards"
    generate_image_text(str(folder), ImageTextOptions(num_samples=12, shard_size=4, seed=0))
    return folder


def test_clean_shards_report_counts_and_caption_stats(shards, tmp_path):
    code, report = run_report(load_tool(), f"{shards}/shard-{{000000..000002}}.tar", tmp_path)

    assert code == 0 and report["ok"] and report["problems"] == []
    total = report["total"]
    assert total["samples"] == total["expected_samples"] == 12 and total["shards"] == 3
    assert total["extensions"] == {"jpg": 12, "json": 12, "txt": 12}
    assert total["corrupt_members"] == total["bad_shards"] == 0
    assert total["samples_missing_image"] == total["samples_missing_caption"] == 0
    captions = []
    for path in sorted(shards.glob("*.tar")):
        with tarfile.open(path) as tar:
            captions += [tar.extractfile(m).read().decode() for m in tar if m.name.endswith(".txt")]
    words = [len(c.split()) for c in captions]
    assert total["caption_words"] == {"min": min(words), "mean": round(statistics.fmean(words), 3),
                                      "median": statistics.median(words), "max": max(words)}
    assert total["caption_chars"]["max"] == max(len(c) for c in captions)
    assert [s["samples"] for s in report["shards"]] == [4, 4, 4]


def test_directory_spec_matches_brace_spec(shards, tmp_path):
    tool = load_tool()
    _, from_dir = run_report(tool, str(shards), tmp_path)
    _, from_braces = run_report(tool, f"{shards}/shard-{{000000..000002}}.tar", tmp_path)
    assert from_dir["total"] == from_braces["total"]


def _member_offsets(path):
    with tarfile.open(path) as tar:
        return {m.name: (m.offset, m.offset_data, m.size) for m in tar.getmembers()}


@pytest.mark.parametrize("where, error, missing_image, missing_caption", [
    ("inside last image", "truncated or corrupt at member 000000007.jpg", 1, 1),
    ("inside last header", "unreadable data at byte", 0, 1),
    ("before end marker", "no end-of-archive marker", 0, 0),
])
def test_truncated_shard_is_reported_not_fatal(shards, tmp_path, where, error, missing_image,
                                              missing_caption):
    victim = shards / "shard-000001.tar"
    offsets = _member_offsets(victim)
    cut = {
        "inside last image": offsets["000000007.jpg"][1] + 100,
        "inside last header": offsets["000000007.json"][0] + 200,
        "before end marker": -(-sum(offsets["000000007.txt"][1:]) // 512) * 512,
    }[where]
    victim.write_bytes(victim.read_bytes()[:cut])

    code, report = run_report(load_tool(), str(shards), tmp_path)

    assert code == 1 and not report["ok"]
    bad = report["shards"][1]
    assert bad["tar_error"].startswith(error)
    assert (bad["samples_missing_image"], bad["samples_missing_caption"]) == (
        missing_image, missing_caption)
    assert [s["tar_error"] for s in report["shards"][::2]] == [None, None]
    assert report["total"]["samples"] == 12
    assert any(p.startswith(f"{victim}: ") for p in report["problems"])


def test_garbage_and_missing_files_are_reported(shards, tmp_path):
    (shards / "shard-000002.tar").write_bytes(b"definitely not a tar archive" * 40)

    code, report = run_report(load_tool(), f"{shards}/shard-{{000000..000003}}.tar", tmp_path)

    assert code == 1
    assert report["shards"][2]["tar_error"].startswith("not a readable tar archive")
    assert report["shards"][3]["tar_error"] == "file not found"
    assert report["total"]["bad_shards"] == 2 and report["total"]["samples"] == 8


def test_corrupt_members_and_missing_parts_are_counted(tmp_path):
    folder = tmp_path / "shards"
    with ShardWriter(str(folder), 10) as writer:
        writer.write({"__key__": "good", "jpg": _tiny_jpeg(), "txt": "a caption"})
        writer.write({"__key__": "badimg", "jpg": b"\xff\xd8\xff garbage", "txt": "x y"})
        writer.write({"__key__": "nocap", "png": _tiny_jpeg(), "json": {"a": 1}})
        writer.write({"__key__": "noimg", "txt": "   ", "json": b"{not json"})

    code, report = run_report(load_tool(), str(folder), tmp_path)

    assert code == 1
    shard = report["shards"][0]
    assert shard["samples"] == 4 and shard["tar_error"] is None
    assert sorted(m["member"] for m in shard["corrupt_members"]) == ["badimg.jpg", "noimg.json"]
    assert shard["samples_missing_image"] == 1 and shard["samples_missing_caption"] == 1
    assert shard["empty_captions"] == 1
    assert shard["caption_words"] == {"min": 0, "mean": 1.333, "median": 2, "max": 2}


def test_cli_help_and_run(shards, tmp_path):
    help_run = subprocess.run([sys.executable, str(TOOL), "--help"], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and "--json" in help_run.stdout

    head = (shards / "shard-000000.tar").read_bytes()[:3000]
    (shards / "shard-000000.tar").write_bytes(head)
    run = subprocess.run([sys.executable, str(TOOL), str(shards)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "TOTAL (3 shards)" in run.stdout
    assert "PROBLEM" in run.stdout and "shard-000000.tar" in run.stdout
