"""BERT4Rec's forward pass, masks, loss and output layer: properties that hold for any weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.model import BERT4Rec, ModelConfig, PopularityModel

N_ITEMS = 20


def make_model(**changes) -> BERT4Rec:
    torch.manual_seed(0)
    config = BERT4RecConfig(hidden_size=16, inner_size=32, n_heads=2, max_seq_length=8, **changes)
    return BERT4Rec(config, N_ITEMS).eval()


def test_shapes_and_parameter_count():
    model = make_model()
    x = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 21], [1, 2, 3, 4, 5, 6, 7, 8]])
    hidden, attn = model(x, return_attention=True)
    assert hidden.shape == (2, 8, 16)
    assert len(attn) == 2 and attn[0].shape == (2, 2, 8, 8)
    assert model.predict(x).shape == (2, N_ITEMS + 1)
    D, I, L, V = 16, 32, 8, N_ITEMS
    per_block = 4 * (D * D + D) + (D * I + I) + (I * D + D) + 2 * 2 * D
    expected = (V + 2) * D + L * D + 2 * D + 2 * per_block + (D * D + D) + 2 * D + V
    assert model.num_parameters() == expected


@pytest.mark.parametrize("counting", ["left", "right"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_padding_is_ignored(norm_first, counting):
    """Neither the amount of left padding nor the padding embedding changes the real positions."""
    model = make_model(norm_first=norm_first, position_counting=counting)
    padded = torch.tensor([[0, 0, 0, 0, 3, 9, 4, 21]])
    h_padded, _ = model(padded)
    h_short, _ = model(padded[:, 4:])  # the same history without padding
    assert torch.allclose(h_padded[0, 4:], h_short[0], atol=1e-5)
    with torch.no_grad():
        model.item_embedding.weight[0] += 5.0
    h_perturbed, _ = model(padded)
    assert torch.allclose(h_padded[0, 4:], h_perturbed[0, 4:], atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_bidirectional_sees_the_future_and_causal_does_not(norm_first):
    x = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    y = x.clone()
    y[0, 6] = 15  # change a "future" item for position 3
    for causal in (False, True):
        model = make_model(causal=causal, norm_first=norm_first)
        hx, _ = model(x)
        hy, _ = model(y)
        same = torch.allclose(hx[0, :6], hy[0, :6], atol=1e-6)
        assert same == causal


@pytest.mark.parametrize("norm_first", [False, True])
def test_fast_attention_path_equals_from_scratch_path(norm_first):
    model = make_model(norm_first=norm_first)
    x = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 21], [1, 2, 3, 4, 5, 6, 7, 8]])
    fast, _ = model(x)
    slow, _ = model(x, return_attention=True)
    assert (fast - slow).abs().max() < 1e-5


def test_ce_loss_is_cross_entropy_at_masked_positions_only():
    model = make_model()
    x = torch.tensor([[0, 0, 3, 21, 5, 6, 21, 8]])
    labels = torch.tensor([[0, 0, 0, 4, 0, 0, 7, 0]])
    hidden, _ = model(x)
    logits = model.item_logits(hidden[0, [3, 6]])
    expected = F.cross_entropy(logits, torch.tensor([3, 6])).detach()
    assert torch.allclose(model.loss(x, labels), expected, atol=1e-6)
    # an untrained model is close to uniform: loss near log(N)
    assert abs(expected.item() - math.log(N_ITEMS)) < 0.5


def test_bpr_loss_and_errors():
    model = make_model(loss_type="BPR")
    x = torch.tensor([[0, 0, 3, 21, 5, 6, 21, 8]])
    labels = torch.tensor([[0, 0, 0, 4, 0, 0, 7, 0]])
    loss = model.loss(x, labels, generator=torch.Generator().manual_seed(0))
    assert loss.item() > 0 and abs(loss.item() - math.log(2)) < 0.3
    with pytest.raises(ValueError, match="labels hold no target"):
        model.loss(x, torch.zeros_like(labels))
    with pytest.raises(ValueError, match="max_seq_length=8"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="n_items=0"):
        BERT4Rec(BERT4RecConfig(), 0)


ACTIVATION_FUNCTIONS = {"gelu": F.gelu, "relu": F.relu, "swish": F.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


@pytest.mark.parametrize("act", list(ACTIVATION_FUNCTIONS))
def test_every_activation_is_the_one_the_feed_forward_applies(act):
    """The FFN is ``down(act(up(x)))`` with the configured activation, computed by hand here; and the model's
    outputs change with the activation (same weights: the activations have none), so it cannot be ignored."""
    model = make_model(hidden_act=act)
    ffn = model.blocks[0].feed_forward
    x = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0))
    by_hand = F.linear(ACTIVATION_FUNCTIONS[act](F.linear(x, ffn.up.weight, ffn.up.bias)), ffn.down.weight, ffn.down.bias)
    torch.testing.assert_close(ffn(x), by_hand)
    items = torch.tensor([[0, 0, 0, 0, 1, 2, 3, 21]])
    scores = model.predict(items)
    assert scores[0, 0] == -math.inf and torch.isfinite(scores[0, 1:]).all()
    for other in ACTIVATION_FUNCTIONS.keys() - {act}:
        twin = make_model(hidden_act=other)  # same seed: the same weights
        assert torch.equal(twin.blocks[0].feed_forward.up.weight, ffn.up.weight)
        assert not torch.allclose(twin.predict(items)[0, 1:], scores[0, 1:], atol=1e-6), other


def test_model_config_holds_the_models_fields_of_a_run_config():
    run = BERT4RecConfig(hidden_size=24, inner_size=40, n_heads=3, hidden_act="relu", max_seq_length=9,
                         causal=True, learning_rate=0.5, epochs=3)
    config = ModelConfig.from_run_config(run)
    assert (config.hidden_size, config.inner_size, config.n_heads, config.hidden_act, config.max_seq_length,
            config.causal) == (24, 40, 3, "relu", 9, True)
    assert not hasattr(config, "learning_rate") and not hasattr(config, "epochs")
    torch.manual_seed(0)
    from_run = BERT4Rec(run, N_ITEMS)
    torch.manual_seed(0)
    from_model = BERT4Rec(config, N_ITEMS)
    assert from_run.config == from_model.config == config
    for a, b in zip(from_run.state_dict().values(), from_model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="hidden_act"):
        ModelConfig(hidden_act="softsign")


def test_initialisation_follows_initializer_range():
    model = BERT4Rec(BERT4RecConfig(initializer_range=0.02), 5000)
    std = model.item_embedding.weight.std().item()
    assert 0.018 < std < 0.022
    assert model.output_dense.bias.abs().sum() == 0 and model.embedding_norm.weight.eq(1).all()


def test_popularity_model_ranks_by_count():
    counts = torch.tensor([0, 5, 50, 1])
    scores = PopularityModel(counts).predict(torch.zeros(2, 4, dtype=torch.long))
    assert scores.shape == (2, 4) and scores[0].argmax() == 2 and scores[1, 0] == -math.inf


def test_pre_ln_adds_one_final_layer_norm():
    post, pre = make_model(), make_model(norm_first=True)
    assert pre.num_parameters() == post.num_parameters() + 2 * 16


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_last_position_only_gives_the_same_prediction(norm_first, causal):
    """predict() computes only the last query in the last layer; it must equal reading the full forward pass."""
    model = make_model(norm_first=norm_first, causal=causal)
    x = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 21], [1, 2, 3, 4, 5, 6, 7, 21], [0, 0, 0, 0, 0, 0, 0, 21]])
    full, _ = model(x)
    last, _ = model(x, last_position_only=True)
    assert last.shape == (3, 1, 16)
    torch.testing.assert_close(last[:, 0], full[:, -1], atol=1e-5, rtol=1e-5)
    slow, attn = model(x, return_attention=True, last_position_only=True)  # the from-scratch path agrees too
    torch.testing.assert_close(slow, last, atol=1e-5, rtol=1e-5)
    assert attn[-1].shape == (3, 2, 1, 8) and attn[0].shape == (3, 2, 8, 8)
    expected = F.pad(model.item_logits(full[:, -1]), (1, 0), value=-math.inf)
    torch.testing.assert_close(model.predict(x), expected, atol=1e-5, rtol=1e-5)


def test_popularity_bias_init_starts_the_model_as_the_popularity_baseline():
    """output_bias_init="popularity": at step 0 the scores rank items by training popularity, and the initial
    loss is about popularity's entropy instead of log(N)."""
    from minibert4rec.support.config import BERT4RecConfig
    from minibert4rec.model import BERT4Rec

    torch.manual_seed(0)
    n_items = 200
    counts = torch.cat([torch.zeros(1), torch.arange(n_items, 0, -1).float() ** 2]).long()  # item 1 most popular
    model = BERT4Rec(BERT4RecConfig(hidden_size=16, inner_size=32, max_seq_length=8), n_items)
    model.init_output_bias_from_popularity(counts)
    scores = model.predict(torch.tensor([[3, 4, 5, n_items + 1]]))[0, 1:]
    # the weights' own contribution is small at init: the scores follow log popularity (log counts span ~10)
    log_counts = (counts[1:].float() + 1).log()
    assert torch.corrcoef(torch.stack([scores, log_counts]))[0, 1] > 0.98
    fresh = BERT4Rec(BERT4RecConfig(hidden_size=16, inner_size=32, max_seq_length=8), n_items)  # zeros: no such order
    assert abs(torch.corrcoef(torch.stack([fresh.predict(torch.tensor([[3, n_items + 1]]))[0, 1:], log_counts]))[0, 1]) < 0.5
    targets = torch.multinomial(counts[1:].float(), 4000, replacement=True) + 1  # items drawn by popularity
    probs = counts[1:].float() / counts[1:].sum()
    entropy = float(-(probs * probs.log()).sum())
    logits = model.item_logits(torch.zeros(1, 16))  # a neutral hidden state
    loss = torch.nn.functional.cross_entropy(logits.expand(len(targets), -1), targets - 1)
    assert abs(float(loss.detach()) - entropy) < 0.05 and entropy < math.log(n_items) - 0.3
    with pytest.raises(ValueError, match="item_counts must have shape"):
        model.init_output_bias_from_popularity(counts[:-1])


@pytest.mark.parametrize("causal", [False, True])
def test_left_counting_equals_right_padding_with_positions_from_the_left(causal):
    """position_counting="left" is the authors' right padding + positions 0, 1, ... from the oldest item:
    recompute that by hand (items first, padding after, position embedding i at column i) and compare."""
    model = make_model(position_counting="left", causal=causal)
    x = torch.tensor([[0, 0, 0, 5, 9, 4, 7, 21], [1, 2, 3, 4, 5, 6, 7, 21]])  # left-padded, [mask] last
    hidden, _ = model(x)
    for row, h in zip(x, hidden):
        real = row[row != 0]  # the history without padding
        n_real = len(real)
        right = torch.cat([real, real.new_zeros(8 - n_real)])[None]  # the authors' layout: right padding
        e = model.item_embedding(right) + model.position_embedding(torch.arange(8))[None]  # positions from the left
        e = model.embedding_norm(e)
        keep = (right != 0)[:, None, None, :]  # (1 1 1 n) nobody attends to padding
        if causal:
            keep = keep & torch.ones(8, 8, dtype=torch.bool).tril()
        for block in model.blocks:
            e, _ = block(e, keep)
        torch.testing.assert_close(h[8 - n_real:], e[0, :n_real], rtol=1e-5, atol=1e-5)


def test_position_counting_changes_short_histories_only():
    """A full window has the same indices under both rules; a short one does not (74% of ML-1m users)."""
    left, right = make_model(position_counting="left"), make_model(position_counting="right")
    right.load_state_dict(left.state_dict())
    full = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 21]])
    short = torch.tensor([[0, 0, 0, 4, 5, 6, 7, 21]])
    torch.testing.assert_close(left(full)[0], right(full)[0])
    assert not torch.allclose(left(short)[0][0, 3:], right(short)[0][0, 3:])
    assert left.positions(short).tolist() == [[0, 0, 0, 0, 1, 2, 3, 4]]
    assert right.positions(short).tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]]


@pytest.mark.parametrize("counting", ["left", "right"])
def test_trimming_left_padding_is_exact_under_both_countings(counting):
    from minibert4rec.masking import trim_left_padding

    model = make_model(position_counting=counting)
    x = torch.tensor([[0, 0, 0, 0, 3, 9, 4, 21], [0, 0, 0, 1, 2, 3, 4, 21]])
    torch.testing.assert_close(model(x)[0][:, 3:], model(trim_left_padding(x))[0])
    torch.testing.assert_close(model.predict(x), model.predict(trim_left_padding(x)))


# ----------------------------------------------------------------------------- sampled softmax (fast_paths: equality)
def test_loss_negatives_config_default_off_and_sampled_loss_trains():
    assert BERT4RecConfig().loss_negatives == 0  # the paper's full softmax by default
    x = torch.tensor([[0, 0, 3, 21, 5, 6, 21, 8]])
    labels = torch.tensor([[0, 0, 0, 4, 0, 0, 7, 0]])
    torch.manual_seed(0)
    full = make_model()
    torch.manual_seed(0)
    sampled = make_model(loss_negatives=5)  # same weights, 5 of the 20 items as negatives
    assert sampled.loss(x, labels, generator=torch.Generator().manual_seed(0)).item() < full.loss(x, labels).item()
    every = make_model(loss_negatives=N_ITEMS)  # k >= N: the full softmax
    every.load_state_dict(full.state_dict())
    assert torch.allclose(every.loss(x, labels), full.loss(x, labels))
    loss = sampled.loss(x, labels, generator=torch.Generator().manual_seed(1))
    loss.backward()
    assert sampled.item_embedding.weight.grad.abs().sum() > 0 and sampled.output_dense.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="loss_negatives"):
        BERT4RecConfig(loss_negatives=-1)
