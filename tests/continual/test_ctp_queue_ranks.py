"""CTP's momentum queue on two gloo ranks: every rank enqueues the keys of all ranks in rank
order (different batch sizes per rank), and DDP's buffer broadcast leaves the queue alone."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmpretrain.continual.ctp import MomentumQueue, exclude_from_ddp_broadcast

WORLD_SIZE, DIM, QUEUE = 2, 4, 16
BATCHES = {0: (3, 2), 1: (1, 4)}  # rows per rank at steps 0 and 1


def _keys(step: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(10 * step + rank)
    rows = BATCHES[step][rank]
    return (F.normalize(torch.randn(rows, DIM, generator=gen), dim=-1),
            F.normalize(torch.randn(rows, DIM, generator=gen), dim=-1))


class _Owner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(DIM, 1)
        self.ctp_queue = MomentumQueue(DIM, QUEUE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def _worker(rank: int, init_file: str, result_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        owner = _Owner()
        exclude_from_ddp_broadcast(owner, owner.ctp_queue)
        ddp = DistributedDataParallel(owner, broadcast_buffers=True)
        for step in BATCHES:
            ddp(torch.randn(2, DIM)).sum().backward()  # forward: DDP broadcasts the other buffers
            owner.ctp_queue.enqueue_from_all_ranks(*_keys(step, rank))
        ddp(torch.randn(2, DIM)).sum().backward()
        img, txt = owner.ctp_queue.features()
        torch.save({"img": img.clone(), "txt": txt.clone(), "ptr": owner.ctp_queue.ptr.clone()},
                   f"{result_dir}/rank{rank}.pt")
        # a queue that differs per rank survives the broadcast of the next forward
        owner.ctp_queue.img_QD.fill_(float(rank))
        ddp(torch.randn(2, DIM)).sum().backward()
        torch.save({"fill": owner.ctp_queue.img_QD.clone()}, f"{result_dir}/fill{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_queue_holds_keys_of_all_ranks_and_is_not_broadcast(tmp_path):
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE,
                       start_method="spawn")
    expected = [torch.cat([_keys(step, rank)[i] for step in BATCHES for rank in range(WORLD_SIZE)])
                for i in (0, 1)]
    for rank in range(WORLD_SIZE):
        queue = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(queue["img"], expected[0])
        torch.testing.assert_close(queue["txt"], expected[1])
        assert int(queue["ptr"]) == sum(sum(rows) for rows in BATCHES.values())
        fill = torch.load(tmp_path / f"fill{rank}.pt", weights_only=True)["fill"]
        assert torch.all(fill == float(rank))
