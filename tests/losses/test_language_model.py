"""Next-token LM loss: targets skip placeholders, padding and document boundaries; PRIOR weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmpretrain.losses.language_model import NextTokenLoss, next_token_targets, prior_token_weights

IMG = 9


def test_targets_mask_placeholders_padding_and_document_boundaries():
    # row 0: doc 1 = [1, IMG, IMG, 2, 3], doc 2 = [4, 5], one pad; row 1: doc 1 = [6, 7, IMG, 8], pads
    tokens = torch.tensor([[1, IMG, IMG, 2, 3, 4, 5, 0], [6, 7, IMG, 8, 0, 0, 0, 0]])
    segments = torch.tensor([[1, 1, 1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 0, 0, 0, 0]])
    text_mask = (tokens != IMG) & (segments > 0)
    source, target = next_token_targets(tokens, segments, text_mask)
    # position -> next: 2->2 (last placeholder predicts the first caption token), 3->3, 5->5,
    # 8->7, 10->8; never 4->4 (across documents), never into a placeholder or padding
    assert source.tolist() == [2, 3, 5, 8, 10]
    assert target.tolist() == [2, 3, 5, 7, 8]
    assert IMG not in target.tolist()


def test_loss_is_mean_cross_entropy_and_weights_reweight_tokens():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 11), torch.randint(0, 11, (6,))
    loss = NextTokenLoss()
    nll = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(loss(logits, targets), nll.mean())
    weights = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(loss(logits, targets, weights), nll[3:].mean())
    assert loss(logits[:0], targets[:0]).item() == 0.0


def test_prior_weights_favour_tokens_the_reference_finds_hard():
    targets = torch.tensor([0, 1, 2])
    reference = torch.full((3, 4), -10.0)
    reference[0, 0] = 10.0  # easy for the text-only reference
    reference[1, 1] = 0.0  # medium
    weights = prior_token_weights(reference, targets, alpha=1.0, max_weight=1e9)  # token 2: hard
    assert weights[0] < weights[1] < weights[2]
    torch.testing.assert_close(weights.mean(), torch.tensor(1.0))
    capped = prior_token_weights(reference, targets, alpha=1.0, max_weight=2.0)
    assert capped.max() / capped.min() <= 2.0 / 1.0 + 1e-6
