"""All users' training windows at once, as index arithmetic on one flat tensor: no Python loop over users.

The plain version is in ``masking.py``: :func:`~minibert4rec.masking.sliding_windows` of each history, left-padded
by :func:`~minibert4rec.masking.left_pad`, one user at a time. Here every window is one row of a single gather;
``tests/test_fast_paths.py`` checks that both give the same tensor. Shapes: w windows, n = max_len positions.
"""

from __future__ import annotations

import torch

PAD = 0


def _gather(flat: torch.Tensor, offsets: torch.Tensor, ends: torch.Tensor, max_len: int, pad_id: int) -> torch.Tensor:
    """Rows ``seq[max(0, end - max_len):end]``, left-padded, for sequences stored back to back in ``flat``.

    offsets, ends: (w,) where each sequence starts in ``flat`` and where its window ends (exclusive, in the sequence).
    """
    pos = ends[:, None] - max_len + torch.arange(max_len)  # (w n) position inside the user's sequence
    if flat.numel() == 0:
        return torch.full(pos.shape, pad_id, dtype=torch.long)
    values = flat[(offsets[:, None] + pos).clamp(0, flat.numel() - 1)]  # (w n); garbage where pos < 0
    return torch.where(pos >= 0, values, torch.full_like(values, pad_id))


def _flatten(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All sequences concatenated (total,), each one's length (b,) and its offset in the concatenation (b,)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    flat = torch.tensor([x for s in seqs for x in s], dtype=torch.long)
    return flat, lengths, torch.cumsum(lengths, 0) - lengths


def window_ends(lengths: torch.Tensor, max_len: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sequence of length L, the end (exclusive) of each of its windows, oldest first.

    Windows end at L, L - step, L - 2 step, ... while they still start after item 0; one more window ends at
    min(L, max_len) and starts at item 0. So the newest window ends at the last item, every item is covered, and
    a sequence with L <= max_len gives exactly one window. Empty sequences give none.
    Returns (ends (w,), owner (w,) = index of the sequence each window comes from).
    """
    counts = torch.where(lengths > max_len, (lengths - max_len + step - 1) // step + 1, (lengths > 0).long())  # (b,)
    owner = torch.repeat_interleave(torch.arange(len(lengths)), counts)  # (w,)
    first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)  # (w,) first window of the owner
    k = counts[owner] - 1 - (torch.arange(len(owner)) - first)  # windows counted back from the newest: k = 0 newest
    length = lengths[owner]
    return torch.maximum(length - k * step, length.clamp(max=max_len)), owner


def training_windows(train_sequences: list[list[int]], max_len: int, step: int,
                     n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training window of every user, left-padded: (w n), and the user each one comes from: (w,).

    The windows of ``masking.sliding_windows`` for all users at once (oldest window of each user first); both
    training datasets start from them."""
    flat, lengths, offsets = _flatten(train_sequences)
    if flat.numel() == 0:
        raise ValueError("train_sequences has no items at all; nothing to train on.")
    if int(flat.min()) < 1 or int(flat.max()) > n_items:
        raise ValueError(f"train_sequences hold ids outside 1..n_items={n_items} "
                         f"(min {int(flat.min())}, max {int(flat.max())}); re-index items (data.preprocess).")
    ends, owner = window_ends(lengths, max_len, step)
    return _gather(flat, offsets[owner], ends, max_len, PAD), owner
