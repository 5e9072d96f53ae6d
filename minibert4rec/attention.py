"""Scaled dot-product attention and multi-head attention, written out by hand (notebook 03).

Shapes use einops names: ``b`` batch, ``n`` positions, ``h`` heads, ``d`` head dim, ``D = h * d`` hidden size.

For every query position i, attention takes a weighted average of the value vectors of all key positions j::

    scores[i, j] = q_i . k_j / sqrt(d)          (b h n n)
    probs[i, :]  = softmax_j(scores[i, :])      each row sums to 1 over the keys
    out[i]       = sum_j probs[i, j] * v_j      (b h n d)

**Masks** are boolean and broadcastable to (b, h, n, n); ``True`` means "query i may attend to key j". A masked key
gets probability exactly 0. We fill masked scores with the most negative *finite* float (``torch.finfo.min``), not
``-inf``: a row in which every key is masked (e.g. a padded query under a causal mask, or an all-padding sequence)
would otherwise compute ``softmax([-inf, ...]) = 0/0 = NaN``. Such a row is defined to attend to nothing: its
probabilities are all 0 and its output is the zero vector. Padded *query* rows (non-causal case) still attend to the
real items; their outputs are meaningless but harmless, because the loss and predictions never read them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from .fast import attention as fast_attention
from .fast.dropout import dropout_mask


def padding_mask(items: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """(b n) item ids -> (b 1 1 n) bool, True at real items: no query ever attends to a padded key."""
    if items.dim() != 2:
        raise ValueError(f"padding_mask expects item ids of shape (b, n), got {tuple(items.shape)}; add a batch dim.")
    return rearrange(items != pad_id, "b n -> b 1 1 n")


def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(1 1 n n) bool lower triangle: query i may attend to keys j <= i only (the past and itself)."""
    return rearrange(torch.ones(n, n, dtype=torch.bool, device=device).tril(), "i j -> 1 1 i j")


def _check_mask(attn_mask: torch.Tensor | None, b: int, h: int, n: int, m: int) -> None:
    if attn_mask is None:
        return
    if attn_mask.dtype != torch.bool:
        raise ValueError(f"attn_mask must be a bool tensor (True = may attend), got dtype {attn_mask.dtype}; "
                         "build it with padding_mask() / causal_mask().")
    try:
        torch.broadcast_shapes(attn_mask.shape, (b, h, n, m))
    except RuntimeError:
        raise ValueError(f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to (b, h, n, n) = "
                         f"{(b, h, n, m)}; use shape (b, 1, 1, n) for padding or (1, 1, n, n) for causal.") from None


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0, training: bool = False, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d)) v, the from-scratch way. Returns ``(out (b h n d), probs (b h n n))``.

    ``q``, ``k``, ``v``: (b h n d). ``attn_mask``: bool, broadcastable to (b h n n), True = may attend.
    The softmax is computed in (at least) float32, so bf16 autocast is safe. ``probs`` is returned *before*
    dropout (what the model "looks at", for plots); when ``training`` and ``dropout_p > 0`` the output uses a
    dropped-out copy: each probability is zeroed with chance ``dropout_p`` and survivors scaled by 1/(1-p).
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D (b, h, n, d), got shapes {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}; split heads with rearrange(x, 'b n (h d) -> b h n d', h=h).")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"incompatible q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}: need q (b h n d), "
                         "k (b h m d), v (b h m d_v).")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}.")
    b, h, n, d = q.shape
    _check_mask(attn_mask, b, h, n, k.shape[2])

    scores = einsum(q, k, "b h i d, b h j d -> b h i j") / math.sqrt(d)    # (b h n n): query i vs key j
    scores = scores.to(torch.promote_types(scores.dtype, torch.float32))  # softmax in >= float32
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)  # exp(min - max) == 0 exactly
    probs = scores.softmax(dim=-1)
    if attn_mask is not None:
        has_key = attn_mask.any(dim=-1, keepdim=True)  # (.. n 1): does this query see any key at all?
        if not bool(has_key.all()):  # a fully masked row came out uniform: make it all zeros
            probs = probs.masked_fill(~has_key, 0.0)
    weights = probs
    if training and dropout_p > 0.0:  # F.dropout's maths with cheaper random bits (fast/dropout.py)
        dropped, scale = dropout_mask(probs.shape, dropout_p, generator=generator, device=probs.device)
        weights = (probs * scale).masked_fill_(dropped, 0.0)
    out = einsum(weights.to(v.dtype), v, "b h i j, b h j d -> b h i d")
    return out, probs


def _fast_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None,
                    dropout_p: float) -> torch.Tensor:
    """Same maths through PyTorch's fused kernel; fully masked rows give 0, as in the slow path, on any version."""
    if attn_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    has_key = attn_mask.any(dim=-1, keepdim=True)  # (.. n 1): does this query see any key at all?
    safe = attn_mask | ~has_key  # let empty rows attend everywhere (older kernels return NaN for them) ...
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe, dropout_p=dropout_p)
    return out.masked_fill(~has_key, 0.0)  # ... then zero them


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: h independent attentions on D/h-dimensional slices, concatenated and mixed.

    ``q_proj``, ``k_proj``, ``v_proj`` map x (b n D) to queries, keys and values; each is split into heads with
    ``rearrange(t, "b n (h d) -> b h n d", h=h)``; heads are merged back with ``"b h n d -> b n (h d)"`` and
    ``out_proj`` mixes them. Same parameterisation as ``torch.nn.MultiheadAttention`` (see :func:`copy_to_torch_mha`).
    """

    def __init__(self, hidden_size: int, n_heads: int, attn_dropout_prob: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if n_heads <= 0 or hidden_size % n_heads != 0:
            raise ValueError(f"hidden_size={hidden_size} must be a positive multiple of n_heads={n_heads} "
                             "(each head gets hidden_size / n_heads dimensions); change one of them.")
        if not 0.0 <= attn_dropout_prob < 1.0:
            raise ValueError(f"attn_dropout_prob must be in [0, 1), got {attn_dropout_prob}.")
        self.hidden_size, self.n_heads = hidden_size, n_heads
        self.head_dim = hidden_size // n_heads
        self.attn_dropout_prob = attn_dropout_prob
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=bias)
        self.out_proj = nn.Linear(hidden_size, hidden_size, bias=bias)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, return_probs: bool = False, fast: bool = False,
        last_query_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (b n D) -> ``(out (b n D), probs (b h n n) or None)``.

        ``attn_mask``: bool broadcastable to (b h n n), True = may attend. ``fast=True`` uses
        ``F.scaled_dot_product_attention`` (identical result in eval mode, no probabilities: ``probs`` is None);
        when training on a CPU with attention dropout or in bfloat16 it uses ``fast/attention.py`` instead (the same
        maths and the same random numbers as the plain version, fewer passes over memory);
        otherwise probs are returned when ``return_probs`` (pre-dropout, see :func:`scaled_dot_product_attention`).
        ``last_query_only=True`` computes the output of the last position only: (b 1 D), probs (b h 1 n). Every
        position is still a key and a value; only the query side shrinks (used by ``BERT4Rec.predict``).
        """
        if x.dim() != 3 or x.shape[-1] != self.hidden_size:
            raise ValueError(f"x must have shape (b, n, {self.hidden_size}), got {tuple(x.shape)}; "
                             "add a batch dim with x[None] or check hidden_size.")
        if fast and return_probs:
            raise ValueError("fast=True cannot return attention probabilities; use fast=False to plot them.")
        queries = x[:, -1:] if last_query_only else x  # (b n' D), n' = 1 or n
        if last_query_only and attn_mask is not None:
            attn_mask = attn_mask[..., -1:, :]  # the mask row of the last query: (.. 1 n)
        q = rearrange(self.q_proj(queries), "b n (h d) -> b h n d", h=self.n_heads)
        k, v = (rearrange(proj(x), "b n (h d) -> b h n d", h=self.n_heads) for proj in (self.k_proj, self.v_proj))
        p = self.attn_dropout_prob if self.training else 0.0
        probs = None
        # On a CPU, PyTorch's fused kernel draws its dropout with slow random numbers and is slow in bfloat16: in CPU
        # training with either, the same maths in fewer passes over the (b h n n) scores (fast/attention.py) where
        # it applies, else the plain version
        cpu_training = x.device.type == "cpu" and self.training and (p > 0.0 or q.dtype == torch.bfloat16)
        if fast and cpu_training and not fast_attention.can_use(q, attn_mask):
            fast = False
        if fast:
            _check_mask(attn_mask, x.shape[0], self.n_heads, q.shape[2], k.shape[2])
            out = (fast_attention.attention_with_dropout(q, k, v, attn_mask, p) if cpu_training
                   else _fast_attention(q, k, v, attn_mask, p))
        else:
            out, probs = scaled_dot_product_attention(q, k, v, attn_mask, p, self.training)
        out = self.out_proj(rearrange(out, "b h n d -> b n (h d)"))
        return out, (probs if return_probs else None)


def copy_to_torch_mha(ours: MultiHeadAttention) -> nn.MultiheadAttention:
    """A ``torch.nn.MultiheadAttention`` (batch_first) with our weights, to check our maths against PyTorch's.

    PyTorch packs the three input projections as ``in_proj_weight = [W_q; W_k; W_v]`` (3D, D). Beware its masks are
    inverted w.r.t. ours: its ``key_padding_mask`` (b n) and bool ``attn_mask`` (n n) mean True = *ignore*.
    """
    bias = ours.q_proj.bias is not None
    theirs = nn.MultiheadAttention(ours.hidden_size, ours.n_heads, dropout=ours.attn_dropout_prob, bias=bias,
                                   batch_first=True, device=ours.q_proj.weight.device, dtype=ours.q_proj.weight.dtype)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        if bias:
            theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
            theirs.out_proj.bias.copy_(ours.out_proj.bias)
    theirs.train(ours.training)
    return theirs
