"""Notebook 03: softmax(q k^T / sqrt(d)) v, with a boolean mask (True = may attend)."""
import math

import torch
from einops import einsum


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    d = q.shape[-1]
    scores = einsum(q, k, "b h i d, b h j d -> b h i j") / math.sqrt(d)  # (b h n n)
    if attn_mask is not None:
        # the most negative finite float, not -inf: a row with no visible key must not become NaN
        scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1)
    if attn_mask is not None:
        probs = probs.masked_fill(~attn_mask, 0.0)  # a query that sees no key attends to nothing: output 0
    return einsum(probs, v, "b h i j, b h j d -> b h i d")
