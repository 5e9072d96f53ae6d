"""RecBole hyper.test files work unchanged: parsing, the trial list, and a real two-trial search."""

import json

import pandas as pd
import pytest

from minibert4rec.apps import cli
from minibert4rec.data import synthetic_sequences
from minibert4rec.apps.tune import parse_hyper_file, trials


def test_parse_recbole_format(tmp_path):
    path = tmp_path / "hyper.test"
    path.write_text("learning_rate choice [0.01,0.005,0.001]\n# a comment\n\n"
                    "hidden_dropout_prob uniform 0.1,0.5\nweight_decay loguniform -9,-4\ntrain_batch_size choice [128,256]\n")
    space = parse_hyper_file(path)
    assert space["learning_rate"] == ("choice", [0.01, 0.005, 0.001])
    assert space["batch_size"] == ("choice", [128, 256])  # RecBole's name mapped to ours
    drawn = trials(space, max_trials=5, seed=0)
    assert len(drawn) == 5 and all(0.1 <= t["hidden_dropout_prob"] <= 0.5 for t in drawn)
    assert all(1.2e-4 <= t["weight_decay"] <= 1.9e-2 for t in drawn)  # exp(uniform(-9, -4))
    assert trials(space, max_trials=5, seed=0) == drawn  # seeded


def test_grid_when_all_choices(tmp_path):
    path = tmp_path / "hyper.test"
    path.write_text("learning_rate choice [0.01,0.001]\nn_heads choice [1,2]\n")
    assert len(trials(parse_hyper_file(path))) == 4


@pytest.mark.parametrize("line, message", [
    ("learning_rate pick [0.1]", "line 1: expected 'name choice|uniform|loguniform|quniform values'"),
    ("learnin_rate choice [0.1]", "line 1: 'learnin_rate' is not a BERT4Rec option"),
    ("learning_rate choice [0.1", "line 1: cannot read the values"),
    ("learning_rate uniform 0.1", "line 1: uniform needs low,high"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "hyper.test"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("[", r"\[")):
        parse_hyper_file(path)


def test_two_trial_search_writes_a_sorted_table(tmp_path, capsys):
    data = synthetic_sequences(n_users=150, n_items=120, seed=1)
    seqs = tmp_path / "seq.txt"
    seqs.write_text("".join(f"{u + 1} {i}\n" for u, seq in enumerate(data.sequences) for i in seq))
    params = tmp_path / "hyper.test"
    params.write_text("learning_rate choice [0.01,0.0001]\n")
    (tmp_path / "cfg.json").write_text(json.dumps({"eval_negatives": 20, "hidden_size": 16, "inner_size": 32,
                                                   "max_seq_length": 10, "epochs": 2, "device": "cpu"}))
    out = tmp_path / "tune"
    code = cli.main(["tune", "--dataset", str(seqs), "--data-dir", str(tmp_path), "--params-file", str(params),
                     "--config", str(tmp_path / "cfg.json"), "--out", str(out), "--quiet"])
    assert code == 0
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 2 and set(table["learning_rate"]) == {0.01, 0.0001}
    assert table["valid NDCG@10"].is_monotonic_decreasing
    assert {"test NDCG@10", "test HR@10", "test NDCG@10 (seen kept)", "test sampled NDCG@10"} <= set(table.columns)
    # ranked and reported as the trainer selects: full ranking with seen items removed, which can only help
    assert (table["test NDCG@10"] >= table["test NDCG@10 (seen kept)"] - 1e-12).all()
    assert (table["test NDCG@10"] > table["test NDCG@10 (seen kept)"]).any()
    assert json.loads((out / "best.json").read_text())["trial"] in (1, 2)
    assert "trial 2:" in capsys.readouterr().out


def test_tuning_refuses_to_select_on_a_validation_item_it_trained_on(tmp_path, capsys):
    params = tmp_path / "hyper.test"
    params.write_text("learning_rate choice [0.01,0.0001]\n")
    code = cli.main(["tune", "--dataset", "ml-100k", "--data-dir", str(tmp_path), "--params-file", str(params),
                     "--include-valid-in-train", "--quiet"])
    assert code == 2
    assert "drop --include-valid-in-train" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [params]  # refused before any download or training
