import torch
from torch import nn

from mmpretrain.tasks.param_groups import weight_decay_groups


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(10, 4)
        self.positional_embedding = nn.Parameter(torch.zeros(3, 4))
        self.proj = nn.Linear(4, 4)
        self.ln = nn.LayerNorm(4)
        self.logit_scale = nn.Parameter(torch.ones([]))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_groups_split_decay_and_no_decay():
    model = _Tiny()
    decay, no_decay = weight_decay_groups(model.named_parameters())
    assert "weight_decay" not in decay and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model.proj.weight)}
    expected_no_decay = {model.token_embedding.weight, model.positional_embedding, model.proj.bias,
                         model.ln.weight, model.ln.bias, model.logit_scale}
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in expected_no_decay}


def test_adamw_leaves_no_decay_params_alone():
    model = _Tiny()
    opt = torch.optim.AdamW(weight_decay_groups(model.named_parameters()), lr=0.1, weight_decay=0.5)
    before_ln = model.ln.weight.detach().clone()
    before_w = model.proj.weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.requires_grad else None
    opt.step()
    assert torch.equal(model.ln.weight, before_ln)  # zero grad, no decay -> unchanged
    assert torch.allclose(model.proj.weight, before_w * (1 - 0.1 * 0.5))
