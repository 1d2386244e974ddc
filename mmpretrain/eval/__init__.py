"""Evaluation: zero-shot classification and retrieval (distributed-correct, chunked)."""

from mmpretrain.eval.retrieval import retrieval_recall
from mmpretrain.eval.zeroshot import build_zeroshot_classifier, zeroshot_accuracy

__all__ = ["build_zeroshot_classifier", "retrieval_recall", "zeroshot_accuracy"]

from mmpretrain.eval.action import action_metrics  # noqa: E402

__all__ += ["action_metrics"]
