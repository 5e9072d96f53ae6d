"""Notebook 01: how often each item occurs, as a LongTensor (n_items + 1,) with index 0 (padding) = 0."""
import torch


def item_popularity(sequences: list[list[int]], n_items: int) -> torch.Tensor:
    flat = torch.tensor([item for sequence in sequences for item in sequence], dtype=torch.long)
    # minlength: items that never occur (even the last ids) still get their 0
    return torch.bincount(flat, minlength=n_items + 1)
