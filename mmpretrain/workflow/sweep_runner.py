"""Turn a `SweepSpec` into CLI invocations: run them in order, print them, or emit a SLURM array.

Each run is `python -m mmpretrain fit -c BASE... -c OUT/<name>/delta.yaml ARGS
--trainer.default_root_dir=OUT/<name>`, then (when the spec says so) `validate` of its
`checkpoints/last.ckpt`, which writes the run's final `metrics.json`. Runs are separate
processes, so one run's crash or memory cannot leak into the next; their console output goes
to `OUT/<name>/fit.log` and `validate.log`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from mmpretrain.workflow.sweep_spec import SweepSpec

DELTA_FILENAME = "delta.yaml"


@dataclass(frozen=True)
class RunPlan:
    name: str
    run_dir: Path
    delta_path: Path
    fit: list[str]
    validate: list[str] | None

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    def is_done(self) -> bool:
        """Finished earlier: the last checkpoint and the final metrics are both there."""
        return self.last_checkpoint.is_file() and (self.run_dir / "metrics.json").is_file()


@dataclass(frozen=True)
class RunOutcome:
    name: str
    run_dir: Path
    status: str  # "ok", "skipped" (done before) or "failed: <stage> exit <code>"
    seconds: float


def plan_runs(spec: SweepSpec, extra_args: Sequence[str] = (),
              python: str = sys.executable) -> list[RunPlan]:
    """The commands of every run (`extra_args` come after the spec's own `args`)."""
    plans = []
    for run in spec.runs:
        run_dir = spec.out_dir / run.name
        delta_path = run_dir / DELTA_FILENAME
        configs = [arg for path in [*spec.base, delta_path] for arg in ("-c", str(path))]
        common = [*configs, *spec.args, *extra_args, f"--trainer.default_root_dir={run_dir}"]
        fit = [python, "-m", "mmpretrain", "fit", *common]
        validate = ([python, "-m", "mmpretrain", "validate", *common,
                     f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"] if spec.validate else None)
        plans.append(RunPlan(run.name, run_dir, delta_path, fit, validate))
    return plans


def write_deltas(spec: SweepSpec, plans: Sequence[RunPlan]) -> None:
    """Write each run's delta config where its commands expect it."""
    for run, plan in zip(spec.runs, plans):
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        header = f"# sweep {spec.name}, run {run.name}: overrides applied after {[str(b) for b in spec.base]}\n"
        plan.delta_path.write_text(header + yaml.safe_dump(run.delta, sort_keys=False))


def report_command(spec: SweepSpec, plans: Sequence[RunPlan], python: str = sys.executable) -> list[str]:
    return [python, "-m", "mmpretrain", "report", *(str(p.run_dir) for p in plans),
            "--out", str(spec.out_dir / "report")]


def shell_script(spec: SweepSpec, plans: Sequence[RunPlan], python: str = sys.executable) -> str:
    lines = [f"# sweep {spec.name}: {len(plans)} runs", "set -e"]
    for plan in plans:
        lines += ["", f"# {plan.name}", shlex.join(plan.fit)]
        if plan.validate:
            lines.append(shlex.join(plan.validate))
    lines += ["", shlex.join(report_command(spec, plans, python))]
    return "\n".join(lines) + "\n"


def slurm_array_script(spec: SweepSpec, plans: Sequence[RunPlan], workdir: Path,
                       sbatch_options: Sequence[str] = (), python: str = sys.executable) -> str:
    """An `sbatch` script with one array task per run; the report runs after the whole array."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name={spec.name}", f"#SBATCH --array=0-{len(plans) - 1}",
             f"#SBATCH --output={spec.out_dir}/slurm-%A_%a.out"]
    lines += [f"#SBATCH {option}" for option in sbatch_options]
    lines += [
        "# Submit: sbatch THIS_FILE; then, after the array, the report:",
        f"#   sbatch --dependency=afterany:<array job id> --wrap {shlex.quote(shlex.join(report_command(spec, plans, python)))}",
        "set -euo pipefail", f"cd {shlex.quote(str(workdir))}", 'case "$SLURM_ARRAY_TASK_ID" in']
    for index, plan in enumerate(plans):
        lines.append(f"  {index})  # {plan.name}")
        lines.append(f"    srun {shlex.join(plan.fit)}")
        if plan.validate:
            lines.append(f"    {shlex.join(plan.validate)}")
        lines.append("    ;;")
    lines += ['  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;', "esac"]
    return "\n".join(lines) + "\n"


def _run_logged(command: list[str], log_path: Path) -> int:
    with log_path.open("w") as log:
        log.write(shlex.join(command) + "\n\n")
        log.flush()
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode


def _echo(message: str) -> None:
    print(message, flush=True)  # progress must show up at once when the output is piped to a file


def run_plans(plans: Sequence[RunPlan], skip_done: bool = False,
              echo: Callable[[str], None] = _echo) -> list[RunOutcome]:
    """Run every plan in order; a failed run is recorded and the sweep goes on."""
    outcomes = []
    for index, plan in enumerate(plans, start=1):
        started = time.perf_counter()
        if skip_done and plan.is_done():
            echo(f"[{index}/{len(plans)}] {plan.name}: already done, skipped")
            outcomes.append(RunOutcome(plan.name, plan.run_dir, "skipped", 0.0))
            continue
        status = "ok"
        for stage, command in (("fit", plan.fit), ("validate", plan.validate)):
            if command is None:
                continue
            echo(f"[{index}/{len(plans)}] {plan.name}: {stage} (log: {plan.run_dir / f'{stage}.log'})")
            code = _run_logged(command, plan.run_dir / f"{stage}.log")
            if code != 0:
                status = f"failed: {stage} exit {code}"
                echo(f"[{index}/{len(plans)}] {plan.name}: {status}, see {plan.run_dir / f'{stage}.log'}")
                break
        outcomes.append(RunOutcome(plan.name, plan.run_dir, status, time.perf_counter() - started))
    return outcomes
