"""Notebook 04 (the model): the exercises on counting BERT4Rec's parameters and scoring items with the tied
embedding, with their checks and hints. The count is compared with ``BERT4Rec(...).num_parameters()``.
"""

from __future__ import annotations

from typing import Callable

import torch
from einops import einsum

from .framework import CheckResult, Exercise, _against, _number_problem, _run, _tensor_problem

EXERCISES: list[Exercise] = [
    Exercise("tied_embeddings", "04", "question",
             "The output layer reuses the item embedding: how many parameters does that save (N = 3,416, D = 64)?",
             ("An untied output layer would need its own matrix with one row per item.",
              "Which rows of the (N + 2, D) embedding table are items?",
              "Count the parameters such a matrix would add, N x D, and compare with the model's total.")),
    Exercise("bert4rec_parameter_count", "04", "implement",
             "Count BERT4Rec's parameters from its sizes (must equal BERT4Rec(...).num_parameters()).",
             ("Read BERT4Rec.__init__: embeddings, blocks, output layer. A Linear(a, b) has a*b + b parameters, "
              "a LayerNorm(D) has 2D.",
              "The item table has N + 2 rows (padding, items, [mask]); positions have max_seq_length rows.",
              "A block: 4 Linear(D, D) for attention, Linear(D, inner) + Linear(inner, D), 2 LayerNorms. After "
              "the blocks: Linear(D, D), a LayerNorm, and a bias of N.")),
    Exercise("output_scores", "04", "implement",
             "Score every item: hidden . item embedding + item bias, (b, D), (N, D), (N,) -> (b, N).",
             ("Each score is a dot product between one user's hidden vector and one item's embedding.",
              "All users against all items at once is a matrix product: (b, D) with (N, D) gives (b, N); einsum "
              "names it 'b D, N D -> b N'.",
              "The bias has one entry per item, shape (N,): adding it to a (b, N) tensor broadcasts over the "
              "users.")),
]


def check_bert4rec_parameter_count(fn: Callable) -> CheckResult:
    """``bert4rec_parameter_count(hidden_size, inner_size, n_layers, n_items, max_seq_length) -> int``."""
    from ..support.config import BERT4RecConfig
    from ..model import BERT4Rec

    def reference(hidden: int, inner: int, layers: int, n_items: int, max_len: int) -> int:
        config = BERT4RecConfig(hidden_size=hidden, inner_size=inner, n_layers=layers, n_heads=1,
                                max_seq_length=max_len)
        return BERT4Rec(config, n_items).num_parameters()

    cases = [(8, 16, 1, 10, 5), (16, 32, 2, 50, 20), (12, 48, 1, 1, 2), (32, 128, 3, 1000, 50), (64, 256, 2, 3416, 200)]
    return _run("bert4rec_parameter_count", fn, cases,
                _against(reference, lambda e, g_: _number_problem(e, g_, integer=True)))


def check_output_scores(fn: Callable) -> CheckResult:
    """``output_scores(hidden (b, D), item_embeddings (N, D), bias (N,)) -> scores (b, N)``."""
    g = torch.Generator().manual_seed(6)
    rand = lambda *shape: torch.randn(shape, generator=g)  # noqa: E731
    hand = (torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
            torch.tensor([0.0, 0.5, -1.0]))
    cases = [hand, (rand(4, 8), rand(20, 8), rand(20)), (rand(3, 16), rand(1, 16), rand(1)),
             (rand(1, 4), rand(5, 4), rand(5))]
    reference = lambda h, e, b: einsum(h, e, "b D, N D -> b N") + b  # noqa: E731
    return _run("output_scores", fn, cases, _against(reference, lambda e, g_: _tensor_problem(e, g_, "float")))
