"""`mmpretrain sweep SPEC`: expand an ablation spec into runs, run them in order, then report."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from mmpretrain.workflow.sweep_runner import (
    plan_runs,
    run_plans,
    shell_script,
    slurm_array_script,
    write_deltas,
)
from mmpretrain.workflow.sweep_spec import load_sweep_spec

HELP = "run an ablation (base configs + YAML deltas / key grids) run by run, then report"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmpretrain sweep", description=HELP,
        epilog="Arguments after a lone `--` are appended to every run's fit/validate command, "
               "e.g. `mmpretrain sweep configs/sweeps/quickstart_lr.yaml -- --trainer.max_steps=50`. "
               "Spec format: mmpretrain/workflow/sweep_spec.py.")
    parser.add_argument("spec", help="sweep spec YAML (see configs/sweeps/)")
    parser.add_argument("--out-dir", default=None, help="override the spec's out_dir")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="write the run deltas and print the shell commands; run nothing")
    parser.add_argument("--slurm", default=None, metavar="FILE",
                        help="write an sbatch array script (one task per run) to FILE; run nothing")
    parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                        help="extra #SBATCH line for --slurm, e.g. --sbatch=--gres=gpu:1 (repeatable)")
    parser.add_argument("--skip-done", action="store_true",
                        help="skip runs that already have checkpoints/last.ckpt and metrics.json")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip the validate step (metrics.json then comes from fit's last validation)")
    parser.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    return parser


def _interrupt_on_sigterm(signum, frame) -> None:
    # turns `kill` of the sweep into KeyboardInterrupt, on which subprocess.run kills the
    # running fit/validate instead of leaving it to train on as an orphan
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    argv = list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    try:
        spec = load_sweep_spec(args.spec)
    except ValueError as exn:
        print(f"mmpretrain sweep: {exn}")
        return 2
    if args.out_dir is not None:
        spec.out_dir = Path(args.out_dir)
    if args.no_validate:
        spec.validate = False
    plans = plan_runs(spec, extra)
    write_deltas(spec, plans)
    if args.slurm is not None:
        Path(args.slurm).write_text(slurm_array_script(spec, plans, Path.cwd(), args.sbatch))
        print(f"SLURM array script ({len(plans)} tasks) written to {args.slurm}")
        return 0
    if args.print_only:
        print(shell_script(spec, plans), end="")
        return 0
    print(f"sweep {spec.name}: {len(plans)} runs under {spec.out_dir}")
    previous_handler = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        outcomes = run_plans(plans, skip_done=args.skip_done)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    for outcome in outcomes:
        print(f"  {outcome.name:24s} {outcome.status:24s} {outcome.seconds:7.1f} s  {outcome.run_dir}")
    finished = [o.run_dir for o in outcomes if o.status in ("ok", "skipped")]
    if finished and not args.no_report:
        from mmpretrain.workflow.report import write_report  # matplotlib: only when reporting

        report = write_report(finished, spec.out_dir / "report", [o.name for o in outcomes if o.run_dir in finished])
        print(f"report written to {report}")
    return 0 if len(finished) == len(outcomes) else 1
