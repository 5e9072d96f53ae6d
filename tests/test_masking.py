import pytest
import torch

from minibert4rec.masking import ClozeDataset, cloze_mask, inference_inputs, left_pad, mask_last, sliding_windows

MASK = 99


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_batch(b: int = 64, n: int = 20, n_items: int = 50, seed: int = 0) -> torch.Tensor:
    """Left-padded rows with 0..n real items each (some rows empty)."""
    g = gen(seed)
    items = torch.randint(1, n_items + 1, (b, n), generator=g)
    lengths = torch.randint(0, n + 1, (b,), generator=g)
    return torch.where(torch.arange(n) >= n - lengths[:, None], items, 0)


# --------------------------------------------------------------------------------------------- cloze_mask
def test_cloze_mask_invariants():
    items = random_batch()
    inputs, labels = cloze_mask(items, 0.3, MASK, gen(1))
    masked = inputs == MASK
    real = items > 0
    assert not (masked & ~real).any()  # padding never masked
    assert torch.equal(masked.any(1), real.any(1))  # >= 1 mask per non-empty row, none in empty rows
    assert torch.equal(labels, torch.where(masked, items, 0))  # labels = original item exactly where masked
    assert torch.equal(inputs[~masked], items[~masked])  # everything else unchanged


@pytest.mark.parametrize("ratio, length", [(0.2, 10), (0.5, 4), (0.0, 8), (0.15, 200)])
def test_mask_rate_matches_expectation_with_at_least_one_rule(ratio, length):
    items = torch.randint(1, 51, (4000, length), generator=gen(2))
    items[:, : length // 4] = 0  # some padding, which must not count
    real = length - length // 4
    inputs, _ = cloze_mask(items, ratio, MASK, gen(3), rule="independent")
    rate = (inputs == MASK).sum().item() / (4000 * real)
    expected = (real * ratio + (1 - ratio) ** real) / real  # the >=1 rule adds a mask when the draw gave none
    assert abs(rate - expected) < 0.01


@pytest.mark.parametrize("rule", ["independent", "fixed"])
def test_forced_mask_is_uniform_over_real_positions(rule):
    items = torch.tensor([[0, 0, 1, 2, 3, 4]]).repeat(8000, 1)
    inputs, _ = cloze_mask(items, 0.0, MASK, gen(4), rule=rule)  # ratio 0: exactly one forced mask per row
    assert ((inputs == MASK).sum(1) == 1).all()
    freq = (inputs == MASK).float().mean(0)
    assert freq[:2].sum() == 0 and torch.allclose(freq[2:], torch.full((4,), 0.25), atol=0.02)


def test_bert_80_10_10():
    items = torch.randint(1, 51, (2000, 50), generator=gen(5))
    inputs, labels = cloze_mask(items, 0.5, MASK, gen(6), n_items=50, replace_prob=(0.8, 0.1, 0.1))
    masked = labels > 0
    total = masked.sum().item()
    shown_mask = (inputs == MASK) & masked
    kept = (inputs == items) & masked  # includes random draws that happened to pick the same item (1/50 of 10%)
    changed = masked & ~shown_mask & ~kept
    assert abs(shown_mask.sum().item() / total - 0.8) < 0.01
    assert abs(kept.sum().item() / total - (0.1 + 0.1 / 50)) < 0.01
    assert abs(changed.sum().item() / total - 0.1 * 49 / 50) < 0.01
    assert inputs[changed].min() >= 1 and inputs[changed].max() <= 50
    assert torch.equal(inputs[~masked], items[~masked])
    assert torch.equal(labels[masked], items[masked])


def test_cloze_mask_is_deterministic_under_a_generator():
    items = random_batch()
    a = cloze_mask(items, 0.2, MASK, gen(7))
    b = cloze_mask(items, 0.2, MASK, gen(7))
    c = cloze_mask(items, 0.2, MASK, gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_bad_mask_ratio(ratio):
    with pytest.raises(ValueError, match=r"mask_ratio=.* must be a number in \[0, 1\)"):
        cloze_mask(torch.ones(2, 3, dtype=torch.long), ratio, MASK)


@pytest.mark.parametrize("items", [torch.ones(3, dtype=torch.long), torch.ones(2, 3, 4, dtype=torch.long),
                                   torch.ones(2, 3), [[1, 2]]])
def test_bad_shapes(items):
    with pytest.raises(ValueError, match="2-D integer tensor"):
        cloze_mask(items, 0.2, MASK)
    with pytest.raises(ValueError, match="2-D integer tensor"):
        mask_last(items, MASK)


def test_bad_replace_prob():
    with pytest.raises(ValueError, match="summing to 1"):
        cloze_mask(torch.ones(2, 3, dtype=torch.long), 0.2, MASK, replace_prob=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="needs the number of items"):
        cloze_mask(torch.ones(2, 3, dtype=torch.long), 0.2, MASK, replace_prob=(0.8, 0.1, 0.1))


# --------------------------------------------------------------------------------------------- mask_last
def test_mask_last_by_hand():
    items = torch.tensor([[0, 0, 5, 6], [1, 2, 3, 4], [0, 0, 0, 7], [0, 0, 0, 0]])
    inputs, labels = mask_last(items, MASK)
    assert inputs.tolist() == [[0, 0, 5, MASK], [1, 2, 3, MASK], [0, 0, 0, MASK], [0, 0, 0, 0]]
    assert labels.tolist() == [[0, 0, 0, 6], [0, 0, 0, 4], [0, 0, 0, 7], [0, 0, 0, 0]]


def test_mask_last_on_random_batch_masks_exactly_the_last_real_item():
    items = random_batch()
    inputs, labels = mask_last(items, MASK)
    nonempty = items[:, -1] > 0  # left padding: the last real item is at n-1
    assert torch.equal((labels > 0).sum(1), nonempty.long())
    assert torch.equal(labels[:, -1], items[:, -1]) and torch.equal(inputs[:, :-1], items[:, :-1])


# --------------------------------------------------------------------------------------------- padding & windows
def test_left_pad_and_inference_inputs_by_hand():
    seqs = [[1, 2, 3, 4, 5], [7], []]
    assert left_pad(seqs, 3).tolist() == [[3, 4, 5], [0, 0, 7], [0, 0, 0]]
    assert left_pad(seqs, 3, pad_id=-1).tolist() == [[3, 4, 5], [-1, -1, 7], [-1, -1, -1]]
    assert inference_inputs(seqs, 3, MASK).tolist() == [[4, 5, MASK], [0, 7, MASK], [0, 0, MASK]]
    assert inference_inputs([[1, 2]], 2, MASK).tolist() == [[2, MASK]]  # not history[-0:] = whole history
    assert left_pad(seqs, 3).dtype == torch.long


def test_sliding_windows_by_hand():
    assert sliding_windows([1, 2, 3, 4, 5, 6, 7], 4, 2) == [[1, 2, 3, 4], [2, 3, 4, 5], [4, 5, 6, 7]]
    assert sliding_windows([1, 2, 3], 4) == [[1, 2, 3]]  # shorter than max_len: one window
    assert sliding_windows([1, 2, 3, 4], 4) == [[1, 2, 3, 4]]
    assert sliding_windows([1, 2, 3, 4, 5], 4) == [[1, 2, 3, 4], [2, 3, 4, 5]]  # default step = 2
    assert sliding_windows([1, 2, 3, 4, 5, 6], 3, 3) == [[1, 2, 3], [4, 5, 6]]
    assert sliding_windows([], 4) == []


@pytest.mark.parametrize("length, max_len, step", [(1, 2, 1), (50, 10, 5), (51, 10, 3), (200, 20, 20), (37, 8, None)])
def test_sliding_windows_cover_everything_and_end_at_last(length, max_len, step):
    seq = list(range(1, length + 1))
    windows = sliding_windows(seq, max_len, step)
    assert windows[-1][-1] == seq[-1] and windows[0][0] == seq[0]
    assert set().union(*map(set, windows)) == set(seq)
    assert all(1 <= len(w) <= max_len and w == seq[w[0] - 1 : w[-1]] for w in windows)  # contiguous slices


@pytest.mark.parametrize("call", [lambda: sliding_windows([1, 2], 1), lambda: inference_inputs([[1]], 1, MASK),
                                  lambda: ClozeDataset([[1, 2]], 1, 0.2, 3, 2), lambda: left_pad([[1]], 0)])
def test_bad_max_len(call):
    with pytest.raises(ValueError, match="max_len"):
        call()


def test_bad_step():
    with pytest.raises(ValueError, match="step=5 must be an integer between 1 and max_len=4"):
        sliding_windows([1, 2, 3], 4, 5)


# --------------------------------------------------------------------------------------------- ClozeDataset
def toy_sequences(n_users: int = 30, seed: int = 0) -> list[list[int]]:
    g = gen(seed)
    return [torch.randint(1, 21, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n_users)] + [[]]


def test_dataset_windows_match_sliding_windows():
    seqs = toy_sequences()
    ds = ClozeDataset(seqs, 10, 0.2, 21, 20, step=4)
    expected = [w for s in seqs for w in sliding_windows(s, 10, 4)]
    assert len(ds) == len(expected) and torch.equal(ds.windows, left_pad(expected, 10))
    assert torch.equal(ds[0], ds.windows[0])


def test_dataset_batches_shapes_and_invariants():
    ds = ClozeDataset(toy_sequences(), 10, 0.2, 21, 20)
    batches = list(ds.batches(16, epoch=1))
    assert len(batches) == ds.num_batches(16) == -(-len(ds) // 16)
    assert sum(len(x) for x, _ in batches) == len(ds)
    for inputs, labels in batches:
        assert inputs.shape == labels.shape and inputs.shape[1] == 10 and inputs.dtype == labels.dtype == torch.long
        assert ((labels > 0).sum(1) >= 1).all()
        assert torch.equal(inputs == 21, labels > 0)
    seen = torch.cat([torch.where(l > 0, l, x) for x, l in batches])  # unmask -> the windows, shuffled
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, ds.windows.tolist()))


def test_dataset_is_deterministic_per_seed_and_epoch():
    ds = ClozeDataset(toy_sequences(), 10, 0.2, 21, 20, last_item_ratio=0.2, seed=3)
    again = ClozeDataset(toy_sequences(), 10, 0.2, 21, 20, last_item_ratio=0.2, seed=3)
    first = [torch.cat(t) for t in zip(*ds.batches(8, epoch=2))]
    assert all(torch.equal(a, b) for a, b in zip(first, [torch.cat(t) for t in zip(*again.batches(8, epoch=2))]))
    assert not torch.equal(first[0], torch.cat([x for x, _ in ds.batches(8, epoch=3)]))
    other_seed = ClozeDataset(toy_sequences(), 10, 0.2, 21, 20, last_item_ratio=0.2, seed=4)
    assert not torch.equal(first[0], torch.cat([x for x, _ in other_seed.batches(8, epoch=2)]))


def test_last_item_ratio_adds_mask_last_samples():
    seqs = [list(range(1, 9))] * 200  # one window per user, long enough that Cloze rarely masks only the last
    ds = ClozeDataset(seqs, 8, 0.5, 21, 20, last_item_ratio=0.2)
    assert ds.samples_per_epoch == 200 + 50  # K = w r / (1 - r): a fraction r of the epoch's samples
    inputs = torch.cat([x for x, _ in ds.batches(32, epoch=0)])
    only_last = ((inputs == 21).sum(1) == 1) & (inputs[:, -1] == 21)
    assert 50 <= only_last.sum().item() <= 50 + 5  # 50 mask-last + the few Cloze draws that happen to match (~0.4%)
    unshuffled = torch.cat([x for x, _ in ds.batches(32, epoch=0, shuffle=False)])
    extra = unshuffled[200:]  # shuffle=False: the Cloze samples first, then the mask-last samples
    assert torch.equal(extra == 21, torch.zeros_like(extra, dtype=torch.bool).index_fill_(1, torch.tensor([7]), True))


def test_dataset_validation():
    with pytest.raises(ValueError, match="outside 1..n_items=5"):
        ClozeDataset([[1, 6]], 4, 0.2, 7, 5)
    with pytest.raises(ValueError, match="mask_id=5 collides"):
        ClozeDataset([[1, 2]], 4, 0.2, 5, 5)
    with pytest.raises(ValueError, match="no items"):
        ClozeDataset([[], []], 4, 0.2, 6, 5)
    with pytest.raises(ValueError, match="last_item_ratio"):
        ClozeDataset([[1, 2]], 4, 0.2, 6, 5, last_item_ratio=1.0)
    with pytest.raises(ValueError, match="mask_ratio"):
        ClozeDataset([[1, 2]], 4, 1.0, 6, 5)
    with pytest.raises(ValueError, match="batch_size"):
        next(ClozeDataset([[1, 2]], 4, 0.2, 6, 5).batches(0, epoch=1))


def test_fixed_rule_masks_exactly_round_len_ratio_capped():
    """rule="fixed" (the authors'): exactly min(cap, max(1, round(L * ratio))) masks in a row of L real items."""
    items = random_batch(b=400, n=60, seed=3)
    lengths = (items != 0).sum(dim=1)
    for ratio, cap in [(0.2, 40), (0.6, 5), (0.05, 40)]:
        inputs, labels = cloze_mask(items, ratio, mask_id=99, generator=gen(1), rule="fixed", max_predictions=cap)
        expected = torch.tensor([min(cap, max(1, round(int(n) * ratio))) if n > 0 else 0 for n in lengths])
        assert torch.equal((labels > 0).sum(dim=1), expected)
        assert not ((items == 0) & (labels > 0)).any()  # never padding
        assert torch.equal(labels[labels > 0], items[labels > 0])
        assert (inputs[labels > 0] == 99).all() and torch.equal(inputs[labels == 0], items[labels == 0])


def test_fixed_rule_picks_a_uniform_subset():
    """Every real position of a 10-item row is hidden with probability k / 10 = 0.3 (k = round(10 * 0.3))."""
    items = torch.arange(1, 11).repeat(20_000, 1)  # (20000 10)
    _, labels = cloze_mask(items, 0.3, mask_id=99, generator=gen(2), rule="fixed", max_predictions=40)
    freq = (labels > 0).float().mean(dim=0)
    assert torch.allclose(freq, torch.full((10,), 0.3), atol=0.015)  # 4.6 standard errors
    pairs = ((labels[:, 0] > 0) & (labels[:, 9] > 0)).float().mean()
    assert abs(float(pairs) - 3 / 10 * 2 / 9) < 0.01  # without replacement: P(both) = k(k-1) / (L(L-1))


def test_fixed_rule_options_are_checked():
    with pytest.raises(ValueError, match="rule="):
        cloze_mask(random_batch(), 0.2, mask_id=99, rule="poisson")
    with pytest.raises(ValueError, match="max_predictions"):
        cloze_mask(random_batch(), 0.2, mask_id=99, rule="fixed", max_predictions=None)
    with pytest.raises(ValueError, match="max_predictions"):
        ClozeDataset(toy_sequences(), 8, 0.2, mask_id=99, n_items=60, rule="fixed", max_predictions=0)


def test_defaults_are_the_trainers_rule():
    """cloze_mask and ClozeDataset default to the trainer's masking (BERT4RecConfig: "fixed", cap 40)."""
    from minibert4rec.support.config import BERT4RecConfig

    config = BERT4RecConfig()
    items = random_batch(b=200, n=120, seed=5)
    default = cloze_mask(items, 0.5, MASK, gen(9))
    explicit = cloze_mask(items, 0.5, MASK, gen(9), rule=config.masking, max_predictions=config.max_predictions)
    assert torch.equal(default[0], explicit[0]) and torch.equal(default[1], explicit[1])
    assert (default[1] > 0).sum(dim=1).max() == config.max_predictions == 40  # the cap binds on long rows
    ds = ClozeDataset(toy_sequences(), 10, 0.2, 21, 20)
    assert (ds.rule, ds.max_predictions) == (config.masking, config.max_predictions)
