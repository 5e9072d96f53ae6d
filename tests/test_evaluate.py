"""The protocol driver: one path for every model, the popularity baseline included (same counts, same negatives)."""

import pytest
import torch

from minibert4rec import evaluate as evaluate_module, train as train_module

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.data import synthetic_sequences
from minibert4rec.evaluate import (curve_subset, evaluate_popularity, evaluate_split, held_out, metrics_table,
                                   negative_counts, prepare_split)
from minibert4rec.model import BERT4Rec

TINY = dict(hidden_size=16, inner_size=32, n_heads=2, max_seq_length=10, batch_size=32, device="cpu", seed=3,
            eval_negatives=20, epochs=1, threads=1)


@pytest.fixture(scope="module")
def data():
    return synthetic_sequences(n_users=120, n_items=80, seed=2)


@pytest.fixture
def drawn(monkeypatch):
    """Every call of evaluate.draw_negatives: (counts, targets, interacted, n_negatives, seed) -> negatives."""
    calls = []
    original = evaluate_module.draw_negatives

    def recording(item_counts, targets, interacted, n_negatives, seed, batch_size=1024):
        negatives = original(item_counts, targets, interacted, n_negatives, seed, batch_size)
        calls.append({"counts": item_counts.clone(), "targets": torch.as_tensor(targets).clone(),
                      "interacted": [list(i) for i in interacted], "seed": seed, "negatives": negatives})
        return negatives

    monkeypatch.setattr(evaluate_module, "draw_negatives", recording)
    return calls


@pytest.mark.parametrize("counts", ["train", "whole"])
def test_popularity_and_the_trainer_rank_against_the_same_negatives(data, drawn, counts):
    config = BERT4RecConfig(popularity_counts=counts, **TINY)
    result = train_module.train(config, data, progress=False)  # its final test evaluation draws negatives
    _, test_targets, _ = held_out(data, "test")
    trainer = [c for c in drawn if c["targets"].tolist() == test_targets]
    assert trainer, "the trainer evaluated the test split without drawing negatives"
    drawn.clear()
    popularity = evaluate_popularity(data, config=config)
    (baseline,) = drawn
    for key in ("counts", "targets", "interacted", "seed"):
        assert (torch.equal(trainer[-1][key], baseline[key]) if isinstance(baseline[key], torch.Tensor)
                else trainer[-1][key] == baseline[key]), key
    assert torch.equal(trainer[-1]["negatives"], baseline["negatives"])
    assert baseline["seed"] == config.seed and baseline["negatives"].shape == (len(test_targets), 20)
    assert set(popularity) == set(result.test)  # the same protocols, so the rows line up
    # the CLI's evaluate goes the same way: evaluate_split with the model's config
    drawn.clear()
    assert evaluate_split(result.model, data, config, "test") == result.test
    assert torch.equal(drawn[0]["negatives"], baseline["negatives"])


def test_negatives_never_hold_an_item_of_the_users_whole_sequence(data, drawn):
    evaluate_popularity(data, "valid", config=BERT4RecConfig(**TINY))
    (call,) = drawn
    histories, targets, interacted = held_out(data, "valid")
    for row, whole, target in zip(call["negatives"].tolist(), interacted, targets):
        assert not set(row) & set(whole) and target in whole  # the test item of a validation user is excluded too


def test_popularity_counts_train_or_whole(data):
    config = BERT4RecConfig(popularity_counts="train", **TINY)
    train_counts = negative_counts(data, config)
    assert torch.equal(train_counts, data.item_counts())
    whole = negative_counts(data, config.replace(popularity_counts="whole"))
    expected = torch.zeros(data.n_items + 1, dtype=torch.long)
    for seq in data.sequences:
        for item in seq:
            expected[item] += 1
    assert torch.equal(whole, expected) and whole.sum() == data.n_actions
    assert whole.sum() - train_counts.sum() == 2 * len(held_out(data, "test")[1])  # + valid and test items
    assert BERT4RecConfig().popularity_counts == "whole"  # the authors' (measured as good: docs/differences.md)
    paper = negative_counts(data, config.replace(include_valid_in_train=True))
    assert torch.equal(paper, data.item_counts(include_valid_in_train=True))
    a = evaluate_popularity(data, config=config)["sampled"]
    b = evaluate_popularity(data, config=config.replace(popularity_counts="whole"))["sampled"]
    assert a != b  # other counts, other negatives
    with pytest.raises(ValueError, match="popularity_counts"):
        BERT4RecConfig(popularity_counts="all")


def test_popularity_defaults_are_the_trainers(data):
    default = evaluate_popularity(data, n_negatives=20)
    assert default == evaluate_popularity(data, config=BERT4RecConfig(eval_negatives=20))  # seed 42, as train()
    seeded = evaluate_popularity(data, seed=5, n_negatives=20)
    assert seeded == evaluate_popularity(data, config=BERT4RecConfig(seed=5, eval_negatives=20))
    assert seeded["sampled"] != default["sampled"]  # another seed, other negatives
    assert seeded["full"] == default["full"]  # full ranking has no negatives: seed-free


def test_a_subset_of_users_is_the_same_users_metrics(data):
    model = BERT4Rec(BERT4RecConfig(**TINY), data.n_items)
    config = BERT4RecConfig(**TINY)
    n_users = len(held_out(data, "valid")[1])
    users = curve_subset(n_users, 30, seed=0)
    assert users == curve_subset(n_users, 30, seed=0) and len(users) == 30 and users == sorted(users)
    assert curve_subset(n_users, 0, seed=0) == list(range(n_users))
    part = evaluate_split(model, data, config, "valid", users=users)
    histories, targets, interacted = held_out(data, "valid")
    direct = evaluate_module.evaluate(model, [histories[u] for u in users], [targets[u] for u in users],
                                      negative_counts(data, config), max_len=10, mask_id=data.mask_id,
                                      n_negatives=20, interacted=[interacted[u] for u in users], seed=3)
    assert part == direct
    prepared = prepare_split(data, config, "valid")  # what the trainer builds once per run
    assert evaluate_split(model, data, config, prepared, users=users) == part
    with pytest.raises(ValueError, match="split='train' is not a held-out split"):
        held_out(data, "train")


def test_metrics_table_labels():
    table = metrics_table({"test": {"full": {"MRR": 0.1, "HR@1": 0.2}, "full_filtered": {"MRR": 0.3, "HR@1": 0.4}}})
    assert list(table.index) == ["test / full, seen kept", "test / full, seen removed"]
    assert list(table.columns) == ["HR@1", "MRR"]  # the package's metric order
    # a sampled number says against how many negatives it was measured
    sampled = {"sampled": {"MRR": 0.5}}
    assert list(metrics_table({"test": sampled}).index) == ["test / sampled (100 neg.)"]
    assert list(metrics_table({"test": sampled}, n_negatives=20).index) == ["test / sampled (20 neg.)"]
