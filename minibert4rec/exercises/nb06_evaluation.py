"""Notebook 06 (evaluation): the exercises on NDCG@k and full-ranking ranks, with their checks and hints.

Both are compared with ``minibert4rec.metrics``; the rank check includes ties (pessimistic: they count against
the target) and a padding column that must never compete.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .framework import CheckResult, Exercise, _against, _number_problem, _run, _tensor_problem

EXERCISES: list[Exercise] = [
    Exercise("sampled_rank", "06", "question",
             "A target ranks 50th of 3,416 items. Expected rank among 100 uniform negatives? Effect on HR@10?",
             ("49 items beat the target. Each of the 100 negatives is one of them with probability 49 / 3415.",
              "Expected rank = 1 + expected number of negatives that beat it.",
              "Linearity of expectation: add up, over the 100 negatives, the probability that each one beats "
              "the target.")),
    Exercise("ndcg_at_k", "06", "implement",
             "Mean NDCG@k from the 1-based ranks of one relevant item per user.",
             ("Rank 1 is worth 1, rank 3 is worth 0.5, anything beyond k is worth 0.",
              "The gain of rank r is 1 / log2(r + 1); convert the ranks to float before the logarithm.",
              "Keep the gain where the rank is at most k and 0 elsewhere (torch.where), then average over users "
              "and return a Python float (.item()).")),
    Exercise("target_rank", "06", "implement",
             "Full-ranking rank of each target (pessimistic ties, column 0 ignored) -> LongTensor (b,).",
             ("rank = 1 + the number of other items scoring at least as high as the target.",
              "Take each user's target score with gather along dimension 1, keeping a column of shape (b, 1), "
              "and compare it with the whole score matrix at once.",
              "Column 0 is padding: leave it out of the count. The comparison 'at least as high' counts the "
              "target itself once, so the count of the other columns is already the rank.")),
    Exercise("protocol_choices", "06", "explore",
             "Which model gains most from removing seen items? What does uniform sampling do to POP's numbers?",
             ("Divide each model's full_filtered NDCG@10 by its full NDCG@10.",
              "A model that recommends what the user already watched loses most when those items are allowed "
              "to compete; POP recommends the most watched movies to everybody.",
              "For (b), pass item_counts=torch.ones_like(item_counts) to evaluate: the negatives are then drawn "
              "uniformly, and mostly obscure.")),
    Exercise("equal_compute", "06", "explore",
             "Rerun the equal-compute comparison with another budget or seed: does the verdict hold?",
             ("Change SIZES['compare_budget_s'] (double it) or the seed in config.replace(seed=...), and rerun "
              "the comparison cells.",
              "Look at the whole curves, not only their last points: where do they cross, and how far apart "
              "are they compared with the change from one seed to another?",
              "A difference smaller than the seed-to-seed spread is not a verdict; the last point of a short "
              "run says which model learns faster, not which one is better when trained to convergence.")),
]


def check_ndcg_at_k(fn: Callable) -> CheckResult:
    """``ndcg_at_k(ranks, k) -> float``: mean over users of 1/log2(rank + 1) when rank <= k, else 0."""
    from ..metrics import ndcg_at_k

    g = torch.Generator().manual_seed(7)
    cases = [(torch.tensor([1]), 10), (torch.tensor([3]), 10), (torch.tensor([10]), 10), (torch.tensor([11]), 10),
             (torch.tensor([2]), 1), (torch.tensor([1, 2, 3, 100]), 5)]
    cases += [(torch.randint(1, 300, (50,), generator=g), k) for k in (1, 5, 10, 20)]
    return _run("ndcg_at_k", fn, cases, _against(ndcg_at_k, _number_problem))


def check_target_rank(fn: Callable) -> CheckResult:
    """``target_rank(scores (b, N+1), targets (b,)) -> ranks (b,)``: 1-based, pessimistic ties, column 0 ignored."""
    from ..metrics import target_ranks

    g = torch.Generator().manual_seed(8)
    cases = [(torch.tensor([[0.0, 0.5, 0.2, 0.9]]), torch.tensor([2])),
             (torch.tensor([[0.0, 1.0, 1.0, 1.0]]), torch.tensor([1])),  # ties count against the target
             (torch.tensor([[9.0, 0.1, 0.3]]), torch.tensor([1])),  # column 0 (padding) never competes
             (torch.tensor([[-math.inf, 0.3, 0.1, 0.2], [-math.inf, 0.3, 0.1, 0.2]]), torch.tensor([3, 1])),
             (torch.randint(0, 5, (16, 51), generator=g).float(), torch.randint(1, 51, (16,), generator=g)),
             (torch.randn(8, 101, generator=g), torch.randint(1, 101, (8,), generator=g))]
    return _run("target_rank", fn, cases, _against(target_ranks, lambda e, g_: _tensor_problem(e, g_, "int")))
