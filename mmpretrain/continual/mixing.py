"""Per-batch mixing of the pretraining pool (P), the current task (D) and the replay buffer (B).

`BatchMix` says how many rows of a batch come from each pool; `TaskMixtureStream` is the
iterable dataset that yields the P and D rows of every step of the whole stream in order
(the B rows are added by the consumer, which owns the buffer: see
`continual/datamodule.py`).

Each pool is a `ShardStream` of single samples (so a batch can take any number of rows from
it); one worker of the DataLoader serves steps worker, worker + W, ... so the task of every
batch is known from its step. Every batch carries `_continual_state`: the step, the task, the
row counts and the `_data_state` of the last P and D sample it took; the consumer feeds it to
`observe`, and `state_dict` / `load_state_dict` then resume the stream (and, through the
ShardStreams' own replay, every pool) exactly where the consumer stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info

from mmpretrain.data.wds.dataset import ShardStream


@dataclass(frozen=True)
class BatchMix:
    """Rows per pool: lambda_buffer of the batch from B once past tasks exist (task >= 1), the
    rest split between P and D in the ratio lambda_pretrain : lambda_task (so while B is empty
    its share goes to D and P)."""

    batch_size: int
    lambda_pretrain: float = 0.33
    lambda_task: float = 0.34
    lambda_buffer: float = 0.33

    def __post_init__(self) -> None:
        lambdas = (self.lambda_pretrain, self.lambda_task, self.lambda_buffer)
        if min(lambdas) < 0 or self.lambda_task <= 0:
            raise ValueError(f"data.init_args lambdas must be >= 0 with lambda_task > 0, got "
                             f"(lambda_pretrain, lambda_task, lambda_buffer) = {lambdas}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def counts(self, task: int) -> tuple[int, int, int]:
        """(rows from P, rows from D, rows from B) of a batch of task `task`."""
        total = self.lambda_pretrain + self.lambda_task + self.lambda_buffer
        num_buffer = round(self.batch_size * self.lambda_buffer / total) if task > 0 else 0
        rest = self.batch_size - num_buffer
        num_pretrain = round(rest * self.lambda_pretrain / (self.lambda_pretrain + self.lambda_task))
        num_task = rest - num_pretrain
        if num_task < 1:
            raise ValueError(f"batch_size {self.batch_size} leaves no row for the current task with these lambdas")
        return num_pretrain, num_task, num_buffer


def single_sample(samples: list[dict]) -> dict:
    """Collate of a ShardStream with batch_size 1: the sample itself."""
    return dict(samples[0])


class TaskMixtureStream(IterableDataset):
    def __init__(
        self,
        pool: ShardStream | None,
        tasks: list[ShardStream],
        mix: BatchMix,
        steps_per_task: int,
        collate: Callable[[list[dict]], dict],
        num_workers: int,
    ) -> None:
        if mix.lambda_pretrain > 0 and pool is None:
            raise ValueError("lambda_pretrain > 0 needs a pretraining pool (data.init_args.train_shards)")
        self.pool, self.tasks, self.mix = pool, tasks, mix
        self.steps_per_task, self.collate, self.num_workers = steps_per_task, collate, max(num_workers, 1)
        self._delivered: dict[int, int] = {}
        self._last_worker: int | None = None
        self._resume: dict[str, Any] | None = None

    @property
    def total_steps(self) -> int:
        return len(self.tasks) * self.steps_per_task

    def observe(self, state: dict[str, Any]) -> None:
        """Record a delivered batch's `_continual_state` (and its pools' data states)."""
        self._delivered[state["worker"]] = state["batches"]
        self._last_worker = state["worker"]
        if state["pool_state"] is not None:
            self.pool.observe(state["pool_state"])
        if state["task_state"] is not None:
            self.tasks[state["task"]].observe(state["task_state"])

    def state_dict(self) -> dict[str, Any]:
        return {"num_workers": self.num_workers, "workers": dict(self._delivered), "last_worker": self._last_worker,
                "pool": self.pool.state_dict() if self.pool is not None else None,
                "tasks": [task.state_dict() for task in self.tasks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["num_workers"] != self.num_workers or len(state["tasks"]) != len(self.tasks):
            raise ValueError(f"cannot resume the continual stream: saved with {state['num_workers']} data workers "
                             f"and {len(state['tasks'])} tasks, the config now has {self.num_workers} and "
                             f"{len(self.tasks)}; resume with the saved data.init_args.num_workers and stream")
        self._delivered = {int(w): b for w, b in state["workers"].items()}
        self._last_worker = state["last_worker"]
        next_worker = 0 if self._last_worker is None else (self._last_worker + 1) % self.num_workers
        self._resume = {"workers": dict(self._delivered), "next_worker": next_worker}
        if self.pool is not None:
            self._resume_pool(self.pool, state["pool"])
        for stream, saved in zip(self.tasks, state["tasks"]):
            self._resume_pool(stream, saved)

    def _resume_pool(self, stream: ShardStream, saved: dict[str, Any] | None) -> None:
        if saved is None or not saved["workers"]:
            # a pool not read from yet: no samples to replay, but its workers must take the
            # same roles as the mixture's (the worker due next is served first)
            saved = {**stream.state_dict(), "last_worker": self._last_worker}
        stream.load_state_dict(saved)

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if num_workers != self.num_workers:
            raise RuntimeError(f"TaskMixtureStream was planned for {self.num_workers} workers, runs in {num_workers}")
        batches = 0
        if self._resume is not None:
            worker = (worker + self._resume["next_worker"]) % num_workers
            batches = self._resume["workers"].get(worker, 0)
        pool_rows = iter(self.pool) if self.pool is not None else None
        task, task_rows = None, None
        while (step := batches * num_workers + worker) < self.total_steps:
            if step // self.steps_per_task != task:
                task = step // self.steps_per_task
                task_rows = iter(self.tasks[task])
            num_pretrain, num_task, num_buffer = self.mix.counts(task)
            taken_pool = [next(pool_rows) for _ in range(num_pretrain)]
            taken_task = [next(task_rows) for _ in range(num_task)]
            batch = self.collate(taken_pool + taken_task)
            batches += 1
            batch["_continual_state"] = {
                "worker": worker, "batches": batches, "step": step, "task": task,
                "num_pretrain": num_pretrain, "num_task": num_task, "num_buffer": num_buffer,
                "pool_state": taken_pool[-1]["_data_state"] if taken_pool else None,
                "task_state": taken_task[-1]["_data_state"]}
            yield batch
