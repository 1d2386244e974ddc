"""Zero-shot classification: class names x prompt templates -> averaged text embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from mmpretrain.eval.distributed import all_reduce_sum


@torch.no_grad()
def build_zeroshot_classifier(
    encode_text: Callable[[torch.Tensor], torch.Tensor],
    prompts_CTL: torch.Tensor,
    chunk_size: int = 256,
) -> torch.Tensor:
    """Return classifier weights [D, C]: per class, the mean of the L2-normalized embeddings of
    its T prompts, re-normalized (CLIP's prompt ensembling)."""
    num_classes, num_templates, length = prompts_CTL.shape
    tokens_NL = prompts_CTL.reshape(num_classes * num_templates, length)
    embeddings = [
        F.normalize(encode_text(tokens_NL[i : i + chunk_size]).float(), dim=-1)
        for i in range(0, tokens_NL.shape[0], chunk_size)
    ]
    emb_CTD = torch.cat(embeddings).reshape(num_classes, num_templates, -1)
    return F.normalize(emb_CTD.mean(dim=1), dim=-1).T.contiguous()


@torch.no_grad()
def zeroshot_accuracy(
    image_features_ND: torch.Tensor,
    labels_N: torch.Tensor,
    classifier_DC: torch.Tensor,
    topk: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Top-k accuracy of normalized image features against the classifier, summed over ranks.

    Samples with label < 0 (no label) are ignored. Returns `zeroshot_top{k}` and
    `zeroshot_count` (number of labelled samples evaluated, all ranks)."""
    valid = labels_N >= 0
    feats = F.normalize(image_features_ND[valid].float(), dim=-1)
    labels = labels_N[valid]
    num_classes = classifier_DC.shape[1]
    logits_NC = feats @ classifier_DC.to(feats.device)
    max_k = min(max(topk), num_classes)
    pred_NK = logits_NC.topk(max_k, dim=-1).indices
    hits_NK = pred_NK == labels[:, None]
    counts = [hits_NK[:, : min(k, num_classes)].any(dim=-1).sum() for k in topk]
    totals = all_reduce_sum(torch.stack([*counts, torch.tensor(labels.numel(), device=feats.device)]).float())
    n = max(totals[-1].item(), 1.0)
    metrics = {f"zeroshot_top{k}": totals[i].item() / n for i, k in enumerate(topk)}
    metrics["zeroshot_count"] = totals[-1].item()
    return metrics
