"""Attention written by hand must agree with PyTorch's fused kernel and with torch.nn.MultiheadAttention."""

import math

import pytest
import torch
import torch.nn.functional as F

from minibert4rec.attention import (
    MultiHeadAttention,
    causal_mask,
    copy_to_torch_mha,
    padding_mask,
    scaled_dot_product_attention,
)

B, N, D, H = 4, 7, 16, 4


def left_padded_items(seed: int = 0) -> torch.Tensor:
    """(B, N) item ids, random left padding per row; row 0 unpadded, row 1 keeps a single item."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, 20, (B, N), generator=g)
    n_pad = torch.randint(0, N - 1, (B,), generator=g)
    n_pad[0], n_pad[1] = 0, N - 1
    for row, p in enumerate(n_pad.tolist()):
        items[row, :p] = 0
    return items


def make_mask(padded: bool, causal: bool) -> torch.Tensor | None:
    mask = padding_mask(left_padded_items()) if padded else None
    if causal:
        mask = causal_mask(N) if mask is None else mask & causal_mask(N)
    return mask


def make_mha(seed: int = 0) -> MultiHeadAttention:
    torch.manual_seed(seed)
    return MultiHeadAttention(D, H).eval()


def rows_with_a_key(mask: torch.Tensor | None) -> torch.Tensor:
    """(B, N) bool: query rows that may attend to at least one key (PyTorch's MHA gives NaN for the others)."""
    if mask is None:
        return torch.ones(B, N, dtype=torch.bool)
    return mask.expand(B, 1, N, N).any(-1)[:, 0]


def test_masks_shapes_and_values():
    items = torch.tensor([[0, 0, 5, 6], [1, 2, 3, 4]])
    assert padding_mask(items).shape == (2, 1, 1, 4)
    assert padding_mask(items)[0, 0, 0].tolist() == [False, False, True, True]
    c = causal_mask(3)
    assert c.shape == (1, 1, 3, 3)
    assert c[0, 0].tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_hand_computed_two_tokens():
    # d = 1, q = k = v = [[1], [2]]: scores = q k^T / sqrt(1) = [[1, 2], [2, 4]]
    x = torch.tensor([1.0, 2.0]).view(1, 1, 2, 1)
    out, probs = scaled_dot_product_attention(x, x, x)
    e = math.e
    p0 = [1 / (1 + e), e / (1 + e)]          # softmax([1, 2])
    p1 = [1 / (1 + e**2), e**2 / (1 + e**2)]  # softmax([2, 4])
    assert torch.allclose(probs[0, 0], torch.tensor([p0, p1]), atol=1e-6)
    expected_out = torch.tensor([[p0[0] + 2 * p0[1]], [p1[0] + 2 * p1[1]]])
    assert torch.allclose(out[0, 0], expected_out, atol=1e-6)
    # causal: token 0 sees only itself (prob 1, out = v_0); token 1 unchanged
    out, probs = scaled_dot_product_attention(x, x, x, attn_mask=causal_mask(2))
    assert torch.allclose(probs[0, 0], torch.tensor([[1.0, 0.0], p1]), atol=1e-6)
    assert out[0, 0, 0, 0].item() == pytest.approx(1.0)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_probabilities_are_masked_distributions(padded, causal):
    mask = make_mask(padded, causal)
    mha = make_mha()
    _, probs = mha(torch.randn(B, N, D), attn_mask=mask, return_probs=True)
    assert probs.shape == (B, H, N, N)
    live = rows_with_a_key(mask)[:, None, :].expand(B, H, N)
    sums = probs.sum(-1)
    assert torch.allclose(sums[live], torch.ones_like(sums[live]), atol=1e-6)
    assert (sums[~live] == 0).all()  # a query with no visible key attends to nothing
    if mask is not None:
        assert (probs[~mask.expand(B, H, N, N)] == 0).all()
    if causal:
        assert (probs.triu(diagonal=1) == 0).all()


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_matches_pytorch_fused_kernel_and_torch_mha(padded, causal):
    mask = make_mask(padded, causal)
    mha = make_mha()
    x = torch.randn(B, N, D, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        slow, probs = mha(x, attn_mask=mask, return_probs=True)
        fast, none = mha(x, attn_mask=mask, fast=True)
        assert none is None
        assert (slow - fast).abs().max() < 1e-5

        # the function itself against F.scaled_dot_product_attention on raw q, k, v
        q, k, v = torch.randn(3, B, H, N, D // H, generator=torch.Generator().manual_seed(2))
        ours, _ = scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        live = rows_with_a_key(mask)[:, None, :].expand(B, H, N)
        assert (ours[live] - ref[live]).abs().max() < 1e-5

        theirs = copy_to_torch_mha(mha)
        kpm = None if not padded else ~padding_mask(left_padded_items())[:, 0, 0]  # torch: True = ignore
        am = None if not causal else ~causal_mask(N)[0, 0]
        ref, ref_probs = theirs(x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=True,
                                average_attn_weights=False)
    live = rows_with_a_key(mask)  # torch MHA returns NaN for rows that see no key; compare the others
    assert (slow[live] - ref[live]).abs().max() < 1e-5
    live_h = live[:, None, :].expand(B, H, N)
    assert (probs[live_h] - ref_probs[live_h]).abs().max() < 1e-5


def test_fully_padded_row_gives_no_nan_and_zero_output():
    mha = make_mha()
    items = torch.tensor([[0, 0, 0, 0], [0, 0, 3, 4]])
    mask = padding_mask(items) & causal_mask(4)  # row 0 sees nothing; row 1's first two queries see nothing
    x = torch.randn(2, 4, D, requires_grad=True)
    for fast in (False, True):
        out, _ = mha(x, attn_mask=mask, fast=fast)
        assert not out.isnan().any()
        out.sum().backward()
        assert not x.grad.isnan().any()
        x.grad = None
    _, probs = mha(x, attn_mask=mask, return_probs=True)
    assert (probs[0] == 0).all() and not probs.isnan().any()
    # an attention output of 0 means out_proj's bias only
    out, _ = mha(x, attn_mask=mask)
    assert torch.allclose(out[0], mha.out_proj.bias.expand(4, D))


def test_gradients_flow_to_every_parameter_and_input():
    mha = make_mha().train()
    x = torch.randn(B, N, D, requires_grad=True)
    out, _ = mha(x, attn_mask=make_mask(True, False))
    out.pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in mha.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_dropout_acts_on_output_only_and_is_seeded():
    q, k, v = torch.randn(3, 2, 2, 5, 4)
    out0, p0 = scaled_dot_product_attention(q, k, v)
    out1, p1 = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True,
                                            generator=torch.Generator().manual_seed(0))
    out2, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True,
                                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(p0, p1)  # returned probs are pre-dropout
    assert not torch.allclose(out0, out1) and torch.equal(out1, out2)
    out3, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    assert torch.equal(out0, out3)  # eval mode: no dropout


def test_bf16_autocast_runs_without_nan():
    mha = make_mha()
    x = torch.randn(B, N, D)
    mask = make_mask(True, True)
    exact, _ = mha(x, attn_mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        slow, probs = mha(x, attn_mask=mask, return_probs=True)
        fast, _ = mha(x, attn_mask=mask, fast=True)
    assert probs.dtype == torch.float32  # softmax done in float32
    for out in (slow, fast):
        assert not out.isnan().any()
        assert (out.float() - exact).abs().max() < 0.1


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"hidden_size=10.*n_heads=3"):
        MultiHeadAttention(10, 3)
    mha = make_mha()
    with pytest.raises(ValueError, match=r"\(b, n, 16\)"):
        mha(torch.randn(N, D))
    with pytest.raises(ValueError, match="16"):
        mha(torch.randn(B, N, D + 1))
    with pytest.raises(ValueError, match="4-D"):
        scaled_dot_product_attention(torch.randn(N, D), torch.randn(N, D), torch.randn(N, D))
    with pytest.raises(ValueError, match="bool"):
        mha(torch.randn(B, N, D), attn_mask=torch.zeros(B, 1, 1, N))
    with pytest.raises(ValueError, match="broadcast"):
        mha(torch.randn(B, N, D), attn_mask=torch.ones(B, 1, 1, N + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="broadcast"):
        mha(torch.randn(B, N, D), attn_mask=torch.ones(B, 1, 1, N + 1, dtype=torch.bool), fast=True)
    with pytest.raises(ValueError, match="padding_mask"):
        padding_mask(torch.zeros(N, dtype=torch.long))
