"""Trainer callbacks: metrics file, data-pipeline statistics, weight EMA."""

from mmpretrain.callbacks.data_stats import DataStatsLogger
from mmpretrain.callbacks.ema import EMAWeights
from mmpretrain.callbacks.metrics_file import MetricsFileWriter

__all__ = ["DataStatsLogger", "EMAWeights", "MetricsFileWriter"]
