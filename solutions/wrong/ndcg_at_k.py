"""Known-wrong: 1 / log2(rank) instead of 1 / log2(rank + 1) (rank 1 would be worth infinity)."""
import torch


def ndcg_at_k(ranks: torch.Tensor, k: int) -> float:
    ranks = ranks.double()
    return torch.where(ranks <= k, 1.0 / torch.log2(ranks), 0.0).mean().item()
