"""Trainer callbacks: metrics file, data-pipeline statistics."""

from mmpretrain.callbacks.data_stats import DataStatsLogger
from mmpretrain.callbacks.metrics_file import MetricsFileWriter

__all__ = ["DataStatsLogger", "MetricsFileWriter"]
