"""Notebook 07 (attention maps): the exercises on the entropy of attention rows, with their check and hints.

The check includes rows with zeros and all-zero rows (a padded query under a causal mask), where 0 log 0 = 0.
"""

from __future__ import annotations

from typing import Callable

import torch

from .framework import CheckResult, Exercise, _against, _run, _tensor_problem

EXERCISES: list[Exercise] = [
    Exercise("max_entropy", "07", "question",
             "Largest possible entropy of an attention row over 10 real items? What does entropy near 0 mean?",
             ("Which distribution over m outcomes is the most uncertain?",
              "Padding keys have probability 0 and add 0 log 0 = 0.",
              "Evaluate -sum p log p for the uniform distribution over m keys: every term of the sum is the "
              "same.")),
    Exercise("attention_entropy", "07", "implement",
             "Entropy in nats of each attention row (last dim), with 0 log 0 = 0: (..., n) -> (...).",
             ("H(p) = - sum_j p_j log p_j over the last dimension.",
              "Where p = 0, p * log(p) is 0 * -inf = NaN in floating point, but its limit is 0.",
              "Replace those terms by 0 with torch.where (or use torch.special.xlogy(p, p), which does it for "
              "you), then sum over the keys and negate.")),
    Exercise("explore_heads", "07", "explore",
             "Mean attention entropy per layer and head over real queries: which heads focus, which average?",
             ("model(inputs, return_attention=True) gives one (b, h, n, n) tensor per layer; mean over b and "
              "the real query positions.",
              "Compare each head with ln(number of visible keys), the entropy of uniform attention.",
              "A head far below uniform focuses on a few keys; plot the entropy per (layer, head) as bars, next "
              "to the uniform value.")),
]


def check_attention_entropy(fn: Callable) -> CheckResult:
    """``attention_entropy(probs (..., n)) -> entropy (...)`` in nats, with 0 log 0 = 0."""
    from ..attention import causal_mask, padding_mask, scaled_dot_product_attention

    g = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g) for _ in range(3))
    masked = scaled_dot_product_attention(q, k, v, padding_mask(torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]]))
                                          & causal_mask(5))[1]  # (2 2 5 5) with zeros and all-zero rows
    cases = [(torch.tensor([[0.25, 0.25, 0.25, 0.25]]),), (torch.tensor([[1.0, 0.0, 0.0]]),),
             (torch.tensor([[0.5, 0.5, 0.0, 0.0]]),), (torch.tensor([0.0, 0.0, 0.0]),),
             (torch.randn(3, 7, generator=g).softmax(-1),), (masked,)]
    reference = lambda p: -torch.special.xlogy(p, p).sum(-1)  # noqa: E731  xlogy(0, 0) = 0
    return _run("attention_entropy", fn, cases, _against(reference, lambda e, g_: _tensor_problem(e, g_, "float")))
