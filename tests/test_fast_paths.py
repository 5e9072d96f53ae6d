"""Every fast path is the plain computation it replaces: same numbers (cross-entropy), same distribution
(dropout, the popularity sampler), same outputs and gradients (attention with dropout). The plain versions:
``F.dropout``, ``F.cross_entropy`` on the full logits, ``metrics.sample_negatives_gumbel``,
``attention.scaled_dot_product_attention``."""

import math

import pytest
import torch
import torch.nn.functional as F

from minibert4rec.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention
from minibert4rec.fast import attention as fast_attention
from minibert4rec.fast import cross_entropy as fast_ce
from minibert4rec.fast.attention import attention_with_dropout, can_use
from minibert4rec.fast.dropout import Dropout, dropout, dropout_mask, keep_multiplier
from minibert4rec.fast.sampler import sample_negatives
from minibert4rec.metrics import sample_negatives_gumbel


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_dropout_mask_drops_p_and_keeps_the_expectation(p):
    """P(dropped) = round(p * 65536) / 65536, within 5 standard errors; the scale makes E[out] = x exactly."""
    dropped, scale = dropout_mask((1000, 1000), p, generator=gen(0))
    p_used = round(p * 65536) / 65536
    assert abs(p_used - p) < 1e-5 and scale == pytest.approx(1 / (1 - p_used), rel=1e-12)
    frac = dropped.float().mean().item()
    assert abs(frac - p_used) < 5 * (p_used * (1 - p_used) / 1e6) ** 0.5
    # neighbouring lanes of one 64-bit word are independent: no correlation between consecutive elements
    flat = dropped.flatten().float()
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()) < 0.01


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_cpu_dropout_has_torch_dropouts_keep_rate_and_exact_survivor_scaling(p):
    """Against ``F.dropout`` on the same input: the same keep rate (within sampling error), every survivor exactly
    ``x / (1 - p_used)``, every other element exactly 0, and the same mean."""
    x = torch.rand(800, 500, generator=gen(2)) + 0.5  # no zeros: a 0 in the output means "dropped"
    torch.manual_seed(3)
    ours = dropout(x, p)
    theirs = F.dropout(x, p, training=True)
    p_used = round(p * 65536) / 65536
    kept = ours != 0
    assert torch.equal(ours[kept], x[kept] * (65536 / (65536 - round(p * 65536))))  # exact, not approximate
    assert torch.allclose(ours[kept], x[kept] / (1 - p_used), rtol=1e-6)
    se = (p * (1 - p) / x.numel()) ** 0.5
    keep_ours, keep_theirs = kept.double().mean().item(), (theirs != 0).double().mean().item()
    assert abs(keep_ours - (1 - p_used)) < 5 * se and abs(keep_ours - keep_theirs) < 7 * se
    assert ours.mean().item() == pytest.approx(theirs.mean().item(), rel=0.01)
    assert ours.mean().item() == pytest.approx(x.mean().item(), rel=0.01)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_multiplier_is_the_same_draw_as_the_dropout_mask(p):
    """The factor form of the mask: 0 exactly where ``dropout_mask`` drops (same random state), the survivors'
    scale everywhere else, and the same random numbers consumed."""
    dropped, scale = dropout_mask((37, 11), p, generator=gen(5))
    keep = keep_multiplier((37, 11), p, generator=gen(5))
    assert keep.dtype == torch.float32 and keep.shape == (37, 11)
    assert torch.equal(keep == 0, dropped) and torch.equal(keep[~dropped], torch.full_like(keep[~dropped], scale))
    g1, g2 = gen(6), gen(6)
    dropout_mask((5, 3), p, generator=g1), keep_multiplier((5, 3), p, generator=g2)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_dropout_layer_is_seeded_by_the_global_generator_and_identity_in_eval():
    x = torch.randn(50, 20, generator=gen(4))
    layer = Dropout(0.3).train()
    torch.manual_seed(1)
    out = layer(x)
    assert not torch.equal(out, x)
    torch.manual_seed(1)
    assert torch.equal(out, layer(x))  # the global generator: seeded runs (and resumed checkpoints) repeat
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(dropout(x, 0.0), x)
    with pytest.raises(ValueError, match="p=1.0"):
        Dropout(1.0)


# ----------------------------------------------------------------------------- cross-entropy
def _plain_and_sliced(h, w, b, targets, rows_per_slice: int | None, monkeypatch):
    """Loss and gradients of F.cross_entropy on the full logits, and of linear_cross_entropy."""
    if rows_per_slice is not None:
        monkeypatch.setattr(fast_ce, "CHUNK_BYTES", 4 * w.shape[0] * rows_per_slice)
    results = []
    for sliced in (False, True):
        leaves = [t.clone().requires_grad_() for t in (h, w, b)]
        loss = (fast_ce.linear_cross_entropy(*leaves, targets) if sliced
                else F.cross_entropy(leaves[0] @ leaves[1].T + leaves[2], targets))
        (3 * loss).backward()  # the incoming gradient (3) scales the stored ones
        results.append((loss.detach(), *(t.grad for t in leaves)))
    return results


@pytest.mark.parametrize("m,n,d,rows_per_slice", [(37, 500, 8, 5), (37, 500, 8, None), (1, 3, 4, 1), (64, 50, 16, 7)])
def test_linear_cross_entropy_equals_cross_entropy_with_its_gradients(m, n, d, rows_per_slice, monkeypatch):
    """Float64, random inputs: loss, dL/dh, dL/dW, dL/db equal to 1e-6; sliced into several chunks (the last one
    short) when ``rows_per_slice`` is set, one chunk otherwise."""
    g = gen(m + n)
    h, w, b = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((m, d), (n, d), (n,)))
    targets = torch.randint(0, n, (m,), generator=g)
    plain, sliced = _plain_and_sliced(h, w, b, targets, rows_per_slice, monkeypatch)
    for name, a, c in zip(("loss", "dh", "dW", "db"), plain, sliced):
        assert a.dtype == c.dtype == torch.float64
        assert torch.allclose(a, c, rtol=0, atol=1e-6), (name, (a - c).abs().max())


def test_model_takes_the_sliced_path_above_the_threshold_with_the_same_loss(monkeypatch):
    """Above LARGE_LOGITS_BYTES (monkeypatched small) BERT4Rec.loss calls linear_cross_entropy; same loss, same
    gradients as below it."""
    from minibert4rec.model import BERT4Rec, ModelConfig

    torch.manual_seed(0)
    model = BERT4Rec(ModelConfig(hidden_size=16, inner_size=32, max_seq_length=8), 20).eval()
    x = torch.tensor([[0, 0, 3, 21, 5, 6, 21, 8], [1, 21, 3, 4, 21, 21, 7, 8]])
    labels = torch.tensor([[0, 0, 0, 4, 0, 0, 7, 0], [0, 2, 0, 0, 5, 6, 0, 0]])
    plain = model.loss(x, labels)
    plain.backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    monkeypatch.setattr(fast_ce, "LARGE_LOGITS_BYTES", 0)  # every batch is "large"
    monkeypatch.setattr(fast_ce, "CHUNK_BYTES", 4 * 20 * 3)  # 3 rows per slice
    calls = []
    original = fast_ce.linear_cross_entropy
    monkeypatch.setattr(fast_ce, "linear_cross_entropy", lambda *a: calls.append(1) or original(*a))
    sliced = model.loss(x, labels)
    sliced.backward()
    assert calls == [1]
    assert torch.allclose(plain, sliced, rtol=0, atol=1e-6)
    for p, g in zip(model.parameters(), want):
        assert torch.allclose(p.grad, g, rtol=0, atol=1e-6)


def test_sampled_softmax_with_every_item_as_negative_is_the_full_softmax():
    g = gen(1)
    m, n, d = 11, 40, 6
    h, w, b = (torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in ((m, d), (n, d), (n,)))
    targets = torch.randint(0, n, (m,), generator=g)
    full = F.cross_entropy(h @ w.T + b, targets)
    everything = fast_ce.sampled_softmax_loss(h, w, b, targets, torch.randperm(n, generator=g))  # any order
    assert torch.allclose(full, everything.double(), atol=1e-6)
    # fewer negatives: a smaller partition function, so a smaller loss; gradients reach h, w and b
    few = fast_ce.sampled_softmax_loss(h, w, b, targets, torch.arange(5))
    assert few.item() < full.item()
    few.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (h, w, b))


# ----------------------------------------------------------------------------- popularity sampler
def _plackett_luce_pairs(weights: dict[int, float]) -> dict[tuple[int, int], float]:
    """Exact probability of each ordered pair (first, second) drawn without replacement proportional to weight."""
    total = sum(weights.values())
    return {(i, j): wi / total * wj / (total - wi) for i, wi in weights.items() for j, wj in weights.items() if i != j}


@pytest.mark.parametrize("max_rounds", [0, 1, 8, None])  # 0 = the Gumbel fallback alone; 1 = rejection, then
@pytest.mark.parametrize("counts", [[0, 1, 2, 4, 8, 30, 5, 3], [0, 1, 1, 1, 10**6, 2, 3, 1]])  # fallback; None = plain
def test_ordered_pairs_match_plackett_luce_exactly(max_rounds, counts):
    """Every ordered pair (column 0, column 1) has its exact Plackett-Luce probability, for the fast sampler and the
    plain one; the target (item 6) and the excluded item 7 are never drawn. The second count vector is so skewed
    that rejection stalls after item 4."""
    counts = torch.tensor(counts)
    draws = 12_000
    args = (counts, torch.full((draws,), 6), 2)
    if max_rounds is None:
        neg = sample_negatives_gumbel(*args, exclude=[[7, 0]] * draws, generator=gen(29))
    else:
        neg = sample_negatives(*args, exclude=[[7, 0]] * draws, generator=gen(30 + max_rounds), max_rounds=max_rounds)
    allowed = {i: float(counts[i]) for i in range(1, 6)}
    exact = _plackett_luce_pairs(allowed)
    observed = {pair: 0 for pair in exact}
    for a, b in neg.tolist():
        observed[(a, b)] += 1  # a KeyError here = a forbidden or repeated item
    # chi-square over the pairs expected at least 5 times; the rare ones pooled into one cell
    big = [p for p in exact if exact[p] * draws >= 5]
    obs = [observed[p] for p in big] + [draws - sum(observed[p] for p in big)]
    exp = [exact[p] * draws for p in big] + [draws * (1 - sum(exact[p] for p in big))]
    cells = [(o, e) for o, e in zip(obs, exp) if e > 0]
    chi2 = sum((o - e) ** 2 / e for o, e in cells)
    dof = len(cells) - 1
    assert chi2 < dof + 4.5 * math.sqrt(2 * dof) + 10  # ~ the 99.99% quantile: fails for a biased sampler


def test_fast_sampler_inclusion_frequencies_match_the_gumbel_reference():
    """On a 400-item Zipf catalogue with per-row exclusions, the rejection sampler includes every item as often as
    the Gumbel-top-k reference, within sampling error (two-proportion z-scores)."""
    n_items, rows, k = 400, 6000, 40
    counts = torch.cat([torch.zeros(1), 5000.0 / torch.arange(1, n_items + 1)]).round().long()  # Zipf, item 1 top
    targets = torch.full((rows,), 7)
    exclude = [[1, 2, 3, 50]] * rows  # the three most popular items are off limits for everybody
    fast = sample_negatives(counts, targets, k, exclude=exclude, generator=gen(40))
    ref = sample_negatives_gumbel(counts, targets, k, exclude=exclude, generator=gen(41))
    for neg in (fast, ref):
        assert not torch.isin(neg, torch.tensor([0, 1, 2, 3, 7, 50])).any()
        assert (neg.sort(dim=1).values.diff(dim=1) > 0).all()  # distinct
    p_fast = torch.bincount(fast.flatten(), minlength=n_items + 1).double() / rows
    p_ref = torch.bincount(ref.flatten(), minlength=n_items + 1).double() / rows
    pooled = (p_fast + p_ref) / 2
    se = (2 * pooled * (1 - pooled) / rows).sqrt()
    z = torch.where(se > 0, (p_fast - p_ref) / se.clamp_min(1e-12), torch.zeros_like(se))
    assert z.abs().max() < 4.5  # 400 z-scores: a max above 4.5 has probability < 0.3% under equal distributions
    # and the first column (one popularity draw) is the same, too: compare the mean rank of the first item
    assert fast[:, 0].double().mean().item() == pytest.approx(ref[:, 0].double().mean().item(), rel=0.06)


# ----------------------------------------------------------------------------- training windows
@pytest.mark.parametrize("max_len,step", [(5, 2), (5, 5), (4, 1), (8, 3)])
def test_training_windows_equal_sliding_windows_left_padded(max_len, step):
    """All users' windows at once equal the plain loop: sliding_windows of each history, then left_pad."""
    from minibert4rec.fast.windows import training_windows
    from minibert4rec.masking import left_pad, sliding_windows

    g = gen(max_len * 10 + step)
    lengths = torch.randint(0, 20, (60,), generator=g).tolist() + [1, max_len, max_len + 1, 2 * max_len + step]
    seqs = [torch.randint(1, 31, (n,), generator=g).tolist() for n in lengths]
    windows, owner = training_windows(seqs, max_len, step, n_items=30)
    plain = [(u, w) for u, s in enumerate(seqs) for w in sliding_windows(s, max_len, step)]
    assert torch.equal(windows, left_pad([w for _, w in plain], max_len))
    assert owner.tolist() == [u for u, _ in plain]


# ----------------------------------------------------------------------------- attention with dropout
def _attention_and_grads(path: str, q, k, v, mask, p: float, dout, seed: int):
    """Output, dq, dk, dv and the next number of torch's global generator, for one path from the same random state."""
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    torch.manual_seed(seed)
    if path == "plain":
        out, _ = scaled_dot_product_attention(*leaves, attn_mask=mask, dropout_p=p, training=True)
    else:
        out = attention_with_dropout(*leaves, mask, p)
    out.backward(dout)
    return out.detach(), *(t.grad for t in leaves), torch.rand(1)


@pytest.mark.parametrize("mask_kind", ["padding", "causal and padding", "none"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.0])
def test_attention_with_dropout_equals_the_plain_version_with_its_gradients(mask_kind, p):
    """Same random state -> the same dropped weights, the same output and gradients (to float rounding), and the
    same random numbers consumed (the next draw of the global generator is equal)."""
    g = gen(7)
    b, h, n, d, e = 3, 2, 9, 4, 5
    q, k, v = torch.randn(b, h, n, d, generator=g), torch.randn(b, h, n, d, generator=g), torch.randn(b, h, n, e, generator=g)
    items = torch.randint(1, 20, (b, n), generator=g)
    items[0, :4] = 0  # left padding, as in training windows
    items[2, :8] = 0
    mask = {"padding": padding_mask(items), "causal and padding": padding_mask(items) & causal_mask(n) | torch.eye(n, dtype=torch.bool),
            "none": None}[mask_kind]
    dout = torch.randn(b, h, n, e, generator=g)
    assert can_use(q, mask)
    plain = _attention_and_grads("plain", q, k, v, mask, p, dout, seed=3)
    fused = _attention_and_grads("fused", q, k, v, mask, p, dout, seed=3)
    for a, c in zip(plain, fused):
        assert torch.allclose(a, c, rtol=1e-5, atol=1e-6), (a - c).abs().max()
    if p > 0:  # dropout really acted: another random state gives another output
        other = _attention_and_grads("fused", q, k, v, mask, p, dout, seed=4)
        assert not torch.allclose(other[0], fused[0])
    if mask_kind == "padding":  # a padded key gets no gradient: nothing ever looks at it
        assert fused[2][0, :, :4].abs().max() == 0 and fused[3][0, :, :4].abs().max() == 0


def test_attention_with_dropout_is_used_only_where_it_equals_the_plain_version():
    q = torch.randn(2, 2, 5, 4)
    no_key = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    no_key[1] = False  # an all-padding row: the plain version gives zeros, the fused one would average
    assert can_use(q, torch.ones(2, 1, 1, 5, dtype=torch.bool)) and can_use(q, None)
    assert not can_use(q, no_key)
    assert can_use(q.bfloat16(), None)  # bf16 products, float32 softmax (the next tests)
    assert not can_use(q.double(), None) and not can_use(q.half(), None)
    with fast_attention.disabled():  # the switch benchmarks use to time the plain path
        assert not can_use(q, None)
    assert can_use(q, None)


def _bf16_attention_and_grads(path: str, q, k, v, mask, p: float, dout, seed: int):
    """As :func:`_attention_and_grads`, in bfloat16: ``plain`` is the from-scratch attention under CPU autocast,
    ``fast`` is fast/attention.py on bf16 inputs (what autocast's q, k and v projections hand it). Float32 results."""
    leaves = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    torch.manual_seed(seed)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if path == "plain":
            out, _ = scaled_dot_product_attention(*leaves, attn_mask=mask, dropout_p=p, training=True)
        else:
            assert can_use(leaves[0], mask)
            out = attention_with_dropout(*leaves, mask, p)
    assert out.dtype == torch.bfloat16
    out.backward(dout.bfloat16())
    assert all(t.grad.dtype == torch.bfloat16 for t in leaves)
    return out.detach().float(), *(t.grad.float() for t in leaves), torch.rand(1)


@pytest.mark.parametrize("mask_kind", ["padding", "none"])
@pytest.mark.parametrize("p", [0.1, 0.0])
def test_attention_with_dropout_in_bfloat16_is_as_close_to_float32_as_the_plain_version(mask_kind, p):
    """bf16 inputs (CPU autocast): the products in bfloat16, the softmax and dropout in float32. Against the exact
    float32 computation on the same (bf16-rounded) inputs, the output and gradients are within bfloat16's
    rounding, no further off than the from-scratch attention under autocast, and the same dropout is drawn (the
    same random numbers consumed)."""
    g = gen(11)
    b, h, n, d = 4, 2, 16, 8
    q, k, v, dout = (torch.randn(b, h, n, d, generator=g).bfloat16().float() for _ in range(4))
    items = torch.randint(1, 20, (b, n), generator=g)
    items[0, :5] = 0
    mask = padding_mask(items) if mask_kind == "padding" else None
    exact = _attention_and_grads("plain", q, k, v, mask, p, dout, seed=5)  # float32 on the rounded inputs
    plain = _bf16_attention_and_grads("plain", q, k, v, mask, p, dout, seed=5)
    fast = _bf16_attention_and_grads("fast", q, k, v, mask, p, dout, seed=5)
    assert torch.equal(exact[-1], fast[-1]) and torch.equal(exact[-1], plain[-1])  # same random numbers used
    for name, want, a, c in zip(("out", "dq", "dk", "dv"), exact, plain, fast):
        scale = want.abs().max()
        fast_error, plain_error = (c - want).abs().max() / scale, (a - want).abs().max() / scale
        assert fast_error < 0.03, (name, fast_error)  # bf16 keeps 8 bits: ~0.4% per rounding
        assert fast_error <= 1.5 * plain_error + 1e-3, (name, fast_error, plain_error)
    if mask_kind == "padding":  # padded keys still get exactly no gradient
        assert fast[2][0, :, :5].abs().max() == 0 and fast[3][0, :, :5].abs().max() == 0


def test_linear_cross_entropy_under_cpu_autocast_multiplies_in_bfloat16():
    """Under CPU bf16 autocast the sliced loss runs its three products in bfloat16, as autograd's path does there:
    its loss and gradients are no further from the exact (float64) ones than that path's, further than float32's
    (so the products really are in bfloat16), and h's gradient comes back in h's dtype."""
    g = gen(2)
    m, n, d = 300, 500, 16
    h, w, b = torch.randn(m, d, generator=g), torch.randn(n, d, generator=g) * 0.3, torch.randn(n, generator=g)
    targets = torch.randint(0, n, (m,), generator=g)

    def loss_and_grads(kind: str, dtype: torch.dtype, autocast: bool):
        leaves = [t.to(dtype, copy=True).requires_grad_() for t in (h, w, b)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if kind == "sliced":
                loss = fast_ce.linear_cross_entropy(*leaves, targets)
            else:  # autograd's path, as BERT4Rec.loss writes it; bf16 logits under autocast, cast up for the softmax
                logits = leaves[0] @ leaves[1].T + leaves[2]
                loss = F.cross_entropy(logits.float() if autocast else logits, targets)
        loss.backward()
        assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        assert leaves[0].grad.dtype == dtype
        return [loss.detach().double(), *(t.grad.double() for t in leaves)]

    exact = loss_and_grads("plain", torch.float64, False)
    sliced = loss_and_grads("sliced", torch.float32, True)
    plain = loss_and_grads("plain", torch.float32, True)
    full = loss_and_grads("sliced", torch.float32, False)
    for name, want, s_, p_, f_ in zip(("loss", "dh", "dW", "db"), exact, sliced, plain, full):
        scale = want.abs().max()
        s_err, p_err, f_err = ((x - want).abs().max() / scale for x in (s_, p_, f_))
        assert s_err < 0.03, (name, s_err)  # bf16 keeps 8 bits: ~0.4% per rounding
        assert s_err <= 1.5 * p_err + 1e-4, (name, s_err, p_err)
        assert f_err < 1e-5, (name, f_err)
        if name in ("dh", "dW"):  # these come out of bfloat16 products
            assert s_err > 10 * f_err, (name, s_err, f_err)


def test_model_takes_the_sliced_path_under_cpu_bf16_autocast(monkeypatch):
    """Under CPU bf16 autocast BERT4Rec.loss takes linear_cross_entropy whatever the size of the logits."""
    from minibert4rec.model import BERT4Rec, ModelConfig

    torch.manual_seed(0)
    model = BERT4Rec(ModelConfig(hidden_size=16, inner_size=32, max_seq_length=8), 20).train()
    x = torch.tensor([[0, 0, 3, 21, 5, 6, 21, 8], [1, 21, 3, 4, 21, 21, 7, 8]])
    labels = torch.tensor([[0, 0, 0, 4, 0, 0, 7, 0], [0, 2, 0, 0, 5, 6, 0, 0]])
    calls = []
    original = fast_ce.linear_cross_entropy
    monkeypatch.setattr(fast_ce, "linear_cross_entropy", lambda *a: calls.append(1) or original(*a))
    model.loss(x, labels)
    assert calls == []  # small logits, no autocast: autograd's path
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.loss(x, labels).backward()
        assert calls == [1]
        with fast_ce.autograd_path_under_autocast():  # the switch benchmarks/epoch_time.py times it with
            model.loss(x, labels)
    assert calls == [1]


def _training_attention(monkeypatch, p: float, seed: int):
    """A training ``MultiHeadAttention`` (D = 8, 2 heads, attention dropout ``p``), an input batch with left padding,
    its mask, and the list that records each call of fast/attention.py."""
    mha = MultiHeadAttention(8, 2, attn_dropout_prob=p).train()
    x = torch.randn(4, 6, 8, generator=gen(seed))
    mask = padding_mask(torch.tensor([[0, 0, 3, 4, 5, 6]] * 2 + [[1, 2, 3, 4, 5, 6]] * 2))
    calls = []
    monkeypatch.setattr(fast_attention, "attention_with_dropout",
                        lambda *a, **kw: calls.append(1) or attention_with_dropout(*a, **kw))
    return mha, x, mask, calls


def test_multi_head_attention_trains_through_the_fused_path_with_the_plain_paths_numbers(monkeypatch):
    """In CPU training ``fast=True`` takes fast/attention.py; with the same seed its output and every weight's
    gradient equal the from-scratch path's (``fast=False``)."""
    mha, x, mask, calls = _training_attention(monkeypatch, 0.2, seed=1)
    results = []
    for fast in (False, True):
        mha.zero_grad()
        torch.manual_seed(0)
        out, _ = mha(x, attn_mask=mask, fast=fast)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in mha.parameters()]))
    assert calls == [1]  # only the fast=True call went through it
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    for a, c in zip(results[0][1], results[1][1]):
        assert torch.allclose(a, c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p, bf16, expect_fast", [(0.2, False, True), (0.2, True, True), (0.0, True, True),
                                                  (0.0, False, False)])
def test_multi_head_attention_picks_its_cpu_training_path_by_dropout_and_precision(monkeypatch, p, bf16, expect_fast):
    """CPU training goes through fast/attention.py with attention dropout (PyTorch's fused kernel draws slow random
    numbers) and in bfloat16 (where the fused kernel is slow on a CPU); float32 without dropout keeps
    the fused kernel. Either way the output is the from-scratch path's, to the rounding of the arithmetic used."""
    mha, x, mask, calls = _training_attention(monkeypatch, p, seed=2)
    outs = []
    for fast in (False, True):
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out, _ = mha(x, attn_mask=mask, fast=fast)
        outs.append(out.detach().float())
    assert calls == ([1] if expect_fast else [])
    tolerance = 0.03 if bf16 else 1e-5  # bf16 keeps 8 bits of mantissa
    assert (outs[0] - outs[1]).abs().max() <= tolerance * outs[0].abs().max()
