"""Trainer callbacks: metrics file, data-pipeline statistics."""

from mmpretrain.callbacks.data_stats import DataStatsLogger
from mmpretrain.callbacks.metrics_file import MetricsFileWriter
from mmpretrain.callbacks.selection_stats import SelectionStatsLogger

__all__ = ["DataStatsLogger", "MetricsFileWriter", "SelectionStatsLogger"]
