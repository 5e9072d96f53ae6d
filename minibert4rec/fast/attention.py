"""Attention with dropout for CPU training: the maths of ``attention.scaled_dot_product_attention``, fewer passes.

The plain version is :func:`minibert4rec.attention.scaled_dot_product_attention` (notebook 03). In a BERT4Rec
training step at L = 200 its matrix products are cheap (head dim 32) and most of the attention's time goes to
element-wise passes over the (b, h, n, n) scores: divide by sqrt(d), fill the masked keys, softmax, scale for
dropout, zero the dropped weights, and the same passes again in the backward. PyTorch's fused kernel
(``F.scaled_dot_product_attention``) would skip them, but on a CPU it draws its dropout mask with slow random
numbers. Here the same steps are written as one ``torch.autograd.Function`` with a hand-written backward:

* forward: ``scores = mask_bias + (q k^T) / sqrt(d)`` in one ``baddbmm`` (the mask becomes an additive bias of 0 or
  the most negative float, the scale is the product's ``alpha``); ``probs = softmax(scores)``; the dropout mask of
  ``fast/dropout.py``, drawn exactly as the plain version draws it, as a factor ``keep`` (0 where dropped,
  ``1 / (1 - p)`` elsewhere); ``out = (probs * keep) v``;
* backward, for ``dout`` (b h n d)::

      dv      = (probs * keep)^T dout
      dprobs  = (dout v^T) * keep
      dscores = probs * (dprobs - rowsum(dprobs * probs))        the softmax's backward
      dq      = dscores k / sqrt(d),   dk = dscores^T q / sqrt(d)

  A masked key has probability exactly 0, so its ``dscores`` is 0 without another pass over the mask.

Given the same random state, the output and the gradients equal the plain version's up to float rounding, and the
same random numbers are consumed: ``tests/test_fast_paths.py`` checks both.

Under bf16 autocast (``amp_cpu``) q, k and v arrive in bfloat16. Then the four matrix products run in bfloat16,
which CPUs with AVX-512 BF16 or AMX multiply faster than float32, and everything between
them -- scale, mask, softmax, dropout and the softmax's backward -- in float32, as the plain version does under
autocast. The test checks that this is no further from exact float32 than the plain version under autocast.

The model takes this path when it trains on a CPU with attention dropout or under bf16 autocast
(``MultiHeadAttention(fast=True)``; PyTorch's fused kernel is slower there), PyTorch's fused kernel in float32
training without attention dropout, and the plain version whenever the attention probabilities are asked for.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch

from .dropout import keep_multiplier


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling()) if is_compiling is not None else False


_enabled = True


@contextmanager
def disabled() -> Iterator[None]:
    """Within this block, training takes the plain (from-scratch) attention: to time or compare the two paths."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def can_use(q: torch.Tensor, attn_mask: torch.Tensor | None) -> bool:
    """True where this path computes what the plain one does: float32 or bfloat16 (autocast) on a CPU, not under
    ``torch.compile``, and every query sees at least one key (a query with no key at all gets zeros in the plain
    version; here it would get a uniform average, so such batches keep the plain path). False inside
    :func:`disabled`."""
    if not _enabled or q.device.type != "cpu" or q.dtype not in (torch.float32, torch.bfloat16):
        return False
    if _compiling():  # under torch.compile the plain version is traced and fused by the compiler
        return False
    return attn_mask is None or bool(attn_mask.any(dim=-1).all())


class _AttentionWithDropout(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + bias) with dropout, times v. Shapes: q (B n d), k (B m d), v (B m e),
    bias (B or 1, n or 1, m), B = b * h."""

    @staticmethod
    def forward(ctx, q, k, v, bias, shape, dropout_p, generator):
        scale = 1.0 / math.sqrt(q.shape[-1])
        low = q.dtype  # float32, or bfloat16 under CPU autocast: the products in it, everything else in float32
        with torch.autocast("cpu", enabled=False):
            if low == torch.float32:
                scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale)  # (B n m), masked keys at float min
            else:
                scores = torch.add(bias, torch.bmm(q, k.transpose(1, 2)), alpha=scale)  # float32 (B n m)
            probs = scores.softmax(dim=-1)  # (B n m), float32
            del scores
            if dropout_p > 0.0:  # 0 where dropped, 1 / (1 - p) elsewhere; as in the plain version, none at p = 0
                keep = keep_multiplier(shape, dropout_p, generator=generator, device=q.device).view(probs.shape)
                weights = torch.mul(probs, keep, out=torch.empty(probs.shape, dtype=low))  # (B n m)
            else:
                keep, weights = None, probs.to(low)
            out = torch.bmm(weights, v)  # (B n e)
        ctx.save_for_backward(q, k, v, probs, weights, keep)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, probs, weights, keep = ctx.saved_tensors
        low = q.dtype
        with torch.autocast("cpu", enabled=False):
            dout = dout.to(low)
            dv = torch.bmm(weights.transpose(1, 2), dout)  # (B m e)
            dprobs = torch.bmm(dout, v.transpose(1, 2))  # (B n m)
            if keep is not None:
                dprobs = dprobs.mul_(keep) if low == torch.float32 else torch.mul(dprobs, keep)  # dropout's backward
            elif low != torch.float32:
                dprobs = dprobs.float()
            dscores = torch._softmax_backward_data(dprobs, probs, -1, probs.dtype)  # probs*(dprobs - rowsum(dprobs*probs))
            del dprobs
            if low != torch.float32:
                dscores = dscores.to(low)
            dq = torch.bmm(dscores, k).mul_(ctx.scale)  # (B n d)
            dk = torch.bmm(dscores.transpose(1, 2), q).mul_(ctx.scale)  # (B m d)
        return dq, dk, dv, None, None, None, None


def attention_with_dropout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
                           dropout_p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The output of ``scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, training=True)``: (b h n e).

    ``q`` (b h n d), ``k`` (b h m d), ``v`` (b h m e); ``attn_mask`` bool, broadcastable to (b h n m), True = may
    attend. Call :func:`can_use` first: it says when this path applies."""
    b, h, n, d = q.shape
    m = k.shape[2]
    if attn_mask is None:
        bias = q.new_zeros(1, 1, m, dtype=torch.float32)
    else:  # 0 where a key may be attended, the most negative float elsewhere: exp() of it is exactly 0
        mask = attn_mask.expand(b, h, attn_mask.shape[-2], m).reshape(b * h, attn_mask.shape[-2], m)
        bias = torch.zeros(mask.shape).masked_fill_(~mask, torch.finfo(torch.float32).min)
    flat = [t.reshape(b * h, t.shape[2], t.shape[3]) for t in (q, k, v)]  # (B n d), (B m d), (B m e)
    out = _AttentionWithDropout.apply(*flat, bias, (b, h, n, m), dropout_p, generator)
    return out.view(b, h, n, v.shape[-1])
