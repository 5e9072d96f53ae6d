"""Known-wrong: forgets the 1/sqrt(d) scale of the scores."""
import torch
from einops import einsum


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    scores = einsum(q, k, "b h i d, b h j d -> b h i j")
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1)
    if attn_mask is not None:
        probs = probs.masked_fill(~attn_mask, 0.0)
    return einsum(probs, v, "b h i j, b h j d -> b h i d")
