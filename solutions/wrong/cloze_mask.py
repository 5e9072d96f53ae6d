"""Known-wrong: padding is masked too (the coin is flipped for every position, real or not)."""
import torch


def cloze_mask(items: torch.Tensor, mask_ratio: float, mask_id: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    draw = torch.rand(items.shape, generator=generator)
    masked = draw < mask_ratio
    masked[:, -1] |= ~masked.any(dim=1)  # at least one per row
    return torch.where(masked, mask_id, items), torch.where(masked, items, 0)
