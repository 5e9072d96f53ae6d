"""Notebook 04 (the model): the exercises on counting BERT4Rec's parameters and scoring items with the tied
embedding, and on building a transformer block, with their checks and hints. The count is compared with
``BERT4Rec(...).num_parameters()``; the student's block gets the weights of the package's ``TransformerBlock`` and
must give the same outputs.
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
    Exercise("transformer_block", "04", "implement",
             "Build a post-LN transformer block (attention -> dropout -> add & LayerNorm -> FFN -> dropout -> add & "
             "LayerNorm) as an nn.Module class with the package's parameter names.",
             ("Name the submodules as the package does: attention (a MultiHeadAttention), attn_dropout, "
              "attn_norm, feed_forward (with up, act, down, dropout), ffn_norm; print(model.blocks[0]) shows them.",
              "Post-LN: the LayerNorm comes after the residual sum, not before the sublayer. Each sublayer's output "
              "is dropped out, added to the sublayer's input, then normalised.",
              "The attention module returns a pair (output, probabilities): keep the first. The feed-forward is "
              "Linear(D, inner), GELU, Linear(inner, D); use eps=1e-12 in both LayerNorms.")),
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


def check_transformer_block(block_class: Callable) -> CheckResult:
    """``block_class(hidden_size, n_heads, inner_size, dropout) -> nn.Module`` with ``forward(x, attn_mask)``.

    Each case builds the student's block and the package's ``TransformerBlock`` of the same sizes, loads the
    package's (seeded, randomised) weights into the student's block and compares the outputs in eval mode on a
    left-padded batch; with dropout > 0 the student's block must also be random in training mode.
    """
    from torch import nn

    from ..attention import padding_mask
    from ..model import ModelConfig, TransformerBlock
    from .framework import _left_padded

    cases = [(8, 2, 16, 0.1), (16, 4, 64, 0.2), (12, 1, 24, 0.0), (32, 2, 128, 0.5)]

    def judge(args: tuple, got: Any) -> str | None:
        hidden, heads, inner, dropout = args
        if not isinstance(got, nn.Module):
            return f"{_describe(got)} is not an nn.Module: write a class that subclasses torch.nn.Module"
        g = torch.Generator().manual_seed(hidden + heads)
        config = ModelConfig(hidden_size=hidden, n_heads=heads, inner_size=inner, hidden_dropout_prob=dropout,
                             attn_dropout_prob=dropout)
        reference = TransformerBlock(config)
        with torch.no_grad():
            for name, p in reference.named_parameters():  # random LayerNorm weights too: swapped norms show
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if name.endswith("norm.weight") else 0.0))
        state = reference.state_dict()
        mine = got.state_dict()
        missing, extra = sorted(set(state) - set(mine)), sorted(set(mine) - set(state))
        if missing or extra:
            return (f"parameter names differ from the package's TransformerBlock: missing {missing[:4]}, "
                    f"unexpected {extra[:4]} (print(model.blocks[0]) shows the names)")
        try:
            got.load_state_dict(state)
        except RuntimeError as error:
            return f"could not load the package's weights: {str(error).splitlines()[-1].strip()}"
        items = _left_padded(g, 3, 7, 50, min_len=1)
        x = torch.randn(3, 7, hidden, generator=g)
        mask = padding_mask(items)
        reference.eval(), got.eval()
        with torch.no_grad():
            expected, _ = reference(x, mask)
            out = got(x.clone(), mask.clone())
        out = out[0] if isinstance(out, (tuple, list)) else out
        problem = _tensor_problem(expected, out, "float", atol=1e-4, what="eval-mode output")
        if problem:
            return problem
        if dropout > 0:
            got.train()
            torch.manual_seed(0)
            with torch.no_grad():
                trained = got(x.clone(), mask.clone())
            trained = trained[0] if isinstance(trained, (tuple, list)) else trained
            got.eval()
            if torch.allclose(trained, expected, atol=1e-6):
                return f"in training mode with dropout={dropout} the output equals eval mode's: no dropout is applied"
        return None

    return _run("transformer_block", block_class, cases, judge)


def _describe(x: Any) -> str:
    return f"the result ({type(x).__name__})"
