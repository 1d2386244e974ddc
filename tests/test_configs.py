"""Every YAML under configs/ parses and instantiates; every experiment config runs
`fit` with `trainer.fast_dev_run=2` on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmpretrain.cli import run_lightning_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
CPU_TRAINER = str(CONFIGS / "trainer" / "cpu.yaml")
# configs/exp/<family>/ablations/*.yaml are deltas stacked on configs/exp/<family>/quickstart.yaml
ABLATIONS = sorted(str(p.relative_to(REPO_ROOT))
                   for p in (CONFIGS / "exp").glob("*/ablations/*.yaml"))
EXPERIMENTS = sorted(str(p.relative_to(REPO_ROOT)) for p in (CONFIGS / "exp").rglob("*.yaml")
                     if str(p.relative_to(REPO_ROOT)) not in ABLATIONS)
TRAINERS = sorted(str(p.relative_to(REPO_ROOT)) for p in (CONFIGS / "trainer").rglob("*.yaml"))
FRAGMENTS = sorted(str(p.relative_to(REPO_ROOT)) for d in ("model", "data")
                   for p in (CONFIGS / d).rglob("*.yaml"))
QUICKSTART = str(CONFIGS / "exp" / "clip" / "quickstart.yaml")


def _cpu_overrides(path: str) -> list[str]:
    """Trainer overlays for accelerators this machine lacks are instantiated on CPU."""
    trainer = (yaml.safe_load(Path(REPO_ROOT / path).read_text()) or {}).get("trainer", {})
    overrides = []
    if trainer.get("accelerator") not in (None, "cpu", "auto"):
        overrides += ["--trainer.accelerator=cpu", "--trainer.precision=32-true",
                      "--trainer.devices=1"]
    if trainer.get("strategy") not in (None, "auto"):
        overrides += ["--trainer.strategy=auto"]
    for key in ("num_nodes",):
        if key in trainer:
            overrides += [f"--trainer.{key}=1"]
    return overrides


def _data_overrides(shards: dict[str, Path]) -> list[str]:
    return [f"--data.init_args.train_shards={shards['train']}",
            f"--data.init_args.val_shards={shards['val']}",
            "--data.init_args.num_workers=0", "--data.init_args.batch_size=8"]


def test_config_inventory_is_not_empty():
    assert QUICKSTART.replace(str(REPO_ROOT) + "/", "") in EXPERIMENTS
    assert "configs/trainer/cpu.yaml" in TRAINERS


@pytest.mark.parametrize("trainer_config", TRAINERS)
def test_trainer_configs_instantiate(trainer_config, image_text_shards, tmp_path):
    cli = run_lightning_cli(
        ["-c", str(REPO_ROOT / trainer_config), "-c", QUICKSTART, *_cpu_overrides(trainer_config),
         *_data_overrides(image_text_shards), f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.trainer is not None and cli.model is not None


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_model_and_data_fragments_instantiate(fragment, image_text_shards, tmp_path):
    cli = run_lightning_cli(
        ["-c", CPU_TRAINER, "-c", QUICKSTART, "-c", str(REPO_ROOT / fragment),
         *_data_overrides(image_text_shards), f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.model is not None and cli.datamodule is not None


# ---- per-family data: experiment path prefix -> (shard fixture, extra data overrides) -----------
# the longest matching prefix wins; everything else gets the image-text shards
FAMILY_DATA: dict[str, tuple[str, list[str]]] = {
    "configs/exp/robot/": ("trajectory_shards", ["--data.init_args.train_weights=null"]),
    "configs/exp/robot/breakout_": ("breakout_shards", ["--data.init_args.train_weights=null"]),
    "configs/exp/robot/pendulum_": ("pendulum_shards", ["--data.init_args.train_weights=null"]),
    "configs/exp/video/": ("video_text_shards", []),
    "configs/exp/continual/": ("continual_stream_shards", []),
    "configs/exp/continual/quickstart": ("continual_stream_shards", [
        "--data.init_args.stream.root={root}", "--model.init_args.init_from=null"]),
    "configs/exp/interleaved/": ("interleaved_shards", []),
    # from_open_clip configs name full-size open_clip architectures; the test shrinks each one
    # (same kind of towers) through `overrides` so two CPU steps stay cheap
    "configs/exp/clip/from_open_clip/vit_b32_openai": ("image_text_shards", ['--model.init_args.model.init_args.overrides={"embed_dim": 32, "vision_cfg": {"layers": 1, "width": 32, "head_width": 16, "patch_size": 16, "image_size": 32}, "text_cfg": {"layers": 1, "width": 32, "heads": 2, "context_length": 16}}', '--data.init_args.image_size=32', '--data.init_args.context_length=16']),
    "configs/exp/clip/from_open_clip/rn50_openai": ("image_text_shards", ['--model.init_args.model.init_args.overrides={"embed_dim": 32, "vision_cfg": {"layers": [1, 1, 1, 1], "width": 16, "image_size": 64}, "text_cfg": {"layers": 1, "width": 32, "heads": 2, "context_length": 16}}', '--data.init_args.image_size=64', '--data.init_args.context_length=16']),
    "configs/exp/clip/from_open_clip/eva02_b16_lit": ("image_text_shards", ['--model.init_args.model.init_args.overrides={"embed_dim": 32, "vision_cfg": {"timm_model_name": "eva02_tiny_patch14_224"}, "text_cfg": {"layers": 1, "width": 32, "heads": 2, "context_length": 16}}', '--data.init_args.image_size=224', '--data.init_args.context_length=16']),
    "configs/exp/clip/from_open_clip/mobileclip_s1": ("image_text_shards", ['--model.init_args.model.init_args.overrides={"embed_dim": 32, "vision_cfg": {"timm_model_name": "fastvit_mci0", "image_size": 64}, "text_cfg": {"layers": 1, "width": 32, "heads": 2, "context_length": 16}}', '--data.init_args.image_size=64', '--data.init_args.context_length=16']),
    "configs/exp/clip/from_open_clip/coca_vit_b32": ("image_text_shards", ['--model.init_args.model.init_args.overrides={"embed_dim": 32, "vision_cfg": {"layers": 1, "width": 32, "head_width": 16, "patch_size": 16, "image_size": 32, "attn_pooler_heads": 2, "attn_pooler_queries": 9}, "text_cfg": {"layers": 1, "width": 32, "heads": 2, "context_length": 16}, "multimodal_cfg": {"width": 32, "heads": 2, "layers": 1, "context_length": 16}}', '--data.init_args.image_size=32', '--data.init_args.context_length=16']),
    "configs/exp/clip/from_open_clip/siglip_b16": ("image_text_shards", ['--model.init_args.model.init_args.overrides={"embed_dim": 192, "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224"}, "text_cfg": {"layers": 1, "width": 32, "heads": 2, "context_length": 16, "vocab_size": 49408}}', '--data.init_args.image_size=224', '--data.init_args.context_length=16', '--data.init_args.tokenizer=null']),
}


def _with_paths(arg: str, paths: dict[str, Path]) -> str:
    for name, path in paths.items():
        arg = arg.replace("{" + name + "}", str(path))
    return arg


def _family_data(experiment: str, request) -> list[str]:
    for prefix in sorted(FAMILY_DATA, key=len, reverse=True):
        if experiment.startswith(prefix):
            fixture, extra = FAMILY_DATA[prefix]
            shards = request.getfixturevalue(fixture)
            # `{name}` in an extra argument is the fixture's path of that name
            return [*_data_overrides(shards), *(_with_paths(arg, shards) for arg in extra)]
    return _data_overrides(request.getfixturevalue("image_text_shards"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(experiment, request, tmp_path):
    cli = run_lightning_cli(
        ["fit", "-c", CPU_TRAINER, "-c", str(REPO_ROOT / experiment), "--trainer.fast_dev_run=2",
         f"--trainer.default_root_dir={tmp_path}", *_family_data(experiment, request)])
    assert cli.trainer.global_step == 2
    assert cli.trainer.state.finished


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_ablation_fast_dev_run(ablation, request, tmp_path):
    base = Path(ablation).parents[1] / "quickstart.yaml"
    cli = run_lightning_cli(
        ["fit", "-c", CPU_TRAINER, "-c", str(REPO_ROOT / base), "-c", str(REPO_ROOT / ablation),
         "--trainer.fast_dev_run=2", f"--trainer.default_root_dir={tmp_path}",
         *_family_data(str(base), request)])
    assert cli.trainer.global_step == 2
    assert cli.trainer.state.finished
