"""Bookkeeping of the representation-pretraining comparison (runs themselves are in the README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmarks import robot_representation as bench
from mmpretrain.data.synthetic.cursor_env import PALETTE


def test_pooled_return_equals_statistics_over_all_episodes():
    episodes = [np.array([0.0, 2.0, 4.0, 6.0]), np.array([1.0, 1.0, 3.0, 7.0])]
    summaries = [{"return_mean": e.mean(), "return_std": e.std()} for e in episodes]
    mean, std = bench.pooled_return(summaries)
    assert mean == pytest.approx(np.concatenate(episodes).mean())
    assert std == pytest.approx(np.concatenate(episodes).std())


def test_encoder_deltas_freeze_all_but_scratch_and_load_only_pretrained_checkpoints():
    checkpoints = {"id": Path("/runs/pretrain/id/checkpoints/last.ckpt")}
    policy = {name: bench._encoder_delta(name, checkpoints)["model"]["init_args"]["model"]["init_args"]
              for name in ("id", "random", "scratch")}
    assert policy["id"] == {"encoder_checkpoint": str(checkpoints["id"]), "freeze_encoder": True}
    assert policy["random"] == {"encoder_checkpoint": None, "freeze_encoder": True}
    assert policy["scratch"] == {"encoder_checkpoint": None, "freeze_encoder": False}


def test_every_pretraining_config_shares_encoder_data_batch_optimizer_and_steps():
    configs = {m: yaml.safe_load((bench.ROBOT / c).read_text()) for m, c in bench.PRETRAINING.items()}
    shared = {m: (c["model"]["init_args"]["model"]["init_args"]["encoder"], c["data"]["init_args"],
                  c["model"]["init_args"]["optimizer"], c["model"]["init_args"]["lr_scheduler"],
                  c["trainer"]["max_steps"]) for m, c in configs.items()}
    assert all(value == shared["id"] for value in shared.values())
    downstream = yaml.safe_load((bench.ROBOT / "cursor_frozen_bc.yaml").read_text())
    assert downstream["model"]["init_args"]["model"]["init_args"]["encoder"] == shared["id"][0]


def test_markdown_table_has_one_row_per_run_and_baseline():
    row = {"encoder": "id", "demos": 64, "seeds": [0, 1], "return": {"mean": 1.5, "std": 0.25}}
    row |= {k: {"mean": 0.5, "std": 0.01} for k in bench.METRICS}
    probe = {"cursor_x_r2": 0.99, "cursor_y_r2": 0.98, "target_x_r2": 0.2, "target_y_r2": 0.3, "target_colour_acc": 0.5}
    table = bench.markdown([row], {"scripted": {"return_mean": 28.0, "return_std": 3.0}}, {"id": probe}, 16)
    assert "| id | 64 | 50.0 ± 1.0 | 50.0 ± 1.0 | 50.0 ± 1.0 | 50.0 ± 1.0 | 50.0 ± 1.0 | 1.50 ± 0.25 |" in table
    assert "| scripted policy | - |" in table and "28.00 ± 3.00" in table
    assert "| id | 0.99 / 0.98 | 0.20 / 0.30 | 50.0 |" in table


def test_ridge_probe_recovers_a_linear_map_on_held_out_rows():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 5))
    targets = features @ rng.normal(size=(5, 2)) + 3.0
    train = np.arange(200) < 100
    assert np.allclose(bench.ridge_predict(features, targets, train, l2=1e-9), targets[~train], atol=1e-5)


def test_probe_states_are_the_rendered_cursor_and_target():
    frames, states, episode_of = bench.probe_data(episodes=2)
    assert frames.shape == (128, 3, 24, 24) and states.shape == (128, 5) and episode_of.tolist() == [0] * 64 + [1] * 64
    apart = 0
    for frame, (x, y, tx, ty, colour) in zip(frames, states):
        assert frame[:, int(y), int(x)].tolist() == [255, 255, 255]  # the cursor's white centre pixel
        if max(abs(x - tx), abs(y - ty)) > 4:  # the cursor is drawn over the target when on it
            apart += 1
            assert frame[:, int(ty) - 1, int(tx) - 1].tolist() == PALETTE[int(colour)].tolist()  # target cross
    assert apart > 20
