"""`ReservoirBuffer`: a fixed-size uniform sample of every past-task sample seen so far.

Reservoir sampling (Vitter's algorithm R): the n-th sample offered is kept with probability
capacity / n, replacing a uniformly chosen entry, so at any time the buffer is a uniform
sample of the stream. Every random decision is drawn from a generator seeded by
(seed, what is decided, a counter), so the buffer's state is only its entries and counters:
`state_dict()` holds tensors and ints (safe for `torch.load(weights_only=True)`), and a
resumed run makes exactly the decisions of the uninterrupted one.

Entries carry the task they came from; `sample(n, before_task=t)` draws only entries of tasks
before t, so samples of the current task are never replayed to it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

REPLAYED_KEYS = ("image", "text")


def _generator(*key: object) -> torch.Generator:
    seed = int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little") & (2**63 - 1)
    return torch.Generator().manual_seed(seed)


class ReservoirBuffer:
    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 0:
            raise ValueError(f"replay buffer capacity must be >= 0, got {capacity}")
        self.capacity, self.seed = capacity, seed
        self.seen = self.size = 0
        self.entries: dict[str, torch.Tensor] = {}
        self.task_N = torch.full((capacity,), -1, dtype=torch.int64)

    def __len__(self) -> int:
        return self.size

    def add(self, batch: dict[str, torch.Tensor], task: int) -> None:
        """Offer every row of `batch` (its `image` and `text` tensors) from task `task`."""
        rows = batch[REPLAYED_KEYS[0]].shape[0]
        for row in range(rows):
            self.seen += 1
            if self.size < self.capacity:
                slot = self.size
                self.size += 1
            else:
                slot = int(torch.randint(self.seen, (1,), generator=_generator(self.seed, "add", self.seen)))
                if slot >= self.capacity:
                    continue
            for key in REPLAYED_KEYS:
                value = batch[key][row].detach().cpu()
                if key not in self.entries:
                    self.entries[key] = value.new_zeros((self.capacity, *value.shape))
                self.entries[key][slot] = value
            self.task_N[slot] = task

    def eligible(self, before_task: int) -> torch.Tensor:
        return torch.nonzero(self.task_N[: self.size] < before_task).flatten()

    def sample(self, n: int, before_task: int, draw: int) -> dict[str, torch.Tensor]:
        """`n` entries (with replacement) of tasks < `before_task`, with their `task`; `draw`
        numbers the call (the global step), which makes the choice reproducible after a resume."""
        candidates = self.eligible(before_task)
        if candidates.numel() == 0:
            raise RuntimeError(f"replay buffer holds no sample of a task before task {before_task} "
                               f"({len(self)} entries of capacity {self.capacity}); increase "
                               "data.init_args.buffer_size or set lambda_buffer to 0")
        picks = candidates[torch.randint(candidates.numel(), (n,), generator=_generator(self.seed, "draw", draw))]
        return {**{key: value[picks] for key, value in self.entries.items()}, "task": self.task_N[picks]}

    def state_dict(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "seed": self.seed, "seen": self.seen, "size": self.size,
                "entries": dict(self.entries), "task": self.task_N.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay buffer was saved with capacity {state['capacity']}, the config now "
                             f"says {self.capacity} (data.init_args.buffer_size); resume with the saved size")
        self.seed, self.seen, self.size = state["seed"], state["seen"], state["size"]
        self.entries = dict(state["entries"])
        self.task_N = state["task"].clone()
