"""Token rolling (All-in-One) on a hand-checked tensor, and its place in the video tower."""

import torch

from mmpretrain.models.video import MeanPoolVideoEncoder, TokenRollingVideoEncoder, roll_tokens

TOWER = dict(image_size=16, patch_size=4, width=32, layers=2, heads=4, output_dim=16)


def test_roll_tokens_hand_checked():
    # B=1, T=3, L=17 (CLS + 16 patches): fold = 17 // 8 = 2, C=1; value = 100 * t + token
    x = (100 * torch.arange(3)[:, None] + torch.arange(17)[None, :]).float().view(1, 3, 17, 1)
    y = roll_tokens(x)[0, :, :, 0]
    # CLS and the middle tokens keep their own frame
    assert y[:, 0].tolist() == [0, 100, 200]
    assert y[:, 3:15].tolist() == x[0, :, 3:15, 0].tolist()
    # tokens 1, 2 come from the previous frame (circular): frame 0 gets frame 2's
    assert y[:, 1].tolist() == [201, 1, 101]
    assert y[:, 2].tolist() == [202, 2, 102]
    # the last two tokens (15, 16) come from the next frame: frame 2 gets frame 0's
    assert y[:, 15].tolist() == [115, 215, 15]
    assert y[:, 16].tolist() == [116, 216, 16]


def test_roll_tokens_without_enough_tokens_is_identity():
    x = torch.randn(2, 4, 7, 3)  # 7 // 8 == 0
    assert torch.equal(roll_tokens(x), x)


def test_single_frame_token_rolling_equals_the_image_tower():
    torch.manual_seed(0)
    rolling = TokenRollingVideoEncoder(**TOWER).eval()
    mean_pool = MeanPoolVideoEncoder(**TOWER).eval()
    mean_pool.load_state_dict(rolling.state_dict())
    video = torch.randn(2, 1, 3, 16, 16)
    # a circular roll over one frame is the identity, so both towers agree
    torch.testing.assert_close(rolling(video), mean_pool(video))


def test_token_rolling_sees_frame_order_and_mean_pooling_does_not():
    torch.manual_seed(0)
    rolling = TokenRollingVideoEncoder(**TOWER).eval()
    mean_pool = MeanPoolVideoEncoder(**TOWER).eval()
    mean_pool.load_state_dict(rolling.state_dict())
    video = torch.randn(2, 4, 3, 16, 16)
    shuffled = video[:, [2, 0, 3, 1]]
    torch.testing.assert_close(mean_pool(video), mean_pool(shuffled))
    assert not torch.allclose(rolling(video), rolling(shuffled), atol=1e-4)


def test_gradient_checkpointing_gives_the_same_features_and_gradients():
    torch.manual_seed(0)
    plain = TokenRollingVideoEncoder(**TOWER)
    checkpointed = TokenRollingVideoEncoder(**TOWER, grad_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    video = torch.randn(2, 3, 3, 16, 16)
    out_plain, out_checkpointed = plain(video), checkpointed(video)
    torch.testing.assert_close(out_plain, out_checkpointed)
    out_plain.sum().backward()
    out_checkpointed.sum().backward()
    torch.testing.assert_close(plain.conv1.weight.grad, checkpointed.conv1.weight.grad)


def test_blocks_run_through_their_forward_with_the_sub_layer_reference_output():
    """Rolling goes through each block's forward (so FSDP's all-gather hook runs) and gives
    exactly the hand-composed ln_1 -> roll -> attn, ln_2 -> mlp residual pass."""
    torch.manual_seed(0)
    tower = TokenRollingVideoEncoder(**TOWER).eval()
    video = torch.randn(2, 3, 3, 16, 16)
    calls = []
    handles = [b.register_forward_pre_hook(lambda m, a, k: calls.append(m), with_kwargs=True)
               for b in tower.transformer.resblocks]
    out = tower(video)
    for handle in handles:
        handle.remove()
    assert calls == list(tower.transformer.resblocks)
    x = tower.embed_tokens(video.flatten(0, 1))
    N, L, W = x.shape
    for block in tower.transformer.resblocks:
        x = x + block.attn(roll_tokens(block.ln_1(x).view(N // 3, 3, L, W)).reshape(N, L, W))
        x = x + block.mlp(block.ln_2(x))
    reference = torch.nn.functional.normalize(tower.pool(x).view(2, 3, -1), dim=-1).mean(1)
    torch.testing.assert_close(out, reference)
