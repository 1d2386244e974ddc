"""Per-rank body of the FSDP2 tests: every family unsharded (DDP's gradient averaging) and
sharded (``apply_fsdp2``), one optimizer step each, then a sharded checkpoint round trip.

Results (differences, group names) go to ``results.pt`` in the output folder; the tests in
``test_fsdp2.py`` assert on them. Kept out of the test module so spawned workers import
only this and the cases.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.tensor import DTensor

from mmpretrain.distributed import apply_fsdp2, load_sharded, save_sharded
from mmpretrain.distributed.scalars import lifted_scalar_names
from mmpretrain.distributed.sharded_checkpoint import SCALARS_KEY
from mmpretrain.tasks.param_groups import weight_decay_groups
from tests.distributed.fsdp2_cases import CASES, Case

LR = 1e-2


def _full(tensor: Tensor) -> Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    # a large eps keeps the step Lipschitz in the gradient: with the default 1e-8, float noise
    # in a ~0 gradient (different reduction order) becomes a full-size, opposite step
    return torch.optim.AdamW(weight_decay_groups(model.named_parameters(), root=model), lr=LR,
                             weight_decay=0.1, eps=1e-3)


def _group_names(model: nn.Module, root: nn.Module | None) -> dict[str, list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    groups = weight_decay_groups(model.named_parameters(), root=root)
    return {"decay": sorted(names[id(p)] for p in groups[0]["params"]),
            "no_decay": sorted(names[id(p)] for g in groups[1:] for p in g["params"])}


def _max_diff(reference: dict[str, Tensor], other: dict[str, Tensor]) -> float:
    assert set(reference) == set(other), set(reference) ^ set(other)
    return max(float((_full(other[k]).detach().reshape(reference[k].shape) - reference[k].detach()).abs().max())
               for k in reference)


def _step(model: nn.Module, case: Case, batch: dict, loss_module, optimizer, sync) -> tuple[float, dict]:
    optimizer.zero_grad()
    loss = case.loss(model, batch, loss_module)
    loss.backward()
    loss = loss.detach()
    sync(model)
    grads = {n: _full(p.grad).detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    return float(loss), grads


def _ddp_average(model: nn.Module) -> None:
    world = dist.get_world_size()
    for param in model.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= world


def check_family(name: str, case: Case, rank: int, out_dir: Path) -> dict:
    started = time.perf_counter()
    torch.manual_seed(0)
    model = case.build()
    reference, sharded = copy.deepcopy(model), copy.deepcopy(model)
    batch = case.batch(rank)
    loss_module = case.loss_module() if case.loss_module is not None else None
    result = {"reference_groups": _group_names(reference, reference)}

    ref_loss, ref_grads = _step(reference, case, batch, loss_module, _optimizer(reference), _ddp_average)
    apply_fsdp2(sharded)
    result["sharded_groups"] = _group_names(sharded, sharded)
    optimizer = _optimizer(sharded)
    loss, grads = _step(sharded, case, batch, loss_module, optimizer, lambda m: None)
    result["loss_diff"] = abs(loss - ref_loss)
    result["grad_diff"] = _max_diff(ref_grads, grads)
    result["grad_names_equal"] = set(ref_grads) == set(grads) == {
        n for n, p in reference.named_parameters() if p.requires_grad}
    result["param_diff"] = _max_diff(dict(reference.named_parameters()), dict(sharded.named_parameters()))
    result["lifted"] = list(lifted_scalar_names(sharded))

    # sharded checkpoint: save, load into a differently initialised sharded model + optimizer
    path = out_dir / f"{name}.ckpt"
    state = {"state_dict": {f"model.{k}": v for k, v in get_model_state_dict(sharded).items()},
             "optimizer_0": get_optimizer_state_dict(sharded, optimizer)}
    meta = {"pytorch-lightning_version": "2", "global_step": 1,
            SCALARS_KEY: [f"model.{n}" for n in lifted_scalar_names(sharded)]}
    if name == "clip":
        from mmpretrain.models.checkpoints import ARCHITECTURE_KEY, open_clip_config_from_model
        meta[ARCHITECTURE_KEY] = open_clip_config_from_model(reference)
    save_sharded(state, meta, path, rank=rank, broadcast=_broadcast, barrier=dist.barrier)
    save_sharded(state, meta, path, rank=rank, broadcast=_broadcast, barrier=dist.barrier)  # republish
    torch.manual_seed(1)
    restored = apply_fsdp2(case.build())
    restored_optimizer = _optimizer(restored)
    target = {"state_dict": {f"model.{k}": v for k, v in get_model_state_dict(restored).items()},
              "optimizer_0": get_optimizer_state_dict(restored, restored_optimizer)}
    loaded_meta = load_sharded(target, path)
    set_model_state_dict(restored, {k[len("model."):]: v for k, v in target["state_dict"].items()})
    set_optimizer_state_dict(restored, restored_optimizer, target["optimizer_0"])
    saved = {n: _full(p).detach() for n, p in sharded.named_parameters()}
    result["restored_param_diff"] = _max_diff(saved, dict(restored.named_parameters()))
    result["restored_meta_step"] = loaded_meta["global_step"]
    # the restored optimizer continues exactly: one more step on both sides agrees
    _, _ = _step(sharded, case, batch, loss_module, optimizer, lambda m: None)
    _, _ = _step(restored, case, batch, loss_module, restored_optimizer, lambda m: None)
    saved = {n: _full(p).detach() for n, p in sharded.named_parameters()}
    result["continued_param_diff"] = _max_diff(saved, dict(restored.named_parameters()))
    result["reference_state"] = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    result["seconds"] = time.perf_counter() - started
    return result


def _broadcast(obj):
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        results = {name: check_family(name, case, rank, Path(out_dir)) for name, case in CASES.items()}
        if rank == 0:
            torch.save(results, Path(out_dir) / "results.pt")
    finally:
        dist.destroy_process_group()
