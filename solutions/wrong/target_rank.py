"""Known-wrong: ties counted optimistically (only strictly higher scores beat the target)."""
import torch


def target_rank(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    target_scores = scores.gather(1, targets[:, None])
    return 1 + (scores[:, 1:] > target_scores).sum(dim=1)
