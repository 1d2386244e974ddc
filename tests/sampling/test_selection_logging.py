"""End to end from the CLI: a CABS config trains, and the batch concept statistics are logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmpretrain.cli import run_lightning_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
STATS = ("unique_concepts", "max_concept_count", "concept_entropy", "objects_per_sample", "selection_ms")


def test_selection_stats_are_logged_every_step(image_text_shards, tmp_path):
    strategy = "cabs_fm"
    cli = run_lightning_cli(
        ["fit", "-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"),
         "-c", str(REPO_ROOT / f"configs/exp/cabs/{strategy}.yaml"),
         "--trainer.max_steps=3", "--trainer.limit_val_batches=0", "--trainer.log_every_n_steps=1",
         f"--trainer.default_root_dir={tmp_path}",
         f"--data.init_args.train_shards={image_text_shards['train']}",
         f"--data.init_args.val_shards={image_text_shards['val']}",
         "--data.init_args.num_workers=0", "--data.init_args.batch_size=8"])
    assert cli.trainer.global_step == 3
    datamodule = cli.datamodule
    assert datamodule.selection.strategy == strategy
    metrics = cli.trainer.logged_metrics
    for stat in STATS:
        assert f"data/selection/{stat}_step" in metrics
    # synthetic scenes hold 1-4 objects; FM keeps the most crowded 8 of 40
    objects = float(metrics["data/selection/objects_per_sample_step"])
    assert 1.0 <= objects <= 4.0
    assert objects > 2.5
    csv = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = csv[0].split(",")
    column = header.index("data/selection/unique_concepts_step")
    assert sum(1 for row in csv[1:] if row.split(",")[column]) == 3


class _Recorder:
    def __init__(self) -> None:
        self.logged: dict[str, float] = {}

    def log_dict(self, values, **kwargs) -> None:
        self.logged.update(values)


def test_plain_batches_get_concept_stats_from_their_json():
    from types import SimpleNamespace

    from mmpretrain.callbacks import SelectionStatsLogger

    trainer = SimpleNamespace(datamodule=SimpleNamespace(selection_stats={}))
    module = _Recorder()
    batch = {"key": ["a", "b"], "json": [{"classes": ["red circle", "red circle"]}, {"classes": ["blue star"]}]}
    SelectionStatsLogger().on_train_batch_end(trainer, module, None, batch, 0)
    assert module.logged == {"data/selection/unique_concepts": 2.0, "data/selection/max_concept_count": 2.0,
                             "data/selection/concept_entropy": pytest.approx(0.6365141682948128),
                             "data/selection/objects_per_sample": 1.5}
