"""All-gather of per-rank concept frequencies for CABS-DM, usable inside DataLoader workers.

Selection runs in DataLoader worker processes, which cannot join the trainer's process group.
Instead, worker w of every rank meets worker w of the other ranks in the key-value store that
already backs the process group (a `torch.distributed.TCPStore` at MASTER_ADDR:MASTER_PORT,
hosted by torchrun's agent or by rank 0): each writes its payload under
`{prefix}/{tag}/{rank}` and waits for the other ranks' keys. This pairing is sound because
every rank runs the same number of workers with the same per-worker batch quota, and the
DataLoader consumes workers round-robin, so worker w's k-th super-batch belongs to the same
training step on every rank. `prefix` carries a nonce broadcast once per stream by the
datamodule, so a second fit in the same process group never reads stale keys.

Keys are deleted two super-batches later: a rank writing step k has read every rank's step
k-1, so every rank has finished reading step k-2.
"""

from __future__ import annotations

from datetime import timedelta

import torch.distributed as dist


class StoreExchange:
    def __init__(self, host: str, port: int, prefix: str, timeout_s: float = 600.0) -> None:
        self.host, self.port, self.prefix, self.timeout_s = host, port, prefix, timeout_s
        self._store: dist.Store | None = None
        self._written: list[str] = []

    def __getstate__(self) -> dict:
        # a connection is per process: each DataLoader worker opens its own
        return {**self.__dict__, "_store": None, "_written": []}

    def _connect(self) -> dist.Store:
        if self._store is None:
            try:
                client = dist.TCPStore(self.host, self.port, is_master=False,
                                       timeout=timedelta(seconds=self.timeout_s))
            except (RuntimeError, OSError) as exn:
                raise RuntimeError(f"CABS-DM: cannot reach the process group's store at "
                                   f"{self.host}:{self.port} ({exn}); multi-rank cabs_dm needs "
                                   "MASTER_ADDR/MASTER_PORT of a running process group") from exn
            self._store = dist.PrefixStore(self.prefix, client)
        return self._store

    def all_gather(self, tag: str, rank: int, world_size: int, payload: bytes) -> list[bytes]:
        store = self._connect()
        key = f"{tag}/{rank}"
        store.set(key, payload)
        self._written.append(key)
        if len(self._written) > 2:
            store.delete_key(self._written.pop(0))
        keys = [f"{tag}/{r}" for r in range(world_size)]
        store.wait(keys, timedelta(seconds=self.timeout_s))
        return [payload if r == rank else store.get(k) for r, k in enumerate(keys)]
