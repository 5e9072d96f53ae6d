"""Notebook 07 (attention maps): the exercises on the entropy of attention rows and on recommending for a user.

The entropy check includes rows with zeros and all-zero rows (a padded query under a causal mask), where
0 log 0 = 0. The recommendation check uses a small untrained model whose catalogue is so small that a top k with
the seen items left in must contain some of them.
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
    Exercise("recommend_for_user", "07", "implement",
             "History (item ids, oldest first) -> the model's k best items the user has NOT seen, best first.",
             ("Build the model's test-time input: the history, then [mask], left-padded to the model's "
              "max_seq_length (notebook 02's inference input; model.mask_id is the [mask] id).",
              "model.predict(inputs) scores every item at the last position: (1, N+1), column 0 (padding) is "
              "-inf. A history longer than max_seq_length keeps only its most recent items.",
              "Set the scores of the items in the history to -inf before taking torch.topk, and return the "
              "indices as a list of Python ints. Call model.eval() first (dropout off) and use torch.no_grad().")),
    Exercise("explore_causal_attention", "07", "explore",
             "Train the causal twin and draw its maps for the same users: where do its heads look?",
             ("A causal model has no [mask]: its input is the bare history (masking.left_pad), the prediction "
              "is read at the last item.",
              "Its maps are lower-triangular by construction; compare the share of each head's attention on "
              "the most recent few items with BERT4Rec's.",
              "Use viz.attention_direction and the same 'movies back' buckets as section 4 for both models.")),
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


def _reference_recommend(model, history: list[int], k: int) -> list[int]:
    from ..apps.recommend import recommend

    return [item for item, _ in recommend(model, history, k=k, exclude_seen=True)]


def _list_problem(expected: list[int], got) -> str | None:
    if isinstance(got, torch.Tensor):
        got = got.tolist()
    if not isinstance(got, (list, tuple)):
        return f"expected a list of {len(expected)} item ids, got {type(got).__name__}"
    got = list(got)
    if len(got) != len(expected):
        return f"expected {len(expected)} items, got {len(got)}"
    if got != expected:
        if set(got) == set(expected):
            return "the right items in the wrong order: best (highest score) first"
        return "not the model's best unseen items (are seen items removed? is the input history + [mask]?)"
    return None


def check_recommend_for_user(fn: Callable) -> CheckResult:
    """``recommend_for_user(model, history, k) -> list[int]``: the top ``k`` unseen item ids, best first."""
    from ..model import BERT4Rec
    from ..support.config import BERT4RecConfig

    class SmallModel(BERT4Rec):
        def __repr__(self) -> str:  # the failure message shows the inputs: one line, not the module tree
            return "model"

    torch.manual_seed(11)
    model = SmallModel(BERT4RecConfig(hidden_size=16, inner_size=32, n_layers=2, n_heads=2, max_seq_length=8), 15)
    with torch.no_grad():  # a clear preference for the low item ids, so that the seen ones would make the top k
        model.output_bias.copy_(torch.linspace(3.0, 0.0, model.output_bias.numel()))
    model.eval()
    g = torch.Generator().manual_seed(12)
    cases = [(model, [1, 2, 3, 4], 5), (model, [2, 3], 3), (model, [5, 1, 9, 1, 2], 4),  # a repeat counts once
             (model, list(range(1, 11)), 5), (model, [7], 14),  # every unseen item
             (model, torch.randint(1, 16, (12,), generator=g).tolist(), 3)]  # longer than max_seq_length
    return _run("recommend_for_user", fn, cases, _against(_reference_recommend, _list_problem))
