"""Multi-rank CABS-DM in real processes: two gloo ranks, selection inside DataLoader workers,
frequencies exchanged through the process group's own TCPStore (MASTER_ADDR/MASTER_PORT)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))

from test_selection_stream import BATCH, collate, expected_two_rank_dm, make_stream  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, shards: dict, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    from mmpretrain.data.sampling.exchange import StoreExchange
    from mmpretrain.data.wds.dataset import ShardStream

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    exchange = StoreExchange("127.0.0.1", port, "gloo-test/", timeout_s=60)
    stream, _ = make_stream(shards, "cabs_dm", rank=rank, world_size=2, exchange=exchange)
    stream = ShardStream(stream.spec, stream.decode, BATCH, mode="resampled", seed=0, shuffle_buffer=50,
                         samples_per_epoch=stream.samples_per_epoch, collate=collate, rank=rank, world_size=2,
                         num_workers=1, selector=stream.selector)
    keys = [batch["key"] for batch in DataLoader(stream, batch_size=None, num_workers=1)]
    dist.barrier()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(keys))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_select_with_global_frequencies(image_text_shards, tmp_path):
    shards = {k: str(v) for k, v in image_text_shards.items()}
    mp.start_processes(_rank_main, args=(_free_port(), shards, str(tmp_path)), nprocs=2, start_method="spawn")
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # the same raw super-batches, replayed in this process, give the expected selections
    selectors = []
    for rank in range(2):
        stream, selector = make_stream(image_text_shards, "iid", rank=rank, world_size=2)
        list(stream)
        selectors.append(selector)
    assert results == expected_two_rank_dm([s.seen for s in selectors])
