"""Ranking metrics: values worked out by hand, pessimistic ties, exclusion, popularity sampling, errors, speed."""

import math

import pytest
import torch
import torch.nn.functional as F

from minibert4rec.metrics import (
    evaluate_scores,
    hit_rate_at_k,
    mrr,
    ndcg_at_k,
    ranking_metrics,
    recall_at_k,
    sampled_ranks,
    target_ranks,
)
from minibert4rec.fast.sampler import sample_negatives


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- metrics from ranks
def test_metric_values_by_hand():
    ranks = torch.tensor([1, 3, 11])
    assert hit_rate_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert hit_rate_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(ranks, 11) == pytest.approx(1.0)
    assert ndcg_at_k(ranks, 10) == pytest.approx((1 + 1 / math.log2(4) + 0) / 3)  # = 0.5
    assert ndcg_at_k(ranks, 11) == pytest.approx((1 + 0.5 + 1 / math.log2(12)) / 3)
    assert mrr(ranks) == pytest.approx((1 + 1 / 3 + 1 / 11) / 3)
    assert mrr(ranks, k=10) == pytest.approx((1 + 1 / 3) / 3)  # RecBole MRR@10: rank 11 counts 0


def test_ranking_metrics_keys_and_values():
    out = ranking_metrics(torch.tensor([1, 3, 11]))
    assert list(out) == ["HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"]
    assert all(isinstance(v, float) for v in out.values())
    assert out["HR@5"] == pytest.approx(2 / 3)
    assert out["NDCG@5"] == pytest.approx(0.5)
    assert out["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 3)


# ----------------------------------------------------------------------------- full ranking
def test_target_ranks_by_hand_and_padding_ignored():
    #                        pad   1    2    3    4
    scores = torch.tensor([[99.0, 0.1, 0.9, 0.5, 0.3],
                           [99.0, 0.1, 0.9, 0.5, 0.3],
                           [99.0, 0.1, 0.9, 0.5, 0.3]])
    ranks = target_ranks(scores, torch.tensor([2, 3, 1]))
    assert ranks.tolist() == [1, 2, 4]  # column 0 (99.0) never outranks anything
    assert ranks.dtype == torch.long


def test_ties_are_pessimistic():
    scores = torch.zeros(2, 6)  # constant model, 5 items
    assert target_ranks(scores, [1, 5]).tolist() == [5, 5]
    scores = torch.tensor([[0.0, 1.0, 2.0, 2.0, 0.0]])
    assert target_ranks(scores, [2]).tolist() == [2]  # item 3 ties with the target and goes first
    assert sampled_ranks(scores, [2], torch.tensor([[3, 1]])).tolist() == [2]


def test_target_ranks_match_brute_force():
    g = gen(1)
    scores = torch.randint(0, 4, (30, 9), generator=g).float()  # many ties
    targets = torch.randint(1, 9, (30,), generator=g)
    expected = [1 + sum(scores[r, j] >= scores[r, t] for j in range(1, 9) if j != t) for r, t in enumerate(targets.tolist())]
    assert target_ranks(scores, targets).tolist() == expected


def test_exclusion_and_target_never_excluded():
    scores = torch.tensor([[0.0, 0.1, 0.9, 0.5, 0.3, 0.8]])
    assert target_ranks(scores, [4]).tolist() == [4]  # items 2, 5, 3 above
    assert target_ranks(scores, [4], exclude=[[2, 5]]).tolist() == [2]  # only item 3 left above
    assert target_ranks(scores, [4], exclude=[[2, 5, 4, 0]]).tolist() == [2]  # target in the list: still ranked
    assert target_ranks(scores, [4], exclude=[[1]]).tolist() == [4]  # excluding a lower item changes nothing
    two = scores.repeat(2, 1)
    assert target_ranks(two, [4, 4], exclude=[[2, 3, 5], []]).tolist() == [1, 4]  # rows are independent


# ----------------------------------------------------------------------------- sampled protocol
def test_sampled_ranks_by_hand():
    scores = torch.tensor([[0.0, 0.1, 0.9, 0.5, 0.3, 0.8]])
    assert sampled_ranks(scores, [4], torch.tensor([[1, 2, 3]])).tolist() == [3]
    assert sampled_ranks(scores, [2], torch.tensor([[1, 3, 4, 5]])).tolist() == [1]
    with pytest.raises(ValueError, match="own target"):
        sampled_ranks(scores, [4], torch.tensor([[4, 1]]))
    with pytest.raises(ValueError, match="1..5"):
        sampled_ranks(scores, [4], torch.tensor([[0, 1]]))


def test_negatives_never_target_padding_or_excluded():
    n_items = 30
    counts = torch.arange(n_items + 1)  # item i seen i times; padding 0
    targets = torch.randint(1, n_items + 1, (500,), generator=gen(2))
    exclude = [list(range(1, 1 + (r % 10))) + [t] for r, t in enumerate(targets.tolist())]
    neg = sample_negatives(counts, targets, n_negatives=15, exclude=exclude, generator=gen(3))
    assert neg.shape == (500, 15) and neg.dtype == torch.long
    assert ((neg >= 1) & (neg <= n_items)).all()  # never padding 0, never mask id N+1
    assert not (neg == targets[:, None]).any()
    for row, ex in zip(neg.tolist(), exclude):
        assert len(set(row)) == 15  # without replacement
        assert not set(row) & set(ex)


def test_first_negative_follows_popularity():
    # items 1..5 seen 1,2,3,4,10 times; item 6 is the target. Column 0 is the first Plackett-Luce draw,
    # distributed exactly proportional to popularity.
    counts = torch.tensor([0, 1, 2, 3, 4, 10, 5])
    draws = 20_000
    neg = sample_negatives(counts, torch.full((draws,), 6), n_negatives=1, generator=gen(4))
    observed = torch.bincount(neg[:, 0], minlength=7)[1:6].double()
    expected = torch.tensor([1, 2, 3, 4, 10], dtype=torch.double) / 20 * draws
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    assert chi2 < 18.47  # 99.9% quantile of chi-square with 4 degrees of freedom


def test_pairs_follow_sampling_without_replacement():
    # weights 1,2,3 (items 1..3), target 4. Two draws without replacement, by hand:
    # P{1,2} = 1/6*2/5 + 2/6*1/4 = 9/60, P{1,3} = 1/6*3/5 + 3/6*1/3 = 16/60, P{2,3} = 2/6*3/4 + 3/6*2/3 = 35/60.
    counts = torch.tensor([0, 1, 2, 3, 7])
    draws = 20_000
    neg = sample_negatives(counts, torch.full((draws,), 4), n_negatives=2, generator=gen(5))
    missing = 6 - neg.sum(dim=1)  # the item not drawn: 3 -> {1,2}, 2 -> {1,3}, 1 -> {2,3}
    observed = torch.stack([(missing == m).sum() for m in (3, 2, 1)]).double()
    expected = torch.tensor([9, 16, 35], dtype=torch.double) / 60 * draws
    assert ((observed - expected) ** 2 / expected).sum().item() < 13.82  # 99.9% quantile, 2 dof


def test_zero_popularity_fallbacks():
    zeros = torch.zeros(11, dtype=torch.long)  # no item seen in training: uniform over allowed items
    neg = sample_negatives(zeros, torch.full((4000,), 1), n_negatives=1, generator=gen(6))
    freq = torch.bincount(neg[:, 0], minlength=11)[2:].double() / 4000
    assert ((freq - 1 / 9).abs() < 0.03).all()
    # only items 2 and 3 are popular: both always come first, zero-count items fill the rest.
    counts = torch.tensor([0, 0, 5, 1, 0, 0, 0])
    neg = sample_negatives(counts, torch.full((200,), 1), n_negatives=4, generator=gen(7))
    assert (neg[:, :2].sort(dim=1).values == torch.tensor([2, 3])).all()
    assert set(neg[:, 2:].flatten().tolist()) == {4, 5, 6}


def test_sampling_is_deterministic_with_seeded_generator():
    counts = torch.randint(0, 50, (101,), generator=gen(8))
    targets = torch.randint(1, 101, (64,), generator=gen(9))
    a = sample_negatives(counts, targets, 20, generator=gen(10))
    b = sample_negatives(counts, targets, 20, generator=gen(10))
    c = sample_negatives(counts, targets, 20, generator=gen(11))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampling_errors():
    counts = torch.ones(6)
    with pytest.raises(ValueError, match="only 3 items left"):
        sample_negatives(counts, [1], n_negatives=4, exclude=[[2]])
    with pytest.raises(ValueError, match="non-negative"):
        sample_negatives(torch.tensor([0.0, 1.0, -1.0]), [1], n_negatives=1)
    with pytest.raises(ValueError, match="1..5"):
        sample_negatives(counts, [6], n_negatives=1)
    with pytest.raises(ValueError, match="1-D"):
        sample_negatives(torch.ones(2, 6), [1], n_negatives=1)


# ----------------------------------------------------------------------------- convenience + errors
def test_evaluate_scores_both_protocols():
    n_items, b = 200, 50
    targets = torch.randint(1, n_items + 1, (b,), generator=gen(12))
    perfect = torch.zeros(b, n_items + 1)
    perfect[torch.arange(b), targets] = 1.0
    counts = torch.ones(n_items + 1)
    for protocol in ("full", "sampled"):
        out = evaluate_scores(perfect, targets, protocol=protocol, item_counts=counts, generator=gen(0))
        assert out == {"HR@1": 1.0, "HR@5": 1.0, "HR@10": 1.0, "NDCG@5": 1.0, "NDCG@10": 1.0, "MRR": 1.0}
    constant = torch.zeros(b, n_items + 1)  # pessimistic ties: last of 101 when sampled, last of 200 when full
    assert evaluate_scores(constant, targets, "sampled", counts, generator=gen(0))["MRR"] == pytest.approx(1 / 101)
    assert evaluate_scores(constant, targets, "full")["MRR"] == pytest.approx(1 / 200)
    assert evaluate_scores(constant, targets, "full", exclude=[list(range(1, 101))] * b)["MRR"] == pytest.approx(1 / 100, rel=0.05)


def test_clear_errors():
    scores = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(torch.tensor([[0.0, float("nan"), 1.0]]), [2])
    with pytest.raises(ValueError, match="1..4"):
        target_ranks(scores, [0, 1])
    with pytest.raises(ValueError, match="1..4"):
        target_ranks(scores, [1, 5])
    with pytest.raises(ValueError, match="2 rows but targets has 3"):
        target_ranks(scores, [1, 2, 3])
    with pytest.raises(ValueError, match="one list"):
        target_ranks(scores, [1, 2], exclude=[[1]])
    with pytest.raises(ValueError, match="outside 0..4"):
        target_ranks(scores, [1, 2], exclude=[[7], []])
    with pytest.raises(ValueError, match="float tensor"):
        target_ranks(torch.zeros(5), [1])
    with pytest.raises(ValueError, match="1-based"):
        hit_rate_at_k(torch.tensor([0, 1]), 10)
    with pytest.raises(ValueError, match="positive integer"):
        ndcg_at_k(torch.tensor([1]), 0)
    with pytest.raises(ValueError, match="non-empty"):
        mrr(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="item_counts"):
        evaluate_scores(scores, [1, 2], protocol="sampled")
    with pytest.raises(ValueError, match="protocol"):
        evaluate_scores(scores, [1, 2], protocol="approximate")


def test_ml1m_sized_evaluation_runs_on_the_whole_matrix_at_once():
    """ML-1m-sized inputs (6,040 users x 3,417 items) in one call. Its speed is measured by benchmarks/, not here:
    a timed assertion fails on a busy machine and proves nothing on an idle one."""
    b, n_items = 6040, 3417
    scores = torch.randn(b, n_items + 1, generator=gen(13))
    targets = torch.randint(1, n_items + 1, (b,), generator=gen(14))
    counts = torch.randint(0, 1000, (n_items + 1,), generator=gen(15))
    ranks = target_ranks(scores, targets)
    negatives = sample_negatives(counts, targets, 100, generator=gen(16))
    sampled = sampled_ranks(scores, targets, negatives)
    assert ranks.float().mean().item() == pytest.approx(n_items / 2, rel=0.05)  # random scores: middle of the list
    assert sampled.float().mean().item() == pytest.approx(101 / 2, rel=0.05)  # ... of either list


@pytest.mark.parametrize("causal", [False, True])
def test_evaluate_equals_a_plain_loop_over_users(causal):
    """evaluate() sorts users by length and trims padding; the ranks must equal the obvious per-user loop."""
    from minibert4rec.support.config import BERT4RecConfig
    from minibert4rec.model import BERT4Rec
    from minibert4rec.evaluate import evaluate, model_inputs

    n_items, max_len = 150, 12
    torch.manual_seed(0)
    model = BERT4Rec(BERT4RecConfig(hidden_size=16, inner_size=32, max_seq_length=max_len, causal=causal), n_items)
    g = gen(21)
    histories = [torch.randint(1, n_items + 1, (int(n),), generator=g).tolist()
                 for n in torch.randint(1, 30, (37,), generator=g)]
    targets = torch.randint(1, n_items + 1, (37,), generator=g).tolist()
    counts = torch.randint(1, 50, (n_items + 1,), generator=g)
    got = evaluate(model, histories, targets, counts, max_len=max_len, mask_id=n_items + 1, batch_size=8)
    # reference: users in their own order, full max_len inputs, the same negatives (same seed, same batches)
    model.eval()
    with torch.no_grad():
        hidden, _ = model(model_inputs(model, histories, max_len, n_items + 1))  # (U L D), untrimmed
        scores = F.pad(model.item_logits(hidden[:, -1]), (1, 0), value=-math.inf)
    generator = torch.Generator().manual_seed(0)
    negatives = torch.cat([sample_negatives(counts, targets[s:s + 8], 100, exclude=histories[s:s + 8],
                                            generator=generator) for s in range(0, 37, 8)])
    want_full = ranking_metrics(target_ranks(scores, targets))
    want_filtered = ranking_metrics(target_ranks(scores, targets, exclude=histories))
    want_sampled = ranking_metrics(sampled_ranks(scores, torch.tensor(targets), negatives))
    assert got["full"] == pytest.approx(want_full, abs=1e-6)
    assert got["full_filtered"] == pytest.approx(want_filtered, abs=1e-6)
    assert got["sampled"] == pytest.approx(want_sampled, abs=1e-6)
    # removing seen items can only lift the target: the filtered ranks are never worse
    assert got["full_filtered"]["MRR"] >= got["full"]["MRR"] and got["full_filtered"] != got["full"]


def test_evaluate_keeps_everything_the_user_touched_out_of_the_negatives():
    """Validation users' negatives must not contain their own (future) test item: ``interacted`` is excluded."""
    from minibert4rec.support.config import BERT4RecConfig
    from minibert4rec.model import PopularityModel
    from minibert4rec.evaluate import evaluate

    n_items = 120
    counts = torch.ones(n_items + 1, dtype=torch.long)
    counts[100] = 10**9  # item 100 is so popular that it is drawn whenever it is allowed ...
    counts[4] = 10**6  # ... and it is the only item the popularity model ranks above the target, item 4
    histories, targets = [[1, 2, 3]] * 5, [4] * 5
    model = PopularityModel(counts)
    seen = evaluate(model, histories, targets, counts, max_len=5, mask_id=n_items + 1, protocols=("sampled",),
                    n_negatives=110, interacted=[[1, 2, 3, 100]] * 5)
    unseen = evaluate(model, histories, targets, counts, max_len=5, mask_id=n_items + 1, protocols=("sampled",),
                      n_negatives=110)
    # with item 100 among the negatives the popularity model ranks the target below it; without it, not
    assert seen["sampled"]["HR@1"] == 1.0 and unseen["sampled"]["HR@1"] == 0.0
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(model, histories, targets, counts, max_len=5, mask_id=n_items + 1, protocols=("ful",))


# ----------------------------------------------------------------------------- the fast sampler's corner cases
def test_fast_sampler_corner_cases():
    # fewer popular items than n_negatives: the popular ones first, zero-count items after (uniformly)
    counts = torch.tensor([0, 0, 5, 1, 0, 0, 0])
    neg = sample_negatives(counts, torch.full((300,), 1), n_negatives=4, generator=gen(50))
    assert (neg[:, :2].sort(dim=1).values == torch.tensor([2, 3])).all()
    assert set(neg[:, 2:].flatten().tolist()) == {4, 5, 6}
    # every allowed item requested: a permutation of them, whatever the method
    counts = torch.tensor([3, 1, 10**9, 1, 1, 7])
    neg = sample_negatives(counts, [5, 2], n_negatives=3, exclude=[[1], [4]], generator=gen(51))
    assert sorted(neg[0].tolist()) == [2, 3, 4] and sorted(neg[1].tolist()) == [1, 3, 5]
    # mixed rows: some finish by rejection, one excluded every popular item and falls back
    counts = torch.tensor([0] + [100] * 10 + [0] * 90)
    exclude = [[], list(range(1, 11)), [5]]
    neg = sample_negatives(counts, [20, 30, 40], n_negatives=10, exclude=exclude, generator=gen(52))
    assert sorted(neg[0].tolist()) == list(range(1, 11))
    assert not set(neg[1].tolist()) & set(range(1, 11)) and len(set(neg[1].tolist())) == 10
    assert sorted(neg[2].tolist())[:9] == [1, 2, 3, 4, 6, 7, 8, 9, 10]  # 9 popular ones, then one zero-count
    # no rows at all
    assert sample_negatives(torch.ones(10), torch.empty(0, dtype=torch.long), 3).shape == (0, 3)
