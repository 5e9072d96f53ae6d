"""Data-parallel training: N processes, one model replica each, gradients averaged by an all-reduce.

``torchrun --nproc_per_node N -m minibert4rec train ...`` starts the same program N times. Each copy is a *rank*
(0..N-1); on a GPU node each rank drives one GPU. ``DistributedDataParallel`` (DDP) then does four things:

1. **Replicas.** Every rank builds the same model; DDP broadcasts rank 0's weights once, so they start equal.
2. **Sharded data.** Each step every rank takes a different, disjoint part of the *global* batch: here rows
   ``r, r + N, r + 2N, ...`` of it, so global batch = per-rank batch x N, and one epoch is still every Cloze
   sample once (``ReplicatedLoss.shard``).
3. **All-reduce of gradients.** During ``backward()`` DDP averages each gradient over the ranks (in buckets, while
   the backward pass is still running); afterwards every replica holds the same gradient: that of the global batch.
4. **Identical steps.** Same weights + same gradient + same optimizer = the replicas stay equal, without ever
   sending weights. The only traffic is one gradient-sized all-reduce per step (NCCL between GPUs, gloo on CPUs).

Choices of this package, each for exactness:

* Every rank builds the same global batch (the seeded shuffle and Cloze masks of a one-process run with that batch
  size; cheap next to the model) and keeps its rows: sharding never changes which samples or masks are trained on.
* DDP *averages* gradients, i.e. the mean of the ranks' mean losses; with masked items unevenly spread over ranks
  that is not the mean over the global batch. Each rank's loss is weighted by its share of the batch's masked
  items, so the average is exactly the global batch's gradient (``ReplicatedLoss.__call__``).
* Evaluation: each rank scores every N-th batch of users (the same batches one process would form) and the
  per-user ranks are summed over processes; the metrics are those of one process (``sum_over_ranks``).
* Dropout: each rank reseeds torch's generator at every epoch from (seed, epoch, rank), so replicas drop different
  units and a resumed run needs no per-rank random state (``Context.seed_epoch``).
* Only rank 0 prints and writes files; every rank returns the same trained model.

A run without torchrun never sets up a process group: :func:`current` then says rank 0 of 1 and every method
below does nothing: the single-process trainer is the same loop with no communication. torchrun's variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) are read here and by
``init_process_group``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .masking import PAD


def launched_by_torchrun() -> bool:
    """True in a process started by ``torchrun`` (or any launcher that sets ``WORLD_SIZE``) with more than 1 rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def backend_for(device: str) -> str:
    """NCCL for CUDA GPUs (fast GPU-to-GPU all-reduce), gloo for CPUs."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "nccl" if wants_cuda else "gloo"


@dataclass(frozen=True)
class Context:
    """Who this process is: ``rank`` of ``world_size`` (``local_rank`` = its index on this machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, logs and writes files."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)``, what ``train.evaluate(shard=...)`` takes."""
        return self.rank, self.world_size

    def place(self, device: torch.device) -> torch.device:
        """Each rank on a GPU node drives its own GPU: cuda -> cuda:LOCAL_RANK. Other devices are unchanged."""
        if self.enabled and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        if self.enabled and device.type == "mps":
            raise ValueError("data-parallel training on Apple's mps device is not supported by torch.distributed; "
                             "use --device cpu.")
        return device

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Reseed torch's global generator (dropout, BPR negatives) per (seed, epoch, rank); no-op for one process."""
        if self.enabled:
            torch.manual_seed((seed * 1_000_003 + epoch) * 10_007 + self.rank)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the body on rank 0 first (e.g. a download), then on the other ranks (which find it done)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def epoch_totals(self, loss_sum: torch.Tensor | float, n_sequences: int, n_tokens: int, seconds: float,
                     device: torch.device) -> tuple[float, int, int, float]:
        """One epoch's numbers for the whole run: the global batches' loss sum, all ranks' sequences and tokens,
        and the slowest rank's time (so that every rank takes the same time-budget decision)."""
        if not self.enabled:
            return float(loss_sum), n_sequences, n_tokens, seconds
        sums = torch.tensor([float(loss_sum), n_sequences, n_tokens], dtype=torch.float64, device=device)
        dist.all_reduce(sums)  # loss: each rank's share-weighted loss adds up to world_size x the global mean
        slowest = torch.tensor([seconds], dtype=torch.float64, device=device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        return float(sums[0]) / self.world_size, int(sums[1]), int(sums[2]), float(slowest[0])

    def replicate(self, model: nn.Module, device: torch.device) -> "ReplicatedLoss":
        return ReplicatedLoss(model, self, device)

    def close(self) -> None:
        """Leave the process group (at the end of a run; nothing to do for one process)."""
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def current() -> Context:
    """This process's :class:`Context`: from the process group when one is set up, else rank 0 of 1."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return Context()
    rank = dist.get_rank()
    return Context(rank=rank, world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", rank)),
                   backend=str(dist.get_backend()))


def init_from_env(device: str = "auto") -> Context:
    """Join the process group that torchrun describes in the environment (once); without torchrun do nothing.

    ``device`` is the requested training device ("auto", "cpu", "cuda", ...): it picks the backend.
    """
    if not launched_by_torchrun():
        return Context()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend_for(device))  # reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    return current()


# --------------------------------------------------------------------------------------------- training
def shard_rows(inputs: torch.Tensor, labels: torch.Tensor, rank: int, world_size: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of a global batch: rows ``rank, rank + world_size, ...`` of (b n) -> (b' n').

    Strided, not contiguous: ``ClozeDataset.batches(group_by_length=True)`` sorts the rows of a batch by length,
    so contiguous blocks would give the last rank all the long histories (and everyone else a wait at the
    all-reduce). The rows are then trimmed of the leading columns that are padding in all of them (exact).
    The ranks' row counts differ by at most one; a rank gets none only when the batch has fewer rows than ranks.

    >>> x = torch.tensor([[0, 0, 1], [0, 2, 3], [4, 5, 6], [0, 0, 7]])
    >>> shard_rows(x, x, rank=1, world_size=2)[0]
    tensor([[2, 3],
            [0, 7]])
    """
    inputs, labels = inputs[rank::world_size], labels[rank::world_size]
    first = int((inputs != PAD).any(dim=0).int().argmax()) if len(inputs) else 0
    return inputs[:, first:], labels[:, first:]


class _Loss(nn.Module):
    """``model.loss`` as a module's forward: DDP synchronises gradients only for what goes through ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
        if weight == 0.0:  # no rows for this rank in this (last, small) batch: a zero gradient, still all-reduced
            return sum(p.sum() for p in self.model.parameters()) * 0.0
        return self.model.loss(inputs, labels) * weight


class ReplicatedLoss:
    """The training loss of a DDP replica: ``shard`` picks this rank's rows, calling it returns the loss to
    back-propagate, weighted so that DDP's average over ranks is the gradient of the global batch's mean loss."""

    def __init__(self, model: nn.Module, context: Context, device: torch.device) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self.context = context
        self.ddp = DistributedDataParallel(_Loss(model), device_ids=[device.index] if device.type == "cuda" else None)
        self.weight = 1.0

    def shard(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's part of every global batch; remembers its share of the batch's masked items."""
        rank, world_size = self.context.shard
        for inputs, labels in batches:
            global_targets = int((labels > 0).sum())
            inputs, labels = shard_rows(inputs, labels, rank, world_size)
            # mean over my m_r targets x (N m_r / M), averaged over N ranks = sum of all targets' losses / M
            self.weight = world_size * int((labels > 0).sum()) / max(1, global_targets)
            yield inputs, labels

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.ddp(inputs, labels, self.weight)


# --------------------------------------------------------------------------------------------- evaluation
def sum_over_ranks(values: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """The element-wise sum of ``values`` over all ranks (an all-reduce), returned on ``values``' device.

    Evaluation gathers this way: each rank fills the entries of its own users and leaves 0 elsewhere, so the sum
    holds every user's rank, on every process. NCCL reduces on the GPU: pass the rank's ``device``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return values
    buffer = values.to(device if device is not None else values.device)
    dist.all_reduce(buffer)
    return buffer.to(values.device)
