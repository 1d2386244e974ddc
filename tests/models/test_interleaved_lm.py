"""InterleavedLM: zero gates = text-only LM; packed documents = each document alone."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mmpretrain.data.packing import InterleavedCollator
from mmpretrain.data.sources.interleaved import (
    IMAGE_TOKEN,
    InterleavedDocument,
    InterleavedDocumentDecoder,
    interleaved_tokenizer,
)
from mmpretrain.data.synthetic.interleaved import InterleavedOptions, make_document
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.losses.language_model import next_token_targets
from mmpretrain.models import VisionTransformer
from mmpretrain.models.interleaved import InterleavedLM

V = 2
TOKENIZER = interleaved_tokenizer()
SOT, IMG = TOKENIZER.sot_token_id, TOKENIZER.special_token_id(IMAGE_TOKEN)


def _model(backend: str = "math", device: str = "cpu") -> InterleavedLM:
    torch.manual_seed(0)
    vision = VisionTransformer(image_size=16, patch_size=8, width=32, layers=1, heads=2, output_dim=16,
                               attn_backend=backend)
    model = InterleavedLM(vision, vocab_size=TOKENIZER.vocab_size, context_length=96, width=32, text_layers=1,
                          multimodal_layers=2, heads=2, visual_tokens=V, attn_backend=backend)
    with torch.no_grad():  # open the gates so the images matter
        for block in model.cross_blocks:
            block.attn_gate.fill_(0.7)
            block.mlp_gate.fill_(-0.4)
    return model.to(device).eval()


def _documents(count: int = 5) -> list[InterleavedDocument]:
    """Synthetic documents through the real decoder (16 px images, V placeholders per image)."""
    options = InterleavedOptions(num_samples=count, max_images=3, icon_probability=0.0, inline_fraction=0.0)
    decoder = InterleavedDocumentDecoder(ImageTransform(16, train=False), TOKENIZER, visual_tokens=V,
                                         max_length=96)
    docs = []
    for index in range(count):
        sample = make_document(index, options)
        docs.append(decoder({**sample, "json": json.dumps(sample["json"]).encode()}))
    return docs


DOCS = _documents()
COLLATE = InterleavedCollator(96, "packed", SOT, IMG, V)


def _run(model: InterleavedLM, batch: dict, images: bool = True) -> dict:
    return model(batch["tokens"], batch["position_ids"], batch["segment_ids"],
                 batch["images"] if images else None, batch["image_slots"], batch["media_slot"])


def _per_document(model: InterleavedLM, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """key -> (final hidden states of its tokens, its token NLLs)."""
    out = _run(model, batch)
    source, target = next_token_targets(batch["tokens"], batch["segment_ids"], batch["text_mask"])
    nll = F.cross_entropy(model.lm_logits(out["hidden"], source), target, reduction="none")
    length = batch["tokens"].shape[1]
    result = {}
    for r, keys in enumerate(batch["key"]):
        offset = 0
        for key, n in zip(keys, batch["doc_lengths"][r]):
            lo, hi = r * length + offset, r * length + offset + n
            in_doc = (source >= lo) & (source < hi)
            result[key] = (out["hidden"][r, offset:offset + n], nll[in_doc])
            offset += n
    return result


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_packed_batch_equals_each_document_alone(backend):
    model = _model(backend)
    packed_batch = COLLATE(DOCS)
    assert packed_batch["tokens"].shape[0] < len(DOCS)  # documents really share rows
    with torch.no_grad():
        packed = _per_document(model, packed_batch)
        for doc in DOCS:
            hidden, nll = _per_document(model, COLLATE([doc]))[doc.key]
            torch.testing.assert_close(packed[doc.key][0], hidden, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(packed[doc.key][1], nll, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(packed[doc.key][1].mean(), nll.mean(), atol=1e-5, rtol=1e-4)


def test_an_image_reaches_only_later_tokens_of_its_own_document():
    model = _model("sdpa")
    batch = COLLATE(DOCS)
    with torch.no_grad():
        base = _run(model, batch)["hidden"]
        changed = dict(batch, images=batch["images"].clone())
        flat = int(batch["image_slots"][0, 1])  # the second image of row 0
        changed["images"][flat] += 3.0
        after = _run(model, changed)["hidden"]
    moved = (after - base).abs().amax(dim=-1) > 1e-6
    # exactly the tokens of that document from the image's first placeholder on
    first = int((batch["media_slot"][0] == 1).nonzero()[0])
    segment = batch["segment_ids"][0, first]
    expected = torch.zeros_like(moved)
    expected[0] = (batch["segment_ids"][0] == segment) & (torch.arange(moved.shape[1]) >= first)
    assert expected.any() and torch.equal(moved, expected)


def test_zero_gates_equal_the_text_only_language_model():
    model = _model("math")
    with torch.no_grad():
        for block in model.cross_blocks:
            block.attn_gate.zero_()
            block.mlp_gate.zero_()
    batch = COLLATE(DOCS)
    with torch.no_grad():
        gated = _run(model, batch)["hidden"]
        text_only = _run(model, batch, images=False)["hidden"]
        # reference: a plain causal LM through the same self-attention blocks, one document at a time
        for r, keys in enumerate(batch["key"]):
            offset = 0
            for n in batch["doc_lengths"][r]:
                tokens = batch["tokens"][r:r + 1, offset:offset + n]
                x = model.token_embedding(tokens) + model.positional_embedding[:n]
                for block in [*model.text_blocks, *model.lm_blocks]:
                    x = block(x, causal=True)
                torch.testing.assert_close(gated[r:r + 1, offset:offset + n], model.ln_final(x), atol=1e-5, rtol=1e-4)
                offset += n
    torch.testing.assert_close(gated, text_only)
    # with open gates the images change the output: the comparison above can fail
    assert not torch.allclose(_run(_model("math"), batch)["hidden"], text_only, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers path needs CUDA")
def test_xformers_packed_model_matches_sdpa():
    pytest.importorskip("xformers.ops")
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in COLLATE(DOCS).items()}
    with torch.no_grad():
        fused = _run(_model("xformers", "cuda"), batch)["hidden"]
        reference = _run(_model("sdpa", "cuda"), batch)["hidden"]
    real = batch["segment_ids"] > 0
    torch.testing.assert_close(fused[real], reference[real], atol=2e-4, rtol=2e-4)
