"""Inference helpers: a run's checkpoint reloads exactly; zero-shot and retrieval give the
answers computed by hand; image grids undo the CLIP normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mmpretrain.data.transforms import ImageTransform
from mmpretrain.workflow.image_grid import image_grid, retrieval_grid, to_displayable
from mmpretrain.workflow.inference import InferenceModel, load_run_model
from mmpretrain.workflow.predict import retrieve_images, retrieve_texts, top_matches, zeroshot_classify
from mmpretrain.workflow.shard_samples import read_samples

COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class ColorModel(nn.Module):
    """Images embed as their mean RGB; a text embeds as the RGB of the colour word it contains."""

    def encode_image(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        return images_B3HW.mean(dim=(2, 3))

    def encode_text(self, tokens_BL: torch.Tensor) -> torch.Tensor:
        return tokens_BL.float()


def color_tokenizer(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[float(c in t) + 1e-3 for c in COLORS] for t in texts])


def to_unit_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


@pytest.fixture
def color_inference() -> InferenceModel:
    return InferenceModel(ColorModel(), to_unit_tensor, color_tokenizer)


def solid(color: str) -> Image.Image:
    return Image.new("RGB", (8, 8), COLORS[color])


def test_zeroshot_picks_the_matching_class(color_inference):
    images = [solid("blue"), solid("red"), solid("green")]
    result = zeroshot_classify(color_inference, images, ["red", "green", "blue"], ["a {} thing", "{}"])
    assert result.predicted() == ["blue", "red", "green"]
    assert result.accuracy([2, 0, 0]) == pytest.approx(2 / 3)
    assert result.accuracy([2, 0, -1]) == 1.0  # unlabelled images do not count
    assert result.accuracy([1, 1, 0], k=3) == 1.0
    assert torch.allclose(result.probs_NC.sum(dim=-1), torch.ones(3))
    # the model has no temperature: CLIP's 100 -> a confident softmax over cosine similarities
    assert result.top(1)[0][0][0] == "blue" and result.top(1)[0][0][1] > 0.99
    with pytest.raises(ValueError, match="'\\{\\}'"):
        zeroshot_classify(color_inference, images, ["red"], ["no placeholder"])


def test_retrieval_ranks_by_cosine_similarity(color_inference):
    images = [solid("green"), solid("red"), solid("blue"), solid("red")]
    result = retrieve_images(color_inference, ["a red car", "blue sky"], images, k=2)
    assert sorted(result.indices_QK[0].tolist()) == [1, 3]
    assert result.indices_QK[1, 0] == 2
    texts = retrieve_texts(color_inference, [solid("green")], ["red", "green", "blue"], k=1)
    assert texts.indices_QK.tolist() == [[1]]
    queries = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    gallery = torch.nn.functional.normalize(torch.randn(20, 8), dim=-1)
    matches = top_matches(queries, gallery, k=3)
    reference = (queries @ gallery.T).argsort(dim=-1, descending=True)[:, :3]
    assert torch.equal(matches.indices_QK, reference)


def test_run_checkpoint_reloads_the_trained_weights(tiny_run, image_text_shards):
    inference = load_run_model(tiny_run)
    checkpoint = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    trained = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    loaded = inference.model.state_dict()
    assert set(loaded) == set(trained)
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)
    assert inference.model.visual.width == 32 and not inference.model.training
    samples = read_samples(str(image_text_shards["val"]), 4)
    feats = inference.encode_images([s.image for s in samples])
    assert feats.shape == (4, 32) and torch.allclose(feats.norm(dim=-1), torch.ones(4))
    # same path as the checkpoint file itself
    from_file = load_run_model(tiny_run / "checkpoints" / "last.ckpt")
    assert torch.equal(from_file.encode_texts(["a red circle"]), inference.encode_texts(["a red circle"]))


def test_missing_checkpoint_or_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory or"):
        load_run_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_run_model(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match="no saved config"):
        load_run_model(tmp_path)


def test_to_displayable_undoes_clip_normalization():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    tensor = ImageTransform(16, train=False)(image)
    shown = to_displayable(tensor)
    assert shown.shape == (16, 16, 3)
    np.testing.assert_allclose(shown, to_displayable(image), atol=0.02)  # bicubic resize to same size
    with pytest.raises(ValueError, match="\\[3, H, W\\]"):
        to_displayable(torch.zeros(1, 4, 4))


def test_grids_lay_out_images_and_titles(color_inference):
    images = [solid(c) for c in ("red", "green", "blue")] * 2
    figure = image_grid(images, [f"image {i}" for i in range(6)], ncols=4)
    visible = [ax for ax in figure.axes if ax.images]
    assert len(figure.axes) == 8 and len(visible) == 6
    assert visible[5].get_title() == "image 5"
    result = retrieve_images(color_inference, ["red", "blue"], images, k=2)
    grid = retrieval_grid(["red", "blue"], images, result, captions=[str(i) for i in range(6)])
    assert len(grid.axes) == 4
    first = grid.axes[0]
    assert np.allclose(first.images[0].get_array()[0, 0], (1.0, 0.0, 0.0))  # best match for "red" is red
    with pytest.raises(ValueError, match="titles"):
        image_grid(images, ["only one"])
