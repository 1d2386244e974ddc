"""ContrastiveTask objective with sub-captions and extra views."""

import pytest
import torch
import torch.nn.functional as F

from mmpretrain.losses import ClipLoss, MultiPositiveClipLoss
from mmpretrain.models import CLIP, ProjectionMLP, TextTransformer, VisionTransformer
from mmpretrain.tasks import ContrastiveTask


def _model() -> CLIP:
    torch.manual_seed(0)
    return CLIP(VisionTransformer(16, 4, 32, 1, 2, output_dim=16, attn_backend="math"),
                TextTransformer(8, 50, 32, 1, 2, output_dim=16, attn_backend="math"))


def _batch(views: int = 0, sub: int = 0) -> dict:
    gen = torch.Generator().manual_seed(1)
    text = torch.randint(1, 48, (4, 8), generator=gen)
    batch = {"image": torch.randn(4, 3, 16, 16, generator=gen), "text": text}
    if views:
        batch["views"] = torch.randn(4, views, 3, 16, 16, generator=gen)
    if sub:
        batch["sub_text"] = torch.randint(1, 48, (4, sub, 8), generator=gen)
    return batch


def test_extra_views_add_weighted_infonce_of_projected_views():
    head = ProjectionMLP(16, 32, 8)
    task = ContrastiveTask(_model(), ClipLoss(), view_head=head, view_loss_weight=0.5,
                           view_temperature=0.2)
    batch = _batch(views=2)
    out = task.encode(batch)
    assert out["view_embeddings"].shape == (4, 2, 8)
    model = task.model
    views = [F.normalize(head(model.encode_image(batch["views"][:, v])), dim=-1) for v in (0, 1)]
    labels = torch.arange(4)
    logits = views[0] @ views[1].T / 0.2
    view_loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    clip = ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"])
    torch.testing.assert_close(task.objective(out), clip + 0.5 * view_loss)
    with pytest.raises(ValueError, match="extra views"):
        task.encode(_batch())


def test_sub_captions_feed_the_multi_positive_loss():
    task = ContrastiveTask(_model(), MultiPositiveClipLoss())
    batch = _batch(sub=3)
    out = task.encode(batch)
    assert out["sub_text_features"].shape == (4, 3, 16)
    expected_sub = task.model.encode_text(batch["sub_text"][:, 1], normalize=True)
    torch.testing.assert_close(out["sub_text_features"][:, 1], expected_sub)
    torch.testing.assert_close(task.objective(out), MultiPositiveClipLoss()(
        out["image_features"], out["text_features"], out["logit_scale"],
        sub_text_features=out["sub_text_features"]))
    with pytest.raises(ValueError, match="MultiPositiveClipLoss"):
        ContrastiveTask(_model(), ClipLoss()).objective(out)
