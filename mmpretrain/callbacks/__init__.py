"""Trainer callbacks: metrics file, data-pipeline statistics, crash-safe checkpoints, sample
keys, weight EMA."""

from mmpretrain.callbacks.checkpointing import AtomicModelCheckpoint, PreemptionCheckpoint
from mmpretrain.callbacks.data_stats import DataStatsLogger
from mmpretrain.callbacks.ema import EMAWeights
from mmpretrain.callbacks.metrics_file import MetricsFileWriter
from mmpretrain.callbacks.sample_keys import SampleKeyLogger

__all__ = ["AtomicModelCheckpoint", "DataStatsLogger", "EMAWeights", "MetricsFileWriter",
           "PreemptionCheckpoint", "SampleKeyLogger"]
