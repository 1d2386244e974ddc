"""Task streams: which tasks a continual run trains on, in which order, for how many steps.

A stream is config (dataclasses, so jsonargparse takes them as plain YAML mappings):

```yaml
stream:
  root: data/continual           # task paths are relative to it (absolute paths stay)
  steps_per_task: 60
  order: given                   # given | random | reversed | score
  tasks:
    - {name: warm_round, train: task0/train, eval: task0/eval}
    - {name: new_shapes, train: task1/train, eval: task1/eval, score: 0.4}
  heldout: [heldout]             # extra held-out eval sets (zero-shot retention)
```

Each `train`/`eval` is a shard spec (see `data/wds/shard_spec.py`); an eval set's class names
and prompt templates are the `classes.json` beside its shards. The current task is a pure
function of the global step (`task_at_step`), so resuming needs nothing but the step.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Literal

StreamOrder = Literal["given", "random", "reversed", "score"]


@dataclass(frozen=True)
class StreamTask:
    """One adaptation task: `train` shards, optional `eval` shards (for A_KA) and a `score`
    used by `order: score` (e.g. the starting model's zero-shot accuracy on the task)."""

    name: str
    train: str
    eval: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class TaskStream:
    tasks: list[StreamTask] = field(default_factory=list)
    steps_per_task: int = 60
    order: StreamOrder = "given"
    order_seed: int = 0
    score_descending: bool = True
    root: str = "."
    heldout: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("data.init_args.stream.tasks: expected at least one task "
                             "({name: ..., train: SHARDS, eval: SHARDS})")
        if self.steps_per_task < 1:
            raise ValueError(f"data.init_args.stream.steps_per_task must be >= 1, got {self.steps_per_task}")
        if self.order not in ("given", "random", "reversed", "score"):
            raise ValueError(f"data.init_args.stream.order must be given|random|reversed|score, got {self.order!r}")
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"data.init_args.stream.tasks: task names must be unique, got {names}")
        if self.order == "score":
            missing = [task.name for task in self.tasks if task.score is None]
            if missing:
                raise ValueError(f"data.init_args.stream.order=score needs a score on every task; missing: {missing}")

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def total_steps(self) -> int:
        return self.num_tasks * self.steps_per_task

    def ordered_tasks(self) -> list[StreamTask]:
        """The tasks in training order, with paths resolved against `root`."""
        tasks = [StreamTask(t.name, self.resolve(t.train), t.eval and self.resolve(t.eval), t.score)
                 for t in self.tasks]
        if self.order == "reversed":
            return tasks[::-1]
        if self.order == "random":
            random.Random(f"stream-order/{self.order_seed}").shuffle(tasks)
            return tasks
        if self.order == "score":
            return sorted(tasks, key=lambda t: t.score, reverse=self.score_descending)
        return tasks

    def heldout_specs(self) -> list[str]:
        return [self.resolve(spec) for spec in self.heldout]

    def resolve(self, spec: str) -> str:
        """`spec` with every `::`-separated source made relative to `root` unless absolute."""
        return "::".join(source if os.path.isabs(source) else os.path.join(self.root, source)
                         for source in spec.split("::"))

    def task_at_step(self, step: int) -> int:
        """Index (in training order) of the task that global step `step` trains on."""
        return min(step // self.steps_per_task, self.num_tasks - 1)

    def step_in_task(self, step: int) -> int:
        return step - self.task_at_step(step) * self.steps_per_task
