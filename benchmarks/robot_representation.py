"""Representation-pretraining comparison on cursor-paint (Brandfonbrener et al. 2023 setting).

    OMP_NUM_THREADS=1 python -m benchmarks.robot_representation --out runs/robot_representation

1. Data: a pretraining set from a noisier demonstrator (every action component random with
   probability `--pretrain-epsilon`, default 0.5) and, from the default scripted demonstrator
   (epsilon 0.2), few downstream demonstrations (`--demos`, windows of 8 frames; the smaller
   set is a prefix of the larger) and a held-out validation set.
2. Pretraining, once per objective, same encoder / data / batch / steps:
   inverse dynamics, forward dynamics, behaviour cloning, contrastive (configs/exp/robot/*).
3. Downstream, per encoder x demo amount x seed: `cursor_frozen_bc.yaml`, a BC head on the
   frozen encoder (`random`: a frozen untrained encoder; `scratch`: no pretraining, encoder
   trained end to end on the demos), then `mmpretrain rollout` over `--episodes` episodes.
4. `OUT/table.md` and `OUT/results.json`: val action metrics (mean ± std over seeds) and
   rollout return (mean over seeds ± std over all their episodes), plus what each frozen
   encoder holds: ridge probes from phi(o_t) to the env's hidden cursor and target positions
   (R²) and target colour, fitted on 16 episodes of the demonstrator and scored on 16 others.

Runs go through the sweep runner (`mmpretrain.workflow.sweep_runner`): separate processes,
logs in each run's folder, and finished runs (last.ckpt + metrics.json) are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from mmpretrain.data.synthetic.cursor_env import CursorPaintEnv
from mmpretrain.data.synthetic.trajectory import TrajectoryOptions, generate_trajectory, record_episode
from mmpretrain.eval.action import r2_score
from mmpretrain.models.robot import SpatialSoftmaxEncoder, load_encoder_state
from mmpretrain.workflow.sweep_runner import RunPlan, plan_runs, run_plans, write_deltas
from mmpretrain.workflow.sweep_spec import SweepRun, SweepSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
CPU = REPO_ROOT / "configs/trainer/cpu.yaml"
ROBOT = REPO_ROOT / "configs/exp/robot"
PRETRAINING = {"id": "cursor_id_pretrain.yaml", "fd": "cursor_fd_pretrain.yaml",
               "bc": "cursor_bc_pretrain.yaml", "contrastive": "cursor_contrastive_pretrain.yaml"}
ENCODERS = ("id", "fd", "bc", "contrastive", "random", "scratch")
METRICS = {"dx": "axis_dx_bin_acc", "dy": "axis_dy_bin_acc", "click": "button_click_acc",
           "colour": "choice_colour_acc", "exact": "exact_match"}
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def make_data(root: Path, args: argparse.Namespace) -> dict[str, Path]:
    sets = {"pretrain": TrajectoryOptions(num_samples=args.pretrain_samples, seed=300, epsilon=args.pretrain_epsilon),
            "val": TrajectoryOptions(num_samples=128, seed=200)}
    sets |= {f"demos_{n}": TrajectoryOptions(num_samples=n, seed=100) for n in args.demos}
    for name, options in sets.items():
        if not (root / name).is_dir():
            generate_trajectory(str(root / name), options)
    return {name: root / name for name in sets}


def _data_delta(train: Path, val: Path) -> dict:
    return {"data": {"init_args": {"train_shards": str(train), "val_shards": str(val)}}}


def _run_sweep(spec: SweepSpec) -> list[RunPlan]:
    plans = plan_runs(spec)
    write_deltas(spec, plans)
    failed = [o for o in run_plans(plans, skip_done=True) if o.status not in ("ok", "skipped")]
    if failed:
        raise SystemExit(f"{spec.name}: runs failed: {[(o.name, o.status) for o in failed]}")
    return plans


def pretrain(out: Path, data: dict[str, Path], steps: int) -> dict[str, Path]:
    """Each objective once; returns objective -> last checkpoint."""
    checkpoints = {}
    for method, config in PRETRAINING.items():
        spec = SweepSpec(name=f"pretrain_{method}", out_dir=out / "pretrain", base=[CPU, ROBOT / config],
                         runs=[SweepRun(method, _data_delta(data["pretrain"], data["val"]))],
                         args=[*QUIET, f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={steps}"],
                         validate=False)
        checkpoints[method] = _run_sweep(spec)[0].last_checkpoint
    return checkpoints


def _encoder_delta(encoder: str, checkpoints: dict[str, Path]) -> dict:
    policy = {"encoder_checkpoint": str(checkpoints[encoder]) if encoder in checkpoints else None,
              "freeze_encoder": encoder != "scratch"}
    return {"model": {"init_args": {"model": {"init_args": policy}}}}


def downstream(out: Path, data: dict[str, Path], checkpoints: dict[str, Path], args: argparse.Namespace
               ) -> list[RunPlan]:
    """Frozen-encoder BC runs, seed by seed (a complete first seed comes before the second)."""
    runs = []
    for seed in args.seeds:
        for n in args.demos:
            for encoder in args.encoders:
                delta = _encoder_delta(encoder, checkpoints) | {"seed_everything": seed}
                delta["data"] = {"init_args": {"train_shards": str(data[f"demos_{n}"]),
                                               "val_shards": str(data["val"]), "seed": seed}}
                runs.append(SweepRun(f"{encoder}_n{n}_s{seed}", delta))
    spec = SweepSpec(name="frozen_bc", out_dir=out / "downstream", base=[CPU, ROBOT / "cursor_frozen_bc.yaml"],
                     runs=runs, validate=False,
                     args=[*QUIET, f"--trainer.max_steps={args.bc_steps}",
                           f"--trainer.val_check_interval={args.bc_steps}"])
    plans = _run_sweep(spec)
    for plan in plans:
        rollout(plan, args.episodes)
    return plans


def rollout(plan: RunPlan, episodes: int) -> None:
    summary = plan.run_dir / "rollout.json"
    if summary.is_file():
        return
    command = [sys.executable, "-m", "mmpretrain", "rollout", "-c", str(CPU),
               "-c", str(ROBOT / "cursor_frozen_bc.yaml"), "-c", str(plan.delta_path),
               "--ckpt", str(plan.last_checkpoint), "--env", "cursor-paint", "--episodes", str(episodes),
               "--context", "1", "--out", str(summary)]
    with (plan.run_dir / "rollout.log").open("w") as log:
        log.write(shlex.join(command) + "\n\n")
        log.flush()
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)


def probe_data(episodes: int = 32, seed: int = 200) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Demonstrator frames uint8 [N, 3, H, W], hidden state [N, 5] (cursor x, y, target centre
    x, y, target colour) and each frame's episode."""
    frames, states, episode_of = [], [], []

    def record(env: CursorPaintEnv) -> None:
        states.append([*env.cursor, *((env.target + 0.5) * env.cell_px), env.target_colour])

    for episode in range(episodes):
        episode_frames, _, _ = record_episode(TrajectoryOptions(seed=seed), episode, record)
        frames.append(episode_frames)
        episode_of += [episode] * len(episode_frames)
    return torch.from_numpy(np.concatenate(frames)).permute(0, 3, 1, 2), np.array(states), np.array(episode_of)


def ridge_predict(features_NF: np.ndarray, targets_NK: np.ndarray, train_N: np.ndarray, l2: float = 1e-3
                  ) -> np.ndarray:
    """Predictions for the rows outside `train_N` of a ridge regression (with bias) fitted on it."""
    a_NF = np.c_[features_NF, np.ones(len(features_NF))]
    gram = a_NF[train_N].T @ a_NF[train_N] + l2 * np.eye(a_NF.shape[1])
    return a_NF[~train_N] @ np.linalg.solve(gram, a_NF[train_N].T @ targets_NK[train_N])


def state_probe(checkpoints: dict[str, Path]) -> dict[str, dict[str, float]]:
    frames, states, episode_of = probe_data()
    train = episode_of < episode_of.max() / 2
    config = yaml.safe_load((ROBOT / "cursor_frozen_bc.yaml").read_text())
    encoder_args = config["model"]["init_args"]["model"]["init_args"]["encoder"]["init_args"]
    probes = {}
    for name in [*checkpoints, "random"]:
        torch.manual_seed(0)
        encoder = SpatialSoftmaxEncoder(**encoder_args)
        if name in checkpoints:
            load_encoder_state(encoder, str(checkpoints[name]))
        with torch.no_grad():
            phi_ND = encoder.eval()(frames).numpy()
        positions = torch.from_numpy(ridge_predict(phi_ND, states[:, :4], train))
        true = torch.from_numpy(states[~train, :4])
        colour = ridge_predict(phi_ND, np.eye(3)[states[:, 4].astype(int)], train).argmax(1)
        probes[name] = {"cursor_x_r2": r2_score(positions[:, 0], true[:, 0]),
                        "cursor_y_r2": r2_score(positions[:, 1], true[:, 1]),
                        "target_x_r2": r2_score(positions[:, 2], true[:, 2]),
                        "target_y_r2": r2_score(positions[:, 3], true[:, 3]),
                        "target_colour_acc": float((colour == states[~train, 4]).mean())}
    return probes


def baseline_return(out: Path, policy: str, episodes: int) -> dict:
    summary = out / f"rollout_{policy}.json"
    if not summary.is_file():
        subprocess.run([sys.executable, "-m", "mmpretrain", "rollout", "--policy", policy, "--env", "cursor-paint",
                        "--episodes", str(episodes), "--out", str(summary)], check=True, capture_output=True)
    return json.loads(summary.read_text())


def pooled_return(summaries: list[dict]) -> tuple[float, float]:
    """Mean and std over all episodes of equally long rollouts, from per-run mean/std."""
    means = np.array([s["return_mean"] for s in summaries])
    second_moments = np.array([s["return_std"] ** 2 + s["return_mean"] ** 2 for s in summaries])
    return float(means.mean()), float(np.sqrt(max(second_moments.mean() - means.mean() ** 2, 0.0)))


def collect(plans: list[RunPlan], args: argparse.Namespace) -> list[dict]:
    by_name = {plan.name: plan for plan in plans}
    rows = []
    for n in args.demos:
        for encoder in args.encoders:
            runs = [by_name[f"{encoder}_n{n}_s{seed}"] for seed in args.seeds]
            metrics = [json.loads((r.run_dir / "metrics.json").read_text()) for r in runs]
            summaries = [json.loads((r.run_dir / "rollout.json").read_text()) for r in runs]
            row = {"encoder": encoder, "demos": n, "seeds": list(args.seeds)}
            for short, key in METRICS.items():
                values = np.array([m[key] for m in metrics])
                row[short] = {"mean": float(values.mean()), "std": float(values.std()), "per_seed": values.tolist()}
            mean, std = pooled_return(summaries)
            row["return"] = {"mean": mean, "std": std, "per_seed": [s["return_mean"] for s in summaries]}
            rows.append(row)
    return rows


def markdown(rows: list[dict], baselines: dict[str, dict], probes: dict[str, dict[str, float]], episodes: int
             ) -> str:
    lines = ["| encoder | demos | dx bin acc | dy bin acc | click acc | colour acc | exact match | return |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{100 * row[k]['mean']:.1f} ± {100 * row[k]['std']:.1f}" for k in METRICS]
        cells.append(f"{row['return']['mean']:.2f} ± {row['return']['std']:.2f}")
        lines.append(f"| {row['encoder']} | {row['demos']} | " + " | ".join(cells) + " |")
    for policy, summary in baselines.items():
        lines.append(f"| {policy} policy | - | | | | | | "
                     f"{summary['return_mean']:.2f} ± {summary['return_std']:.2f} |")
    lines.append(f"\nAccuracies in %, mean ± std over seeds {rows[0]['seeds']}; return: mean over seeds "
                 f"± std over all their {episodes}-episode rollouts.")
    lines += ["", "| frozen encoder | cursor x / y R² | target x / y R² | target colour acc |", "|---|---|---|---|"]
    for name, p in probes.items():
        lines.append(f"| {name} | {p['cursor_x_r2']:.2f} / {p['cursor_y_r2']:.2f} | {p['target_x_r2']:.2f} / "
                     f"{p['target_y_r2']:.2f} | {100 * p['target_colour_acc']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/robot_representation"))
    parser.add_argument("--pretrain-samples", type=int, default=2048)
    parser.add_argument("--pretrain-epsilon", type=float, default=0.5)
    parser.add_argument("--pretrain-steps", type=int, default=2000)
    parser.add_argument("--demos", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    parser.add_argument("--bc-steps", type=int, default=500)
    parser.add_argument("--episodes", type=int, default=16)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = make_data(args.out / "data", args)
    checkpoints = pretrain(args.out, data, args.pretrain_steps)
    plans = downstream(args.out, data, checkpoints, args)
    baselines = {policy: baseline_return(args.out, policy, args.episodes) for policy in ("scripted", "random")}
    rows = collect(plans, args)
    probes = state_probe(checkpoints)
    table = markdown(rows, baselines, probes, args.episodes)
    (args.out / "table.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "baselines": baselines, "probes": probes, "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}, indent=2))
    print(table + f"\n{time.perf_counter() - started:.0f} s; written to {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
