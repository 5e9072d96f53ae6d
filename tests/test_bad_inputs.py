"""Never silently wrong: bad inputs, tried as a new user would, each end in ONE clear message -- never in a
silent acceptance, never in a traceback, never with half a file left on disk.

Four tables, each row one bad input and a piece of the message it must produce (which names the input):

* ``CONFIG_CASES``: ``BERT4RecConfig(**{field: value})`` from Python -> ``ValueError`` naming ``field=value``;
* ``CONFIG_FILES``: config files (JSON/YAML) -> ``ValueError`` naming the file or the field;
* ``CLI_CASES``: ``python -m minibert4rec ...`` (called in-process, a few in a subprocess) -> exit code 2 and one
  line ``error: ...`` on stderr, no ``*.tmp`` and no output folder left behind;
* ``API_CASES``: package functions -> the exception type and message.

Then hypothesis generates wrong types and values for every config field. Everything runs on tiny synthetic data
(and tiny stand-ins for the MovieLens files); never the network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert4rec import data

from minibert4rec.apps import cli
from minibert4rec.support.config import RULES, TYPE_NAMES, BERT4RecConfig, ConfigTypeError
from minibert4rec.support.datasets import install_shared_copy
from minibert4rec.data import (KNOWN_DATASETS, SequenceData, download, k_core_mask, load_dataset,
                               load_interactions, preprocess, synthetic_sequences)
from minibert4rec.support.files import atomic_write, file_hash, remove_stale_temporaries, write_manifest
from minibert4rec.metrics import hit_rate_at_k, mrr, ndcg_at_k, ranking_metrics, sample_negatives, sampled_ranks
from minibert4rec.apps.recommend import recommend
from minibert4rec.support.preflight import check_before_training
from minibert4rec.support.checkpoint import (check_checkpoint_data, load_checkpoint, model_from_checkpoint, save_checkpoint)
from minibert4rec.train import train

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {f.name: str(f.type) for f in dataclasses.fields(BERT4RecConfig)}
TINY = ["--hidden-size", "8", "--inner-size", "16", "--max-seq-length", "10", "--batch-size", "32", "--epochs", "1",
        "--device", "cpu", "--eval-negatives", "20", "--quiet"]


# ================================================================================================ fixtures
def seq_lines(sequences: list[list[int]], item_offset: int = 0) -> str:
    return "".join(f"{u + 1} {i + item_offset}\n" for u, seq in enumerate(sequences) for i in seq)


def u_data_lines(n: int, sep: str = "\t") -> str:
    """``n`` well-formed ml-100k-style lines (user, item, rating, timestamp) of synthetic interactions."""
    rng = np.random.default_rng(0)
    rows = np.stack([rng.integers(1, 944, n), rng.integers(1, 1683, n), rng.integers(1, 6, n),
                     rng.integers(874_724_710, 893_286_638, n)], axis=1)
    return "".join(sep.join(map(str, row)) + "\n" for row in rows.tolist())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files every case may point at: data, a trained checkpoint, configs, damaged caches ..."""
    root = tmp_path_factory.mktemp("world")
    small = synthetic_sequences(n_users=60, n_items=40, min_len=5, max_len=12, seed=0, zipf=0.0)
    w = {"root": root, "data": root / "seq.txt"}
    w["data"].write_text(seq_lines(small.sequences))
    w["other"] = root / "other.txt"  # the same items, other sequences
    w["other"].write_text(seq_lines(synthetic_sequences(n_users=60, n_items=40, min_len=5, max_len=12, seed=1, zipf=0.0).sequences))
    w["shifted"] = root / "shifted.txt"  # the same sequences, other raw item ids: another item mapping
    w["shifted"].write_text(seq_lines(small.sequences, item_offset=1000))
    run = root / "run"
    assert cli.main(["train", "--dataset", str(w["data"]), "--data-dir", str(root), "--out", str(run), *TINY]) == 0
    w["ckpt"] = run / "checkpoint.pt"
    state = load_checkpoint(w["ckpt"])
    for name, target in (("ckpt_other", w["other"]), ("ckpt_shifted", w["shifted"]),
                         ("ckpt_gone", root / "deleted.txt")):
        changed = {**state, "dataset": {**state["dataset"], "dataset": str(target)}}
        save_checkpoint(root / f"{name}.pt", changed)
        w[name] = root / f"{name}.pt"
    w["garbage"] = root / "garbage.pt"
    w["garbage"].write_bytes(b"not a checkpoint at all")
    w["truncated_ckpt"] = root / "truncated.pt"
    w["truncated_ckpt"].write_bytes(w["ckpt"].read_bytes()[:2000])
    configs = {"bad.yaml": "hidden_size: [64\n", "bad.json": "{,}", "list.json": "[1, 2]",
               "str_bool.json": '{"include_valid_in_train": "false"}', "causal.json": '{"causal": "no"}',
               "amp.yaml": "amp: 'off'\n", "seed.yaml": "seed: 1.5\n", "lr.yaml": "learning_rate: 1e-3\n",
               "unknown.json": '{"hiden_size": 64}', "cfg.txt": "hidden_size: 64\n", "empty.json": "",
               "warmup.yaml": "warmup_steps: 2.5\n", "nan.json": '{"clip_grad_norm": NaN}', "int_key.yaml": "1: 2\n"}
    for name, text in configs.items():
        (root / name).write_text(text)
    (root / "binary.json").write_bytes(bytes(range(256)))
    (root / "cfgdir.json").mkdir()
    # ml-100k caches, each damaged in one way (a real u.data has exactly 100,000 lines and a published sha256)
    damaged = {"truncated": u_data_lines(100_000)[:-7], "short": u_data_lines(25_000), "empty": "",
               "ml1m_as_u_data": u_data_lines(2_000, sep="::")}
    for name, text in damaged.items():
        (root / f"cache_{name}" / "ml-100k").mkdir(parents=True)
        (root / f"cache_{name}" / "ml-100k" / "u.data").write_text(text)
    (root / "cache_binary" / "ml-100k").mkdir(parents=True)
    (root / "cache_binary" / "ml-100k" / "u.data").write_bytes(os.urandom(4096))
    changed = root / "cache_changed" / "ml-100k"  # unpacked from a verified zip (manifest), then edited
    changed.mkdir(parents=True)
    (changed / "u.data").write_text(u_data_lines(300))
    write_manifest(changed, {"u.data": "0" * 64})
    (root / "hyper.test").write_text("learning_rate pick [0.1]\n")
    return w


def no_half_written_files(*folders: Path) -> None:
    for folder in folders:
        leftovers = [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
        assert not leftovers, leftovers


# ================================================================================================ config, Python
def _config_cases() -> list[tuple[str, object, str]]:
    """(field, bad value, expected piece of the message), for every field of every kind."""
    by_kind = {
        "bool": ["false", "no", "off", 0, 1, None, 0.0],
        "int": [1.5, "64", True, None, 2.0, float("nan")],
        "int | None": [1.5, "5", True],
        "float": [float("nan"), float("inf"), -float("inf"), "0.1", True, None],
        "str": [1, None, True],
        "dict[str, Any]": [[1], "x", None, {1: 2}],
    }
    cases = [(name, value, f"{name}") for name, kind in FIELDS.items() for value in by_kind[kind]]
    cases += [  # right type, wrong value
        ("hidden_size", 0, "hidden_size=0 must be a positive integer"),
        ("hidden_size", 100_000_000, "hidden_size=100000000"), ("inner_size", -1, "inner_size=-1"),
        ("n_layers", 0, "n_layers=0"), ("max_seq_length", 1, "max_seq_length=1 must be at least 2"),
        ("batch_size", 0, "batch_size=0"), ("epochs", -3, "epochs=-3"), ("eval_every", 0, "eval_every=0"),
        ("eval_negatives", 0, "eval_negatives=0"), ("eval_negatives", 10**9, "eval_negatives=1000000000"),
        ("warmup_steps", -1, "warmup_steps=-1"), ("patience", -1, "patience=-1"), ("seed", -1, "seed=-1"),
        ("seed", 2**40, "seed=1099511627776"), ("window_step", 0, "window_step=0"),
        ("window_step", 500, "window_step=500 must be between 1 and max_seq_length=50"),
        ("learning_rate", 0.0, "learning_rate=0.0"), ("learning_rate", -1e-3, "learning_rate=-0.001"),
        ("learning_rate", 1e6, "learning_rate=1000000.0"), ("weight_decay", -0.1, "weight_decay=-0.1"),
        ("clip_grad_norm", -1.0, "clip_grad_norm=-1.0"), ("layer_norm_eps", 0.0, "layer_norm_eps=0.0"),
        ("initializer_range", -0.02, "initializer_range=-0.02"), ("mask_ratio", 0.0, "mask_ratio=0 would mask"),
        ("mask_ratio", 1.0, "mask_ratio=1.0"), ("hidden_dropout_prob", 1.0, "hidden_dropout_prob=1.0"),
        ("attn_dropout_prob", -0.1, "attn_dropout_prob=-0.1"), ("last_item_ratio", 1.5, "last_item_ratio=1.5"),
        ("hidden_act", "mish", "hidden_act='mish' is unknown"), ("hidden_act", "GELU", "hidden_act='GELU'"),
        ("loss_type", "BCE", "loss_type='BCE' is unknown"), ("device", "tpu", "device='tpu' is unknown"),
        ("device", "gpu", "device='gpu'"), ("device", "cuda:x", "device='cuda:x'"), ("device", "", "device=''"),
    ]
    return cases


CONFIG_CASES = _config_cases()


@pytest.mark.parametrize("field, value, match", CONFIG_CASES,
                         ids=[f"{f}={v!r}"[:40] for f, v, _ in CONFIG_CASES])
def test_config_refuses_bad_values_from_python(field, value, match):
    with pytest.raises(ValueError) as error:
        BERT4RecConfig(**{field: value})
    assert match in str(error.value)
    assert "\n" not in str(error.value)


def test_wrong_types_are_both_type_and_value_errors():
    with pytest.raises(TypeError, match="include_valid_in_train='false' must be true or false"):
        BERT4RecConfig(include_valid_in_train="false")
    assert issubclass(ConfigTypeError, ValueError)


def test_absurd_sizes_are_refused_before_allocating():
    with pytest.raises(ValueError, match="cannot fit in memory.*hidden_size=8192.*n_layers=100"):
        BERT4RecConfig(hidden_size=8192, inner_size=32768, n_layers=100)
    with pytest.raises(ValueError, match="cannot fit in memory.*max_seq_length=50000"):
        BERT4RecConfig(max_seq_length=50_000)


def test_good_values_are_accepted_and_normalised():
    config = BERT4RecConfig(device="cpu:0", hidden_size=np.int64(32), learning_rate=1, causal=np.bool_(True),
                            window_step=None, extra={"note": 1})
    assert config.device == "cpu:0" and type(config.hidden_size) is int and type(config.learning_rate) is float
    assert config.causal is True
    for device in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        BERT4RecConfig(device=device)


def test_every_field_has_a_rule_and_a_checkable_type():
    """A new field must be registered in config.RULES (its range) with an annotation check_field knows."""
    assert set(RULES) == set(FIELDS), f"register {set(FIELDS) ^ set(RULES)} in config.RULES"
    assert all(kind in TYPE_NAMES for kind in FIELDS.values()), FIELDS


def test_an_unknown_annotation_fails_loudly():
    from minibert4rec.support.config import check_field

    with pytest.raises(TypeError, match="cannot check"):
        check_field("threads", 2, "list[int]")


# ================================================================================================ config files
CONFIG_FILES = [
    ("bad.yaml", "is not valid YAML"), ("bad.json", "is not valid JSON"), ("list.json", "must hold a mapping"),
    ("str_bool.json", "include_valid_in_train='false' must be true or false"), ("causal.json", "causal='no'"),
    ("amp.yaml", "amp='off'"), ("seed.yaml", "seed=1.5 must be an integer"),
    ("lr.yaml", "learning_rate='1e-3' must be a number"), ("unknown.json", "unknown config option(s) ['hiden_size']"),
    ("cfg.txt", "use a .json, .yaml or .yml"), ("empty.json", "is not valid JSON"), ("binary.json", "is not text"),
    ("warmup.yaml", "warmup_steps=2.5"), ("nan.json", "clip_grad_norm=nan"), ("int_key.yaml", "unknown config option"),
    ("cfgdir.json", "is a folder"), ("missing.json", "does not exist"),
]


@pytest.mark.parametrize("name, match", CONFIG_FILES, ids=[n for n, _ in CONFIG_FILES])
def test_config_files_are_checked(world, name, match):
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        BERT4RecConfig.load(world["root"] / name)
    assert match in str(error.value)
    if name not in ("str_bool.json", "causal.json", "amp.yaml", "seed.yaml", "lr.yaml", "warmup.yaml", "nan.json",
                    "unknown.json", "int_key.yaml"):
        assert name in str(error.value)  # file-level problems name the file


# ================================================================================================ the command line
CLI_CASES = [
    # (argv with {data} {ckpt} {root} {out} placeholders, piece of the one-line message)
    ("train --lr inf", "learning_rate=inf"), ("train --lr nan", "learning_rate=nan"), ("train --lr -0.1", "learning_rate=-0.1"),
    ("train --lr 0", "learning_rate=0.0"), ("train --lr abc", "argument --lr: invalid float value: 'abc'"),
    ("train --weight-decay nan", "weight_decay=nan"), ("train --weight-decay -1", "weight_decay=-1.0"),
    ("train --epochs 1.5", "argument --epochs: invalid int value: '1.5'"), ("train --epochs 0", "epochs=0"),
    ("train --hidden-size 100000000", "hidden_size=100000000"), ("train --n-heads 3 --hidden-size 8", "n_heads=3 must divide"),
    ("train --hidden-size 8192 --inner-size 32768 --n-layers 100", "cannot fit in memory"),
    ("train --max-seq-length 1", "max_seq_length=1"), ("train --max-seq-length 100000 --batch-size 100000", "cannot fit"),
    ("train --eval-negatives 0", "eval_negatives=0"), ("train --eval-negatives 1000000000", "eval_negatives=1000000000"),
    ("train --eval-negatives 30", "eval_negatives=30 cannot be sampled"),
    ("train --eval-negatives 100", "--eval-negatives 28"),  # a 40-item catalogue: refused before the first epoch
    ("train --device tpu", "device='tpu' is unknown"), ("train --mask-ratio 1.0", "mask_ratio=1.0"),
    ("train --mask-ratio 0", "mask_ratio=0 would mask nothing"), ("train --hidden-act mish", "hidden_act='mish'"),
    ("train --loss-type BCE", "loss_type='BCE'"), ("train --window-step 0", "window_step=0"),
    ("train --window-step 11", "window_step=11 must be between 1 and max_seq_length=10"),
    ("train --patience -1", "patience=-1"), ("train --seed -1", "seed=-1"), ("train --seed 1.5", "invalid int value: '1.5'"),
    ("train --warmup-steps 2.5", "invalid int value: '2.5'"), ("train --batch-size 0", "batch_size=0"),
    ("train --include-valid-in-train --patience 2", "use patience=0"), ("train --hidden-dropout-prob 1", "hidden_dropout_prob=1.0"),
    ("train --attn-dropout-prob nan", "attn_dropout_prob=nan"), ("train --last-item-ratio inf", "last_item_ratio=inf"),
    ("train --eval-every 0", "eval_every=0"), ("train --hiden-size 8", "unrecognized arguments: --hiden-size"),
    ("train --config {root}/str_bool.json", "include_valid_in_train='false'"),
    ("train --config {root}/causal.json", "causal='no'"), ("train --config {root}/seed.yaml", "seed=1.5"),
    ("train --config {root}/bad.yaml", "bad.yaml is not valid YAML"), ("train --config {root}/bad.json", "bad.json is not valid JSON"),
    ("train --config {root}/missing.json", "missing.json does not exist"), ("train --config {root}/cfgdir.json", "is a folder"),
    ("train --config {root}/cfg.txt", "use a .json, .yaml or .yml"), ("train --config {root}/lr.yaml", "write 1.0e-3"),
    ("train --min-user-count -1", "min_user_count=-1 must be a non-negative integer"),
    ("train --min-item-count -5", "min_item_count=-5"),
    ("train --min-user-count 1000", "no interactions are left after k-core filtering"),
    ("train --dataset {root}/nothing.txt", "nothing.txt does not exist"), ("train --dataset ml-2m", "unknown dataset 'ml-2m'"),
    ("train --dataset {root}/binary.json", "binary.json"), ("train --dataset {root}/empty.json", "empty.json is empty"),
    ("train --dataset ml-100k --data-dir {root}/cache_short", "has 25,000 lines where ml-100k's u.data has 100,000"),
    ("train --dataset ml-100k --data-dir {root}/cache_truncated", "is damaged or is not ml-100k's u.data"),
    ("train --out {data}", "File exists"),
    ("stats --dataset ml-100k --data-dir {root}/cache_short", "is damaged or is not ml-100k's u.data"),
    ("stats --dataset ml-100k --data-dir {root}/cache_empty", "the file is empty"),
    ("stats --dataset ml-100k --data-dir {root}/cache_binary", "is damaged"),
    ("stats --dataset ml-100k --data-dir {root}/cache_ml1m_as_u_data", "is damaged or is not ml-100k's u.data"),
    ("stats --dataset ml-100k --data-dir {root}/cache_changed", "recorded in SHA256SUMS when it was unpacked"),
    ("stats --dataset {root}/cache_ml1m_as_u_data/ml-100k/u.data", "is not ml-100k's u.data"),
    ("stats --dataset {root}/cache_ml1m_as_u_data/ml-100k", "is not ml-100k's u.data"),
    ("stats --min-item-count -1 --dataset {data}", "min_item_count=-1"),
    ("download --dataset ml-100k --data-dir {root}/cache_short", "is damaged or is not ml-100k's u.data"),
    ("download --dataset ml-100k --data-dir {root}/cache_truncated", "run `python -m minibert4rec download"),
    ("download --dataset ml-100k --data-dir {root}/cache_empty", "the file is empty"),
    ("download --dataset ml-100k --data-dir {root}/cache_binary", "is damaged"),
    ("download --dataset ml-100k --data-dir {root}/cache_ml1m_as_u_data", "is not ml-100k's u.data"),
    ("download --dataset ml-100k --data-dir {root}/cache_changed", "the file changed since"),
    ("download --dataset beauty --data-dir {root}", "invalid choice: 'beauty' (choose from 'ml-100k'"),  # only what has a download
    ("download --dataset ml-2m", "invalid choice: 'ml-2m'"),
    ("evaluate --checkpoint {root}/none.pt", "none.pt does not exist"),
    ("evaluate --checkpoint {root}/garbage.pt", "damaged or not a minibert4rec checkpoint"),
    ("evaluate --checkpoint {root}/truncated.pt", "truncated.pt cannot be read"),
    ("evaluate --checkpoint {root}", "is a folder, and it holds no checkpoint.pt"),
    ("evaluate --checkpoint {root}/ckpt_other.pt", "the users' sequences differ"),
    ("evaluate --checkpoint {root}/ckpt_shifted.pt", "the item mapping (the raw id behind each item id)"),
    ("evaluate --checkpoint {root}/ckpt_gone.pt", "deleted.txt does not exist"),
    ("evaluate", "the following arguments are required: --checkpoint"),
    ("recommend --checkpoint {ckpt} --items 999999", "item '999999' is not in"),
    ("recommend --checkpoint {ckpt} --items ,", "the history is empty"),
    ("recommend --checkpoint {ckpt} --items 1 -k 0", "k=0 must be between 1 and"),
    ("recommend --checkpoint {ckpt} --items 1 -k 100000", "k=100000 must be between 1 and"),
    ("recommend --checkpoint {ckpt} --items 1 -k 2.5", "argument -k: invalid int value: '2.5'"),
    ("recommend --checkpoint {ckpt} --items abc", "item 'abc' is not in"),
    ("recommend --checkpoint {root}/ckpt_shifted.pt --items 1", "the item mapping"),
    ("recommend --checkpoint {root}/garbage.pt --items 1", "damaged or not a minibert4rec checkpoint"),
    ("tune --params-file {root}/none.test", "none.test does not exist"),
    ("tune --params-file {root}/hyper.test", "hyper.test, line 1"),
    ("tune --params-file {root}/hyper.test --lr inf", "learning_rate=inf"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
]


def _argv(template: str, world: dict, out: Path) -> list[str]:
    """The case's command line, completed: train and tune get the tiny model's sizes, the data and an output
    folder unless the case sets them; stats gets the data."""
    argv = template.format(data=world["data"], ckpt=world["ckpt"], root=world["root"], out=out).split()
    defaults = {"--dataset": str(world["data"])}
    if argv[0] in ("train", "tune"):
        defaults.update({"--out": str(out), "--data-dir": str(world["root"])})
        defaults.update(dict(zip(TINY[:-1:2], TINY[1:-1:2])))
        argv.append("--quiet")
    elif argv[0] != "stats":
        defaults = {}
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    return argv


@pytest.mark.parametrize("template, match", CLI_CASES, ids=[t[:60] for t, _ in CLI_CASES])
def test_cli_reports_one_line_and_exit_code_2(world, tmp_path, capsys, template, match):
    out = tmp_path / "out"
    argv = _argv(template, world, out)
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], (match, lines[0])
    assert not out.exists()  # refused before anything was written
    no_half_written_files(tmp_path, world["root"])


@pytest.mark.parametrize("argv, match", [
    (["train", "--lr", "inf", "--dataset", "{data}", "--out", "{out}"], "learning_rate=inf"),
    (["train", "--epochs", "1.5"], "invalid int value: '1.5'"),
])
@pytest.mark.integration
def test_cli_in_a_subprocess(world, tmp_path, argv, match):
    argv = [a.format(data=world["data"], out=tmp_path / "out") for a in argv]
    done = subprocess.run([sys.executable, "-m", "minibert4rec", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and match in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_a_real_bug_still_shows_its_traceback(monkeypatch):
    def buggy(args):
        raise KeyError("a bug, not a user's mistake")

    monkeypatch.setattr(cli, "cmd_stats", buggy)
    with pytest.raises(KeyError):
        cli.main(["stats"])


# ================================================================================================ the API
def _api_cases():
    """(name, callable taking the world, exception type, piece of the message)."""
    ranks = torch.tensor([1, 3, 20])
    scores = torch.randn(2, 11)
    counts = torch.ones(11, dtype=torch.long)

    def model(w):
        return model_from_checkpoint(load_checkpoint(w["ckpt"]))

    def small(w):
        return load_dataset(w["data"], min_user_count=1, min_item_count=1)

    return [
        ("recommend k=2.5", lambda w: recommend(model(w), [1, 2], k=2.5), ValueError, "k=2.5 must be an integer"),
        ("recommend k='3'", lambda w: recommend(model(w), [1, 2], k="3"), ValueError, "k='3'"),
        ("recommend k=True", lambda w: recommend(model(w), [1, 2], k=True), ValueError, "k=True"),
        ("recommend item 0", lambda w: recommend(model(w), [0]), ValueError, "item ids [0] are unknown"),
        ("recommend item 1.0", lambda w: recommend(model(w), [1.0]), ValueError, "[1.0] are not integer item ids"),
        ("recommend str", lambda w: recommend(model(w), "123"), ValueError, "must be a list of item ids"),
        ("recommend None", lambda w: recommend(model(w), None), ValueError, "must be a list of item ids"),
        ("recommend mask id", lambda w: recommend(model(w), [41]), ValueError, "item ids [41] are unknown"),
        ("hit_rate k=2.5", lambda w: hit_rate_at_k(ranks, 2.5), ValueError, "got 2.5"),
        ("ndcg k=0", lambda w: ndcg_at_k(ranks, 0), ValueError, "got 0"),
        ("ndcg k=True", lambda w: ndcg_at_k(ranks, True), ValueError, "got True"),
        ("mrr k=-1", lambda w: mrr(ranks, np.int64(-1)), ValueError, "k must be a positive integer"),
        ("ranking_metrics ks", lambda w: ranking_metrics(ranks, ks=(1, 2.5)), ValueError, "got 2.5"),
        ("ranks zero", lambda w: hit_rate_at_k(torch.tensor([0, 1]), 1), ValueError, "ranks are 1-based"),
        ("duplicate negatives", lambda w: sampled_ranks(scores, [1, 2], torch.tensor([[3, 3, 4], [5, 6, 7]])),
         ValueError, "negatives repeat an item in row 0"),
        ("negatives with target", lambda w: sampled_ranks(scores, [1, 2], torch.tensor([[1, 3], [5, 6]])),
         ValueError, "own target"),
        ("n_negatives=2.5", lambda w: sample_negatives(counts, [1, 2], 2.5), ValueError, "n_negatives must be an integer"),
        ("n_negatives too many", lambda w: sample_negatives(counts, [1, 2], 10), ValueError, "n_negatives=10"),
        ("k-core negative", lambda w: k_core_mask(np.array([0]), np.array([0]), -1, 5), ValueError, "min_user_count=-1"),
        ("k-core float", lambda w: load_dataset(w["data"], min_item_count=2.5), ValueError, "min_item_count=2.5"),
        ("preprocess negative", lambda w: preprocess(load_interactions(w["data"]), 5, -2), ValueError, "min_item_count=-2"),
        ("catalogue too small", lambda w: check_before_training(BERT4RecConfig(device="cpu"), small(w)), ValueError,
         "eval_negatives=100 cannot be sampled"),
        ("nobody to evaluate", lambda w: check_before_training(
            BERT4RecConfig(device="cpu", eval_negatives=1), SequenceData([[1, 2]], 5, [1], [1, 2, 3, 4, 5])),
         ValueError, "3 interactions leave-one-out needs"),
        ("train with too few items", lambda w: train(BERT4RecConfig(device="cpu", epochs=1), small(w), progress=False),
         ValueError, "--eval-negatives 28"),
        ("resume on other data", lambda w: train(BERT4RecConfig.from_dict(load_checkpoint(w["ckpt"])["config"]),
                                                 load_dataset(w["other"]), resume_from=w["ckpt"], progress=False),
         ValueError, "the users' sequences differ"),
        ("init_from other items", lambda w: train(BERT4RecConfig.from_dict(load_checkpoint(w["ckpt"])["config"]),
                                                  load_dataset(w["shifted"]), init_from=w["ckpt"], progress=False),
         ValueError, "the item mapping"),
        ("fingerprint n_items", lambda w: check_checkpoint_data(load_checkpoint(w["ckpt"]), synthetic_sequences(n_items=7)),
         ValueError, "trained on 40 items but the data loaded now (synthetic) has 7"),
        ("checkpoint without keys", lambda w: (torch.save({"version": 1}, w["root"] / "nokeys.pt"),
                                               load_checkpoint(w["root"] / "nokeys.pt")), ValueError, "lacks"),
        ("save config .txt", lambda w: BERT4RecConfig().save(w["root"] / "c.txt"), ValueError, "use a .json"),
        ("from_dict list", lambda w: BERT4RecConfig.from_dict([("hidden_size", 64)]), ValueError, "must be a mapping"),
        ("replace bad", lambda w: BERT4RecConfig().replace(amp="yes"), ValueError, "amp='yes'"),
        ("install damaged copy", lambda w: install_shared_copy("ml-100k", w["root"] / "cache_short" / "ml-100k",
                                                               w["root"] / "installed"), ValueError, "25,000 lines"),
        ("load damaged cache", lambda w: load_interactions("ml-100k", w["root"] / "cache_truncated"), ValueError,
         "is damaged"),
        ("download damaged cache", lambda w: download("ml-100k", w["root"] / "cache_ml1m_as_u_data"), ValueError,
         "ml-100k's u.data"),
        ("atomic_write two sources", lambda w: atomic_write(w["root"] / "x", b"", copy_from=w["data"]), ValueError,
         "exactly one of"),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize("name, call, error, match", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses_bad_inputs(world, name, call, error, match):
    with pytest.raises(error) as raised:
        call(world)
    assert match in str(raised.value), str(raised.value)
    assert not (world["root"] / "installed").exists()
    no_half_written_files(world["root"])


# ================================================================================================ what must work
def test_numpy_integers_are_ids_and_cut_offs(world):
    model = model_from_checkpoint(load_checkpoint(world["ckpt"]))
    assert recommend(model, [np.int64(1), 2], k=np.int64(3)) == recommend(model, [1, 2], k=3)
    assert recommend(model, np.array([1, 2]), k=3) == recommend(model, [1, 2], k=3)
    ranks = torch.tensor([1, 3, 20])
    assert hit_rate_at_k(ranks, np.int64(2)) == hit_rate_at_k(ranks, 2)
    assert ndcg_at_k(ranks, np.int32(5)) == ndcg_at_k(ranks, 5) and mrr(ranks, np.int64(5)) == mrr(ranks, 5)


def test_checkpoints_record_the_data_and_evaluate_on_the_same_data(world, capsys):
    state = load_checkpoint(world["ckpt"])
    stored = state["dataset"]["fingerprint"]
    assert stored == load_dataset(world["data"]).fingerprint() and stored["n_items"] == 40
    assert cli.main(["evaluate", "--checkpoint", str(world["ckpt"])]) == 0
    legacy = {**state, "dataset": {k: v for k, v in state["dataset"].items() if k != "fingerprint"}}
    check_checkpoint_data(legacy, load_dataset(world["data"]))  # an old checkpoint: n_items is all there is to compare


def test_stale_temporaries_are_removed_when_a_run_starts(world, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".checkpoint.pt.abc123.tmp", out / "checkpoint.pt.tmp", out / ".config.json.x.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    (out / "notes.tmp").write_text("mine")  # not ours: kept
    assert sorted(remove_stale_temporaries(out)) == sorted(stale)
    assert [p.name for p in out.iterdir()] == ["notes.tmp"]
    (out / ".checkpoint.pt.zzz.tmp").write_bytes(b"half")
    config = BERT4RecConfig.from_dict(load_checkpoint(world["ckpt"])["config"])
    train(config.replace(epochs=1), load_dataset(world["data"]), out_dir=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "notes.tmp"]
    mode = (out / "checkpoint.pt").stat().st_mode & 0o777
    assert mode & 0o044 or os.umask(os.umask(0)) & 0o044  # readable by group/others unless the umask says no


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    def broken(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "checkpoint.pt", writer=broken)
    assert list(tmp_path.iterdir()) == []


def test_verified_manifest_and_plausibility_levels(tmp_path, monkeypatch):
    """Without a published hash (RecBole's .inter), the plausibility checks still catch every truncation."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    full = header + u_data_lines(100_000)
    (folder / "ml-100k.inter").write_text(full)
    assert len(load_interactions("ml-100k", tmp_path)) == 100_000  # plausible: used
    for cut, match in ((len(full) - 3, "does not end with a newline"), (len(full) // 2, "lines where")):
        (folder / "ml-100k.inter").write_text(full[:cut])
        with pytest.raises(ValueError, match=match):
            load_interactions("ml-100k", tmp_path)
    (folder / "ml-100k.inter").write_text(header + u_data_lines(500))
    write_manifest(folder, {"ml-100k.inter": file_hash(folder / "ml-100k.inter")})  # now recorded ...
    assert len(load_interactions("ml-100k", tmp_path)) < 100_000  # ... and trusted as it is
    with open(folder / "ml-100k.inter", "a") as f:
        f.write("1\t2\t3\t4\n")
    with pytest.raises(ValueError, match="changed since"):  # ... until it changes
        download("ml-100k", tmp_path)


# ================================================================================================ hypothesis
def _wrong_type(kind: str):
    anything = st.one_of(st.text(max_size=5), st.booleans(), st.none(), st.floats(allow_nan=True),
                         st.integers(-10, 10), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.integers(0, 3), st.integers(), min_size=1, max_size=2))
    accepts = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "int | None": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "dict[str, Any]": lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
    }[kind]
    return anything.filter(lambda v: not accepts(v))


def _wrong_value(name: str, kind: str):
    rule = RULES[name]
    if kind in ("int", "int | None"):
        options = [st.integers(max_value=int(rule.low) - 1)] if rule.low is not None else []
        options += [st.integers(min_value=int(rule.high) + 1)] if rule.high is not None else []
        return st.one_of(*options) if options else None
    if kind == "float":
        options = [st.sampled_from([math.nan, math.inf, -math.inf])]
        if rule.low is not None:
            options.append(st.floats(max_value=rule.low, exclude_max=not rule.low_open, allow_nan=False))
        if rule.high is not None:
            options.append(st.floats(min_value=rule.high, exclude_min=not rule.high_open, allow_nan=False))
        return st.one_of(*options)
    if kind == "str" and (rule.choices or rule.pattern):
        allowed = rule.choices or ("auto", "cpu", "cpu:0", "mps", "mps:0", "cuda")
        return st.text(max_size=6).filter(lambda v: v not in allowed and not v.startswith("cuda:"))
    return None


@pytest.mark.parametrize("name", list(FIELDS))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(draw=st.data())
def test_hypothesis_every_field_refuses_wrong_types_and_values(name, draw):
    kind = FIELDS[name]
    strategies = [_wrong_type(kind)] + ([s] if (s := _wrong_value(name, kind)) is not None else [])
    value = draw.draw(st.one_of(*strategies))
    with pytest.raises(ValueError) as error:
        BERT4RecConfig(**{name: value})
    assert name in str(error.value)


@settings(max_examples=20, deadline=None)
@given(values=st.fixed_dictionaries({}, optional={
    "hidden_size": st.sampled_from([8, 16, 64]), "n_heads": st.sampled_from([1, 2, 4]),
    "learning_rate": st.floats(1e-6, 1.0), "causal": st.booleans(), "seed": st.integers(0, 2**32 - 1),
    "window_step": st.one_of(st.none(), st.integers(1, 50)), "device": st.sampled_from(["cpu", "cpu:0", "auto"])}))
def test_hypothesis_good_configs_survive_a_json_round_trip(tmp_path_factory, values):
    config = BERT4RecConfig(**values)
    path = tmp_path_factory.mktemp("cfg") / "c.json"
    config.save(path)
    assert BERT4RecConfig.load(path) == config and json.loads(path.read_text())["device"] == config.device


# ================================================================================================ by class
# Each class below is one way an input used to be silently wrong, end in a traceback or hang; each row one case.
def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and len(err[0]) < 1100, err
    return err[0]


def _run_cli(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


STRICT_CONFIGS = [  # (file name, content, piece of the message)
    ("dup.json", '{"seed": 1, "seed": 2}', "duplicate key 'seed'"),
    ("dup.yaml", "seed: 1\nseed: 2\n", "duplicate key 'seed'"),
    ("octal.yaml", "seed: 010\n", "'010' is read differently"),
    ("sexagesimal.yaml", "warmup_steps: 1:30\n", "'1:30' is read differently"),
    ("hex.yaml", "seed: 0x1F\n", "'0x1F' is read differently"),
    ("yes.yaml", "amp: off\n", "'off' is read differently"),
    ("deep.json", '{"extra": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    ("deep.yaml", "extra: " + "[" * 100_000 + "\n", "nested deeper"),
    ("alias.yaml", "extra: &a [1]\nother: *a\n", "anchors and aliases"),
    ("laughs.yaml", "extra:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
               for i in range(9)), "anchors and aliases"),
    ("self.yaml", "extra: &a\n  me: *a\n", "anchors and aliases"),
    ("date.yaml", "extra:\n  when: 2020-01-01\n", "extra.when is a date"),
    ("binary.yaml", "extra: !!binary aGVsbG8=\n", "extra is a bytes"),
    ("bigint.json", '{"seed": ' + "1" * 5001 + "}", "(option seed) has 5,001 digits"),
    ("bigint.yaml", "seed: " + "1" * 5001 + "\n", "5,001 digits is too long (the value of seed)"),
    ("huge.json", '{"extra": {"pad": "' + "x" * (1 << 20) + '"}}', "a config file is a few dozen lines"),
]


@pytest.mark.parametrize("name, text, match", STRICT_CONFIGS, ids=[c[0] for c in STRICT_CONFIGS])
def test_config_files_are_read_strictly(tmp_path, capsys, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=None) as error:
        BERT4RecConfig.load(path)
    assert match in str(error.value) and str(path) in str(error.value), str(error.value)[:300]
    assert _run_cli(["train", "--config", str(path), "--out", str(tmp_path / "out"), *TINY]) == 2
    assert match in _error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_plain_yaml_numbers_still_read(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("seed: 12\nlearning_rate: 1.0e-3\nwarmup_steps: 0\nextra: {note: '010', list: [1, 2.5, x]}\n")
    config = BERT4RecConfig.load(path)
    assert (config.seed, config.learning_rate, config.extra["note"]) == (12, 1e-3, "010")


def _special_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    return {"fifo": fifo, "zero": zero}


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX only")
@pytest.mark.parametrize("kind", ["fifo", "zero"])
@pytest.mark.parametrize("where", ["config", "checkpoint", "dataset", "params"])
def test_only_regular_files_are_opened(tmp_path, capsys, kind, where):
    special = _special_files(tmp_path)[kind]
    suffix = {"config": ".json", "checkpoint": ".pt", "dataset": ".txt", "params": ".test"}[where]
    path = special.rename(special.with_name(special.name + suffix))
    argv = {"config": ["train", "--config", str(path), *TINY],
            "checkpoint": ["evaluate", "--checkpoint", str(path)],
            "dataset": ["stats", "--dataset", str(path)],
            "params": ["tune", "--params-file", str(path), *TINY]}[where]
    assert _run_cli(argv) == 2  # at once: a FIFO is never opened (it would block), /dev/zero never read
    assert ("FIFO" if kind == "fifo" else "a device") in _error_line(capsys)


DATA_FILES = [  # (content, piece of the message); the data file is read by `stats`
    ("1\t1\t5\t1e30\n1\t2\t5\t100\n", "timestamp 1e+30"),
    ("1\t1\t5\tinf\n1\t2\t5\t100\n", "timestamp inf"),
    ("1\t1\t5\t-1e19\n1\t2\t5\t100\n", "is not a finite time"),
    ("x" * 5_000_000 + "\n", "cannot tell the format"),
    ("1 2\n" * 3 + "1 " + "y" * 100_000 + " 3\n", "expected 2 fields"),
]


@pytest.mark.parametrize("text, match", DATA_FILES, ids=[f"data{i}" for i in range(len(DATA_FILES))])
def test_bad_data_files_give_one_short_line(tmp_path, capsys, text, match):
    path = tmp_path / "ratings.txt"
    path.write_text(text)
    assert _run_cli(["stats", "--dataset", str(path), "--min-user-count", "1", "--min-item-count", "1"]) == 2
    line = _error_line(capsys)
    assert match in line and len(line) < 600, line[:300]


@pytest.mark.parametrize("raw, users, order", [
    (b"1\t10\t5\t1.7\n1\t11\t5\t1.2\n1\t12\t5\t1.5\n", [1, 1, 1], [11, 12, 10]),  # fractional: kept, ordered
    (b"\xef\xbb\xbf1 2\n1 3\n1 4\n", [1, 1, 1], [2, 3, 4]),  # a UTF-8 byte order mark is not part of user 1
    (b"99999999999999999999 2\n99999999999999999999 3\n1 4\n", ["1", "99999999999999999999"], None),  # > 2**63
])
def test_data_files_read_correctly(tmp_path, raw, users, order):
    path = tmp_path / "data.txt"
    path.write_bytes(raw)
    df = load_interactions(path)
    assert sorted(set(df["user"].tolist()), key=str) == sorted(set(users), key=str)
    if order is not None:
        assert df.sort_values("timestamp", kind="stable")["item"].tolist() == order


def _damage_weights(state):
    model = dict(state["model"])
    name = next(iter(model))
    model[name] = model[name].clone()
    model[name].view(-1)[0] += 1.0
    return {**state, "model": model}


def _wrong_shape(state):
    model = {k: (torch.zeros(3, 3) if i == 0 else v) for i, (k, v) in enumerate(state["model"].items())}
    return {**state, "model": model, "best_model": model}


CHECKPOINTS = [  # (how the checkpoint is changed, whether the checksum is recomputed, piece of the message)
    ("flipped", _damage_weights, False, "does not match the sha256"),
    ("shape", _wrong_shape, True, "weights of the wrong shape"),
    ("int_dataset", lambda s: {**s, "dataset": {**s["dataset"], "dataset": 7}}, True, "its dataset entry 'dataset' is int"),
    ("str_n_items", lambda s: {**s, "n_items": "40"}, True, "'n_items' entry is str"),
    ("list_config", lambda s: {**s, "config": [1]}, True, "'config' entry is list"),
]


@pytest.mark.parametrize("name, change, rehash, match", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_damaged_checkpoints_are_refused(world, tmp_path, capsys, name, change, rehash, match):
    import minibert4rec.support.checkpoint as checkpoint

    state = change(load_checkpoint(world["ckpt"]))
    path = tmp_path / "ckpt.pt"
    if rehash:
        save_checkpoint(path, state)
    else:  # the stored checksum of the intact content, over damaged content
        intact = load_checkpoint(world["ckpt"])
        torch.save({**state, "sha256": checkpoint.content_sha256(intact)}, path)
    for command in (["evaluate", "--checkpoint", str(path)], ["recommend", "--checkpoint", str(path), "--items", "1"]):
        assert _run_cli(command) == 2
        assert match in _error_line(capsys)


@pytest.mark.parametrize("error, match", [
    (OSError(28, "No space left on device"), "the disk is full"),
    (OSError(30, "Read-only file system"), "the file system is read-only"),
    (RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file data/0: "
                  "file write failed"), "the disk is full"),
    (PermissionError(13, "Permission denied"), "permission denied"),
])
def test_write_failures_are_one_line_naming_the_path(tmp_path, error, match):
    def failing(f):
        f.write(b"partial")
        raise error

    dest = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(ValueError) as caught:
        atomic_write(dest, writer=failing)
    assert str(dest) in str(caught.value) and match in str(caught.value)
    assert not dest.exists() and not list((tmp_path / "run").iterdir())  # no temporary left


def test_a_bug_in_a_writer_is_not_disguised(tmp_path):
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "x", writer=lambda f: 1 / 0)


TUNE_CASES = [  # (hyper.test content, extra argv, piece of the message)
    ("learning_rate choice [0.01,0.001]\n", ["--max-trials", "-1"], "max_trials=-1 must be a positive integer"),
    ("learning_rate choice [0.01,0.001]\n", ["--max-trials", "0"], "max_trials=0"),
    ("learning_rate uniform 0.001,0.01\n", ["--max-trials", "-1"], "max_trials=-1"),
    ("weight_decay loguniform 700,800\n", [], "exp(800) is beyond any float"),
    ("batch_size quniform 16,64,0\n", [], "q=0 must be a positive step"),
    ("learning_rate uniform 0.01,0.001\n", [], "low=0.01 is above high=0.001"),
    ("learning_rate uniform nan,0.1\n", [], "must be finite"),
    ("hidden_dropout_prob uniform 0.1,1.5\n", [], "hidden_dropout_prob=1.5"),
    ("learning_rate choice [0.01,-1]\n", [], "learning_rate=-1"),
    ("learning_rate choice [0.01]\nlearning_rate choice [0.1]\n", [], "already given"),
]


@pytest.mark.parametrize("text, extra, match", TUNE_CASES, ids=[f"tune{i}" for i in range(len(TUNE_CASES))])
def test_tune_refuses_bad_search_spaces(world, tmp_path, capsys, text, extra, match):
    params = tmp_path / "hyper.test"
    params.write_text(text)
    out = tmp_path / "out"
    assert _run_cli(["tune", "--params-file", str(params), "--dataset", str(world["data"]), "--out", str(out),
                     *TINY, *extra]) == 2
    assert match in _error_line(capsys)
    assert not out.exists()


@pytest.mark.skipif(getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
                    reason="this machine has MPS")
@pytest.mark.parametrize("device", ["mps", "mps:0"])
def test_a_device_the_machine_lacks_is_one_line(world, tmp_path, capsys, device):
    out = tmp_path / "out"
    argv = ["train", "--dataset", str(world["data"]), "--out", str(out), *TINY, "--device", device]
    assert _run_cli(argv) == 2
    assert "no Apple MPS device" in _error_line(capsys) and not out.exists()


def test_memory_check_uses_the_memory_available_now(world, monkeypatch):
    from minibert4rec.support import preflight

    monkeypatch.setattr(preflight, "_available_ram", lambda: 1024)
    small = load_dataset(world["data"], min_user_count=1, min_item_count=1)
    with pytest.raises(ValueError, match="GiB available"):
        check_before_training(BERT4RecConfig(device="cpu", eval_negatives=5, hidden_size=8, inner_size=16), small, "cpu")


# ------------------------------------------------------------------------------------------------ runs and --out
def _copy_run(world, tmp_path) -> Path:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(world["ckpt"].parent, run)
    (run / "metrics.json").unlink(missing_ok=True)
    return run


def test_resume_needs_no_repeated_data_options(world, tmp_path, capsys):
    run = _copy_run(world, tmp_path)  # trained on a file (seq.txt), with the default k-core
    assert _run_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 0, capsys.readouterr().err
    assert (run / "metrics.json").is_file()
    (run / "metrics.json").unlink()
    assert _run_cli(["train", "--resume", "--out", str(run), "--quiet", "--min-user-count", "5"]) == 0
    (run / "metrics.json").unlink()
    assert _run_cli(["train", "--resume", "--out", str(run), "--quiet", "--dataset", "ml-100k"]) == 2
    assert "drop the option" in _error_line(capsys)  # what is typed is still compared


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def test_a_second_train_on_the_same_out_is_refused(world, tmp_path, capsys):
    import fcntl

    run = _copy_run(world, tmp_path)
    with open(run / cli.LOCK_NAME, "a+") as held:  # what a running train holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _run_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 2
        assert "another train is running" in _error_line(capsys)
    assert _run_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 0  # released: it runs


@pytest.mark.parametrize("failure, code, message", [
    (ValueError("boom"), 2, "error: boom"),
    (KeyboardInterrupt(), 130, "interrupted before the first checkpoint"),
])
def test_a_failed_train_leaves_no_empty_run_folder(world, tmp_path, monkeypatch, capsys, failure, code, message):
    import minibert4rec.train as train_module

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(train_module, "train", fail)
    out = tmp_path / "fresh"
    assert _run_cli(["train", "--dataset", str(world["data"]), "--out", str(out), *TINY]) == code
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_ctrl_c_after_a_checkpoint_says_how_to_resume(world, tmp_path, monkeypatch, capsys):
    import minibert4rec.train as train_module

    run = _copy_run(world, tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    assert _run_cli(["train", "--resume", "--out", str(run), "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"interrupted; resume with: python -m minibert4rec train --resume --out {run}"]
    assert (run / "checkpoint.pt").is_file()


def test_recommend_many_users_in_one_pass(world, tmp_path, capsys):
    users = tmp_path / "users.txt"
    users.write_text("# raw user ids, or histories\n1\nhistory: 1,2,3\n\n2\n")
    assert _run_cli(["recommend", "--checkpoint", str(world["ckpt"]), "--users-file", str(users), "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "for 3 users" in out and "user 1" in out and "line 3" in out and "user 2" in out
    users.write_text("1\nnobody\n")
    assert _run_cli(["recommend", "--checkpoint", str(world["ckpt"]), "--users-file", str(users)]) == 2
    assert "line 2: user 'nobody' is not in" in _error_line(capsys)


def test_the_cli_reexports_nothing():
    assert not hasattr(cli, "metrics_table") and not hasattr(cli, "METRIC_ORDER")
