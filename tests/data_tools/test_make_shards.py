"""data_tools/make_shards.py: folder and table inputs, JPEG pass-through, skip counting."""

import csv
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "data_tools" / "make_shards.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("make_shards_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def read_samples(folder):
    """{key: {ext: bytes}} over every shard listed in sizes.json, checking the counts."""
    sizes = json.loads((folder / "sizes.json").read_text())
    samples = {}
    for name, count in sizes.items():
        with tarfile.open(folder / name) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
        keys = {n.split(".")[0] for n, _ in members}
        assert len(keys) == count
        for member_name, data in members:
            key, ext = member_name.split(".", 1)
            samples.setdefault(key, {})[ext] = data
    return samples


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "a.jpg", quality=80)
    (folder / "a.txt").write_text("  a red box \n")
    Image.new("RGBA", (20, 16), (0, 0, 255, 0)).save(folder / "sub" / "b.png")
    (folder / "sub" / "b.txt").write_text("transparent")
    (folder / "c.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (folder / "c.txt").write_text("broken image")
    Image.new("RGB", (8, 8)).save(folder / "d.webp")
    (folder / "d.txt").write_text("   \n")
    Image.new("RGB", (8, 8)).save(folder / "e.png")
    (folder / "orphan.txt").write_text("caption without image")
    return folder


def test_folder_input_keeps_jpeg_reencodes_png_and_counts_skips(image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert load_tool().main([str(image_folder), "--out", str(out), "--shard-size", "1",
                             "--quiet"]) == 0

    printed = capsys.readouterr().out
    assert "wrote 2 samples in 2 shards" in printed
    assert ("skipped: missing image 1, unreadable image 1, missing caption 1, empty caption 1"
            in printed)
    samples = read_samples(out)
    by_source = {json.loads(s["json"])["source"]: s for s in samples.values()}
    assert set(by_source) == {"a.jpg", "sub/b.png"}
    assert by_source["a.jpg"]["jpg"] == (image_folder / "a.jpg").read_bytes()
    assert by_source["a.jpg"]["txt"] == b"a red box"
    png = Image.open(io.BytesIO(by_source["sub/b.png"]["jpg"]))
    assert png.format == "JPEG" and png.size == (20, 16)
    assert min(png.convert("L").getdata()) > 245  # transparent pixels composited on white
    meta = json.loads(by_source["sub/b.png"]["json"])
    assert (meta["width"], meta["height"]) == (20, 16)


def _write_table(path, rows):
    if path.suffix == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_table_input_uses_keys_paths_and_extra_columns(image_folder, tmp_path, suffix, capsys):
    rows = [
        {"key": "k1", "image": "images/a.jpg", "caption": "first", "url": "http://a.example/1"},
        {"key": "k2", "image": "images/missing.jpg", "caption": "gone", "url": "http://b"},
        {"key": "k3", "image": str(image_folder / "sub" / "b.png"), "caption": "abs path",
         "url": "http://c"},
        {"key": "k4", "image": "images/c.jpg", "caption": "broken", "url": "http://d"},
    ]
    table = tmp_path / f"captions{suffix}"
    _write_table(table, rows)
    out = tmp_path / "out"

    assert load_tool().main([str(table), "--out", str(out), "--quiet"]) == 0

    assert ("skipped: missing image 1, unreadable image 1, missing caption 0, empty caption 0"
            in capsys.readouterr().out)
    samples = read_samples(out)
    assert sorted(samples) == ["k1", "k3"]
    meta = json.loads(samples["k1"]["json"])
    assert meta == {"key": "k1", "url": "http://a.example/1", "width": 40, "height": 30,
                    "source": "images/a.jpg"}
    assert samples["k3"]["txt"] == b"abs path"


def test_table_errors_name_the_file_and_problem(tmp_path, capsys):
    tool = load_tool()
    missing_column = tmp_path / "bad.csv"
    missing_column.write_text("image,text\na.jpg,hello\n")
    dotted_key = tmp_path / "keys.jsonl"
    dotted_key.write_text(json.dumps({"key": "a.b", "image": "x.jpg", "caption": "c"}) + "\n")

    assert tool.main([str(missing_column), "--out", str(tmp_path / "o1"), "--quiet"]) == 1
    assert tool.main([str(dotted_key), "--out", str(tmp_path / "o2"), "--quiet"]) == 1

    err = capsys.readouterr().err
    assert "bad.csv: missing column(s) ['caption']" in err
    assert "keys.jsonl: row 1: key 'a.b'" in err


def test_cli_help_and_run(image_folder, tmp_path):
    help_run = subprocess.run([sys.executable, str(TOOL), "--help"], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and "--shard-size" in help_run.stdout

    run = subprocess.run([sys.executable, str(TOOL), str(image_folder), "--out",
                          str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "out" / "sizes.json").read_text()) == {"shard-000000.tar": 2}
