"""CaptionEvaluator: token CE / perplexity over several batches, kept samples, greedy captions
decoded with the data tokenizer."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.eval import CaptionEvaluator
from mmpretrain.models import create_clip


def test_cross_entropy_and_perplexity_pool_tokens_over_batches():
    gen = torch.Generator().manual_seed(0)
    evaluator = CaptionEvaluator(pad_id=0, num_samples=3)
    all_logits, all_labels = [], []
    for batch, length in ((2, 5), (4, 5)):
        logits = torch.randn(batch, length, 11, generator=gen)
        labels = torch.randint(1, 11, (batch, length), generator=gen)
        labels[:, 3:] = 0
        labels[0, 1:] = 0  # a one-token caption: batches weigh by tokens, not by batch
        evaluator.update(logits, labels, torch.randn(batch, 3, 8, 8), labels)
        all_logits.append(logits.flatten(0, 1))
        all_labels.append(labels.flatten())
    expected = F.cross_entropy(torch.cat(all_logits), torch.cat(all_labels), ignore_index=0)
    metrics = evaluator.metrics()
    assert metrics["caption_ce"] == pytest.approx(expected.item(), rel=1e-6)
    assert metrics["caption_perplexity"] == pytest.approx(math.exp(expected.item()), rel=1e-6)
    assert sum(images.shape[0] for images in evaluator._images) == 3
    evaluator.reset()
    assert evaluator.metrics() == {}


def test_greedy_captions_are_decoded_generations():
    tokenizer = Tokenizer(context_length=16)
    model = create_clip("coca-tiny", attn_backend="math",
                        text_cfg={"context_length": 16}, multimodal_cfg={"context_length": 16})
    model.eval()
    references = tokenizer(["a red circle", "two blue squares"])
    images = torch.randn(2, 3, 64, 64)
    evaluator = CaptionEvaluator(num_samples=4, max_len=6)
    evaluator.update(torch.zeros(2, 15, 49408), references[:, 1:], images, references)
    captions = evaluator.captions(model, tokenizer)
    generated = model.generate(images, max_len=6)
    assert [c["reference"] for c in captions] == ["a red circle", "two blue squares"]
    assert [c["generated"] for c in captions] == [tokenizer.decode(row) for row in generated]
    assert generated.shape[1] <= 6 and (generated[:, 0] == tokenizer.sot_token_id).all()
