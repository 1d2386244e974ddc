"""Trainer callbacks: continual-stream evaluation, metrics file, data-pipeline and
batch-selection statistics, crash-safe checkpoints, sample keys, weight EMA, channels-last
memory format."""

from mmpretrain.callbacks.channels_last import ChannelsLast
from mmpretrain.callbacks.continual import ContinualEvaluation
from mmpretrain.callbacks.checkpointing import AtomicModelCheckpoint, PreemptionCheckpoint
from mmpretrain.callbacks.data_stats import DataStatsLogger
from mmpretrain.callbacks.ema import EMAWeights
from mmpretrain.callbacks.metrics_file import MetricsFileWriter
from mmpretrain.callbacks.progress import StepProgressBar
from mmpretrain.callbacks.sample_keys import SampleKeyLogger
from mmpretrain.callbacks.selection_stats import SelectionStatsLogger

__all__ = ["AtomicModelCheckpoint", "ChannelsLast", "ContinualEvaluation", "DataStatsLogger", "EMAWeights",
           "MetricsFileWriter", "PreemptionCheckpoint", "SampleKeyLogger", "SelectionStatsLogger",
           "StepProgressBar"]
