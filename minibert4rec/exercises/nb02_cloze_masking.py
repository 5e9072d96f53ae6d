"""Notebook 02 (Cloze masking): the exercises on ``cloze_mask`` and ``mask_last``, with their checks and hints.

Random masks cannot be compared with a reference value by value, so ``check_cloze_mask`` checks properties:
labels and inputs agree with the mask, padding is never masked, at least one mask per row, the masked share is
within five standard deviations of the rate, and the same generator seed gives the same masks.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .framework import CheckResult, Exercise, _against, _fresh, _left_padded, _pair_problem, _run, _Seed

EXERCISES: list[Exercise] = [
    Exercise("expected_masks", "02", "question",
             "A row holds L = 10 items, mask_ratio = 0.2: how many items does cloze_mask hide on average?",
             ("Without the at-least-one rule the count is Binomial(L, p).",
              "The rule adds one mask exactly when the coin flips mask nothing: how likely is that?",
              "The rule adds exactly one mask in the rows where no coin fires: add that probability, for L "
              "independent coins, to the binomial mean.")),
    Exercise("cloze_mask", "02", "implement",
             "Hide each real item w.p. mask_ratio (never padding, >= 1 per row) -> (inputs, labels).",
             ("Draw one uniform number per position with torch.rand(items.shape, generator=generator); mask "
              "where it is below mask_ratio and the item is not padding (0).",
              "A row whose coins masked nothing but that has items: mask its real item with the smallest draw "
              "(argmin over the draws, after setting padding's draws to a value above 1).",
              "Labels keep the item where masked and are 0 elsewhere; inputs show mask_id where masked and the "
              "item elsewhere: two torch.where calls on the same boolean tensor.")),
    Exercise("mask_last", "02", "implement",
             "Mask only the last real item of each row (the test-time task) -> (inputs, labels).",
             ("Rows are left-padded: the last real item is in the last column...",
              "...except in a row that is all padding, where nothing may be masked.",
              "Build a boolean tensor that is True only in the last column of the non-empty rows, then make "
              "inputs and labels from it exactly as cloze_mask does.")),
]


def check_cloze_mask(fn: Callable) -> CheckResult:
    """``cloze_mask(items, mask_ratio, mask_id, generator) -> (inputs, labels)``, checked by its properties."""
    g = torch.Generator().manual_seed(3)
    big = _left_padded(g, 2000, 50, 300, min_len=0)
    cases = [(torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]]), 0.5, 9, _Seed(0)),
             (torch.tensor([[0, 0, 0, 0], [0, 0, 0, 7], [1, 2, 3, 4]]), 0.2, 8, _Seed(1)),
             (big, 0.2, 301, _Seed(2)), (big, 0.5, 301, _Seed(3)), (big, 0.2, 301, _Seed(4))]

    def judge(args: tuple, got: Any) -> str | None:
        items, ratio, mask_id, seed = args
        problem = _pair_problem((items, items), got, ("inputs", "labels"), "int")
        if problem and "difference" not in problem:  # a shape or type problem; values are checked below
            return problem
        inputs, labels = got[0].cpu(), got[1].cpu()
        real, masked = items != 0, labels != 0
        if (masked & (labels != items)).any():
            return "labels must hold the original item at masked positions and 0 elsewhere (0 = no loss, not -100)"
        if (inputs[~real] != 0).any():
            return "padding (0) was masked: inputs and labels must stay 0 where items == 0"
        if (inputs != torch.where(masked, mask_id, items)).any():
            return f"inputs must be mask_id={mask_id} exactly where labels > 0 and the item itself elsewhere"
        empty = real.any(dim=1) & ~masked.any(dim=1)
        if empty.any():
            return f"row {int(empty.nonzero()[0])} has items but none is masked (mask at least one per row)"
        lengths = real.sum(dim=1).double()
        expected = (lengths * ratio + (1 - ratio) ** lengths * (lengths > 0)).sum()  # at-least-one rule included
        spread = 5 * (lengths * ratio * (1 - ratio)).sum().sqrt() + 1
        if abs(masked.sum() - expected) > spread:
            return (f"masked {masked.sum() / lengths.sum():.1%} of the real items, expected about "
                    f"{expected / lengths.sum():.1%} (mask_ratio={ratio} plus one per row when none)")
        again = fn(*_fresh(args))
        if not all(torch.equal(a.cpu(), b) for a, b in zip(again, (inputs, labels))):
            return "a second call with the same generator seed gave other masks: draw only from `generator`"
        if int(seed) == 4:
            other = fn(*_fresh((items, ratio, mask_id, _Seed(5))))
            if torch.equal(other[1].cpu(), labels):
                return "generator seeds 4 and 5 gave the same masks: the masks must be random"
        return None

    return _run("cloze_mask", fn, cases, judge)


def check_mask_last(fn: Callable) -> CheckResult:
    """``mask_last(items, mask_id) -> (inputs, labels)``: only the last real item of each row is masked."""
    from ..masking import mask_last

    g = torch.Generator().manual_seed(4)
    cases = [(torch.tensor([[0, 5, 6], [0, 0, 0]]), 9), (torch.tensor([[1, 2, 3]]), 4), (torch.tensor([[3]]), 4),
             (_left_padded(g, 8, 6, 100), 101), (_left_padded(g, 64, 20, 500), 501)]
    compare = lambda e, g_: _pair_problem(e, g_, ("inputs", "labels"), "int")  # noqa: E731
    return _run("mask_last", fn, cases, _against(mask_last, compare))
