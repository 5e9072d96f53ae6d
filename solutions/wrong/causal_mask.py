"""Known-wrong: the mask is transposed (each query sees the future instead of the past)."""
import torch


def causal_mask(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool).triu()
