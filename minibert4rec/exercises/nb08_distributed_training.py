"""Notebook 08 (distributed training): the exercises on sharding a batch across processes and scaling the
learning rate with the batch, what extra processes buy, with their check and hints. ``shard_rows`` is compared with
``distributed.shard_rows``.
"""

from __future__ import annotations

from typing import Callable

import torch

from .framework import CheckResult, Exercise, _against, _left_padded, _pair_problem, _run

EXERCISES: list[Exercise] = [
    Exercise("scaled_lr", "08", "question",
             "1 GPU: batch 128, lr 1e-3, 100 warm-up steps. 8 GPUs x 128: global batch, steps per epoch, lr, warm-up?",
             ("The global batch is what one optimizer step averages over; an epoch is still every sample once.",
              "Goyal et al. scale the lr with the batch (the linear rule); for Adam a square-root rule is the "
              "common start.",
              "Warm-up is counted in optimizer steps: how many samples did the old warm-up see?")),
    Exercise("shard_rows", "08", "implement",
             "This rank's rows (rank, rank + world_size, ...) of a global batch, without all-padding leading columns.",
             ("A slice with a step picks every world_size-th row.",
              "The first column to keep is the first one where any of YOUR rows is not padding (0).",
              "Cut the labels at the same column as the inputs. A rank may get no rows at all: keep every column "
              "then.")),
    Exercise("explore_ddp_lr", "08", "explore",
             "2 processes x batch 64 vs 1 x 128 vs 2 x 128 (lr 1e-3 and 2e-3): which curves match, which learn faster?",
             ("Compare the global batches: which runs take the same optimizer steps?",
              "A larger global batch means fewer steps per epoch: plot NDCG@10 against epochs and against steps.",
              "Then change only the learning rate of the larger batch and compare again.")),
    Exercise("explore_ddp_speed", "08", "explore",
             "4 processes on this CPU vs 1 (same threads in total), and 2 GPUs vs 1: seconds per epoch and curves?",
             ("Count the cores: how many threads can run at the same moment, whatever the number of processes?",
              "Each extra rank adds an all-reduce partner and a copy of the program; what does it add in compute?",
              "On GPUs, each rank brings its own device: which part of the epoch shrinks, and which does not?")),
]


def check_shard_rows(fn: Callable) -> CheckResult:
    """``shard_rows(inputs, labels, rank, world_size) -> (inputs, labels)``: rows rank, rank + world_size, ...
    of a global batch, trimmed of the leading columns that are padding in all of them (``distributed.shard_rows``)."""
    from ..distributed import shard_rows

    g = torch.Generator().manual_seed(8)

    def batch(b: int, n: int, min_len: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        items = _left_padded(g, b, n, 50, min_len=min_len)
        items = items[torch.argsort((items > 0).sum(1), stable=True)]  # sorted by length, as in a grouped batch
        labels = torch.where(torch.rand(items.shape, generator=g) < 0.3, items, 0)
        return torch.where(labels > 0, 51, items), labels

    x = torch.tensor([[0, 0, 1], [0, 2, 3], [4, 5, 6], [0, 0, 7]])
    cases = [(x, x.clone(), 0, 2), (x, x.clone(), 1, 2), (x, x.clone(), 2, 4), (x[:1], x[:1].clone(), 1, 2)]
    cases += [(*batch(16, 12), r, 3) for r in range(3)] + [(*batch(7, 9, 0), 3, 4), (*batch(64, 20), 5, 8)]
    compare = lambda e, g_: _pair_problem(e, g_, ("inputs", "labels"), "int")  # noqa: E731
    return _run("shard_rows", fn, cases, _against(shard_rows, compare))
