from __future__ import annotations

import io
import random

import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transform import image_transform
from PIL import Image
from torchvision.transforms import RandomResizedCrop

from mmpretrain.data import transforms
from mmpretrain.data.transforms import CLIP_MEAN, CLIP_STD, ImageTransform, decode_image, random_crop_box
from mmpretrain.data.wds.skips import SkipSample


def encoded(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def test_constants_match_open_clip():
    assert CLIP_MEAN == tuple(OPENAI_DATASET_MEAN) and CLIP_STD == tuple(OPENAI_DATASET_STD)


def test_eval_output_equals_open_clip_eval_transform():
    image = noise_image(50, 37)
    ours = ImageTransform(32, train=False)(image)
    reference = image_transform(32, is_train=False)(image)
    assert ours.shape == (3, 32, 32) and ours.dtype == torch.float32
    assert torch.equal(ours, reference)


def test_train_output_equals_open_clip_train_transform_for_the_same_crop(monkeypatch):
    """Our crop box comes from Python's `random`; given torchvision's box, output is identical."""
    image = noise_image(48, 40, seed=1)
    torch.manual_seed(7)
    top, left, h, w = RandomResizedCrop.get_params(image, [0.9, 1.0], [3 / 4, 4 / 3])
    monkeypatch.setattr(transforms, "random_crop_box", lambda *_: (left, top, left + w, top + h))
    ours = ImageTransform(24, train=True, crop_scale=(0.9, 1.0))(image)
    torch.manual_seed(7)
    reference = image_transform(24, is_train=True)(image)
    assert torch.equal(ours, reference)


def test_random_crop_box_follows_torchvision_distribution():
    rng, boxes = random.Random(0), []
    for width, height in ((64, 48), (30, 200)):  # the second forces the centre-crop fallback
        boxes = [random_crop_box(width, height, (0.5, 1.0), rng) for _ in range(2000)]
        torch.manual_seed(0)
        reference = [RandomResizedCrop.get_params(torch.zeros(1, height, width), [0.5, 1.0], [3 / 4, 4 / 3])
                     for _ in range(2000)]
        for left, top, right, bottom in boxes:
            assert 0 <= left < right <= width and 0 <= top < bottom <= height
        ours_area = sum((r - le) * (b - t) for le, t, r, b in boxes) / len(boxes)
        ref_area = sum(h * w for _, _, h, w in reference) / len(reference)
        assert abs(ours_area - ref_area) / ref_area < 0.03
        ours_left = sum(b[0] for b in boxes) / len(boxes)
        ref_left = sum(j for _, j, _, _ in reference) / len(reference)
        assert abs(ours_left - ref_left) <= 0.5 + 0.05 * width


def test_constant_image_is_normalised_with_clip_statistics():
    rgb = (200, 100, 50)
    out = ImageTransform(16, train=False).load(encoded(Image.new("RGB", (40, 30), rgb), "PNG"))
    expected = (torch.tensor(rgb) / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(out, expected.view(3, 1, 1).expand(3, 16, 16), atol=1e-5)


def test_large_jpeg_is_drafted_to_reduced_scale_but_not_below_target():
    data = encoded(noise_image(1024, 800))
    assert decode_image(data).size == (1024, 800)
    # libjpeg scales by 1/2, 1/4, 1/8: the smallest whose shorter side still reaches min_side
    drafted = decode_image(data, min_side=90)
    assert drafted.size == (128, 100) and drafted.mode == "RGB"
    assert decode_image(data, min_side=110).size == (256, 200)
    small = encoded(noise_image(100, 100))
    assert decode_image(small, min_side=60).size == (100, 100)
    train = ImageTransform(64, train=True, crop_scale=(0.5, 1.0))
    assert train.min_source_side == 105  # ceil(64 / sqrt(0.75 * 0.5))


def test_grayscale_and_rgba_become_rgb():
    for mode in ("L", "RGBA", "P"):
        image = Image.new(mode, (20, 20))
        assert decode_image(encoded(image, "PNG")).mode == "RGB"


def test_bad_bytes_and_pixel_limit_raise_skip_sample():
    with pytest.raises(SkipSample) as garbage:
        decode_image(b"\xff\xd8 not really a jpeg")
    assert garbage.value.reason == "decode_error"
    truncated = encoded(noise_image(64, 64))[:300]
    with pytest.raises(SkipSample) as cut:
        decode_image(truncated)
    assert cut.value.reason == "decode_error"
    with pytest.raises(SkipSample) as bomb:
        decode_image(encoded(noise_image(32, 32), "PNG"), max_pixels=1000)
    assert bomb.value.reason == "too_many_pixels"


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="crop_scale"):
        ImageTransform(32, crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="image_size"):
        ImageTransform(0)


def test_train_load_decodes_at_the_scale_the_drawn_crop_allows(monkeypatch):
    """512 px source, 224 px target, a crop of 480 px: decoded at 1/2 scale (the worst-case
    crop bound alone would forbid it) and still close to the full-resolution result."""
    ramp = torch.linspace(0, 255, 512).to(torch.uint8)
    pixels = torch.stack([ramp.view(1, -1).expand(512, -1), ramp.view(-1, 1).expand(-1, 512),
                          torch.full((512, 512), 90, dtype=torch.uint8)], dim=-1)
    data = encoded(Image.fromarray(pixels.numpy()))
    box = (16, 20, 496, 500)
    monkeypatch.setattr(transforms, "random_crop_box", lambda *_: box)
    decoded_sizes = []
    real_load_rgb = transforms.load_rgb

    def recording_load_rgb(image, min_scale):
        result = real_load_rgb(image, min_scale)
        decoded_sizes.append(result.size)
        return result

    monkeypatch.setattr(transforms, "load_rgb", recording_load_rgb)
    train = ImageTransform(224, train=True)
    assert train.min_source_side > 256  # the bound that ignores the drawn crop
    drafted = train.load(data)
    assert decoded_sizes == [(256, 256)]
    full = train(decode_image(data))
    assert drafted.shape == full.shape == (3, 224, 224)
    assert (drafted - full).abs().mean() < 0.05
