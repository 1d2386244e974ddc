"""Evaluation: zero-shot classification and retrieval (distributed-correct, chunked)."""

from mmpretrain.eval.retrieval import retrieval_recall
from mmpretrain.eval.temporal_probe import temporal_order_accuracy
from mmpretrain.eval.zeroshot import build_zeroshot_classifier, zeroshot_accuracy

__all__ = ["build_zeroshot_classifier", "retrieval_recall", "temporal_order_accuracy", "zeroshot_accuracy"]
