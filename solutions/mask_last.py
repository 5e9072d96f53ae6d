"""Notebook 02: mask only the last real item of each (left-padded) row, the test-time task."""
import torch


def mask_last(items: torch.Tensor, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    masked = torch.zeros_like(items, dtype=torch.bool)
    masked[:, -1] = items[:, -1] != 0   # left padding: the last column holds the newest item, unless the row is empty
    return torch.where(masked, mask_id, items), torch.where(masked, items, 0)
