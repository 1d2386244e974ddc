"""Zero-shot classification and retrieval over small in-memory lists (notebooks, demos).

The classifier is the one validation uses (`eval.build_zeroshot_classifier`: per class the
mean of its prompts' normalized embeddings), so a notebook's predictions agree with the
`zeroshot_top1` a run reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from mmpretrain.eval import build_zeroshot_classifier
from mmpretrain.workflow.inference import InferenceModel


@dataclass
class ZeroShotResult:
    classnames: list[str]
    probs_NC: torch.Tensor  # softmax over classes at the model's temperature

    def top(self, k: int = 1) -> list[list[tuple[str, float]]]:
        """Per image, the k most probable (classname, probability) pairs."""
        values, indices = self.probs_NC.topk(min(k, len(self.classnames)), dim=-1)
        return [[(self.classnames[i], float(p)) for p, i in zip(row_p, row_i)]
                for row_p, row_i in zip(values.tolist(), indices.tolist())]

    def predicted(self) -> list[str]:
        return [self.classnames[i] for i in self.probs_NC.argmax(dim=-1).tolist()]

    def accuracy(self, labels: Sequence[int], k: int = 1) -> float:
        """Top-k accuracy against class indices; labels < 0 (unlabelled) are left out."""
        labels_N = torch.as_tensor(list(labels))
        valid = labels_N >= 0
        if not valid.any():
            raise ValueError("accuracy needs at least one labelled image (label >= 0)")
        top_NK = self.probs_NC[valid].topk(min(k, len(self.classnames)), dim=-1).indices
        return float((top_NK == labels_N[valid, None]).any(dim=-1).float().mean())


def zeroshot_classifier(inference: InferenceModel, classnames: Sequence[str],
                        templates: Sequence[str] = ("a photo of a {}.",)) -> torch.Tensor:
    """Classifier weights [D, C] from every classname x template prompt."""
    if not classnames or not templates or not all("{}" in t for t in templates):
        raise ValueError("need at least one classname and templates that contain '{}'")
    prompts = [template.format(name) for name in classnames for template in templates]
    tokens_CTL = inference.tokenizer(prompts).view(len(classnames), len(templates), -1)
    return build_zeroshot_classifier(
        lambda tokens: inference.model.encode_text(tokens.to(inference.device)), tokens_CTL).cpu()


def zeroshot_classify(inference: InferenceModel, images: Sequence[Image.Image], classnames: Sequence[str],
                      templates: Sequence[str] = ("a photo of a {}.",)) -> ZeroShotResult:
    classifier_DC = zeroshot_classifier(inference, classnames, templates)
    logits_NC = inference.logit_scale() * inference.encode_images(images) @ classifier_DC
    return ZeroShotResult(list(classnames), logits_NC.softmax(dim=-1))


@dataclass
class RetrievalResult:
    indices_QK: torch.Tensor  # gallery index of each query's k best matches, best first
    scores_QK: torch.Tensor  # their cosine similarities


def top_matches(queries_QD: torch.Tensor, gallery_ND: torch.Tensor, k: int) -> RetrievalResult:
    """k nearest gallery items per query by cosine similarity (inputs L2-normalized)."""
    scores_QK, indices_QK = (queries_QD @ gallery_ND.T).topk(min(k, gallery_ND.shape[0]), dim=-1)
    return RetrievalResult(indices_QK, scores_QK)


def retrieve_images(inference: InferenceModel, queries: Sequence[str], images: Sequence[Image.Image],
                    k: int = 5) -> RetrievalResult:
    """Text -> image: the k images that best match each query string."""
    return top_matches(inference.encode_texts(queries), inference.encode_images(images), k)


def retrieve_texts(inference: InferenceModel, images: Sequence[Image.Image], texts: Sequence[str],
                   k: int = 5) -> RetrievalResult:
    """Image -> text: the k texts that best match each image."""
    return top_matches(inference.encode_images(images), inference.encode_texts(texts), k)
