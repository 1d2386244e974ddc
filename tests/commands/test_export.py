"""`mmpretrain fit --model.init_args.init_from ...` then `mmpretrain export`: open_clip loads the
export with `local-dir:` and gives our embeddings; plain safetensors round-trips; refusals."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import load_file, save_file

from mmpretrain.cli import main as cli_main
from mmpretrain.cli import run_lightning_cli
from mmpretrain.commands.export import main as export_main
from mmpretrain.data.transforms import CLIP_MEAN
from mmpretrain.models import create_clip, from_open_clip_state_dict, get_model_config
from mmpretrain.models.checkpoints import (
    ARCHITECTURE_ERROR_KEY,
    ARCHITECTURE_KEY,
    CheckpointMismatchError,
    from_open_clip,
    load_pretrained,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tokens(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, 49000, (batch, length), generator=gen)
    tokens[:, 0] = 49406
    tokens[:, length // 2] = 49407
    tokens[:, length // 2 + 1:] = 0
    return tokens


def _max_abs_diff(ours, reference, images, tokens) -> float:
    with torch.no_grad():
        return max((ours.eval().encode_image(images) - reference.eval().encode_image(images)
                    ).abs().max().item(),
                   (ours.encode_text(tokens) - reference.encode_text(tokens)).abs().max().item())


@pytest.fixture(scope="module")
def trained_run(image_text_shards, tmp_path_factory):
    """Two CLI training steps of the quickstart tiny CLIP, started from open_clip weights."""
    root = tmp_path_factory.mktemp("export_run")
    torch.manual_seed(7)
    pretrained = open_clip.CLIP(**get_model_config("tiny")).state_dict()
    save_file(pretrained, str(root / "pretrained.safetensors"))
    run_lightning_cli([
        "fit", "-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"),
        "-c", str(REPO_ROOT / "configs/exp/clip/quickstart.yaml"),
        f"--data.init_args.train_shards={image_text_shards['train']}",
        f"--data.init_args.val_shards={image_text_shards['val']}",
        "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
        "--trainer.max_steps=2",
        f"--trainer.default_root_dir={root / 'run'}",
        f"--model.init_args.init_from={root / 'pretrained.safetensors'}",
    ])
    return {"ckpt": root / "run" / "checkpoints" / "last.ckpt", "root": root,
            "pretrained": from_open_clip_state_dict(pretrained)}


def test_cli_run_started_from_init_weights(trained_run):
    trained = load_pretrained(create_clip("tiny", attn_backend="sdpa"), str(trained_run["ckpt"]))
    pretrained, fresh = trained_run["pretrained"], create_clip("tiny").state_dict()
    # Two warm-up steps (lr <= 4e-5) barely move the weights; a fresh init is far away.
    for key in ("visual.conv1.weight", "text.token_embedding.weight", "text.text_projection"):
        moved = (trained.state_dict()[key] - pretrained[key]).abs().max()
        assert moved < 1e-3 < (fresh[key] - pretrained[key]).abs().max(), key


def test_export_to_open_clip_round_trip(trained_run, capsys):
    out = trained_run["root"] / "open_clip_export"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", "--ckpt", str(trained_run["ckpt"]), "--to", "open_clip",
                  "--out", str(out)])
    assert exit_info.value.code == 0
    assert f"local-dir:{out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["open_clip_config.json",
                                                     "open_clip_model.safetensors"]
    reference, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    ours = load_pretrained(create_clip("tiny", attn_backend="sdpa"), str(trained_run["ckpt"]))
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    diff = _max_abs_diff(ours, reference, images, _tokens(3, 32))
    print(f"export -> open_clip local-dir: max |ours - open_clip| = {diff:.2e}")
    assert diff < 1e-5
    normalize = preprocess.transforms[-1]
    assert tuple(normalize.mean) == pytest.approx(CLIP_MEAN)
    assert open_clip.get_tokenizer(f"local-dir:{out}").context_length == 32


def test_export_to_safetensors_round_trip(trained_run):
    out = trained_run["root"] / "plain_export"
    assert export_main(["--ckpt", str(trained_run["ckpt"]), "--to", "safetensors",
                        "--out", str(out)]) == 0
    weights = load_file(str(out / "model.safetensors"))
    assert {key.split(".")[0] for key in weights} == {"visual", "text", "logit_scale"}
    config = json.loads((out / "mmpretrain_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["image_size"] == 64
    reloaded = from_open_clip(f"local-dir:{out}", attn_backend="sdpa")
    ours = load_pretrained(create_clip("tiny", attn_backend="sdpa"), str(trained_run["ckpt"]))
    assert _max_abs_diff(ours, reloaded, torch.randn(2, 3, 64, 64), _tokens(2, 32)) == 0.0


def test_export_refusals_are_clear(trained_run, tmp_path, capsys):
    unrepresentable = tmp_path / "custom.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0",
                "state_dict": {"model.encoder.weight": torch.zeros(2, 2)},
                ARCHITECTURE_KEY: None,
                ARCHITECTURE_ERROR_KEY: "open_clip can only represent mmpretrain.models.CLIP"
                                             ", got VideoTowers"}, unrepresentable)
    assert export_main(["--ckpt", str(unrepresentable), "--to", "open_clip",
                        "--out", str(tmp_path / "a")]) == 2
    assert "cannot be represented as an open_clip config" in capsys.readouterr().err
    # Weights still export as plain safetensors (no config to write).
    assert export_main(["--ckpt", str(unrepresentable), "--to", "safetensors",
                        "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["model.safetensors"]

    plain = tmp_path / "weights.safetensors"
    save_file(create_clip("tiny").state_dict(), str(plain))
    assert export_main(["--ckpt", str(plain), "--to", "open_clip",
                        "--out", str(tmp_path / "c")]) == 2
    assert "pass --model-cfg" in capsys.readouterr().err
    assert export_main(["--ckpt", str(plain), "--to", "open_clip", "--out", str(tmp_path / "c"),
                        "--model-cfg", "tiny"]) == 0
    assert export_main(["--ckpt", str(plain), "--to", "open_clip", "--out", str(tmp_path / "d"),
                        "--model-cfg", "ViT-B-32"]) == 2
    err = capsys.readouterr().err
    assert CheckpointMismatchError.__name__ not in err and "shape mismatch" in err
    assert "text.token_embedding.weight: checkpoint (49408, 128) vs model (49408, 512)" in err
    assert "missing in checkpoint" in err and "more)" in err
