"""What a person sees at the console: a light `--help`, the final-metrics table, and one-line
dead ends (missing starting checkpoint, wrong-architecture --ckpt_path, abbreviated flags)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmpretrain.cli import main
from mmpretrain.prerequisites import PrerequisiteError, check_init_from, configs_root
from mmpretrain.workflow.final_metrics import format_final_metrics
from tests.test_cli import _args as cli_test_args

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "lightning", "gymnasium", "av", "ale_py", "open_clip", "open_clip_train", "matplotlib")


def test_help_and_import_load_no_torch():
    """One subprocess (a fresh interpreter is the only honest check): `import mmpretrain.cli`
    and `mmpretrain --help` import neither torch nor any optional heavy package."""
    code = ("import sys\nimport mmpretrain.cli as cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=REPO_ROOT)
    assert result.stdout.strip().splitlines()[-1] == "[]"
    for command in ("fit", "validate", "export", "sweep", "report", "rollout", "pseudo-label", "models"):
        assert f"\n  {command} " in result.stdout


def test_unknown_command_suggests_the_closest(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fitt", "-c", "x.yaml"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "mmpretrain: unknown command 'fitt'; did you mean fit?\n"


def _fit_args(shards: dict[str, Path], run_dir: Path, vision_layers: int = 1) -> list[str]:
    return [*cli_test_args(shards, run_dir),
            f"--model.init_args.model.init_args.vision.init_args.layers={vision_layers}",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def test_fit_ends_with_metrics_table_and_wrong_architecture_ckpt_is_one_summary(
        image_text_shards, tmp_path, capsys, recwarn):
    main(["fit", *_fit_args(image_text_shards, tmp_path), "--trainer.max_steps=1",
          "--trainer.val_check_interval=1", "--trainer.limit_val_batches=2"])
    # args from Python while sys.argv holds pytest's flags (as in `mmpretrain rollout`): no
    # LightningCLI "args parameter" warning
    assert not [w for w in recwarn if "args parameter" in str(w.message)]
    out = capsys.readouterr().out.rstrip().splitlines()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert out[-1] == f"metrics written to {tmp_path / 'metrics.json'}"
    table = out[out.index("Final metrics (fit, step 1)"):]
    assert any(line.startswith(f"  zero-shot top-1 {100 * metrics['zeroshot_top1']:.1f}%") for line in table)
    assert any(line.startswith("  image->text  R@1") for line in table)

    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", *_fit_args(image_text_shards, tmp_path / "other", vision_layers=2),
              f"--ckpt_path={ckpt}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    message = next(line for line in err if line.startswith("error: "))
    # layer 1 of the vision tower: 12 tensors of the model (+ 12 EMA/none) that the checkpoint lacks
    assert f"checkpoint {ckpt} does not match the model architecture" in message
    assert "missing keys, 0 unexpected keys, 0 shape mismatches" in message
    assert "missing in checkpoint (" in err[err.index(message) + 1]
    assert len(err) - err.index(message) <= 3 and not any("Traceback" in line for line in err)


def test_abbreviated_flag_is_rejected_with_the_full_key(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"),
              "-c", str(REPO_ROOT / "configs/exp/clip/quickstart.yaml"), "--trainer.max_step", "5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: unknown option --trainer.max_step; did you mean '--trainer.max_steps'?" in err
    assert err.count("did you mean") == 1


def test_missing_starting_checkpoint_names_the_config_that_writes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    class Task:
        init_from = "runs/continual/pretrain/checkpoints/last.ckpt"

    with pytest.raises(PrerequisiteError) as info:
        check_init_from(Task())
    assert str(info.value) == (
        "starting checkpoint runs/continual/pretrain/checkpoints/last.ckpt does not exist; run "
        "`mmpretrain fit -c configs/trainer/cpu.yaml -c configs/exp/continual/pretrain.yaml` first "
        "(it writes runs/continual/pretrain/checkpoints/last.ckpt)")
    assert configs_root() == REPO_ROOT / "configs"
    Task.init_from = "hf-hub:org/repo"
    check_init_from(Task())  # schemes are resolved by the loader, not here


def test_video_robot_continual_tables_are_never_empty(tmp_path):
    video = format_final_metrics("validate", {"t2v_r1": 0.1, "t2v_r5": 0.3, "t2v_r10": 0.5, "v2t_r1": 0.2,
                                              "v2t_r5": 0.4, "v2t_r10": 0.6, "probe_top1": 0.75,
                                              "stage": "validate", "global_step": 3}, 3)
    assert video.splitlines()[1:4] == ["Final metrics (validate, step 3)",
                                        "  video->text  R@1 20.0%  R@5 40.0%  R@10 60.0%",
                                        "  text->video  R@1 10.0%  R@5 30.0%  R@10 50.0%"]
    assert video.splitlines()[4].split() == ["probe_top1", "0.75"]
    robot = format_final_metrics("test", {"action_mse": 0.0123, "action_acc": 0.5, "return_mean": 12.0})
    assert robot.splitlines()[2].split() == ["action_acc", "0.5", "action_mse", "0.0123"]
    continual = tmp_path / "continual"
    continual.mkdir()
    (continual / "summary.json").write_text(json.dumps(
        {"tasks_done": 5, "a_ka": 0.5, "a_zs": 0.25, "gm": 0.354, "min_dip": 0.1}))
    lines = format_final_metrics("fit", {}, 200, continual_dir=continual).splitlines()
    assert lines[2] == "  continual after 5 tasks: A_KA 50.0%  A_ZS 25.0%  GM 35.4%  min dip 10.0%"
    assert lines[3] == f"  continual table: {continual / 'results.md'}"
    empty = format_final_metrics("fit", {}, 7, empty_reason="validation is off (trainer.limit_val_batches=0)")
    assert empty.splitlines()[-1] == "  no evaluation metrics: validation is off (trainer.limit_val_batches=0)"

