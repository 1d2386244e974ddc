"""CoCa: open_clip's CoCa weights give equal embeddings, decoder logits and greedy captions in
ours and back; the decoder is causal; the two CLS-mask variants; config errors."""

from __future__ import annotations

import copy
import json

import open_clip
import pytest
import torch
from open_clip.coca_model import CoCa as OpenClipCoCa
from safetensors.torch import save_file

from mmpretrain.commands.export import export
from mmpretrain.models import (
    CoCa,
    CoCaTextTransformer,
    CoCaVisionTransformer,
    MultimodalTextDecoder,
    clip_from_open_clip_config,
    create_clip,
    to_open_clip_state_dict,
)
from mmpretrain.models.checkpoints import (
    load_clip_weights,
    open_clip_config_from_model,
    state_dict_of,
)

VOCAB, LENGTH, SOT, EOT = 1000, 12, 997, 999
BASE_CFG = {
    "embed_dim": 48,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 16,
                   "attentional_pool": True, "attn_pooler_queries": 9, "attn_pooler_heads": 4,
                   "output_tokens": True},
    "text_cfg": {"context_length": LENGTH, "vocab_size": VOCAB, "width": 48, "heads": 4,
                 "layers": 2, "embed_cls": True, "output_tokens": True},
    "multimodal_cfg": {"context_length": LENGTH, "vocab_size": VOCAB, "width": 48, "heads": 4,
                       "layers": 2},
    "custom_text": True,
}


def _variant(name: str) -> dict:
    cfg = copy.deepcopy(BASE_CFG)
    if name == "pooler_width_equals_vit":  # the pooler's kv projection packed as in_proj_weight
        cfg["vision_cfg"]["width"] = 48
    elif name == "no_attentional_pool":  # open_clip's coca_base: tokens are ViT patch tokens
        cfg["vision_cfg"].update(attentional_pool=False, width=48)
    return cfg


def _reference(cfg: dict) -> OpenClipCoCa:
    torch.manual_seed(0)
    model = OpenClipCoCa(cfg["embed_dim"], cfg["multimodal_cfg"], cfg["text_cfg"],
                         cfg["vision_cfg"]).eval()
    with torch.no_grad():  # open_clip leaves the decoder's vocabulary projection uninitialised
        torch.nn.init.normal_(model.text_decoder.text_projection, std=0.1)
    return model


def _inputs(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(1, SOT, (batch, LENGTH), generator=gen)
    tokens[:, 0] = SOT
    for row, eot in enumerate([4, 7, LENGTH - 1][:batch]):
        tokens[row, eot] = EOT
        tokens[row, eot + 1:] = 0
    return torch.randn(batch, 3, 32, 32, generator=gen), tokens


def _ours_from(reference: OpenClipCoCa, cfg: dict, **kwargs) -> CoCa:
    ours = clip_from_open_clip_config(cfg, attn_backend="math")
    load_clip_weights(ours, reference.state_dict(), "open_clip CoCa")
    ours.pack_caption_logits = kwargs.get("pack", False)
    return ours.eval()


@pytest.mark.parametrize("variant", ["attentional_pool", "pooler_width_equals_vit",
                                     "no_attentional_pool"])
def test_open_clip_coca_weights_give_equal_embeddings_and_logits(variant):
    cfg = _variant(variant)
    reference = _reference(cfg)
    ours = _ours_from(reference, cfg)
    assert set(ours.state_dict()) == set(reference.state_dict())
    images, tokens = _inputs()
    with torch.no_grad():
        expected, got = reference(images, tokens), ours(images, tokens)
        torch.testing.assert_close(ours.encode_image(images),  # normalised by default, as there
                                   reference.encode_image(images))
        torch.testing.assert_close(ours.encode_text(tokens, normalize=False),
                                   reference.encode_text(tokens, normalize=False))
    for key in ("image_features", "text_features", "logit_scale"):
        torch.testing.assert_close(got[key], expected[key])
    torch.testing.assert_close(got["caption_logits"], expected["logits"])
    assert torch.equal(got["caption_labels"], expected["labels"])
    ours.pack_caption_logits = True
    with torch.no_grad():
        packed = ours(images, tokens)
    is_label = expected["labels"] != 0
    torch.testing.assert_close(packed["caption_logits"], expected["logits"][is_label])
    assert torch.equal(packed["caption_labels"], expected["labels"][is_label])


def test_greedy_generation_matches_open_clip_argmax_decoding():
    reference = _reference(BASE_CFG)
    ours = _ours_from(reference, BASE_CFG)
    images, _ = _inputs()
    got = ours.generate(images, max_len=8, sot_token_id=SOT, eot_token_id=EOT)
    expected = torch.full((3, 1), SOT)
    with torch.no_grad():
        for _ in range(7):
            logits = reference(images, expected, output_labels=False)["logits"][:, -1]
            expected = torch.cat([expected, logits.argmax(-1, keepdim=True)], dim=1)
    # greedy decoding stops a row at EOT (then pads) and forces EOT at max_len
    for row in range(3):
        seq = expected[row, :7].tolist()
        stop = seq.index(EOT) + 1 if EOT in seq else 7
        assert got[row, :stop].tolist() == seq[:stop]
        assert (got[row, stop:] == 0).all() or got[row, stop:].tolist() == [EOT]


def test_export_loads_back_into_open_clip(tmp_path):
    reference = _reference(BASE_CFG)
    ours = _ours_from(reference, BASE_CFG)
    cfg = open_clip_config_from_model(ours)
    weights = tmp_path / "ours.safetensors"
    save_file(state_dict_of(ours), str(weights))
    config_json = tmp_path / "cfg.json"
    config_json.write_text(json.dumps(cfg))
    export(weights, "open_clip", tmp_path / "exported", model_cfg=str(config_json))
    loaded = open_clip.create_model(f"local-dir:{tmp_path / 'exported'}").eval()
    assert isinstance(loaded, OpenClipCoCa)
    images, tokens = _inputs()
    with torch.no_grad():
        expected, got = ours(images, tokens), loaded(images, tokens)
    torch.testing.assert_close(got["image_features"], expected["image_features"])
    torch.testing.assert_close(got["text_features"], expected["text_features"])
    torch.testing.assert_close(got["logits"], expected["caption_logits"])
    assert to_open_clip_state_dict(state_dict_of(ours)).keys() == loaded.state_dict().keys()


def test_decoder_is_causal():
    model = create_clip("coca-tiny", attn_backend="math",
                        text_cfg={"vocab_size": VOCAB}).eval()
    model.pack_caption_logits = False
    images, tokens = torch.randn(2, 3, 64, 64), torch.randint(1, VOCAB, (2, 20))
    changed = tokens.clone()
    changed[:, 9] = (tokens[:, 9] + 1) % VOCAB
    with torch.no_grad():
        before = model(images, tokens)["caption_logits"]
        after = model(images, changed)["caption_logits"]
    torch.testing.assert_close(after[:, :9], before[:, :9], rtol=0, atol=1e-6)
    assert (after[:, 9:] - before[:, 9:]).abs().amax(dim=-1).min() > 1e-4


@pytest.mark.parametrize("correct_cls_mask", [False, True])
def test_cls_token_padding_mask_variants(correct_cls_mask):
    torch.manual_seed(0)
    text = CoCaTextTransformer(context_length=8, vocab_size=50, width=32, layers=2, heads=2,
                               output_dim=16, attn_backend="math",
                               correct_cls_mask=correct_cls_mask).eval()
    tokens = torch.tensor([[49, 5, 6, 48, 0, 0, 0, 0]])
    with torch.no_grad():
        before = text(tokens)
        text.token_embedding.weight[0] += torch.randn(32)  # the padding token's embedding
        after = text(tokens)
    # open_clip's legacy mask lets the CLS see the first padding token; the correct one does not
    assert torch.allclose(before, after) == correct_cls_mask


def test_registered_coca_b32_has_open_clip_layout():
    with torch.device("meta"):
        ours = create_clip("coca_ViT-B-32")
        theirs = open_clip.create_model("coca_ViT-B-32", device="meta")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}


def test_mismatched_parts_raise_clear_errors():
    vision = CoCaVisionTransformer(image_size=16, patch_size=8, width=32, layers=1, heads=2,
                                   output_dim=16, attn_pooler_queries=4, attn_pooler_heads=2)
    text = CoCaTextTransformer(context_length=8, vocab_size=50, width=16, layers=1, heads=2,
                               output_dim=16)
    with pytest.raises(ValueError, match="decoder width 32 must equal the image token width"):
        CoCa(vision, text, MultimodalTextDecoder(width=32, layers=1, heads=2, vocab_size=50))
    with pytest.raises(ValueError, match="vocab_size"):
        CoCa(vision, text, MultimodalTextDecoder(width=16, layers=1, heads=2, vocab_size=60))
    bad_cfg = copy.deepcopy(BASE_CFG)
    bad_cfg["text_cfg"]["embed_cls"] = False
    with pytest.raises(ValueError, match="embed_cls"):
        clip_from_open_clip_config(bad_cfg)


def test_shorter_context_keeps_the_cls_position_row():
    reference = _reference(BASE_CFG)
    short_cfg = copy.deepcopy(BASE_CFG)
    short_cfg["text_cfg"]["context_length"] = 8
    ours = clip_from_open_clip_config(short_cfg, attn_backend="math")
    load_clip_weights(ours, reference.state_dict(), "open_clip CoCa")
    source = reference.state_dict()["text.positional_embedding"]  # [12 tokens + CLS, W]
    loaded = ours.state_dict()["text.positional_embedding"]
    assert loaded.shape[0] == 9
    torch.testing.assert_close(loaded, torch.cat([source[:8], source[-1:]]))
    tokens = _inputs()[1][:, :8]
    with torch.no_grad():  # text tokens see only earlier positions: decoder logits unchanged
        torch.testing.assert_close(ours.text.forward_with_tokens(tokens)[1],
                                   reference.text(tokens)[1])
