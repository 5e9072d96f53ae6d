"""Dropout with cheap random bits on a CPU: ``torch.nn.Dropout``'s distribution from a quarter of the random words.

The plain version is ``torch.nn.functional.dropout``: zero each element with probability ``p`` and scale the
survivors by ``1 / (1 - p)``, so that the expectation is unchanged. It draws a 32-bit random number per element
(``bernoulli_``); on a CPU that dominates a BERT4Rec training step at L = 200 (the attention probabilities alone
are b x h x n x n numbers). One 64-bit random word gives four independent 16-bit numbers, and an element is dropped
when its number is below ``round(p * 65536)``. So ``p`` is used rounded to a multiple of 1/65536 (0.1 -> 0.100006)
and the scale matches that exact ``p``: the expectation is preserved exactly. ``tests/test_fast_paths.py`` checks
the keep rate, the expectation and the survivors' scale against the plain definition.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


@torch.compiler.disable  # run eagerly under torch.compile: compilers mishandle views that change the dtype
def _random_lanes(shape: tuple[int, ...], generator: torch.Generator | None,
                  device: torch.device | str | None) -> torch.Tensor:
    """Uniform 16-bit numbers in [-32768, 32767] of ``shape``: four from each 64-bit random word."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # uniform over all 64 bits
    return words.view(torch.int16)[:n].view(shape)


def dropout_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> tuple[torch.Tensor, float]:
    """Which elements dropout zeroes: a bool tensor of ``shape``, True with probability ``round(p * 65536) / 65536``,
    and the survivors' scale ``1 / (1 - that p)``. Randomness: ``generator`` or torch's global one (so checkpoints
    that save the RNG state resume exactly)."""
    dropped = round(p * 65536)  # how many of the 65536 values are dropped
    return _random_lanes(shape, generator, device) < dropped - 32768, 65536 / (65536 - dropped)


def keep_multiplier(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The same draw as :func:`dropout_mask` (same random numbers, same elements dropped) as the factor dropout
    multiplies by: 0 where dropped, the survivors' scale elsewhere. ``x * keep_multiplier(...)`` is the dropout of
    x; on a CPU a product of two float tensors is several times faster than ``masked_fill`` with a bool mask, and
    the backward is one more product by the same factor."""
    dropped = round(p * 65536)
    lanes = _random_lanes(shape, generator, device)
    keep = torch.ge(lanes, dropped - 32768, out=torch.empty(shape, dtype=dtype, device=device))  # 1.0 or 0.0
    return keep.mul_(65536 / (65536 - dropped))


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)``: with the bits of :func:`dropout_mask` on a CPU, PyTorch's fused kernel elsewhere
    (already fast on a GPU)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    return x * keep_multiplier(x.shape, p, device=x.device, dtype=x.dtype)


class Dropout(nn.Module):
    """``nn.Dropout(p)`` through :func:`dropout` (the model uses it for every dropout layer)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability p={p} must be in [0, 1).")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
