"""Common configuration mistakes: one `error:` line naming the key or file, exit code 2."""

from __future__ import annotations

import sys

import jsonargparse
import pytest

from mmpretrain.cli import main
from mmpretrain.console.config_errors import EXIT_CONFIG_ERROR, ParserFailure, readable_errors
from mmpretrain.extras import MissingExtra, require

QUICKSTART = ["-c", "configs/trainer/cpu.yaml", "-c", "mmpretrain://exp/clip/quickstart.yaml"]


@pytest.fixture(scope="module")
def fit_args(image_text_shards, tmp_path_factory) -> list[str]:
    run_dir = tmp_path_factory.mktemp("error_messages_run")
    return ["fit", *QUICKSTART, "--data.init_args.train_shards", str(image_text_shards["train"]),
            "--data.init_args.val_shards", str(image_text_shards["val"]),
            "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(run_dir)]


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["mmpretrain"])  # main() is given its arguments


def _error_lines(capsys, args: list[str]) -> list[str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == EXIT_CONFIG_ERROR
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "usage:" not in err
    return lines


CASES = {
    "unknown data key": (["--data.init_args.batch_sise", "4"],
                         "error: unknown key 'data.init_args.batch_sise' for "
                         "mmpretrain.data.datamodule.WebDataModule; did you mean 'batch_size'?"),
    "unknown trainer option": (["--trainer.max_stepz", "3"],
                               "error: unknown option --trainer.max_stepz; did you mean '--trainer.max_steps'?"),
    "unknown nested model key": (["--model.init_args.model.init_args.vision.init_args.widht", "3"],
                                 "error: unknown key 'model.init_args.model.init_args.vision.init_args.widht' "
                                 "for mmpretrain.models.VisionTransformer; did you mean 'width'?"),
    "int expected": (["--data.init_args.batch_size", "abc"],
                     "error: data.init_args.batch_size: expected int, got 'abc'"),
    "float expected": (["--model.init_args.optimizer.init_args.lr", "abc"],
                       "error: model.init_args.optimizer.init_args.lr: expected float, got 'abc'"),
    "choice expected": (["--data.init_args.mode", "resampeld"],
                        "error: data.init_args.mode: expected one of 'resampled', 'exact', got 'resampeld'"),
    "class does not exist": (["--model.init_args.loss", "mmpretrain.losses.ClipLos"],
                             "error: model.init_args.loss: class mmpretrain.losses.ClipLos does not exist; "
                             "did you mean 'ClipLoss'?"),
    "batch size zero": (["--data.init_args.batch_size", "0"],
                        "error: mmpretrain.data.datamodule.WebDataModule: batch sizes must be >= 1 and "
                        "num_workers >= 0, got batch_size=0, val_batch_size=None, num_workers=1"),
    "missing config file": (["-c", "/nonexistent/ablation.yaml"],
                            "error: file '/nonexistent/ablation.yaml' does not exist (given to --config)"),
    "missing packaged config": (["-c", "mmpretrain://exp/clip/no_such.yaml"],
                                "error: no packaged config 'exp/clip/no_such.yaml' under"),
    "missing shard path": (["--data.init_args.train_shards", "/nonexistent/shards"],
                           "error: shard spec '/nonexistent/shards': 1 of 1 shard files do not exist: "
                           "'/nonexistent/shards'"),
    "missing checkpoint": (["--ckpt_path", "/nonexistent/last.ckpt"],
                           "error: checkpoint '/nonexistent/last.ckpt' does not exist"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistake_prints_one_line(case, fit_args, capsys):
    extra, expected = CASES[case]
    (line,) = _error_lines(capsys, [*fit_args, *extra])
    assert line.startswith(expected), line


def test_unknown_key_in_an_overlay_file(fit_args, tmp_path, capsys):
    overlay = tmp_path / "ablation.yaml"
    overlay.write_text("data:\n  init_args:\n    shuffle_bufer: 10\n")
    (line,) = _error_lines(capsys, [*fit_args, "-c", str(overlay)])
    assert line == ("error: unknown key 'data.init_args.shuffle_bufer' for "
                    "mmpretrain.data.datamodule.WebDataModule; did you mean 'shuffle_buffer'?")


def test_debug_shows_the_traceback(fit_args, monkeypatch):
    with pytest.raises(ParserFailure, match="batch_sise"):
        main([*fit_args, "--data.init_args.batch_sise", "4", "--debug"])
    monkeypatch.setenv("MMPRETRAIN_DEBUG", "1")
    with pytest.raises(ParserFailure):
        main([*fit_args, "--data.init_args.batch_sise", "4"])


def test_parser_is_restored_and_bugs_keep_their_traceback():
    original = jsonargparse.ArgumentParser.error
    with pytest.raises(ZeroDivisionError), readable_errors(debug=False):
        1 / 0  # noqa: B018 - a bug, not a configuration error
    assert jsonargparse.ArgumentParser.error is original


def test_missing_extra_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info, readable_errors(debug=False):
        raise MissingExtra("av", "video", "video decoding")
    assert exit_info.value.code == EXIT_CONFIG_ERROR
    assert capsys.readouterr().err.splitlines()[0] == (
        "error: video decoding needs the optional package 'av': pip install 'mmpretrain[video]'")
    with pytest.raises(KeyError):
        require("numpy")  # core libraries are not optional extras
