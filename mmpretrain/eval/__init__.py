"""Evaluation: zero-shot classification, retrieval, caption quality, temporal-order probe,
action metrics (distributed-correct, chunked)."""

from mmpretrain.eval.action import action_metrics
from mmpretrain.eval.captioning import CaptionEvaluator
from mmpretrain.eval.perplexity import PerplexityMeter, RankingMeter, ranking_candidates
from mmpretrain.eval.retrieval import retrieval_recall
from mmpretrain.eval.temporal_probe import temporal_order_accuracy
from mmpretrain.eval.zeroshot import build_zeroshot_classifier, zeroshot_accuracy

__all__ = ["CaptionEvaluator", "PerplexityMeter", "RankingMeter", "action_metrics", "build_zeroshot_classifier",
           "ranking_candidates", "retrieval_recall", "temporal_order_accuracy", "zeroshot_accuracy"]
