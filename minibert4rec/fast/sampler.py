"""The popularity sampler of the sampled protocol, by rejection: about 100x less work than the plain Gumbel-top-k.

The plain version is ``metrics.sample_negatives_gumbel``: one random key per item per user, ``(b, N+1)`` numbers,
2.4 s per 1,024 users on a 54k-item catalogue. :func:`sample_negatives` draws from the same distribution with
~n draws per row; ``tests/test_fast_paths.py`` checks the support and the inclusion frequencies against the exact
probabilities and against the plain sampler. Shapes: b rows (users), V = N+1 item ids, n negatives.
"""

from __future__ import annotations

import numbers
from itertools import chain
from typing import Sequence

import torch
from einops import repeat

Exclude = Sequence[Sequence[int]] | None


def check_sampling_inputs(item_counts: torch.Tensor, targets: torch.Tensor | Sequence[int],
                           n_negatives: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate a sampler's inputs; return (weights float64 (N+1,), targets Long (b,), n_negatives)."""
    if not isinstance(item_counts, torch.Tensor) or item_counts.dim() != 1 or item_counts.numel() < 2:
        raise ValueError("item_counts must be a 1-D tensor of shape (n_items + 1,) (index 0 = padding); "
                         f"got {tuple(getattr(item_counts, 'shape', ()))}. Use SequenceData.split().item_counts().")
    weights = item_counts.double()  # float64: a cumulative sum of millions of counts stays exact
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("item_counts must be finite and non-negative (they are training popularity counts).")
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, numbers.Integral) or n_negatives < 1:
        raise ValueError(f"n_negatives must be an integer >= 1; got {n_negatives!r}.")
    width = weights.shape[0]
    targets = torch.as_tensor(targets, device=weights.device)
    if targets.dim() != 1 or targets.is_floating_point() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be a 1-D integer tensor of item ids; got {targets.dtype} {tuple(targets.shape)}.")
    targets = targets.long()
    if targets.numel() and (targets.min() < 1 or targets.max() > width - 1):
        raise ValueError(f"targets must be item ids in 1..{width - 1} (= len(item_counts) - 1); got values in "
                         f"{int(targets.min())}..{int(targets.max())}.")
    return weights, targets, int(n_negatives)


def excluded_pairs(exclude: Sequence[Sequence[int]], b: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``exclude`` (b lists of item ids) -> the (row, item) pairs it lists, as two (k,) tensors; checked."""
    if len(exclude) != b:
        raise ValueError(f"exclude has {len(exclude)} lists but there are {b} rows; give one list (maybe empty) per row.")
    lengths = torch.tensor([len(row) for row in exclude], dtype=torch.long)
    cols = torch.tensor(list(chain.from_iterable(exclude)), dtype=torch.long)
    if cols.numel() and (cols.min() < 0 or cols.max() >= width):
        raise ValueError(f"exclude contains item ids outside 0..{width - 1}: got values in "
                         f"{int(cols.min())}..{int(cols.max())}.")
    return torch.repeat_interleave(torch.arange(b), lengths), cols


def _forbidden_keys(exclude: Exclude, targets: torch.Tensor, width: int, n_negatives: int) -> torch.Tensor:
    """The (row, item) pairs that may never be drawn, as sorted unique keys ``row * width + item``: padding,
    each row's target and its ``exclude`` items. A few keys per row instead of a ``(b, N+1)`` mask; membership
    of any (row, item) is then one ``searchsorted``. Raises the "only k items left" error."""
    b, device = targets.shape[0], targets.device
    rows = torch.arange(b, device=device)
    parts = [rows * width, rows * width + targets]  # padding and target of every row
    if exclude is not None:
        excluded_rows, cols = excluded_pairs(exclude, b, width)
        parts.append((excluded_rows * width + cols).to(device))
    keys = torch.unique(torch.cat(parts))  # sorted; duplicates (an excluded target ...) counted once
    n_allowed = width - torch.bincount(keys // width, minlength=b)  # (b,)
    if b and n_allowed.min() < n_negatives:
        row = int(n_allowed.argmin())
        raise ValueError(f"row {row} has only {int(n_allowed[row])} items left to sample from (after removing "
                         f"padding, the target and excluded items) but n_negatives={n_negatives}; "
                         "lower n_negatives or exclude fewer items.")
    return keys


def _is_member(sorted_keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """``queries`` (any shape) -> bool, True where the query is one of ``sorted_keys`` (binary search)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(queries, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, queries).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == queries


def _gumbel_top_k(weights: torch.Tensor, b: int, need: torch.Tensor | int, forbidden: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Gumbel-top-k over the whole catalogue: ``(b, k)`` items in Plackett-Luce draw order, k = max(need).

    ``forbidden`` (b, N+1) bool is never drawn. Keys: popular items ``count / E`` > 0, zero-count items ``-E`` < 0
    (a uniform order after every popular one), forbidden ``-inf``; E ~ Exponential(1).
    """
    k = int(need) if isinstance(need, int) else int(need.max())
    width = weights.shape[0]
    gen_device = generator.device if generator is not None else weights.device
    u = torch.rand(b, width, generator=generator, device=gen_device).to(weights.device)  # (b V) in [0, 1)
    e = u.clamp_min_(torch.finfo(u.dtype).tiny).log_().neg_()  # E = -log(u) ~ Exponential(1), finite, > 0
    w = repeat(weights.float(), "v -> b v", b=b)
    keys = torch.where(w > 0, w / e, -e).masked_fill_(forbidden, -torch.inf)
    return keys.topk(k, dim=1).indices


def sample_negatives(item_counts: torch.Tensor, targets: torch.Tensor | Sequence[int], n_negatives: int = 100,
                     exclude: Exclude = None, generator: torch.Generator | None = None,
                     max_rounds: int = 8) -> torch.Tensor:
    """Draw ``n_negatives`` distinct items per row with probability proportional to popularity: ``(b, n)`` Long.

    ``item_counts (N+1,)`` is how often each item occurs in training (index 0 = padding). Never drawn: padding,
    the mask id (N+1, outside the table), the row's target and its ``exclude`` items. Items of count 0 are
    drawn only when a row has fewer than ``n_negatives`` popular candidates (uniformly among them), so a table of
    all zeros gives uniform sampling. Fewer than ``n_negatives`` allowed items -> ``ValueError``. Columns are in
    draw order (column 0 alone is distributed proportional to count).

    The distribution is the **Plackett-Luce** model, "draw one item proportional to count, remove it, repeat".
    How, cheaply: **rejection**. Draw items *with* replacement from the popularity distribution of the whole
    catalogue (one ``searchsorted`` of uniform numbers on the cumulative counts), in bulk, many per row; walk
    each row's draws in order and keep a draw only if it is allowed and not kept already. Conditioned on being
    kept, a draw is proportional to count among the allowed, not-yet-kept items -- exactly the next
    Plackett-Luce draw. So the kept sequence *is* sampling without replacement, and costs ~n draws per row
    instead of one random key per item (``metrics.sample_negatives_gumbel``, the plain version): about 100x less
    work on a 54k-item catalogue.

    Rejection loops when little mass is left to keep (a row that excluded the popular items, very skewed counts,
    fewer popular items than ``n_negatives``). Such rows, and rows unfinished after ``max_rounds`` rounds, finish
    with the exact Gumbel-top-k over the items not yet kept: the rest of a Plackett-Luce draw, given the items
    drawn so far, is again Plackett-Luce over the remaining items, so switching method midway is exact too.
    """
    weights, targets, n_negatives = check_sampling_inputs(item_counts, targets, n_negatives)
    b, width, device = targets.shape[0], weights.shape[0], weights.device
    keys = _forbidden_keys(exclude, targets, width, n_negatives)  # sorted (row * width + item)
    weights = weights.clone()
    weights[0] = 0.0  # padding is forbidden anyway: never spend draws on it
    total = float(weights.sum())
    out = torch.full((b, n_negatives), -1, dtype=torch.long, device=device)  # (b n), -1 = not drawn yet
    if b == 0:
        return out
    # mass and number of popular items each row may draw from (forbidden keys are unique, so no double counting)
    key_rows, key_weights = keys // width, weights[keys % width]
    forbidden_mass = torch.zeros(b, dtype=torch.float64, device=device).index_add_(0, key_rows, key_weights)
    popular_forbidden = torch.bincount(key_rows[key_weights > 0], minlength=b)
    popular_allowed = int((weights > 0).sum()) - popular_forbidden  # (b,)
    allowed_mass = total - forbidden_mass  # (b,)
    filled = torch.zeros(b, dtype=torch.long, device=device)  # (b,) items kept so far
    # rows rejection cannot finish: fewer popular allowed items than needed
    active = (popular_allowed >= n_negatives) & (allowed_mass > 0)
    cdf = weights.cumsum(0)  # (V,) float64
    gen_device = generator.device if generator is not None else device
    for _ in range(max_rounds):
        rows = active.nonzero().flatten()
        if rows.numel() == 0:
            break
        kept = out[rows]  # (r n)
        kept_mass = torch.where(kept >= 0, weights[kept.clamp(min=0)], 0.0).sum(dim=1)  # (r,)
        accept = ((allowed_mass[rows] - kept_mass) / total).clamp_min(1e-12)  # P(a draw is kept), roughly
        need = n_negatives - filled[rows]  # (r,)
        expected = need / accept  # draws a row needs, on average
        cheap = expected <= max(width / 4, 1024)  # beyond: one Gumbel key per item is as cheap, hand the row over
        active[rows[~cheap]] = False
        rows, kept, need, expected = rows[cheap], kept[cheap], need[cheap], expected[cheap]
        if rows.numel() == 0:
            break
        m = int(expected.max() * 1.2) + 16  # draws per row this round: most rows finish in one round
        u = torch.rand(rows.numel(), m, dtype=torch.float64, generator=generator, device=gen_device).to(device)
        draws = torch.searchsorted(cdf, u * total, right=True).clamp_(max=width - 1)  # (r m) ~ count, with replacement
        # the kept items first, then the new draws, in order: keep each allowed item's FIRST occurrence
        seq = torch.cat([kept, draws], dim=1)  # (r n+m)
        valid = (seq >= 0) & ~_is_member(keys, rows[:, None] * width + seq)
        order = seq.sort(dim=1, stable=True)  # equal items side by side, earliest draw first
        repeat_ = torch.zeros_like(valid)
        repeat_.scatter_(1, order.indices[:, 1:], order.values[:, 1:] == order.values[:, :-1])
        valid &= ~repeat_
        position = valid.cumsum(dim=1) - 1  # slot of each kept item in draw order
        take = valid & (position < n_negatives)
        r_idx, c_idx = take.nonzero(as_tuple=True)
        new = torch.full((rows.numel(), n_negatives), -1, dtype=torch.long, device=device)
        new[r_idx, position[r_idx, c_idx]] = seq[r_idx, c_idx]
        out[rows] = new
        filled[rows] = take.sum(dim=1)
        active[rows] = filled[rows] < n_negatives
    # fallback: every unfinished row continues exactly with Gumbel-top-k over its remaining items
    unfinished = (filled < n_negatives).nonzero().flatten()
    if unfinished.numel():
        r = unfinished.numel()
        row_keys = keys[_is_member(unfinished, keys // width)]  # forbidden keys of these rows
        local = torch.searchsorted(unfinished, row_keys // width)
        forbidden = torch.zeros(r, width, dtype=torch.bool, device=device)
        forbidden[local, row_keys % width] = True
        kept = out[unfinished]
        has = kept >= 0
        forbidden[has.nonzero(as_tuple=True)[0], kept[has]] = True  # already drawn
        rest = _gumbel_top_k(weights, r, n_negatives - filled[unfinished], forbidden, generator)  # (r k)
        # append each row's continuation after its kept prefix
        k = rest.shape[1]
        pos = filled[unfinished][:, None] + torch.arange(k, device=device)  # (r k)
        fits = pos < n_negatives
        rr = torch.arange(r, device=device)[:, None].expand(r, k)
        kept[rr[fits], pos[fits]] = rest[fits]
        out[unfinished] = kept
    return out
