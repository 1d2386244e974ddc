"""`make_synthetic.py interleaved` and `mmc4_to_wds.py`: shards that the document decoder reads."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

from PIL import Image

from mmpretrain.data.sources.interleaved import IMAGE_TOKEN, InterleavedDocumentDecoder, interleaved_tokenizer
from mmpretrain.data.synthetic.interleaved import InterleavedOptions, generate_interleaved, make_document
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.data.wds.skips import SkipCounter
from mmpretrain.data.wds.tar_reader import iter_tar_samples

REPO = Path(__file__).resolve().parents[2]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_tool", REPO / "data_tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _decode_all(folder: Path) -> list:
    decoder = InterleavedDocumentDecoder(ImageTransform(32, train=False), interleaved_tokenizer(), visual_tokens=2)
    skips = SkipCounter()
    docs = [decoder(raw) for shard in sorted(folder.glob("*.tar")) for raw in iter_tar_samples(str(shard), skips)]
    assert skips.total == 0
    return docs


def test_synthetic_documents_refer_to_their_images_and_decode(tmp_path):
    options = InterleavedOptions(num_samples=12, shard_size=5, seed=3, icon_probability=0.5, inline_fraction=0.5)
    spec = generate_interleaved(str(tmp_path / "a"), options)
    assert spec.endswith("shard-{000000..000002}.tar")
    assert json.loads((tmp_path / "a" / "sizes.json").read_text()) == {
        "shard-000000.tar": 5, "shard-000001.tar": 5, "shard-000002.tar": 2}
    generate_interleaved(str(tmp_path / "b"), options)
    assert [p.read_bytes() for p in sorted((tmp_path / "a").glob("*.tar"))] == \
        [p.read_bytes() for p in sorted((tmp_path / "b").glob("*.tar"))]  # deterministic per seed
    samples = [make_document(i, options) for i in range(12)]
    images = [img for s in samples for img in s["json"]["images"] if img is not None]
    assert any(isinstance(i, dict) for i in images) and any(isinstance(i, str) for i in images)
    colours = ("red", "green", "blue", "yellow", "purple", "orange")
    for sample in samples:
        texts, refs = sample["json"]["texts"], sample["json"]["images"]
        for position, ref in enumerate(refs):
            is_scene = ref is not None and (not isinstance(ref, str) or Image.open(io.BytesIO(sample[ref])).width > 8)
            if is_scene:  # the sentence after a scene names a colour
                following = next(t for t in texts[position:] if t is not None)
                assert any(c in following for c in colours), following
    docs = _decode_all(tmp_path / "a")
    assert len(docs) == 12 and sum(d.dropped_small for d in docs) > 0  # icons are filtered


def test_mmc4_conversion(tmp_path, capsys):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    for name, size in (("a.jpg", 32), ("b.png", 40)):
        Image.new("RGB", (size, size), (10, 200, 10)).save(images_dir / name)
    docs = [
        {"url": "https://x/1", "text_list": ["first sentence.", "second sentence.", "third."],
         "image_info": [{"image_name": "b.png", "matched_text_index": 1, "matched_sim": 0.3},
                        {"image_name": "a.jpg", "matched_text_index": 0, "matched_sim": 0.28},
                        {"image_name": "gone.jpg", "matched_text_index": 2, "matched_sim": 0.5},
                        {"image_name": "a.jpg", "matched_text_index": 2, "matched_sim": 0.1}]},
        {"text_list": ["no images here."], "image_info": []},
    ]
    lines = "\n".join(json.dumps(d) for d in docs) + "\nnot json\n"
    (tmp_path / "docs.jsonl").write_text(lines)
    tool = _load_tool("mmc4_to_wds")
    code = tool.main(["--input", str(tmp_path / "docs.jsonl"), "--images-dir", str(images_dir),
                      "--out", str(tmp_path / "out"), "--min-similarity", "0.2"])
    report = capsys.readouterr().out
    assert code == 0 and "wrote 1 documents" in report
    for counter in ("bad_line=1", "document_without_image=1", "image_below_similarity=1", "image_missing=1"):
        assert counter in report
    raw = next(iter_tar_samples(str(tmp_path / "out" / "shard-000000.tar"), SkipCounter()))
    meta = json.loads(raw["json"])
    assert meta["texts"] == [None, "first sentence.", None, "second sentence.", "third."]
    assert meta["images"] == ["img0.jpg", None, "img1.png", None, None] and meta["url"] == "https://x/1"
    (doc,) = _decode_all(tmp_path / "out")
    image_id = interleaved_tokenizer().special_token_id(IMAGE_TOKEN)
    assert len(doc.images) == 2 and doc.tokens.count(image_id) == 4
    assert json.loads((tmp_path / "out" / "sizes.json").read_text()) == {"shard-000000.tar": 1}
