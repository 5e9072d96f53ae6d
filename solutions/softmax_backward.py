"""Notebook 03: the softmax's backward. d probs_j / d scores_i = probs_j (delta_ij - probs_i), so
dscores_i = probs_i dprobs_i - probs_i sum_j dprobs_j probs_j."""
import torch


def softmax_backward(probs: torch.Tensor, dprobs: torch.Tensor) -> torch.Tensor:
    row_dot = (dprobs * probs).sum(dim=-1, keepdim=True)  # one number per row: sum_j dprobs_j probs_j
    return probs * (dprobs - row_dot)
