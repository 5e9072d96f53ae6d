"""Notebook 07: entropy (in nats) of each attention row, with 0 log 0 = 0."""
import torch


def attention_entropy(probs: torch.Tensor) -> torch.Tensor:
    terms = torch.where(probs > 0, probs * probs.log(), 0.0)  # p log p, and 0 where p = 0 (not 0 * -inf = NaN)
    return -terms.sum(dim=-1)
