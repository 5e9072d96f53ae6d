"""The training loop: a small model learns, checkpoints resume exactly, the CLI runs end to end."""

import copy
import json
import platform

import pytest
import torch

from minibert4rec.apps import cli
from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.data import synthetic_sequences
from minibert4rec.apps.recommend import recommend
from minibert4rec.attention import MultiHeadAttention
from minibert4rec.fast.dropout import Dropout
from minibert4rec.model import BERT4Rec
from minibert4rec.train import choose_device, dropout_on, make_optimizer, train, warmup_linear_decay
from minibert4rec.evaluate import evaluate_popularity
from minibert4rec.support.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

SMALL = dict(hidden_size=32, inner_size=64, n_heads=2, max_seq_length=20, batch_size=32, hidden_dropout_prob=0.0,
             attn_dropout_prob=0.0, learning_rate=1e-2, warmup_steps=10, device="cpu", seed=0, eval_negatives=20)


@pytest.fixture(scope="module")
def data():
    return synthetic_sequences(n_users=600, n_items=120, seed=0, p_follow=0.9)


def test_warmup_then_linear_decay():
    f = warmup_linear_decay(warmup_steps=4, total_steps=12)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(8) == 0.5 and f(12) == 0.0


def test_device_choice_and_error():
    assert choose_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert choose_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            choose_device("cuda")


@pytest.fixture(scope="module")
def trained(data):
    config = BERT4RecConfig(epochs=20, eval_every=5, **SMALL)
    return train(config, data, progress=False)


def test_weight_decay_shrinks_every_matrix_and_no_bias_or_layernorm():
    """The authors' rule (BERT's): with a zero gradient one AdamW step multiplies each matrix, the embeddings
    included, by 1 - lr * weight_decay, and leaves biases and LayerNorm scales where they were."""
    config = BERT4RecConfig(**{**SMALL, "learning_rate": 0.1, "weight_decay": 0.5})
    model = BERT4Rec(config, n_items=50)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = make_optimizer(model, config)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if p.ndim == 2 else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)
    decayed = {name for name, p in model.named_parameters() if p.ndim == 2}
    assert {"item_embedding.weight", "position_embedding.weight", "output_dense.weight"} <= decayed
    assert not any("norm" in name or name.endswith("bias") for name in decayed)


def test_fused_adamw_takes_the_same_steps_as_the_plain_one():
    """make_optimizer's fused AdamW (one kernel for every tensor) against PyTorch's plain per-tensor loop with the
    same groups (decay on the matrices only): ten steps on the same random gradients end at the same weights and
    moments, and the weights have moved."""
    config = BERT4RecConfig(**{**SMALL, "learning_rate": 0.01, "weight_decay": 0.1})
    torch.manual_seed(0)
    fused_model = BERT4Rec(config, n_items=50)
    plain_model = copy.deepcopy(fused_model)
    start = [p.detach().clone() for p in fused_model.parameters()]
    fused = make_optimizer(fused_model, config)
    assert fused.defaults["fused"]
    plain = torch.optim.AdamW([{"params": [p for p in plain_model.parameters() if p.ndim >= 2], "weight_decay": 0.1},
                               {"params": [p for p in plain_model.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                              lr=0.01, foreach=False)
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        for a, b in zip(fused_model.parameters(), plain_model.parameters()):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for (name, a), b, a0 in zip(fused_model.named_parameters(), plain_model.parameters(), start):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(fused.state[a]["exp_avg_sq"], plain.state[b]["exp_avg_sq"], msg=name)
        assert (a - a0).abs().max() > 1e-3, name  # ten steps of lr 0.01 moved every tensor


def dropout_probabilities(model: torch.nn.Module) -> list[float]:
    """Every dropout probability the model trains with, hidden and attention, sorted and without repeats."""
    return sorted({m.p for m in model.modules() if isinstance(m, Dropout)}
                  | {m.attn_dropout_prob for m in model.modules() if isinstance(m, MultiHeadAttention)})


def test_set_dropout_switches_every_dropout_off_and_back(data):
    config = BERT4RecConfig(**{**SMALL, "hidden_dropout_prob": 0.3, "attn_dropout_prob": 0.2})
    model = BERT4Rec(config, data.n_items)
    x = torch.randint(1, data.n_items + 1, (4, 20), generator=torch.Generator().manual_seed(0))
    reference = model.eval()(x)[0]
    model.train().set_dropout(False)
    assert dropout_probabilities(model) == [0.0]
    torch.testing.assert_close(model(x)[0], reference)  # training mode, nothing dropped: the eval output
    model.set_dropout(True)
    assert dropout_probabilities(model) == [0.2, 0.3]
    assert not torch.allclose(model(x)[0], reference)


def record_dropout_per_epoch(monkeypatch) -> list[list[float]]:
    """From now on, every epoch the trainer runs appends the model's dropout probabilities to the returned list."""
    from minibert4rec import train as train_module

    seen, epoch = [], train_module.train_epoch
    monkeypatch.setattr(train_module, "train_epoch",
                        lambda model, *a, **kw: seen.append(dropout_probabilities(model)) or epoch(model, *a, **kw))
    return seen


def test_dropout_start_trains_the_first_share_of_the_epochs_without_dropout(data, monkeypatch):
    seen = record_dropout_per_epoch(monkeypatch)
    config = BERT4RecConfig(epochs=4, **{**SMALL, "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.1,
                                          "dropout_start": 0.5})
    result = train(config, data, progress=False)
    assert seen == [[0.0], [0.0], [0.1, 0.2], [0.1, 0.2]]
    assert result.history["dropout"].tolist() == [0.0, 0.0, 1.0, 1.0]
    # a planned schedule: the share of the plan's length, whatever it is
    assert [dropout_on(config, e, 46) for e in (1, 23, 24, 46)] == [False, False, True, True]
    assert all(dropout_on(config.replace(dropout_start=0.0), e, 46) for e in (1, 2))  # the paper's: always
    seen.clear()
    assert "dropout" not in train(config.replace(epochs=1, dropout_start=0.0), data, progress=False).history
    assert seen == [[0.1, 0.2]]


def test_dropout_stop_trains_the_last_epochs_without_dropout_and_stays_off(data, monkeypatch):
    seen = record_dropout_per_epoch(monkeypatch)
    config = BERT4RecConfig(epochs=4, **{**SMALL, "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.1,
                                          "dropout_stop": 0.5})
    result = train(config, data, progress=False)
    assert seen == [[0.1, 0.2], [0.1, 0.2], [0.0], [0.0]]
    assert result.history["dropout"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert [dropout_on(config, e, 46) for e in (1, 23, 24, 46)] == [True, True, False, False]
    # a plan that grows once dropout is off (shorter epochs) does not switch it back on
    on, off = {"dropout": 1.0}, {"dropout": 0.0}
    assert not dropout_on(config, 24, 60, [on] * 22 + [off])
    assert dropout_on(config, 24, 60, [on] * 23)
    # both bounds: off, on, off
    window = config.replace(dropout_start=0.25, dropout_stop=0.75)
    assert [dropout_on(window, e, 8) for e in range(1, 9)] == [False, False, True, True, True, True, False, False]
    assert not dropout_on(window, 3, 8, [off, off, on, off])  # stopped stays stopped
    assert dropout_on(window, 3, 8, [off, off])  # a first share without dropout is not a stop


@pytest.mark.parametrize("start, stop", [(0.5, 0.5), (0.6, 0.4)])
def test_dropout_start_must_be_below_dropout_stop(start, stop):
    with pytest.raises(ValueError, match="dropout_start=.* must be below dropout_stop"):
        BERT4RecConfig(dropout_start=start, dropout_stop=stop)


def test_a_small_model_learns_the_planted_pattern(data, trained):
    popularity = evaluate_popularity(data, n_negatives=20)["full"]["HR@1"]
    ours = trained.test["full"]["HR@1"]
    assert ours > popularity + 0.2, (ours, popularity)
    losses = trained.history["train_loss"].tolist()
    assert losses[-1] < losses[0] - 0.5
    assert {"valid_full_NDCG@10", "valid_sampled_NDCG@10", "tokens_per_s"} <= set(trained.history.columns)


def test_papers_protocol_watches_the_test_split_and_tests_the_final_weights(tmp_path, data):
    config = BERT4RecConfig(epochs=20, eval_every=5, include_valid_in_train=True, **SMALL)
    result = train(config, data, progress=False, out_dir=tmp_path)
    columns = set(result.history.columns)
    assert "test_sampled_NDCG@10" in columns and not any(c.startswith("valid_") for c in columns)
    assert result.best_epoch == 20  # nothing held out to select on: the last evaluation
    last = result.history.iloc[-1]  # the curve's last point is the reported test result (same final weights)
    assert result.test["sampled"]["NDCG@10"] == pytest.approx(last["test_sampled_NDCG@10"])
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["best_model"] is None  # no selected copy: the checkpoint's model is the final one
    reloaded = model_from_checkpoint(state)  # what `evaluate` and `recommend` use
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name
    assert result.test["full"]["HR@1"] > evaluate_popularity(data, n_negatives=20)["full"]["HR@1"] + 0.2
    # the validation item was trained on, so early stopping on it is refused with the fix in the message
    with pytest.raises(ValueError, match="use patience=0"):
        BERT4RecConfig(patience=3, include_valid_in_train=True)


def test_the_causal_variant_learns_too(data):
    result = train(BERT4RecConfig(epochs=10, eval_every=5, causal=True, **SMALL), data, progress=False)
    assert result.test["full"]["HR@1"] > evaluate_popularity(data, n_negatives=20)["full"]["HR@1"] + 0.2


def test_resume_gives_the_uninterrupted_run(tmp_path, data):
    config = BERT4RecConfig(epochs=3, **{**SMALL, "max_seq_length": 10})
    full = train(config, data, progress=False)
    train(config, data, out_dir=tmp_path, stop_after_epoch=1, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")  # weights_only=True inside
    assert state["epoch"] == 1 and not list(tmp_path.glob("*.tmp"))
    del state["config"]["include_valid_in_train"]  # as written before that option existed: its default applies
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    resumed = train(config, data, out_dir=tmp_path, resume_from=tmp_path / "checkpoint.pt", progress=False)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.history["train_loss"].tolist() == full.history["train_loss"].tolist()
    assert resumed.test == full.test


def test_resume_with_another_config_is_refused(tmp_path, data):
    config = BERT4RecConfig(epochs=1, **{**SMALL, "max_seq_length": 10})
    train(config, data, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="another config or dataset"):
        train(config.replace(hidden_size=16), data, resume_from=tmp_path / "checkpoint.pt", progress=False)


def test_init_from_starts_a_new_run_from_the_best_weights(tmp_path, data):
    config = BERT4RecConfig(epochs=2, **{**SMALL, "max_seq_length": 10})
    first = train(config, data, out_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    # a learning rate of 1e-9 leaves the weights where they were loaded: the first run's best weights
    second = train(config.replace(epochs=1, learning_rate=1e-9), data, init_from=tmp_path / "checkpoint.pt",
                   progress=False)
    for name, value in second.model.state_dict().items():
        torch.testing.assert_close(value, state["best_model"][name], atol=1e-6, rtol=0, msg=name)
    assert len(second.history) == 1  # a new run: its own epochs and schedule
    assert second.valid["full"]["NDCG@10"] == pytest.approx(first.valid["full"]["NDCG@10"], abs=0.01)
    fresh = train(config.replace(epochs=1, learning_rate=1e-9), data, progress=False)  # without init: untrained
    assert fresh.valid["full"]["NDCG@10"] < second.valid["full"]["NDCG@10"] - 0.05
    with pytest.raises(ValueError, match="not both"):
        train(config, data, init_from=tmp_path / "checkpoint.pt", resume_from=tmp_path / "checkpoint.pt", progress=False)
    with pytest.raises(RuntimeError):  # another architecture cannot load these weights
        train(config.replace(hidden_size=16, inner_size=32), data, init_from=tmp_path / "checkpoint.pt", progress=False)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="damaged or not a minibert4rec checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_recommend(trained, data):
    history = data.sequences[0][:5]
    top = recommend(trained.model, history, k=5)
    assert len(top) == 5 and not set(i for i, _ in top) & set(history)
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="history is empty"):
        recommend(trained.model, [], k=5)
    with pytest.raises(ValueError, match=r"item ids \[151\] are unknown"):
        recommend(trained.model, [1, 151], k=5)
    with pytest.raises(ValueError, match="k=1000 must be between 1 and"):
        recommend(trained.model, history, k=1000)


def test_cli_train_evaluate_recommend(tmp_path, capsys, data):
    path = tmp_path / "seq.txt"
    path.write_text("".join(f"{u + 1} {i}\n" for u, seq in enumerate(data.sequences[:120]) for i in seq))
    (tmp_path / "cfg.json").write_text('{"eval_negatives": 20}')
    out = tmp_path / "run"
    code = cli.main(["train", "--dataset", str(path), "--epochs", "1", "--device", "cpu", "--max-seq-length", "10",
                     "--hidden-size", "16", "--inner-size", "32", "--out", str(out), "--quiet", "--config", str(tmp_path / "cfg.json"), "--data-dir",
                     str(tmp_path)])
    assert code == 0
    assert {"config.json", "metrics.json", "checkpoint.pt", "history.csv"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == {"full", "full_filtered", "sampled"}
    assert set(metrics["test"]["full"]) >= {"HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"}
    printed = capsys.readouterr().out
    assert "test / sampled (20 neg.)" in printed and "test / full, seen removed" in printed  # the config's 20
    assert cli.main(["evaluate", "--checkpoint", str(out / "checkpoint.pt")]) == 0
    table = capsys.readouterr().out
    assert f"{metrics['test']['full']['NDCG@10']:.4f}" in table  # the same numbers again
    raw = data.item_ids[data.sequences[0][0] - 1]
    assert cli.main(["recommend", "--checkpoint", str(out / "checkpoint.pt"), "--items", str(raw), "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("history (1 item, oldest first):")  # the input echoed, then the 3 recommendations
    assert len(printed.split("top 3 next items (history items removed):")[1].strip().splitlines()) == 4
    assert cli.main(["recommend", "--checkpoint", str(out / "checkpoint.pt"), "--items", "999999", "-k", "3"]) == 2
    assert "not in" in capsys.readouterr().err
    assert model_from_checkpoint(load_checkpoint(out / "checkpoint.pt")).n_items == data.n_items


def _causal_batches_before(windows, batch_size, seed, epoch):
    """train.causal_batches as it was before NextItemDataset replaced it (the reference the causal numbers hold on)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(windows), generator=generator)
    for start in range(0, len(windows), batch_size):
        w = windows[order[start : start + batch_size]]
        inputs = torch.nn.functional.pad(w[:, :-1], (1, 0))
        labels = torch.where(inputs > 0, w, torch.zeros_like(w))
        keep = (labels > 0).any(dim=1)
        if keep.any():
            yield inputs[keep], labels[keep]


def test_next_item_dataset_gives_the_causal_batches_of_before(data):
    from minibert4rec.masking import ClozeDataset, NextItemDataset, make_dataset

    train_seqs = data.split().train + [[5]]  # a one-item history: nothing to predict, dropped from its batch
    config = BERT4RecConfig(causal=True, **{**SMALL, "max_seq_length": 8})
    dataset = make_dataset(config, train_seqs, data.n_items, data.mask_id)
    assert isinstance(dataset, NextItemDataset)
    cloze = make_dataset(config.replace(causal=False), train_seqs, data.n_items, data.mask_id)
    assert isinstance(cloze, ClozeDataset) and torch.equal(dataset.windows, cloze.windows)  # the same windows
    assert len(dataset) == dataset.samples_per_epoch == len(cloze.windows)
    assert dataset.num_batches(32) == -(-len(dataset) // 32)
    for epoch in (1, 2):
        for group in (False, True):
            ours = list(dataset.batches(32, epoch, group_by_length=group))
            before = list(_causal_batches_before(dataset.windows, 32, config.seed, epoch))
            assert len(ours) == len(before) == dataset.num_batches(32)
            for (a, b), (c, d) in zip(ours, before):
                assert torch.equal(a, c) and torch.equal(b, d)
    inputs, labels = next(dataset.batches(4, 1, shuffle=False))
    window = dataset.windows[0]
    assert inputs[0].tolist() == [0, *window[:-1].tolist()]  # shifted right: position t sees items before t
    assert labels[0].tolist() == [x if i > 0 else 0 for x, i in zip(window.tolist(), inputs[0].tolist())]
    assert sum(len(i) for i, _ in dataset.batches(32, 1)) == len(dataset) - 1  # the one-item window dropped
    assert [x[0].tolist() for x in dataset.batches(32, 3)] != [x[0].tolist() for x in dataset.batches(32, 4)]
    with pytest.raises(ValueError, match="outside 1..n_items"):
        NextItemDataset([[0, 1]], 8, n_items=10)


def test_train_hands_back_the_callers_thread_count(data):
    """A run with ``threads=1`` must not leave the caller (a notebook, a benchmark) on one thread afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        config = BERT4RecConfig(hidden_size=8, inner_size=16, n_heads=2, n_layers=1, max_seq_length=10, batch_size=64,
                                epochs=1, device="cpu", threads=1, eval_negatives=20)
        train(config, data, progress=False)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="eval_negatives=100"):  # an error after the threads were set, too
            train(config.replace(eval_negatives=100), data, progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


_FREED_MEMORY_PROBE = """
import ctypes, json, resource, sys
from minibert4rec.support import runtime
tuned = sys.argv[1] == "tuned" and runtime.reuse_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
sizes = [mb * 2**20 for mb in (8, 16, 24, 30)]
faults = []
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(size) for size in sizes]
    for block, size in zip(blocks, sizes):
        libc.memset(block, 1, size)  # touch every page, as a tensor's first write does
    for block in blocks:
        libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"tuned": tuned, "faults": faults, "pages": sum(sizes) // 4096}))
"""


def test_training_on_a_cpu_tunes_the_allocator(data, monkeypatch):
    """``train`` on a CPU asks for freed memory to be kept (once per run); the call is a no-op after the first."""
    from minibert4rec import train as train_module
    from minibert4rec.support import runtime

    calls = []
    monkeypatch.setattr(train_module, "reuse_freed_memory", lambda: calls.append(1) or True)
    config = BERT4RecConfig(hidden_size=8, inner_size=16, n_heads=2, n_layers=1, max_seq_length=10, batch_size=64,
                            epochs=1, device="cpu", eval_negatives=20)
    train(config, data, progress=False)
    assert calls == [1]
    monkeypatch.undo()

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert runtime.reuse_freed_memory() is False  # nothing to tune elsewhere
        return
    assert runtime.reuse_freed_memory() is True and runtime.reuse_freed_memory() is True  # once, then a no-op


@pytest.mark.integration
@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="tunes glibc only")
def test_tuned_allocator_reuses_freed_memory_without_page_faults():
    """Once tuned, large blocks freed and allocated again come back without page faults. The pattern (78 MB in four
    blocks, allocated, written and freed ten times) runs in a fresh, quiet process, once with glibc's defaults,
    which hand the pages back to the kernel every round, and once tuned."""
    import subprocess
    import sys
    from pathlib import Path

    def probe(mode: str) -> dict:
        done = subprocess.run([sys.executable, "-c", _FREED_MEMORY_PROBE, mode], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
        return json.loads(done.stdout.strip().splitlines()[-1])

    plain, tuned = probe("plain"), probe("tuned")
    assert plain["tuned"] is False and tuned["tuned"] is True
    pages = tuned["pages"]
    # with the defaults every round after the first faults on (almost) every page: the control that this
    # pattern tells the two apart
    assert all(f > 0.9 * pages for f in plain["faults"][1:]), plain
    # tuned, the first round takes fresh pages and every later round reuses them
    assert tuned["faults"][0] > 0.9 * pages, tuned
    assert all(f < 0.02 * pages for f in tuned["faults"][1:]), tuned


def test_bf16_on_a_cpu_only_when_asked_and_where_the_cpu_has_it(monkeypatch):
    from minibert4rec import train as train_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: True)
    assert not train_module.use_bf16(BERT4RecConfig(), cpu)  # off by default: float32 is the paper's arithmetic
    assert train_module.use_bf16(BERT4RecConfig(amp_cpu=True), cpu)
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: False)
    assert not train_module.use_bf16(BERT4RecConfig(amp_cpu=True), cpu)  # emulated bf16 is slower than float32
    with pytest.raises(ValueError, match="amp_cpu"):
        BERT4RecConfig(amp_cpu="yes")


def test_a_small_model_learns_in_bf16_on_a_cpu(data, monkeypatch):
    """With ``amp_cpu`` every step runs under bf16 autocast (attention with dropout through fast/attention.py in
    bf16) and the model still learns the planted pattern; where the CPU lacks native bf16 the run says so and
    trains in float32."""
    from minibert4rec import train as train_module
    from minibert4rec.fast import attention as fast_attention

    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: True)  # emulated where it is not: same maths
    steps, attention_dtypes = [], []
    step, fast = train_module.training_step, fast_attention.attention_with_dropout
    monkeypatch.setattr(train_module, "training_step", lambda *a: steps.append(a[-1]) or step(*a))
    monkeypatch.setattr(fast_attention, "attention_with_dropout",
                        lambda q, *a, **kw: attention_dtypes.append(q.dtype) or fast(q, *a, **kw))
    config = BERT4RecConfig(epochs=20, eval_every=5, amp_cpu=True, **{**SMALL, "attn_dropout_prob": 0.1})
    result = train(config, data, progress=False)
    assert steps and all(steps) and set(attention_dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # the weights stay float32
    assert result.test["full"]["HR@1"] > evaluate_popularity(data, n_negatives=20)["full"]["HR@1"] + 0.2
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: False)
    steps.clear()
    with pytest.warns(UserWarning, match="does not multiply bfloat16 natively"):
        train(config.replace(epochs=1), data, progress=False)
    assert steps and not any(steps)
