"""Known-wrong: always masks the last column, even in a row that is all padding."""
import torch


def mask_last(items: torch.Tensor, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, labels = items.clone(), torch.zeros_like(items)
    inputs[:, -1] = mask_id
    labels[:, -1] = items[:, -1]
    return inputs, labels
