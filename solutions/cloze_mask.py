"""Notebook 02: the Cloze task. Hide each real item with probability mask_ratio (at least one per row)."""
import torch


def cloze_mask(items: torch.Tensor, mask_ratio: float, mask_id: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    real = items != 0                                            # (b n) padding is never masked
    draw = torch.rand(items.shape, generator=generator)         # (b n) one coin per position
    masked = (draw < mask_ratio) & real
    # a row with items but no mask: mask its real item with the smallest draw
    smallest = torch.where(real, draw, 2.0).argmin(dim=1)       # (b,)
    rows = (real.any(dim=1) & ~masked.any(dim=1)).nonzero().flatten()
    masked[rows, smallest[rows]] = True
    labels = torch.where(masked, items, 0)                      # the hidden item, 0 = no loss here
    inputs = torch.where(masked, mask_id, items)
    return inputs, labels
