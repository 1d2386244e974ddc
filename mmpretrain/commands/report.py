"""`mmpretrain report RUN_DIR [RUN_DIR ...]`: plots and a markdown summary comparing runs."""

from __future__ import annotations

import argparse

from mmpretrain.workflow.report import write_report

HELP = "plots (loss, LR, zero-shot, retrieval, throughput) + markdown summary comparing runs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmpretrain report", description=HELP,
        epilog="Reads RUN_DIR/logs (CSV, else TensorBoard), RUN_DIR/metrics.json and the saved "
               "config; writes OUT/report.md and OUT/<group>.png.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (trainer.default_root_dir)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: RUN_DIR/report for one run, else report/ in the "
                             "runs' common parent folder)")
    parser.add_argument("--names", nargs="+", default=None, help="display name per run (default: folder name)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = write_report(args.run_dirs, args.out, args.names)
    except (FileNotFoundError, ValueError) as exn:
        print(f"mmpretrain report: {exn}")
        return 2
    print(f"report written to {report}")
    return 0
