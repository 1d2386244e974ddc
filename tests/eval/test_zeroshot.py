import torch
import torch.nn.functional as F

from mmpretrain.eval.zeroshot import build_zeroshot_classifier, zeroshot_accuracy


def test_classifier_averages_normalized_template_embeddings():
    # "tokens" are indices into a fixed embedding table, so the expected result is hand-computable
    table = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, -2.0]])
    prompts_CTL = torch.tensor([[[0], [1]], [[2], [3]]])  # 2 classes x 2 templates x 1 token
    classifier = build_zeroshot_classifier(lambda t: table[t[:, 0]], prompts_CTL, chunk_size=3)
    normed = F.normalize(table, dim=-1)
    expected = torch.stack([F.normalize(normed[0] + normed[1], dim=0),
                            F.normalize(normed[2] + normed[3], dim=0)], dim=1)
    assert torch.allclose(classifier, expected, atol=1e-6)


def test_topk_accuracy_and_unlabelled_samples_ignored():
    classifier_DC = torch.eye(3)
    feats = torch.tensor([[1.0, 0.2, 0.1], [0.1, 1.0, 0.5], [0.9, 0.1, 0.8], [0.0, 0.0, 1.0]])
    labels = torch.tensor([0, 2, 2, -1])
    got = zeroshot_accuracy(feats, labels, classifier_DC, topk=(1, 2))
    assert got["zeroshot_top1"] == 1 / 3  # only sample 0 right at top-1
    assert got["zeroshot_top2"] == 1.0
    assert got["zeroshot_count"] == 3
