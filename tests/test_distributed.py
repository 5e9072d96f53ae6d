"""Data-parallel training: 2 gloo processes under torchrun on synthetic data, against one process.

Two torchrun launches of tests/ddp_worker.py train three runs on 2 ranks (per-rank batch 16, global batch 32): in
the first, rank 1 is killed mid-run; the second resumes that run and trains it again from scratch through the
command line. The tests compare with each other and with one-process runs of global batch 32 in this process.

Why the loss trajectory is close but not equal to one process even without dropout: both see exactly the same
samples and Cloze masks and the gradient is mathematically the same (each rank's loss is weighted by its share of
the masked items), but each rank runs its rows as a smaller matrix (different summation order in the matmuls), and
the all-reduce adds the two halves of every gradient in another order than one backward pass does; Adam divides by
the square root of tiny second moments early on, so rounding differences of 1e-7 grow to ~1e-5 in the loss over
three epochs: LOSS_RTOL = 1e-4. With dropout the runs differ by design: each rank draws its own dropout masks.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minibert4rec import distributed
from minibert4rec.data import load_dataset, synthetic_sequences
from minibert4rec.distributed import shard_rows
from minibert4rec.evaluate import evaluate, negative_counts
from minibert4rec.masking import ClozeDataset
from minibert4rec.model import BERT4Rec
from minibert4rec.support.checkpoint import load_checkpoint
from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.train import train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import DROPOUT, EVAL_BATCH, NO_DROPOUT, SMALL  # noqa: E402

LOSS_RTOL = 1e-4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Write synthetic sequences as a 'user item' file and train on them under torchrun (2 ranks, 1 restart)."""
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    out = tmp_path_factory.mktemp("ddp")
    synthetic = synthetic_sequences(n_users=300, n_items=200, min_len=8, max_len=20, seed=0, p_follow=0.9)
    sequences = out / "synthetic.txt"
    sequences.write_text("".join(f"{u + 1} {i}\n" for u, seq in enumerate(synthetic.sequences) for i in seq))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--monitor-interval", "0.2", str(ROOT / "tests" / "ddp_worker.py"), str(sequences), str(out)]
    killed = subprocess.run([*command, "first"], env=env, cwd=out, capture_output=True, text=True, timeout=300)
    assert killed.returncode != 0 and "exitcode  : 9" in killed.stderr, killed.stdout[-3000:] + killed.stderr[-3000:]
    done = subprocess.run([*command, "second"], env=env, cwd=out, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"out": out, "data": load_dataset(sequences, data_dir=out), "stdout": done.stdout}


def _equal_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_shard_rows_cover_the_batch_once_and_balance_lengths():
    dataset = ClozeDataset([list(range(1, n + 1)) for n in range(2, 60)], max_len=20, mask_ratio=0.2, mask_id=99,
                           n_items=98, seed=0)
    for inputs, labels in dataset.batches(7, epoch=1, group_by_length=True):
        parts = [shard_rows(inputs, labels, r, 3) for r in range(3)]
        assert sorted(len(p[0]) for p in parts)[-1] - sorted(len(p[0]) for p in parts)[0] <= 1
        for r, (x, y) in enumerate(parts):  # the same rows, trimmed of all-padding columns only
            cut = inputs.shape[1] - x.shape[1]
            assert torch.equal(x, inputs[r::3, cut:]) and torch.equal(y, labels[r::3, cut:])
            assert (inputs[r::3, :cut] == 0).all()
        assert sum(int((p[1] > 0).sum()) for p in parts) == int((labels > 0).sum())


def test_one_process_sets_up_nothing():
    assert distributed.current() == distributed.Context() and not distributed.dist.is_initialized()


@pytest.mark.integration
def test_both_ranks_hold_the_same_model(run):
    for name in ("B", "C"):
        rank0 = torch.load(run["out"] / f"{name}_model_rank0.pt", weights_only=True)
        assert _equal_state(rank0, torch.load(run["out"] / f"{name}_model_rank1.pt", weights_only=True)), name


@pytest.mark.integration
def test_sharded_evaluation_is_the_one_process_evaluation_of_the_same_weights(run):
    data, ranks = run["data"], [json.loads((run["out"] / f"B_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["valid"] == ranks[1]["valid"] and ranks[0]["test"] == ranks[1]["test"]
    config = BERT4RecConfig(**SMALL, **NO_DROPOUT)
    model = BERT4Rec(config, data.n_items)
    model.load_state_dict(torch.load(run["out"] / "B_model_rank0.pt", weights_only=True))
    split = data.split()
    for name in ("valid", "test"):  # B evaluated with batches of 64 users: 5 batches, 3 on rank 0 and 2 on rank 1
        one = evaluate(model, getattr(split, f"{name}_inputs"), getattr(split, f"{name}_targets"),
                       negative_counts(data, config),
                       max_len=config.max_seq_length, mask_id=data.mask_id, seed=config.seed, batch_size=EVAL_BATCH,
                       n_negatives=config.eval_negatives, interacted=[data.sequences[u] for u in split.eval_users])
        assert one == ranks[0][name]  # exactly, every metric of every protocol


@pytest.mark.integration
def test_loss_trajectory_matches_one_process_with_the_global_batch(run):
    ranks = json.loads((run["out"] / "B_rank0.json").read_text())
    assert ranks["extra"] == {"world_size": 2, "global_batch_size": 32}
    one = train(BERT4RecConfig(**{**SMALL, "batch_size": 32}, **NO_DROPOUT), run["data"], progress=False)
    assert ranks["train_loss"] == pytest.approx(one.history["train_loss"].tolist(), rel=LOSS_RTOL)


@pytest.mark.integration
def test_the_command_line_writes_once_and_states_the_global_batch(run):
    a = run["out"] / "A"
    metrics = json.loads((a / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_batch_size"] == 32
    assert set(metrics["test"]) == {"full", "full_filtered", "sampled"}
    assert "data-parallel: 2 processes (gloo), global batch 32 = 16 per rank x 2, lr 0.01" in run["stdout"]
    assert run["stdout"].count("test / sampled") == 1  # one results table, from rank 0
    assert not list(a.glob("*.tmp"))


@pytest.mark.integration
def test_resume_after_a_kill_gives_the_run_that_never_stopped(run):
    a, c = (load_checkpoint(run["out"] / name / "checkpoint.pt") for name in ("A", "C"))
    assert a["epoch"] == c["epoch"] == 3
    assert _equal_state(a["model"], c["model"])
    assert [row["train_loss"] for row in a["history"]] == [row["train_loss"] for row in c["history"]]
    resumed = json.loads((run["out"] / "C_resumed.json").read_text())
    metrics = json.loads((run["out"] / "A" / "metrics.json").read_text())
    assert resumed == {"valid": metrics["valid"], "test": metrics["test"]}
    # a checkpoint of 2 processes is refused by 1 (its batches and schedule depend on the number of ranks)
    with pytest.raises(ValueError, match="trained by 2 processes"):
        train(BERT4RecConfig(**SMALL, **DROPOUT), run["data"], resume_from=run["out"] / "C" / "checkpoint.pt",
              progress=False)
