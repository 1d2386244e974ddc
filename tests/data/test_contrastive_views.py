"""Sub-captions, caption augmentation, extra views and MeCo metadata switching on shards."""

import random

import pytest
import torch
from torch.utils.data import DataLoader

from mmpretrain.data.contrastive_datamodule import ContrastiveDataModule
from mmpretrain.data.sources.contrastive_views import (
    ContrastiveViewsDecoder,
    GlobalStep,
    url_domain,
)
from mmpretrain.data.text_views import TextAugment, sample_sub_captions, split_sentences
from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import ImageTransform
from tests.conftest import make_synthetic

LONG = "There is a red circle. A blue star sits in the top left! The background is plain."


@pytest.fixture(scope="module")
def long_caption_shards(tmp_path_factory):
    return make_synthetic("image-text", tmp_path_factory.mktemp("long") / "train", 32, 16, 4,
                          "--long-captions")


def test_sub_captions_are_sentences_without_replacement_when_possible():
    assert split_sentences(LONG) == ["There is a red circle.", "A blue star sits in the top left!",
                                     "The background is plain."]
    rng = random.Random(0)
    for _ in range(20):
        two = sample_sub_captions(LONG, 2, rng)
        assert len(set(two)) == 2 and set(two) <= set(split_sentences(LONG))
    five = sample_sub_captions(LONG, 5, rng)
    assert set(five) == set(split_sentences(LONG)) and len(five) == 5


def test_text_augment_operations():
    rng = random.Random(0)
    text = "a picture of a red circle on the striped background"
    assert TextAugment(stop_word_removal=1.0)(text, rng) == "picture red circle striped background"
    swapped = TextAugment(random_swap=1.0)(text, rng)
    assert sorted(swapped.split()) == sorted(text.split()) and swapped != text
    deleted = TextAugment(random_deletion=1.0, deletion_rate=0.5)(text, rng).split()
    assert 1 <= len(deleted) < len(text.split()) and all(w in text.split() for w in deleted)
    assert TextAugment()(text, rng) == text
    with pytest.raises(ValueError, match="deletion_rate"):
        TextAugment(deletion_rate=2.0)


def _decoder(**kwargs):
    return ContrastiveViewsDecoder(ImageTransform(32), Tokenizer(32), **kwargs)


def test_decoder_reads_long_caption_from_second_key_or_json():
    raw = _raw_sample(json=b'{"long_caption": "One. Two. Three.", "url": "https://a.example/x"}')
    sample = _decoder(sub_captions=3)(raw)
    assert sorted(sample["sub_captions"]) == ["One.", "Three.", "Two."]
    raw["long.txt"] = b"Alpha. Beta."
    sample = _decoder(sub_captions=2, long_caption_key="long.txt")(raw)
    assert sorted(sample["sub_captions"]) == ["Alpha.", "Beta."]
    batch = _decoder(sub_captions=2, extra_views=2).collate([
        _decoder(sub_captions=2, extra_views=2)(raw) for _ in range(3)])
    assert batch["sub_text"].shape == (3, 2, 32) and batch["views"].shape == (3, 2, 3, 32, 32)
    assert not torch.equal(batch["views"][0, 0], batch["views"][0, 1])  # random strong crops


def _raw_sample(json: bytes) -> dict:
    import io

    from PIL import Image
    encoded = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(encoded, format="JPEG")
    return {"__key__": "k", "jpg": encoded.getvalue(), "txt": b"a red square", "json": json}


def test_metadata_prefix_follows_the_shared_global_step():
    step = GlobalStep()
    decoder = _decoder(metadata_until_step=10, global_step=step)
    raw = _raw_sample(b'{"url": "https://shapes-2.example/images/1.jpg"}')
    assert url_domain("https://shapes-2.example/images/1.jpg") == "shapes-2.example"
    assert decoder(raw)["caption"] == "shapes-2.example: a red square"
    step.set(10)
    assert decoder(raw)["caption"] == "a red square"
    assert decoder(_raw_sample(b"{}"))["caption"] == "a red square"  # no metadata: plain


class _Captions(torch.utils.data.IterableDataset):
    def __init__(self, decoder, raw):
        self.decoder, self.raw = decoder, raw

    def __iter__(self):
        for _ in range(200):
            yield self.decoder(self.raw)["caption"]


def test_global_step_reaches_persistent_workers():
    step = GlobalStep()
    decoder = _decoder(metadata_until_step=5, global_step=step)
    raw = _raw_sample(b'{"url": "https://d.example/1.jpg"}')
    loader = DataLoader(_Captions(decoder, raw), batch_size=None, num_workers=1,
                        persistent_workers=True, prefetch_factor=1)
    iterator = iter(loader)
    assert next(iterator).startswith("d.example: ")
    step.set(5)
    captions = [next(iterator) for _ in range(5)]
    assert captions[-1] == "a red square"  # after the few already prefetched


def test_datamodule_batches_carry_sub_captions_views_and_metadata(long_caption_shards):
    dm = ContrastiveDataModule(train_shards=str(long_caption_shards), batch_size=4, num_workers=0,
                               image_size=32, context_length=32, sub_captions=3, extra_views=2,
                               metadata_fraction=0.5, text_augment=TextAugment(random_swap=0.0))

    class _Trainer:
        max_steps, current_epoch, global_rank, world_size = 10, 0, 0, 1
        training, global_step = True, 0

    dm.trainer = _Trainer()
    batch = dm.on_before_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["sub_text"].shape == (4, 3, 32) and batch["views"].shape == (4, 2, 3, 32, 32)
    assert all(c.startswith("shapes-") and ".example: " in c for c in batch["caption"])
    assert dm.train_decoder.metadata_until_step == 5
    # long captions are whole sentences describing the scene
    assert all(len(split_sentences(s["long_caption"])) >= 3 for s in batch["json"])
