"""FSDP2 on 2 gloo ranks (CPU), model level, one launch for the whole module: for CLIP, SigLIP,
CoCa, video (token rolling), interleaved and robot (IDM), the sharded model's loss, full
gradients (all-gathered) and parameters after one AdamW step equal DDP's; weight-decay groups
equal DDP's; a sharded checkpoint saved, republished and loaded gives the same parameters and
optimizer; `mmpretrain export` consolidates the sharded directory into open_clip files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.distributed.fsdp2_cases import CASES
from tests.distributed.fsdp2_worker import run

WORLD_SIZE = 2
FAMILIES = sorted(CASES)
TOLERANCE = 2e-5


@pytest.fixture(scope="module")
def fsdp2_run(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("fsdp2")
    mp.start_processes(run, args=(WORLD_SIZE, str(out / "init"), str(out)), nprocs=WORLD_SIZE,
                       start_method="spawn")
    return torch.load(out / "results.pt", weights_only=True), out


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_gradients_and_step_equal_ddp(fsdp2_run, family):
    result = fsdp2_run[0][family]
    assert result["grad_names_equal"]
    assert result["loss_diff"] < TOLERANCE
    assert result["grad_diff"] < TOLERANCE
    assert result["param_diff"] < TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_decay_groups_equal_ddp(fsdp2_run, family):
    result = fsdp2_run[0][family]
    assert result["sharded_groups"] == result["reference_groups"]
    assert result["reference_groups"]["decay"] and result["reference_groups"]["no_decay"]


def test_every_scalar_parameter_was_lifted(fsdp2_run):
    results = fsdp2_run[0]
    assert results["clip"]["lifted"] == ["logit_scale"]
    assert results["siglip"]["lifted"] == ["logit_scale", "logit_bias"]
    assert set(results["interleaved"]["lifted"]) == {"logit_scale", "cross_blocks.0.attn_gate",
                                                     "cross_blocks.0.mlp_gate", "cross_blocks.1.attn_gate",
                                                     "cross_blocks.1.mlp_gate"}
    assert results["robot"]["lifted"] == ["encoder.frame_net.keypoints.log_temperature"]


@pytest.mark.parametrize("family", FAMILIES)
def test_sharded_checkpoint_round_trip(fsdp2_run, family):
    result = fsdp2_run[0][family]
    assert result["restored_meta_step"] == 1
    assert result["restored_param_diff"] == 0.0
    assert result["continued_param_diff"] == 0.0
    path = fsdp2_run[1] / f"{family}.ckpt"
    assert path.is_symlink() and len(list(fsdp2_run[1].glob(f"{family}.ckpt.shards-*"))) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_consolidation_has_the_unsharded_layout(fsdp2_run, family):
    from mmpretrain.distributed import consolidate_sharded_checkpoint
    result, out = fsdp2_run[0][family], fsdp2_run[1]
    consolidated = consolidate_sharded_checkpoint(out / f"{family}.ckpt")["state_dict"]
    reference = result["reference_state"]
    assert set(consolidated) == {f"model.{k}" for k in reference}
    for key, value in reference.items():
        assert consolidated[f"model.{key}"].shape == value.shape, key
        torch.testing.assert_close(consolidated[f"model.{key}"], value, atol=TOLERANCE, rtol=0)


def test_export_consolidates_a_sharded_checkpoint(fsdp2_run, tmp_path):
    from safetensors.torch import load_file

    from mmpretrain.commands.export import OPEN_CLIP_WEIGHTS_NAME, main
    from mmpretrain.models import to_open_clip_state_dict
    results, out = fsdp2_run
    assert main(["--ckpt", str(out / "clip.ckpt"), "--to", "open_clip", "--out", str(tmp_path)]) == 0
    exported = load_file(str(tmp_path / OPEN_CLIP_WEIGHTS_NAME))
    expected = to_open_clip_state_dict(results["clip"]["reference_state"], False)
    assert set(exported) == set(expected)
    assert exported["logit_scale"].shape == torch.Size([])
    for key, value in expected.items():
        torch.testing.assert_close(exported[key], value, atol=TOLERANCE, rtol=0)


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        import os
        return (os.getcwd, ())


def test_sharded_checkpoint_refuses_foreign_pickles(tmp_path):
    import pickle

    from mmpretrain.distributed.sharded_checkpoint import SafeFileSystemReader
    (tmp_path / ".metadata").write_bytes(pickle.dumps(_RunsCodeWhenUnpickled()))
    with pytest.raises(pickle.UnpicklingError, match="not a checkpoint metadata type"):
        SafeFileSystemReader(tmp_path).read_metadata()
