"""Checks before training: does this config fit this data and this machine? Each failure is a ``ValueError``
that says what to change, raised before an epoch (or a file) is spent.

Its own small module so that ``train.py`` reads as the loop of notebook 05; :func:`train.train` and the command
line (before it writes a run folder) both call :func:`check_before_training`, which ``train.py`` re-exports.
"""

from __future__ import annotations

import os

import torch

from .config import BERT4RecConfig, training_memory_lower_bound
from ..data import SequenceData


def _available_ram() -> int | None:
    """Bytes of RAM available now (``MemAvailable`` of /proc/meminfo, Linux), or None where it is unknown: other
    processes' memory cannot be used, so the physical size over-promises."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _machine_memory(device: torch.device) -> int | None:
    """Bytes of memory on ``device`` (the RAM available now for the CPU, else the physical RAM; the GPU's memory
    for CUDA); None when unknown."""
    try:
        if device.type == "cuda":
            return torch.cuda.get_device_properties(device).total_memory
        if device.type == "cpu":
            return _available_ram() or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        pass
    return None


def check_before_training(config: BERT4RecConfig, data: SequenceData, device: torch.device | str | None = None) -> None:
    """Everything that can be checked before an epoch is spent, each with a ``ValueError`` saying what to change:

    * some user has the 3 interactions leave-one-out needs (train, validation, test);
    * every evaluated user leaves ``eval_negatives`` items they never interacted with to sample negatives from
      (else the sampled protocol would fail after the first epoch);
    * the model fits in the device's memory (:func:`config.training_memory_lower_bound`, a lower bound: a refusal
      is never wrong).
    """
    evaluated = [s for s in data.sequences if len(s) >= 3]
    if not evaluated:
        raise ValueError(f"no user of {data.name or 'the data'} has the 3 interactions leave-one-out needs "
                         "(train, validation, test); use longer histories or lower --min-user-count.")
    most = max(len(set(s)) for s in evaluated)
    if data.n_items - most < config.eval_negatives:
        raise ValueError(f"eval_negatives={config.eval_negatives} cannot be sampled: {data.name or 'the data'} has "
                         f"{data.n_items:,} items and a user interacted with {most:,} of them, leaving "
                         f"{data.n_items - most:,} negatives; lower eval_negatives (--eval-negatives "
                         f"{max(1, data.n_items - most)}) or use a larger catalogue.")
    check_device(str(device) if device is not None else config.device)
    if device is None:  # the caller did not resolve "auto" (train.choose_device does): judge by the CPU
        device = "cpu" if config.device == "auto" else config.device
    device = torch.device(device)
    need, have = training_memory_lower_bound(config, data.n_items), _machine_memory(device)
    if have is not None and need > have:
        raise ValueError(f"this model cannot fit: training it on {data.n_items:,} items needs at least "
                         f"{need / 2**30:,.1f} GiB but the {device.type} has {have / 2**30:,.1f} GiB available; lower "
                         f"hidden_size={config.hidden_size}, inner_size={config.inner_size}, n_layers={config.n_layers}"
                         f", max_seq_length={config.max_seq_length} or batch_size={config.batch_size}.")


def check_device(requested: str) -> None:
    """Refuse a device this machine does not have (``mps`` off a Mac, ``cuda`` without a GPU) in one line, before
    anything is loaded or written."""
    name = str(requested)
    if name.startswith("mps"):
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device={name!r} was asked for but torch sees no Apple MPS device here (it exists on "
                             "Apple-silicon Macs only); use --device cpu or auto.")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} was asked for but torch sees no CUDA GPU; use --device cpu or auto.")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r} was asked for but torch sees {torch.cuda.device_count()} GPU(s) "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); use one of those.")
