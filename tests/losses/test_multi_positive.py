import torch
import torch.nn.functional as F

from mmpretrain.losses import ClipLoss, MultiPositiveClipLoss


def _unit(*shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=gen, dtype=torch.float64), dim=-1)


def test_mean_of_symmetric_infonce_over_caption_and_sub_captions():
    image, text, subs = _unit(6, 8, seed=0), _unit(6, 8, seed=1), _unit(6, 3, 8, seed=2)
    scale = torch.tensor(14.0, dtype=torch.float64)
    got = MultiPositiveClipLoss()(image, text, scale, sub_text_features=subs)
    labels = torch.arange(6)
    expected = 0.0
    for texts in (text, subs[:, 0], subs[:, 1], subs[:, 2]):
        logits = scale * image @ texts.T
        expected = expected + (F.cross_entropy(logits, labels)
                               + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(got, expected / 4)
    torch.testing.assert_close(MultiPositiveClipLoss()(image, text, scale),
                               ClipLoss()(image, text, scale))


def test_sub_captions_matching_the_image_lower_the_loss():
    image, text = _unit(6, 8, seed=0), _unit(6, 8, seed=1)
    scale = torch.tensor(30.0, dtype=torch.float64)
    matching = image.unsqueeze(1).expand(6, 2, 8)
    unrelated = _unit(6, 2, 8, seed=3)
    loss = MultiPositiveClipLoss()
    assert loss(image, text, scale, sub_text_features=matching) < loss(
        image, text, scale, sub_text_features=unrelated)
