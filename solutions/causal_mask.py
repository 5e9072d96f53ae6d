"""Notebook 03: the causal mask. Row i (query) may attend column j (key) when j <= i."""
import torch


def causal_mask(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool).tril()  # lower triangle, diagonal included
