"""CLI plumbing: run-dir layout, metrics.json from validate/test, extra commands, evaluation text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmpretrain.callbacks.metrics_file import flat_eval_metrics
from mmpretrain.cli import format_evaluation, main, run_lightning_cli
from mmpretrain.commands import available_commands

REPO_ROOT = Path(__file__).resolve().parents[1]


def _args(shards, run_dir):
    return ["-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"),
            "-c", str(REPO_ROOT / "configs/exp/clip/quickstart.yaml"),
            f"--trainer.default_root_dir={run_dir}",
            f"--data.init_args.train_shards={shards['train']}",
            f"--data.init_args.val_shards={shards['val']}",
            "--data.init_args.num_workers=0", "--data.init_args.batch_size=16",
            "--model.init_args.model.init_args.vision.init_args.layers=1",
            "--model.init_args.model.init_args.text.init_args.layers=1"]


def test_fit_then_test_writes_checkpoint_logs_and_metrics(image_text_shards, tmp_path, capsys):
    run_lightning_cli(["fit", *_args(image_text_shards, tmp_path), "--trainer.max_steps=2",
                       "--trainer.log_every_n_steps=1",
                       "--trainer.limit_val_batches=0"])
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list(tmp_path.glob("logs/version_*/metrics.csv"))
    assert list(tmp_path.glob("logs/version_*/events.out.tfevents.*"))
    assert list(tmp_path.glob("logs/version_*/config.yaml"))

    cli = run_lightning_cli(["test", *_args(image_text_shards, tmp_path),
                             f"--ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["stage"] == "test"
    assert metrics["global_step"] == 2  # the checkpoint's step, not the fresh trainer's 0
    # each invocation logs CSV, TensorBoard and its config into one version folder
    for version in tmp_path.glob("logs/version_*"):
        assert (version / "metrics.csv").is_file() and list(version.glob("events.out.tfevents.*"))
    assert metrics["retrieval_count"] == 128 and metrics["zeroshot_count"] == 128
    assert metrics["chance_top1"] == pytest.approx(1 / 36)
    assert {"zeroshot_top1", "zeroshot_top5", "i2t_r1", "i2t_r5", "t2i_r1", "t2i_r10"} <= set(metrics)
    assert cli.trainer.callback_metrics["test/zeroshot_top1"] == pytest.approx(metrics["zeroshot_top1"])
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == f"metrics written to {tmp_path / 'metrics.json'}"


def test_flat_eval_metrics_keeps_only_eval_keys():
    assert flat_eval_metrics({"val/i2t_r1": 0.5, "train/loss": 1.0, "test/x": 2}) == {"i2t_r1": 0.5, "x": 2.0}


def test_format_evaluation_reports_ratio_to_chance():
    text = format_evaluation({"zeroshot_top1": 0.25, "zeroshot_top5": 0.5, "chance_top1": 0.05,
                              "i2t_r1": 0.1, "i2t_r5": 0.2, "i2t_r10": 0.3,
                              "t2i_r1": 0.1, "t2i_r5": 0.2, "t2i_r10": 0.3})
    assert "5.0x chance" in text and "image->text" in text and "R@10 30.0%" in text
    assert "Final metrics" in text


def test_unknown_config_key_fails_with_its_name(image_text_shards, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run_lightning_cli(["fit", *_args(image_text_shards, tmp_path), "--data.init_args.bogus_key=1"])
    assert "bogus_key" in capsys.readouterr().err


def test_extra_commands_are_discovered(capsys):
    for name, module in available_commands().items():
        assert module.startswith("mmpretrain.commands.")
    with pytest.raises(SystemExit):
        main(["--help"])
