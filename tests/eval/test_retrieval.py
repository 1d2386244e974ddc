import torch
import torch.nn.functional as F

from mmpretrain.eval.retrieval import retrieval_recall


def _reference_recall(images, texts, ks):
    sims = F.normalize(images, dim=-1) @ F.normalize(texts, dim=-1).T
    n = sims.shape[0]
    out = {}
    for name, mat in (("i2t", sims), ("t2i", sims.T)):
        ranks = torch.tensor([(mat[i] > mat[i, i]).sum().item() for i in range(n)])
        for k in ks:
            out[f"{name}_r{k}"] = (ranks < k).float().mean().item()
    return out


def test_matches_reference_and_chunking_is_invisible():
    torch.manual_seed(0)
    images = torch.randn(97, 16)
    texts = images + 1.5 * torch.randn(97, 16)
    expected = _reference_recall(images, texts, (1, 5, 10))
    for chunk in (7, 1024):
        got = retrieval_recall(images, texts, chunk_size=chunk)
        for key, value in expected.items():
            assert abs(got[key] - value) < 1e-6, key
    assert 0 < expected["i2t_r1"] < expected["i2t_r5"] < 1


def test_perfect_alignment_gives_full_recall():
    feats = torch.eye(8)
    got = retrieval_recall(feats, feats)
    assert got["i2t_r1"] == 1.0 and got["t2i_r1"] == 1.0 and got["retrieval_count"] == 8
