"""Cross-entropy over every item without holding the ``(m, N)`` logits, and a sampled softmax for huge catalogues.

The plain version is two lines: ``logits = h @ weight.T + bias`` then ``F.cross_entropy(logits, targets)``.
:func:`linear_cross_entropy` computes the same loss and the same gradients a slice of rows at a time
(``tests/test_fast_paths.py`` checks both against ``F.cross_entropy`` in float64). ``BERT4Rec.loss`` uses it on a
CPU when the logits would exceed :data:`LARGE_LOGITS_BYTES`, and for every batch under CPU bfloat16 autocast, where
it runs its products in bfloat16 and makes fewer passes over the logits than autograd's path (the softmax's
backward is one subtraction here). :func:`sampled_softmax_loss` is an approximation, not
a speed-up of the same number: it equals the full softmax only when the negatives are every item.

Shapes: m labelled positions, D hidden, N items, k negatives.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

#: Logits above this size (bytes) are not materialised by the CPU loss. glibc's malloc serves every allocation
#: above 32 MiB (its largest mmap threshold) with fresh pages from the kernel and unmaps them when freed, so each
#: such tensor costs one page fault per 4 KiB every step; a full softmax creates about 5 tensors of (m, N) floats.
LARGE_LOGITS_BYTES = 32 * 2**20
#: Rows per slice in :func:`linear_cross_entropy`: a slice of logits stays well under the 32 MiB above.
CHUNK_BYTES = 8 * 2**20

_under_autocast = True


def used_under_cpu_autocast() -> bool:
    """Whether ``BERT4Rec.loss`` takes :func:`linear_cross_entropy` for every batch under CPU bf16 autocast (True,
    except inside :func:`autograd_path_under_autocast`)."""
    return _under_autocast


@contextmanager
def autograd_path_under_autocast() -> Iterator[None]:
    """Within this block, ``BERT4Rec.loss`` under CPU autocast goes back to autograd's full ``(m, N)`` logits (large
    catalogues excepted): to time or compare the two."""
    global _under_autocast
    before, _under_autocast = _under_autocast, False
    try:
        yield
    finally:
        _under_autocast = before


class _LinearCrossEntropy(torch.autograd.Function):
    """``mean_i CE(h_i W^T + b, t_i)`` with its gradients computed in the forward pass, a slice of rows at a time.

    The trick: the loss is a scalar and the gradient of softmax cross-entropy with respect to the logits is
    known in closed form, ``softmax(z) - onehot(t)``. So while a slice of logits ``z = h W^T + b`` is at hand we
    turn it, in place, into that gradient and push it into ``dL/dh = g W``, ``dL/dW += g^T h``, ``dL/db += sum g``.
    No ``(m, N)`` tensor outlives its slice, none is saved for backward, and the same buffer serves every slice;
    ``backward`` only scales the stored gradients by the incoming one. Same flops as autograd's path.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)  # under autocast: float32 inputs, and
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)  # ``product_dtype`` says what products use
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                product_dtype: torch.dtype) -> torch.Tensor:
        m, n_items = h.shape[0], weight.shape[0]
        rows = max(1, CHUNK_BYTES // (4 * n_items))
        want_grad = any(ctx.needs_input_grad[:3])
        low = product_dtype if product_dtype != h.dtype else None  # bfloat16 products under CPU autocast
        h_p, w_p = (h.to(low), weight.to(low)) if low else (h, weight)  # the products' operands, cast once
        grad_h, grad_w, grad_b = torch.empty_like(h), torch.zeros_like(weight), torch.zeros_like(bias)
        buffer = h.new_empty(min(rows, m), n_items)  # (c N), reused by every slice
        total = h.new_zeros((), dtype=torch.float64)
        for start in range(0, m, rows):
            h_c, t_c = h_p[start : start + rows], targets[start : start + rows]  # (c D), (c,)
            out = buffer[: h_c.shape[0]]
            if low:  # a bfloat16 product, then the bias in float32 (as autograd's path under autocast)
                z = torch.add(bias, torch.mm(h_c, w_p.T), out=out)  # (c N) logits, float32
            else:
                z = torch.addmm(bias, h_c, w_p.T, out=out)  # (c N) logits
            lse = torch.logsumexp(z, dim=1)  # (c,)
            total += (lse - z.gather(1, t_c[:, None]).squeeze(1)).sum()  # -log softmax(z)[t]
            if want_grad:  # softmax(z) / m - onehot(t) / m: the gradient of the mean over rows, in place
                g = z.sub_((lse + math.log(m))[:, None]).exp_()
                g[torch.arange(h_c.shape[0], device=h.device), t_c] -= 1.0 / m
                grad_b += g.sum(dim=0)  # (N,)
                if low:
                    g = g.to(low)
                    grad_h[start : start + rows] = torch.mm(g, w_p)  # (c D)
                    grad_w += torch.mm(g.T, h_c)  # (N D)
                else:
                    torch.mm(g, w_p, out=grad_h[start : start + rows])  # (c D)
                    grad_w.addmm_(g.T, h_c)  # (N D)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return (total / m).to(h.dtype)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None]:
        grad_h, grad_w, grad_b = ctx.saved_tensors
        return grad_h * grad_loss, grad_w * grad_loss, grad_b * grad_loss, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T + bias, targets)`` without ever holding the ``(m, N)`` logits.

    h (m D), weight (N D), bias (N,), targets (m,) column ids -> scalar mean loss, differentiable in h, weight and
    bias. See :class:`_LinearCrossEntropy` for how; ``BERT4Rec.loss`` uses it on a CPU for large catalogues, and
    for every batch under CPU bfloat16 autocast.

    Under CPU autocast to bfloat16 the three matrix products (logits, dL/dh, dL/dW) run in bfloat16, as autograd's
    path runs them there, and the softmax, the loss and the accumulated gradients stay in float32. Elsewhere (no
    autocast, or autocast on a GPU) everything runs in float32, or in the inputs' own dtype when it is wider.
    """
    product_dtype = h.dtype if h.dtype in (torch.float32, torch.float64) else torch.float32
    if h.device.type == "cpu" and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        product_dtype = torch.bfloat16
    return _LinearCrossEntropy.apply(h, weight, bias, targets, product_dtype)


def sampled_softmax_loss(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                         negatives: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of each target against a few shared negatives instead of all N items.

    h (m D), weight (N D), bias (N,), targets (m,) and negatives (k,) column ids -> scalar mean loss.

    Each row scores ``[its target] + the k negatives`` (shared by the batch: one ``(m, k)`` matmul instead of
    ``(m, N)``) and the loss is cross-entropy with the target in column 0. A negative that happens to be the row's
    own target ("accidental hit") is masked out. With ``negatives = every item`` this *is* the full softmax.

    It estimates the full softmax's gradient only roughly: the partition function sums k items instead of N.
    Negatives drawn with probability Q(i) are corrected by subtracting ``log(k Q(i))`` from their logits (the
    "logQ correction" of sampled softmax, Bengio & Senecal 2008; Jean et al. 2015; Yi et al. 2019), so that
    popular items, drawn often, are not over-penalised. For *uniform* negatives, as here (``BERT4Rec.loss``),
    Q is the same for every item: the correction is a constant shift of all logits and cancels in the softmax
    (it would matter with popularity-sampled negatives). RecTools, gSASRec and Transformers4Rec offer the same
    option; gSASRec shows that with few negatives the model becomes over-confident, so check quality against
    full cross-entropy (``benchmarks/catalogue_scale.py``).
    """
    pos = (h * weight[targets]).sum(dim=1) + bias[targets]  # (m,)
    neg = h @ weight[negatives].T + bias[negatives]  # (m k)
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], -math.inf)  # accidental hits
    logits = torch.cat([pos[:, None], neg], dim=1).float()  # (m 1+k), target in column 0
    return F.cross_entropy(logits, torch.zeros_like(targets))
