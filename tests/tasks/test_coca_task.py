"""ContrastiveTask with CoCa: the caption term is logged, GradCache stays exact with packed
caption tokens, and a short CLI run on the synthetic shards learns to caption."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mmpretrain.cli import run_lightning_cli
from mmpretrain.losses import ClipLoss, CoCaLoss
from mmpretrain.models import (
    CoCa,
    CoCaTextTransformer,
    CoCaVisionTransformer,
    MultimodalTextDecoder,
)
from mmpretrain.tasks import ContrastiveTask
from mmpretrain.tasks.grad_cache import grad_cache_backward

REPO_ROOT = Path(__file__).resolve().parents[2]


def _model() -> CoCa:
    torch.manual_seed(0)
    return CoCa(
        CoCaVisionTransformer(16, 8, 32, 1, 2, output_dim=16, attn_backend="math",
                              attn_pooler_queries=5, attn_pooler_heads=2),
        CoCaTextTransformer(8, 50, 16, 1, 2, output_dim=16, attn_backend="math"),
        MultimodalTextDecoder(16, 1, 2, vocab_size=50, context_length=8, attn_backend="math"),
    ).double()


def _batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    text = torch.randint(1, 48, (8, 8), generator=gen)
    for row, eot in enumerate([2, 7, 3, 5, 4, 6, 2, 3]):  # chunks hold different token counts
        text[row, eot], text[row, eot + 1:] = 49, 0
    return {"image": torch.randn(8, 3, 16, 16, generator=gen, dtype=torch.float64), "text": text}


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_grad_cache_with_packed_caption_tokens_equals_one_big_batch():
    big, cached = ContrastiveTask(_model(), CoCaLoss()), ContrastiveTask(_model(), CoCaLoss())
    batch = _batch()
    expected = big.objective(big.encode(batch))
    expected.backward()
    got, out = grad_cache_backward(cached.encode, cached.objective, batch, num_chunks=4)
    torch.testing.assert_close(got, expected.detach())
    assert out["caption_labels"].shape == ((batch["text"][:, 1:] != 0).sum(),)
    for name, grad in _grads(big.model).items():
        torch.testing.assert_close(_grads(cached.model)[name], grad, msg=name)
    assert set(cached._loss_terms) == {"contrastive_loss", "caption_loss"}


def test_coca_model_needs_the_coca_loss():
    task = ContrastiveTask(_model(), ClipLoss())
    with pytest.raises(ValueError, match="CoCaLoss"):
        task.objective(task.encode(_batch()))


def _logged(run_dir: Path, key: str) -> list[float]:
    rows = []
    for metrics_csv in sorted(run_dir.glob("logs/version_*/metrics.csv")):
        with metrics_csv.open() as f:
            rows += [float(r[key]) for r in csv.DictReader(f) if r.get(key)]
    return rows


def test_short_run_learns_to_caption(image_text_shards, tmp_path):
    small = "--model.init_args.model.init_args"
    run_lightning_cli([
        "fit", "-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"),
        "-c", str(REPO_ROOT / "configs/exp/clip/quickstart.yaml"),
        "-c", str(REPO_ROOT / "configs/exp/clip/ablations/coca.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        f"--data.init_args.train_shards={image_text_shards['train']}",
        f"--data.init_args.val_shards={image_text_shards['val']}",
        "--data.init_args.num_workers=0", "--data.init_args.batch_size=16",
        "--data.init_args.image_size=32", f"{small}.vision.init_args.image_size=32",
        f"{small}.vision.init_args.layers=1", f"{small}.vision.init_args.output_dim=32",
        f"{small}.text.init_args.layers=1", f"{small}.text.init_args.width=32",
        f"{small}.text.init_args.output_dim=32", f"{small}.decoder.init_args.layers=1",
        f"{small}.decoder.init_args.width=32", "--trainer.enable_progress_bar=false",
        "--trainer.max_steps=30", "--trainer.val_check_interval=30",
        "--trainer.log_every_n_steps=2", "--trainer.limit_val_batches=2",
        "--model.init_args.lr_scheduler.init_args.warmup_steps=5",
        "--model.init_args.optimizer.init_args.lr=1e-2",
    ])
    caption_losses = _logged(tmp_path, "train/caption_loss")
    assert len(caption_losses) >= 10 and _logged(tmp_path, "train/contrastive_loss")
    first, last = sum(caption_losses[:2]) / 2, sum(caption_losses[-3:]) / 3
    assert first > 9.0 and last < 0.5 * first, (first, last)  # ln(49408) = 10.8 at init

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["caption_ce"] < 0.5 * first, metrics
    assert metrics["caption_perplexity"] == pytest.approx(2.718281828 ** metrics["caption_ce"])
    captions = json.loads((tmp_path / "captions.json").read_text())["captions"]
    assert len(captions) == 4 and all(c["generated"] and c["reference"] for c in captions)
