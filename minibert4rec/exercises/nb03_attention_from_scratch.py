"""Notebook 03 (attention from scratch): the exercises on scaled dot-product attention, the softmax's backward and
the causal mask, with their checks and hints. Attention and the mask are compared with ``minibert4rec.attention``,
the backward with autograd.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .framework import CheckResult, Exercise, _against, _run, _tensor_problem

EXERCISES: list[Exercise] = [
    Exercise("why_not_inf", "03", "question",
             "attention.py fills masked scores with finfo.min, not -inf. Which rows would give NaN with -inf?",
             ("softmax divides exp(score) by the sum of exp over the row.",
              "Combine a left-padded row with a causal mask: what may the first (padded) query see?",
              "A row in which every score is -inf: what is exp(-inf) / (sum of exp(-inf))?")),
    Exercise("scaled_dot_product_attention", "03", "implement",
             "softmax(q k^T / sqrt(d)) v with a bool mask (True = may attend); a query that sees no key outputs 0.",
             ("Scores compare every query i with every key j: an einsum over the head dimension d ('b h i d, b "
              "h j d -> b h i j'), divided by the square root of d.",
              "Masked scores get the most negative float of their dtype (masked_fill with "
              "torch.finfo(dtype).min), not -inf; then softmax over the keys (the last dimension).",
              "After the softmax, set the masked probabilities to 0 (so a query that sees no key outputs 0), "
              "then mix the values with a second einsum over j.")),
    Exercise("softmax_backward", "03", "implement",
             "The softmax's backward: from probs = softmax(scores) over the last dim and dprobs = dloss/dprobs, "
             "return dloss/dscores.",
             ("Each probability of a row depends on every score of that row: d probs_j / d scores_i = "
              "probs_j * (1 if i == j else 0) - probs_j * probs_i.",
              "By the chain rule dscores_i = sum over j of dprobs_j * (d probs_j / d scores_i). Split that sum "
              "into the term j = i and a term that every i of the row shares.",
              "The shared term is probs_i times one number per row, the dot product of that row's dprobs and "
              "probs: a sum over the last dimension with keepdim=True, so that it broadcasts.")),
    Exercise("causal_mask", "03", "implement",
             "Bool (n, n) matrix, True where query i (row) may attend key j (column), i.e. j <= i.",
             ("Row i is the query, column j the key. Which triangle is True?",
              "Query i may see keys 0..i: the diagonal and everything left of it.",
              "Start from an all-True (n, n) boolean tensor; torch has one method that keeps the lower triangle "
              "and one that keeps the upper.")),
]


def check_scaled_dot_product_attention(fn: Callable) -> CheckResult:
    """``scaled_dot_product_attention(q, k, v, attn_mask=None) -> out (b h n d)``; True in the mask = may attend."""
    from ..attention import causal_mask, scaled_dot_product_attention

    g = torch.Generator().manual_seed(5)
    qkv = lambda *shape: tuple(torch.randn(shape, generator=g) for _ in range(3))  # noqa: E731
    small = tuple((torch.randn(1, 1, 3, 2, generator=g) * 10).round() / 10 for _ in range(3))
    pad = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]  # (b 1 1 n)
    pad6 = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    cases = [small, qkv(2, 2, 5, 8), qkv(1, 4, 7, 16), (*qkv(2, 2, 5, 8), pad),
             (*qkv(1, 2, 6, 4), causal_mask(6)), (*qkv(2, 2, 6, 4), pad6 & causal_mask(6))]  # last: rows see nothing

    def compare(expected: torch.Tensor, got: Any) -> str | None:
        if isinstance(got, tuple):
            return "returned a tuple; return only the output tensor (b, h, n, d)"
        return _tensor_problem(expected, got, "float", atol=1e-5)

    return _run("scaled_dot_product_attention", fn, cases,
                _against(lambda *a: scaled_dot_product_attention(*a)[0], compare))


def check_causal_mask(fn: Callable) -> CheckResult:
    """``causal_mask(n) -> bool (n, n)``, True where query i may attend key j (j <= i)."""
    from ..attention import causal_mask

    cases = [(1,), (2,), (3,), (4,), (7,)]
    compare = lambda e, g_: _tensor_problem(e, g_, "bool")  # noqa: E731
    return _run("causal_mask", fn, cases, _against(lambda n: causal_mask(n)[0, 0], compare))


def check_softmax_backward(fn: Callable) -> CheckResult:
    """``softmax_backward(probs, dprobs) -> dscores``, each of the same shape; the softmax is over the last dim."""
    g = torch.Generator().manual_seed(11)

    def case(*shape: int, masked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.randn(shape, generator=g)
        if masked:  # masked keys: probability exactly 0, as in attention
            scores[..., :2] = torch.finfo(scores.dtype).min
        return scores.softmax(dim=-1), torch.randn(shape, generator=g)

    def autograd_backward(probs: torch.Tensor, dprobs: torch.Tensor) -> torch.Tensor:
        scores = probs.log().requires_grad_()  # softmax(log probs) = probs, since each row sums to 1
        scores.softmax(dim=-1).backward(dprobs)
        return scores.grad

    cases = [case(1, 3), case(2, 5), case(2, 2, 4, 6), case(3, 7, masked=True), case(1, 1, 5, 5)]
    return _run("softmax_backward", fn, cases,
                _against(autograd_backward, lambda e, got: _tensor_problem(e, got, "float", atol=1e-5)))
