"""Caption quality on held-out data: teacher-forced token cross entropy / perplexity over all
ranks, and greedy captions of a few images."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from mmpretrain.eval.distributed import all_reduce_sum
from mmpretrain.losses.captioning import caption_token_nll


class CaptionEvaluator:
    """Accumulates one evaluation epoch of a captioning model (:class:`~mmpretrain.models.CoCa`).

    :meth:`update` adds a batch's next-token NLL over non-padding labels and keeps the first
    ``num_samples`` images (with their reference captions) seen on this rank; :meth:`metrics`
    gives ``caption_ce`` (nats per token, summed over all ranks before dividing) and
    ``caption_perplexity`` = exp(caption_ce); :meth:`captions` greedily captions the kept images.
    """

    def __init__(self, pad_id: int = 0, num_samples: int = 4, max_len: int = 30):
        if num_samples < 0 or max_len < 2:
            raise ValueError(f"CaptionEvaluator: num_samples must be >= 0 and max_len >= 2, got "
                             f"{num_samples} and {max_len}")
        self.pad_id = pad_id
        self.num_samples = num_samples
        self.max_len = max_len
        self.reset()

    def reset(self) -> None:
        self._nll_sum = torch.zeros((), dtype=torch.float64)
        self._tokens = torch.zeros((), dtype=torch.long)
        self._images: list[Tensor] = []
        self._references: list[Tensor] = []

    def update(self, caption_logits: Tensor, caption_labels: Tensor, images: Tensor,
               texts: Tensor) -> None:
        nll_sum, count = caption_token_nll(caption_logits.detach(), caption_labels, self.pad_id)
        self._nll_sum = self._nll_sum.to(nll_sum.device) + nll_sum.double()
        self._tokens = self._tokens.to(count.device) + count
        kept = sum(image.shape[0] for image in self._images)
        take = min(self.num_samples - kept, images.shape[0])
        if take > 0:
            self._images.append(images[:take].detach())
            self._references.append(texts[:take].detach())

    def metrics(self) -> dict[str, float]:
        """Token cross entropy and perplexity over every rank's updates (a collective call)."""
        totals = all_reduce_sum(torch.stack([self._nll_sum, self._tokens.double()]))
        nll_sum, tokens = float(totals[0]), float(totals[1])
        if tokens == 0:
            return {}
        ce = nll_sum / tokens
        return {"caption_ce": ce, "caption_perplexity": math.exp(ce)}

    @torch.no_grad()
    def captions(self, model: nn.Module, tokenizer: Any) -> list[dict[str, str]]:
        """``[{"reference": ..., "generated": ...}]`` for the kept images (greedy decoding).

        ``tokenizer``: has ``decode(tokens_L) -> str``, ``sot_token_id``, ``eot_token_id``
        (``mmpretrain.data.tokenizer.Tokenizer``)."""
        if not self._images:
            return []
        images = torch.cat(self._images)
        generated = model.generate(images, max_len=self.max_len,
                                   sot_token_id=tokenizer.sot_token_id,
                                   eot_token_id=tokenizer.eot_token_id, pad_token_id=self.pad_id)
        decode = tokenizer.decode
        return [{"reference": decode(reference), "generated": decode(tokens)}
                for reference, tokens in zip(torch.cat(self._references), generated)]
