"""Perplexity and caption-ranking meters."""

from __future__ import annotations

import math

import torch

from mmpretrain.eval.perplexity import PerplexityMeter, RankingMeter, ranking_candidates


def test_perplexity_is_token_weighted_over_batches():
    meter = PerplexityMeter(("images", "no_images"))
    meter.update("images", torch.tensor([1.0, 2.0, 3.0]))
    meter.update("images", torch.tensor([6.0]))
    meter.update("no_images", torch.tensor([0.5]))
    metrics = meter.compute()
    assert math.isclose(metrics["ppl_images"], math.exp(12.0 / 4))
    assert math.isclose(metrics["ppl_no_images"], math.exp(0.5)) and metrics["ppl_tokens"] == 4


def test_ranking_candidates_and_accuracy():
    captions = torch.tensor([[1, 2], [3, 4], [1, 2], [5, 6]])
    index, valid = ranking_candidates(captions, 3)
    assert index.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 0], [3, 0, 1]]
    assert valid.tolist() == [[True, True, False], [True, True, True], [True, True, False], [True, True, True]]
    meter = RankingMeter()
    scores = torch.tensor([[0.0, -1.0, 5.0],   # correct: the identical caption is not a distractor
                           [0.0, 1.0, -1.0],  # wrong
                           [0.0, 0.0, 9.0],   # tie with a distractor counts as wrong
                           [2.0, 1.0, 1.5]])  # correct
    meter.update(scores, valid)
    metrics = meter.compute()
    assert metrics["caption_rank_top1"] == 0.5 and metrics["caption_rank_count"] == 4
    assert math.isclose(metrics["caption_rank_chance"], (1 / 2 + 1 / 3 + 1 / 2 + 1 / 3) / 4)
