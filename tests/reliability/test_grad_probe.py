"""The gradient probe on the interleaved quickstart and its ablations: after one backward every
trainable parameter has a gradient (DDP's `find_unused_parameters: false` holds), and the
LM-only ablation froze exactly the contrastive heads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.grad_probe import unused_parameters

REPO_ROOT = Path(__file__).resolve().parents[2]
INTERLEAVED = REPO_ROOT / "configs/exp/interleaved"
ABLATIONS = [None, *sorted(p.stem for p in (INTERLEAVED / "ablations").glob("*.yaml"))]


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_every_trainable_parameter_gets_a_gradient(ablation, interleaved_shards, tmp_path):
    stack = ["-c", str(INTERLEAVED / "quickstart.yaml")]
    if ablation is not None:
        stack += ["-c", str(INTERLEAVED / "ablations" / f"{ablation}.yaml")]
    assert unused_parameters([*stack, f"--data.init_args.train_shards={interleaved_shards['train']}",
                              f"--data.init_args.val_shards={interleaved_shards['val']}",
                              "--data.init_args.num_workers=0", "--data.init_args.batch_size=2"],
                             tmp_path) == []


def test_lm_only_ablation_freezes_the_contrastive_heads(interleaved_shards):
    from mmpretrain.cli import run_lightning_cli

    cli = run_lightning_cli(["-c", str(INTERLEAVED / "quickstart.yaml"), "-c",
                             str(INTERLEAVED / "ablations/no_contrastive.yaml"),
                             f"--data.init_args.train_shards={interleaved_shards['train']}"], run=False)
    frozen = {name for name, p in cli.model.model.named_parameters() if not p.requires_grad}
    assert frozen == {"ln_text.weight", "ln_text.bias", "text_projection", "logit_scale",
                      "visual.ln_post.weight", "visual.ln_post.bias", "visual.proj"}
