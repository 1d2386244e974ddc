"""Trainer callbacks: metrics file, data-pipeline statistics, channels-last memory format."""

from mmpretrain.callbacks.channels_last import ChannelsLast
from mmpretrain.callbacks.data_stats import DataStatsLogger
from mmpretrain.callbacks.metrics_file import MetricsFileWriter

__all__ = ["ChannelsLast", "DataStatsLogger", "MetricsFileWriter"]
