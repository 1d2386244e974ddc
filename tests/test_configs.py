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


# Every trainer overlay keeps its own strategy here (DDP, FSDP2: one CPU rank over gloo). What
# this CPU machine cannot check, and is checked on a GPU machine (../shared/GPU.md) instead:
# the GPU accelerator itself with NCCL, bf16-mixed precision (overridden to 32-true: CPU
# autocast is not what the GPU runs), several devices per node (the 2-rank CPU runs are
# tests/reliability/test_ddp_cpu.py and tests/distributed/), and slurm.yaml's
# SLURMEnvironment, which needs a SLURM allocation to run (it is instantiated, not fitted).
# cpu.yaml and gpu.yaml (strategy auto) are fitted by every experiment test below.
FIT_ON_CPU = ["configs/trainer/ddp.yaml", "configs/trainer/fsdp.yaml"]
INSTANTIATE_ONLY = {"configs/trainer/cpu.yaml": "fitted by test_experiment_fast_dev_run",
                    "configs/trainer/gpu.yaml": "strategy auto: on CPU the cpu.yaml run",
                    "configs/trainer/slurm.yaml": "SLURMEnvironment needs a SLURM allocation "
                                                  "(its DDP strategy reads SLURM_NODEID)"}


def _cpu_overrides(path: str) -> list[str]:
    """Trainer overlays for accelerators this machine lacks run on one CPU device, with their
    own strategy."""
    trainer = (yaml.safe_load(Path(REPO_ROOT / path).read_text()) or {}).get("trainer", {})
    overrides = []
    if trainer.get("accelerator") not in (None, "cpu", "auto"):
        overrides += ["--trainer.accelerator=cpu", "--trainer.precision=32-true",
                      "--trainer.devices=1"]
    if path in INSTANTIATE_ONLY and "SLURM" in INSTANTIATE_ONLY[path]:
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


def test_every_trainer_overlay_is_fitted_or_says_why_not():
    assert sorted(FIT_ON_CPU + list(INSTANTIATE_ONLY)) == TRAINERS


@pytest.fixture
def no_process_group_left():
    """A strategy's one-rank gloo group must not leak into the next test."""
    yield
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize("trainer_config", FIT_ON_CPU)
def test_trainer_overlay_fits_on_cpu(trainer_config, image_text_shards, tmp_path,
                                     no_process_group_left):
    cli = run_lightning_cli(
        ["fit", "-c", str(REPO_ROOT / trainer_config), "-c", QUICKSTART,
         *_cpu_overrides(trainer_config), *_data_overrides(image_text_shards),
         "--trainer.fast_dev_run=2", "--trainer.limit_val_batches=1",
         f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.global_step == 2 and cli.trainer.state.finished
    configured = ((yaml.safe_load((REPO_ROOT / trainer_config).read_text()) or {})
                  .get("trainer", {}).get("strategy"))
    if isinstance(configured, dict):  # the overlay's strategy ran, not a CPU substitute
        assert type(cli.trainer.strategy).__name__ == configured["class_path"].rsplit(".", 1)[1]
    if trainer_config.endswith("fsdp.yaml"):
        from torch.distributed.fsdp import FSDPModule
        blocks = cli.model.model.visual.transformer.resblocks
        assert isinstance(cli.model.model, FSDPModule) and all(isinstance(b, FSDPModule) for b in blocks)


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
