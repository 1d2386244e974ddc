from __future__ import annotations

import json

import pytest
import torch

from mmpretrain.data.datamodule import WebDataModule


@pytest.fixture
def image_sets(make_shards):
    train = make_shards("train", [6, 6, 6, 6], kind="image", num_labels=3)
    val = make_shards("val", [5, 4], kind="image", num_labels=3)
    (val[0].parent / "classes.json").write_text(json.dumps(
        {"classnames": ["red circle", "blue square", "green star"],
         "templates": ["a photo of a {}.", "a drawing of a {}."]}))
    return train[0].parent, val[0].parent


def module(train_dir, val_dir, **kwargs) -> WebDataModule:
    options = dict(train_shards=str(train_dir), val_shards=str(val_dir), batch_size=4, num_workers=2,
                   mode="exact", shuffle_buffer=4, image_size=24, context_length=16)
    options.update(kwargs)
    dm = WebDataModule(**options)
    dm.setup("fit")
    return dm


def delivered(dm: WebDataModule, loader, limit: int | None = None) -> list[dict]:
    batches = []
    for batch in loader:
        batches.append(dm.on_before_batch_transfer(batch, 0))
        if limit is not None and len(batches) == limit:
            break
    return batches


def keys(batches: list[dict]) -> list[str]:
    return [k for b in batches for k in b["key"]]


def test_train_batches_follow_the_contract(image_sets):
    dm = module(*image_sets)
    loader = dm.train_dataloader()
    batches = delivered(dm, loader)
    assert len(batches) == len(loader) == 6
    batch = batches[0]
    assert "_data_state" not in batch
    assert batch["image"].shape == (4, 3, 24, 24) and batch["image"].dtype == torch.float32
    assert batch["text"].shape == (4, 16) and batch["text"].dtype == torch.int64
    assert batch["label"].dtype == torch.int64 and set(batch["label"].tolist()) <= {0, 1, 2}
    assert len(set(keys(batches))) == 24
    assert dm.skip_counts == {}


def test_state_dict_resume_continues_where_delivery_stopped(image_sets):
    full = keys(delivered(module(*image_sets), module(*image_sets).train_dataloader()))
    dm = module(*image_sets)
    first = keys(delivered(dm, dm.train_dataloader(), limit=3))
    state = dm.state_dict()
    resumed = module(*image_sets)
    resumed.load_state_dict(state)
    rest = keys(delivered(resumed, resumed.train_dataloader()))
    assert sorted(first + rest) == sorted(full) and len(rest) == 12


def test_epoch_hook_reaches_persistent_workers(image_sets):
    dm = module(*image_sets, persistent_workers=True)
    loader = dm.train_dataloader()
    epoch0 = keys(delivered(dm, loader))
    loader.sampler.set_epoch(1)  # what Lightning's fit loop calls at each epoch start
    epoch1 = keys(delivered(dm, loader))
    reference = module(*image_sets, num_workers=0)
    reference_loader = reference.train_dataloader()
    reference.set_epoch(1)
    assert epoch1 != epoch0 and sorted(epoch1) == sorted(epoch0)
    assert sorted(epoch1) == sorted(keys(delivered(reference, reference_loader)))
    assert dm.state_dict()["train_stream_per_rank"][0]["epoch"] == 1


def test_val_reads_every_sample_once_and_zeroshot_prompts(image_sets):
    dm = module(*image_sets, val_batch_size=4)
    batches = [dm.on_before_batch_transfer(b, 0) for b in dm.val_dataloader()]
    assert sorted(keys(batches)) == sorted(f"val{s:03d}{j:04d}" for s, n in enumerate([5, 4]) for j in range(n))
    assert sorted(len(b["key"]) for b in batches) == [1, 4, 4]
    classnames, tokens = dm.zeroshot_prompts()
    assert classnames == ["red circle", "blue square", "green star"]
    assert tokens.shape == (3, 2, 16)
    assert torch.equal(tokens[1, 0], dm.tokenizer("a photo of a blue square.")[0])


def test_resampled_train_with_weights(image_sets, make_shards):
    other = make_shards("other", [6, 6], kind="image")
    dm = module(*image_sets, mode="resampled", train_shards=f"{image_sets[0]}::{other[0].parent}",
                train_weights=[0.5, 0.5], samples_per_epoch=32, num_workers=0)
    batches = delivered(dm, dm.train_dataloader())
    assert len(batches) == 8 and all(b["image"].shape[0] == 4 for b in batches)


def test_bad_configuration_fails_early(image_sets, tmp_path):
    with pytest.raises(ValueError, match="do not exist"):
        module(tmp_path / "nowhere-{0..3}.tar", image_sets[1])
    with pytest.raises(ValueError, match="only apply to mode='resampled'"):
        WebDataModule(train_shards="x.tar", mode="exact", train_weights=[1.0])
    with pytest.raises(ValueError, match="not enough for one batch"):
        module(*image_sets, batch_size=64).train_dataloader()
    with pytest.raises(ValueError, match="cannot read zero-shot classes"):
        module(*image_sets, zeroshot_classes=str(tmp_path / "missing.json")).zeroshot_prompts()
