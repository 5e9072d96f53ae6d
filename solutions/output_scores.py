"""Notebook 04: the output layer's last step, one score per item from the shared item embedding."""
import torch
from einops import einsum


def output_scores(hidden: torch.Tensor, item_embeddings: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return einsum(hidden, item_embeddings, "b D, N D -> b N") + bias  # bias (N,) broadcasts over b
