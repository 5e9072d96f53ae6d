"""Notebook 01 (data): the exercises on leave-one-out splitting and item popularity, with their checks and hints.

A student's ``leave_one_out`` is compared with the slicing ``SequenceData.split`` does; ``item_popularity``
with ``torch.bincount``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .framework import CheckResult, Exercise, _against, _run, _show, _tensor_problem, _type

EXERCISES: list[Exercise] = [
    Exercise("split_leakage", "01", "question",
             "Why must the validation item be cut from the training part? What goes wrong if it stays?",
             ("Think about what the model has seen when it is asked to predict seq[-2].",
              "Early stopping picks the epoch with the best validation score: what would that score measure?",
              "If seq[-2] is a training target, a model that memorises its training sequences scores well on "
              "validation; is that the skill the test measures?")),
    Exercise("leave_one_out", "01", "implement",
             "Split one time-ordered history into (training part, validation target, test target).",
             ("The last item is the test target, the one before it the validation target.",
              "The training part is everything before the validation target: a slice with a negative end.",
              "Negative indices count from the end: sequence[-1] is the last item; a slice sequence[:-k] drops "
              "the last k.")),
    Exercise("item_popularity", "01", "implement",
             "Count each item's occurrences: LongTensor (n_items + 1,), index 0 (padding) = 0.",
             ("Flatten the sequences into one list of ids first.",
              "torch.bincount counts ids; its result is only as long as the largest id seen...",
              "...unless you pass minlength=n_items + 1. Build the tensor with dtype=torch.long (it may be "
              "empty).")),
]


def check_leave_one_out(fn: Callable) -> CheckResult:
    """``leave_one_out(sequence) -> (train_part, valid_target, test_target)``, as ``SequenceData.split`` does."""
    g = torch.Generator().manual_seed(1)
    cases = [([1, 2, 3, 4, 5],), ([7, 3],), ([4, 4, 4],), ([9, 8, 7, 6],)]
    cases += [(torch.randint(1, 100, (int(torch.randint(2, 30, (1,), generator=g)),), generator=g).tolist(),)
              for _ in range(10)]

    def compare(expected: tuple, got: Any) -> str | None:
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return f"returned {_type(got)}, expected a tuple (train_part, valid_target, test_target)"
        train = got[0].tolist() if isinstance(got[0], torch.Tensor) else got[0]
        for what, e, g_ in zip(("training part", "validation target", "test target"), expected, (train, *got[1:])):
            if isinstance(g_, torch.Tensor) and g_.numel() == 1:
                g_ = g_.item()
            if (list(g_) if isinstance(g_, tuple) else g_) != e:
                return f"the {what} is {_show(g_)}, expected {_show(e)}"
        return None

    return _run("leave_one_out", fn, cases, _against(lambda s: (s[:-2], s[-2], s[-1]), compare))


def check_item_popularity(fn: Callable) -> CheckResult:
    """``item_popularity(sequences, n_items) -> LongTensor (n_items + 1,)``: occurrences of each item, index 0 = 0."""
    g = torch.Generator().manual_seed(2)
    cases = [([[1, 2, 3], [2, 3], [3]], 3), ([[1, 1, 1]], 4), ([[], [2]], 2), ([], 2)]
    for _ in range(3):  # ids 1..30 out of 35: the last items are never seen
        cases.append(([torch.randint(1, 31, (int(torch.randint(0, 16, (1,), generator=g)),), generator=g).tolist()
                       for _ in range(20)], 35))

    def reference(sequences: list[list[int]], n_items: int) -> torch.Tensor:
        flat = torch.tensor([i for s in sequences for i in s], dtype=torch.long)
        return torch.bincount(flat, minlength=n_items + 1)

    return _run("item_popularity", fn, cases, _against(reference, lambda e, g_: _tensor_problem(e, g_, "int")))
