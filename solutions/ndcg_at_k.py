"""Notebook 06: NDCG@k with one relevant item per user, averaged over users."""
import torch


def ndcg_at_k(ranks: torch.Tensor, k: int) -> float:
    ranks = ranks.double()
    gains = 1.0 / torch.log2(ranks + 1)  # rank 1 -> 1, rank 3 -> 0.5
    return torch.where(ranks <= k, gains, 0.0).mean().item()
