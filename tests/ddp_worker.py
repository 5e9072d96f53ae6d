"""The program that tests/test_distributed.py runs twice under ``torchrun --nproc_per_node 2``.

    torchrun --standalone --nproc_per_node 2 ddp_worker.py SEQUENCES_FILE OUT_DIR first|second

First launch, every rank:
  B. trains through ``train()`` with dropout off and saves its final model and metrics (one file per rank);
  C. trains with dropout in OUT_DIR/C and rank 1 dies (``os._exit``: a kill, no clean-up) at the end of epoch 2.
torchrun then stops rank 0 and fails. The second launch's ranks
  C. resume C from its last checkpoint (epoch 1 or 2: whichever rank 0 wrote before it was stopped), then
  A. train C's run from scratch through the command line (``cli.main``, what ``torchrun -m minibert4rec train``
     runs) in OUT_DIR/A: the run that never stopped.
(``torchrun --max-restarts 1`` could do both in one launch, but gloo's reconnection after a restart failed 1 time
in 3 on the development machine: two launches keep the test deterministic.)
"""

import json
import os
import sys
from pathlib import Path

import torch

from minibert4rec import distributed

from minibert4rec.apps import cli
from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.data import load_dataset
from minibert4rec.train import train

# per-rank batch 16 -> global batch 32; the test's one-process runs use batch 32
SMALL = dict(hidden_size=32, inner_size=64, n_heads=2, max_seq_length=10, batch_size=16, learning_rate=1e-2,
             warmup_steps=10, device="cpu", seed=0, epochs=3)
DROPOUT = dict(hidden_dropout_prob=0.1, attn_dropout_prob=0.1)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attn_dropout_prob=0.0)
EVAL_BATCH = 64  # run B evaluates 300 users in 5 batches: 3 scored by rank 0, 2 by rank 1


def main(sequences: str, out: str, launch: str) -> None:
    torch.set_num_threads(1)
    out_dir = Path(out)
    config = BERT4RecConfig(**SMALL, **DROPOUT)
    parallel = distributed.init_from_env("cpu")
    data = load_dataset(sequences, data_dir=out)
    if launch == "first":
        result = train(config.replace(**NO_DROPOUT), data, progress=False, eval_batch_size=EVAL_BATCH)
        torch.save(result.model.state_dict(), out_dir / f"B_model_rank{parallel.rank}.pt")
        (out_dir / f"B_rank{parallel.rank}.json").write_text(json.dumps({
            "valid": result.valid, "test": result.test, "extra": result.extra,
            "train_loss": result.history["train_loss"].tolist()}))

        def kill_rank_1(row):
            if row["epoch"] == 2 and parallel.rank == 1:
                os._exit(9)

        train(config, data, out_dir=out_dir / "C", on_epoch_end=kill_rank_1, progress=False)
        raise AssertionError("rank 1 should have been killed and rank 0 stopped by torchrun")
    result = train(config, data, out_dir=out_dir / "C", resume_from=out_dir / "C" / "checkpoint.pt", progress=False)
    torch.save(result.model.state_dict(), out_dir / f"C_model_rank{parallel.rank}.pt")
    if parallel.is_main:
        (out_dir / "C_resumed.json").write_text(json.dumps({"valid": result.valid, "test": result.test}))
    flags = ["--hidden-size", "32", "--inner-size", "64", "--max-seq-length", "10", "--batch-size", "16",
             "--lr", "1e-2", "--warmup-steps", "10", "--device", "cpu", "--seed", "0", "--epochs", "3",
             "--hidden-dropout-prob", "0.1", "--attn-dropout-prob", "0.1"]
    code = cli.main(["train", "--dataset", sequences, "--data-dir", out, "--out", str(out_dir / "A"), "--quiet", *flags])
    assert code == 0 and BERT4RecConfig.load(out_dir / "A" / "config.json") == config  # (main closed the group)


if __name__ == "__main__":
    main(*sys.argv[1:])
