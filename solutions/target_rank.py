"""Notebook 06: full-ranking rank of each target, ties counted against it, column 0 (padding) ignored."""
import torch


def target_rank(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    target_scores = scores.gather(1, targets[:, None])  # (b 1)
    # items 1..N scoring at least as high as the target; the target itself is one of them, so this is the rank
    return (scores[:, 1:] >= target_scores).sum(dim=1)
