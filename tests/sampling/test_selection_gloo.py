"""Multi-rank CABS-DM in real processes: two gloo ranks, each with a WebDataModule whose
selection runs inside a DataLoader worker and exchanges concept frequencies through the
process group's own TCPStore (MASTER_ADDR/MASTER_PORT, nonce broadcast over gloo)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))

from test_selection_stream import BATCH, expected_two_rank_dm, make_stream  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, shards: dict, out_dir: str) -> None:
    import torch.distributed as dist

    from mmpretrain.data.datamodule import WebDataModule
    from mmpretrain.data.sampling import BatchSelection

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    # the same stream as make_stream(..., world_size=2), built the way a training run builds it
    datamodule = WebDataModule(
        train_shards=shards["train"], batch_size=BATCH, num_workers=1, mode="resampled",
        samples_per_epoch=2 * 4 * BATCH, shuffle_buffer=50, seed=0, image_size=32, context_length=16,
        selection=BatchSelection(strategy="cabs_dm", filter_ratio=0.8, super_batch_size=40, cap=2, seed=0),
        persistent_workers=False, pin_memory=False)
    keys = [batch["key"] for batch in datamodule.train_dataloader()]
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
