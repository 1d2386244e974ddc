"""Image preprocessing equivalent to open_clip's `image_transform` (no timm augmentation).

train: RandomResizedCrop(image_size, crop_scale, bicubic) -> tensor -> CLIP normalisation.
eval:  Resize(image_size, bicubic, shorter side) -> CenterCrop -> tensor -> normalisation.

Decoding is part of the transform because it knows how large a source it needs: a JPEG much
larger than that is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (`Image.draft`), which is
several times faster and loses nothing the following resize would have kept. In training the
crop box is drawn from the header's size first, so the scale fits the actual crop rather than
the smallest possible one.

Hot-path choices (measured in benchmarks/loader.py; per-sample torch op overhead dominates at
small resolutions): the random crop box is drawn with Python's `random` (torchvision's
`get_params` issues ~10 tiny torch ops), crop and resize are direct PIL calls, and the tensor is
built from the pixel buffer with the same arithmetic as ToTensor + Normalize, so its values
are bit-identical to torchvision's for the same crop.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
import warnings
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from mmpretrain.data.wds.skips import SkipSample

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# PIL's own default decompression-bomb threshold (1024 * 1024 * 1024 // 4 // 3)
MAX_IMAGE_PIXELS = 89_478_485
# RandomResizedCrop's default aspect ratio range; its lower end bounds a crop's shorter side
_MIN_CROP_RATIO = 3 / 4
_CROP_RATIO = (3 / 4, 4 / 3)
# open_clip's preprocess_cfg values (PreprocessCfg / pretrained tags)
Interpolation = Literal["bicubic", "bilinear"]
ResizeMode = Literal["shortest", "longest", "squash"]
_PIL_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_TV_INTERPOLATION = {"bicubic": T.InterpolationMode.BICUBIC,
                     "bilinear": T.InterpolationMode.BILINEAR}


def random_crop_box(width: int, height: int, scale: tuple[float, float],
                    rng: random.Random | None = None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a RandomResizedCrop box: torchvision's `get_params`
    sampling (10 tries of area x log-uniform aspect, then a centre-crop fallback) drawn from
    Python's `random`, which DataLoader seeds per worker like torch's generator."""
    rng = rng or random
    area = width * height
    log_low, log_high = math.log(_CROP_RATIO[0]), math.log(_CROP_RATIO[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_low, log_high))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = rng.randint(0, height - h)
            left = rng.randint(0, width - w)
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < _CROP_RATIO[0]:
        w, h = width, int(round(width / _CROP_RATIO[0]))
    elif in_ratio > _CROP_RATIO[1]:
        w, h = int(round(height * _CROP_RATIO[1])), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


class _ToNormalizedTensor:
    """PIL RGB -> float [3, H, W], the same operations as ToTensor() then Normalize()."""

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        self.mean_C11 = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std_C11 = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels_HWC = torch.from_numpy(np.array(image, dtype=np.uint8))
        image_CHW = pixels_HWC.permute(2, 0, 1).contiguous().float().div_(255)
        return image_CHW.sub_(self.mean_C11).div_(self.std_C11)


@contextlib.contextmanager
def _decode_errors_as_skips():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except SkipSample:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exn:
        raise SkipSample("too_many_pixels", str(exn)) from exn
    except Exception as exn:  # noqa: BLE001 - PIL raises many types on corrupt input
        raise SkipSample("decode_error", repr(exn)) from exn


def open_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """A lazily decoded image (only the header is read yet); SkipSample on bad input."""
    with _decode_errors_as_skips():
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise SkipSample("too_many_pixels", f"{image.width}x{image.height}")
        return image


def load_rgb(image: Image.Image, min_scale: float = 1.0) -> Image.Image:
    """Decode an `open_image` result to RGB. A JPEG may be decoded at any 1/2, 1/4, 1/8 scale
    not below `min_scale` (libjpeg skips the work for the dropped resolution)."""
    with _decode_errors_as_skips():
        if image.format == "JPEG" and min_scale <= 0.5:
            image.draft("RGB", (math.ceil(image.width * min_scale), math.ceil(image.height * min_scale)))
        image.load()
        # convert() to the mode an image already has would copy every pixel once more
        return image if image.mode == "RGB" else image.convert("RGB")


def decode_image(data: bytes, min_side: int = 0, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """RGB image from encoded bytes. JPEGs whose shorter side is at least twice `min_side` are
    decoded at reduced scale (shorter side still >= `min_side`).

    Raises SkipSample("too_many_pixels") above `max_pixels`, SkipSample("decode_error") when
    the bytes are not a readable image.
    """
    image = open_image(data, max_pixels)
    return load_rgb(image, min_side / min(image.size) if min_side > 0 else 1.0)


def _eval_geometry(image_size: int, interpolation: Interpolation, resize_mode: ResizeMode,
                   fill_color: int):
    """open_clip's eval resize for each ``resize_mode``."""
    mode = _TV_INTERPOLATION[interpolation]
    if resize_mode == "shortest":
        return T.Compose([T.Resize(image_size, interpolation=mode), T.CenterCrop(image_size)])
    if resize_mode == "squash":
        return T.Resize((image_size, image_size), interpolation=mode)
    from open_clip.transform import CenterCropOrPad, ResizeKeepRatio

    return T.Compose([ResizeKeepRatio(image_size, longest=1, interpolation=mode),
                      CenterCropOrPad(image_size, fill=fill_color)])


class ImageTransform:
    """Bytes or PIL image -> normalised float tensor [3, image_size, image_size].

    ``interpolation`` / ``resize_mode`` / ``fill_color`` / ``mean`` / ``std``: open_clip's
    preprocess_cfg (``mmpretrain.data.model_preprocess`` reads them for a model or tag); the
    resize mode applies to evaluation, training always takes a random resized crop.
    """

    def __init__(
        self,
        image_size: int = 224,
        train: bool = True,
        crop_scale: tuple[float, float] = (0.9, 1.0),
        mean: tuple[float, float, float] = CLIP_MEAN,
        std: tuple[float, float, float] = CLIP_STD,
        max_pixels: int = MAX_IMAGE_PIXELS,
        interpolation: Interpolation = "bicubic",
        resize_mode: ResizeMode = "shortest",
        fill_color: int = 0,
    ) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if interpolation not in _PIL_RESAMPLE or resize_mode not in ("shortest", "longest",
                                                                     "squash"):
            raise ValueError(f"interpolation must be one of {sorted(_PIL_RESAMPLE)} and "
                             "resize_mode one of shortest/longest/squash, got "
                             f"{interpolation!r}, {resize_mode!r}")
        self.interpolation, self.resize_mode = interpolation, resize_mode
        low, high = crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.image_size, self.train, self.crop_scale = image_size, train, (low, high)
        self.max_pixels = max_pixels
        if train:
            # a crop's shorter side is at least sqrt(3/4 * low) of the source's shorter side
            self.min_source_side = math.ceil(image_size / math.sqrt(_MIN_CROP_RATIO * low))
            self._geometry = self._random_resized_crop
        else:
            self._geometry = _eval_geometry(image_size, interpolation, resize_mode, fill_color)
            self.min_source_side = image_size
        self._to_tensor = _ToNormalizedTensor(mean, std)

    def load(self, data: bytes) -> torch.Tensor:
        if not self.train:
            return self(decode_image(data, self.min_source_side, self.max_pixels))
        # Draw the crop before decoding: the JPEG is then decoded at the smallest libjpeg
        # scale that still leaves the crop image_size pixels on its shorter side.
        image = open_image(data, self.max_pixels)
        width, height = image.size
        left, top, right, bottom = random_crop_box(width, height, self.crop_scale)
        image = load_rgb(image, self.image_size / min(right - left, bottom - top))
        fx, fy = image.width / width, image.height / height
        box = (round(left * fx), round(top * fy), round(right * fx), round(bottom * fy))
        return self._to_tensor(self._crop_resize(image, box))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self._to_tensor(self._geometry(image))

    def _random_resized_crop(self, image: Image.Image) -> Image.Image:
        return self._crop_resize(image, random_crop_box(image.width, image.height, self.crop_scale))

    def _crop_resize(self, image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
        # crop first: resize(box=...) would let the filter read pixels outside the crop
        return image.crop(box).resize((self.image_size, self.image_size),
                                      _PIL_RESAMPLE[self.interpolation])

    def __repr__(self) -> str:
        kind = f"train, crop_scale={self.crop_scale}" if self.train else "eval"
        return f"ImageTransform({self.image_size}, {kind})"


def train_transform(image_size: int = 224, crop_scale: tuple[float, float] = (0.9, 1.0)) -> ImageTransform:
    return ImageTransform(image_size, train=True, crop_scale=crop_scale)


def eval_transform(image_size: int = 224) -> ImageTransform:
    return ImageTransform(image_size, train=False)
