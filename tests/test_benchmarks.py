"""The reproduction benchmark end to end on a tiny dataset: what it writes, and that the paper's numbers are
stored as the paper's, never as ours."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minibert4rec.data import synthetic_sequences

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("protocol, watched", [("paper", "test"), ("held-out", "valid")])
def test_reproduce_writes_both_protocols_and_keeps_the_papers_row_apart(tmp_path, protocol, watched):
    data = synthetic_sequences(n_users=400, n_items=200, min_len=8, max_len=20, seed=3)  # >= 100 negatives each
    seqs = tmp_path / "seq.txt"
    seqs.write_text("".join(f"{u + 1} {i}\n" for u, seq in enumerate(data.sequences) for i in seq))
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, "benchmarks/reproduce.py", "--dataset", str(seqs), "--data-dir", str(tmp_path),
                    "--epochs", "2", "--eval-every", "1", "--protocol", protocol, "--threads", "1", "--out", str(out),
                    "--checkpoint-dir", str(tmp_path / "ck")], cwd=ROOT, check=True, capture_output=True, text=True)
    result = json.loads(out.read_text())
    assert result["status"] == "done" and result["protocol"] == protocol and result["epochs_run"] == 2
    assert result["config"]["include_valid_in_train"] == (protocol == "paper")
    assert [f"{watched}_sampled_NDCG@10" in row for row in result["curve"]] == [True, True]
    assert set(result["test"]) == {"full", "full_filtered", "sampled"}
    metrics = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")
    assert set(metrics) <= set(result["test"]["sampled"])
    # a 2-epoch model on synthetic data is nowhere near the paper: its row must not have leaked into ours
    assert all(result["test"]["sampled"][m] != result["paper"][m] for m in metrics)
    assert result[f"{watched}_reaches_paper_at_seconds"] is None
    assert {"git_commit", "command", "machine", "train_seconds"} <= set(result)
    assert (tmp_path / "ck" / "checkpoint.pt").exists() and not list(tmp_path.glob("*.tmp"))
