"""Matplotlib figures of images: plain grids and retrieval results (one row per query)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from mmpretrain.data.transforms import CLIP_MEAN, CLIP_STD
from mmpretrain.workflow.predict import RetrievalResult


def to_displayable(image: Image.Image | torch.Tensor) -> np.ndarray:
    """PIL image, or a CLIP-normalized tensor [3, H, W] (undone here), as an HxWx3 array in [0, 1]."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image tensor [3, H, W], got {tuple(image.shape)}")
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (image.detach().cpu().float() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def _wrap(title: str, width: int) -> str:
    return "\n".join(textwrap.wrap(title, width)) if title else ""


def image_grid(images: Sequence[Image.Image | torch.Tensor], titles: Sequence[str] | None = None,
               ncols: int = 4, tile_inches: float = 2.2, title_width: int = 24) -> Figure:
    """Images in rows of `ncols`, each with an optional (wrapped) title."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    figure = Figure(figsize=(tile_inches * ncols, (tile_inches + 0.5) * nrows))
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(to_displayable(images[index]))
            if titles is not None:
                axis.set_title(_wrap(titles[index], title_width), fontsize=8)
    figure.tight_layout()
    return figure


def retrieval_grid(queries: Sequence[str], gallery: Sequence[Image.Image | torch.Tensor],
                   result: RetrievalResult, captions: Sequence[str] | None = None,
                   tile_inches: float = 2.0) -> Figure:
    """Text -> image retrieval: a row per query with its top images, titled by similarity (and
    the image's own caption when given, to judge the match)."""
    k = result.indices_QK.shape[1]
    figure = Figure(figsize=(tile_inches * k, (tile_inches + 0.7) * len(queries)))
    axes = figure.subplots(len(queries), k, squeeze=False)
    for row, query in enumerate(queries):
        for col in range(k):
            axis = axes[row][col]
            axis.axis("off")
            index = int(result.indices_QK[row, col])
            axis.imshow(to_displayable(gallery[index]))
            title = f"{float(result.scores_QK[row, col]):.2f}"
            if captions is not None:
                title += "\n" + _wrap(captions[index], 22)
            axis.set_title(title, fontsize=7)
        axes[row][0].text(-0.08, 0.5, _wrap(query, 18), transform=axes[row][0].transAxes,
                          ha="right", va="center", fontsize=9)
    figure.tight_layout()
    return figure
