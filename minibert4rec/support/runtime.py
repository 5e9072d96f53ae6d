"""How big a run is and how many CPU threads it uses: the one place that reads the environment.

``run_sizes`` gives the notebooks their dataset, model and time budgets; ``MINIBERT4REC_SMOKE=1`` shrinks them to
a CI-sized smoke run and ``MINIBERT4REC_DATASET`` picks the dataset. ``set_threads`` sets torch's CPU threads;
``keeps_caller_threads`` hands them back when a function that set them returns. ``reuse_freed_memory`` keeps the
memory a training step frees inside the process for the next step, instead of handing it back to the kernel.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .config import BERT4RecConfig


def default_threads() -> int:
    """torch CPU threads when ``threads=0``: half the cores, at most 4 (1 on a 2-core machine).

    On a machine that other programs also use, a second thread often makes each step *slower*: every operation
    waits for the thread whose core was taken. Leaving a core free keeps a shared laptop or CI runner responsive.
    """
    import os

    return max(1, min(4, (os.cpu_count() or 1) // 2))


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU thread count (``0`` = :func:`default_threads`) and return it."""
    import torch

    n = threads or default_threads()
    torch.set_num_threads(n)
    return n


def keeps_caller_threads(function):
    """Decorate ``function`` so that torch's CPU thread count is, after it returns or raises, what it was before.

    ``train`` sets the threads its config asks for; without this, a small run with ``threads=1`` would quietly
    leave a notebook's later cells (and its final stamp) on one thread.
    """
    import functools

    import torch

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on a 64-bit machine.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: Set to False before training to keep the C library's own allocator settings (``benchmarks/allocator.py``
#: times training both ways).
tune_allocator = True
_allocator_tuned = False


def reuse_freed_memory() -> bool:
    """Let freed memory stay in the process for the next training step (Linux with glibc); True where applied.

    Every training step allocates and frees the same large tensors: at L = 200 and batch 32 the attention scores
    alone are (b h n n) = 10 MB each. glibc's ``malloc`` serves a large block with pages fresh from the kernel
    and, once it is freed, returns them (blocks above its *mmap threshold*, and free memory at the top of its heap
    above its *trim threshold*). The next step then touches those pages again, and the kernel zeroes each 4 KiB
    page on first touch: a page fault each. On ML-1m that came to thousands of faults and several milliseconds of
    system time per step (``benchmarks/allocator.py``). Two ``mallopt`` calls stop it: blocks of up to 32 MiB
    come from the heap, and the heap is never trimmed, so a step reuses the pages the previous step freed.

    Nothing computed changes, only where the memory comes from. The cost: the process keeps its peak memory
    until it exits. The setting is process-wide and lasts; calling again does nothing. Elsewhere (macOS,
    Windows, other C libraries), or after ``tune_allocator = False``, nothing is done and False is returned.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if not tune_allocator:
        return False
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success; the mmap threshold first, so that no block is trimmed under the old one
    applied = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    applied = applied and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1  # an int: the largest it takes
    _allocator_tuned = applied
    return applied


SMOKE_ENV_VAR = "MINIBERT4REC_SMOKE"
DATASET_ENV_VAR = "MINIBERT4REC_DATASET"


def _environment() -> tuple[bool, str | None]:
    """(smoke run?, dataset asked for): the ONE place the package reads its environment variables."""
    import os

    smoke = os.environ.get(SMOKE_ENV_VAR, "0").strip().lower() not in ("", "0", "false", "no")
    return smoke, os.environ.get(DATASET_ENV_VAR, "").strip() or None


def is_smoke_run() -> bool:
    """True when ``MINIBERT4REC_SMOKE=1``: CI and laptops shrink data, epochs and models.

    The package reads its variables in one place; notebooks ask this function (through :func:`run_sizes`)
    instead of testing the environment themselves.
    """
    return _environment()[0]


# The paper's sequence length per dataset: L = 200 on the MovieLens-1m/20m, 50 on the short Beauty/Steam
# histories; ml-100k (not in the paper) uses RecBole's default, 50.
LONG_HISTORIES = ("ml-1m", "ml-20m")


def run_sizes() -> dict[str, Any]:
    """Sizes the notebooks use, from two environment variables (and nothing else reads them):

    * ``MINIBERT4REC_DATASET=<name>``: the dataset (default ``ml-1m``, the paper's). ``ml-100k`` runs every
      notebook offline: CI's ``python -m minibert4rec download --dataset ml-100k`` fetches it from PyPI when
      GroupLens is unreachable. Any known name or path works (``ml-20m``, ``beauty``, ...).
    * ``MINIBERT4REC_SMOKE=1``: a CI-sized smoke run (tiny model, one epoch; ml-100k unless a dataset is named).

    ``dataset`` is what the notebooks load; ``config`` is the :class:`BERT4RecConfig` for the training notebooks
    (the paper's model for ML-1m/20m; RecBole's defaults, as ``python -m minibert4rec train``, for the others);
    ``compare_epochs`` is for the short comparison runs of notebook 06; ``cpu_time_budget_s`` / ``gpu_time_budget_s`` are
    notebook 05's training time on a CPU / a GPU (its schedule is planned to end with it); ``compare_budget_s`` is the training time each model of notebook 06's
    equal-compute comparison gets; ``standalone_budget_s`` is what notebooks 06 and 07 spend training their own
    smaller model when notebook 05's checkpoint is not there (a fresh Colab runtime). ``run_dir`` is where notebook
    05 writes its checkpoint and 06 and 07 read it, relative to ``notebooks/``: a smoke run writes to its own
    folder, so that running the tests never overwrites a fully trained model.
    """
    smoke, dataset = _environment()
    return _sizes_for(dataset, smoke)


def _sizes_for(dataset: str | None, smoke: bool) -> dict[str, Any]:
    """:func:`run_sizes` for a given dataset name (``None``: the default) and size switch."""
    if smoke:
        config = BERT4RecConfig(hidden_size=16, inner_size=32, max_seq_length=20, epochs=1, batch_size=128,
                                warmup_steps=5, learning_rate=2e-3)
        return {"smoke": True, "dataset": dataset or "ml-100k", "config": config, "compare_epochs": 1,
                "cpu_time_budget_s": 20, "gpu_time_budget_s": 20, "compare_budget_s": 15,
                "standalone_budget_s": 15, "run_dir": "../runs/notebook05-smoke"}
    dataset = dataset or "ml-1m"
    if dataset in LONG_HISTORIES:
        # the paper's model with the CPU recipe (docs/differences.md): batch 32, lr 2e-3, 500 warm-up steps, the
        # output bias started at log popularity
        config = BERT4RecConfig(max_seq_length=200, hidden_dropout_prob=0.1, attn_dropout_prob=0.1, batch_size=32,
                                epochs=60, learning_rate=2e-3, warmup_steps=500, output_bias_init="popularity")
        return {"smoke": False, "dataset": dataset, "config": config, "compare_epochs": 8,
                "cpu_time_budget_s": 50 * 60, "gpu_time_budget_s": 10 * 60, "compare_budget_s": 6 * 60,
                "standalone_budget_s": 5 * 60, "run_dir": _run_dir(dataset)}
    # short histories: the command line's defaults (python -m minibert4rec train --dataset ml-100k), L = 50;
    # on ml-100k an epoch takes seconds on a CPU, so the budget rarely acts
    return {"smoke": False, "dataset": dataset, "config": BERT4RecConfig(), "compare_epochs": 20,
            "cpu_time_budget_s": 300, "gpu_time_budget_s": 120, "compare_budget_s": 60,
            "standalone_budget_s": 120, "run_dir": _run_dir(dataset)}


def _run_dir(dataset: str) -> str:
    """Notebook 05's checkpoint folder for a full-size run on ``dataset``: one folder per data set."""
    if dataset == "ml-1m":
        return "../runs/notebook05"
    return "../runs/notebook05-" + re.sub(r"[^A-Za-z0-9_.-]", "_", Path(dataset).stem)


def busy_cores_of_others(window_s: float = 1.0) -> float | None:
    """How many cores the *other* processes keep busy right now: the machine's CPU time over ``window_s`` seconds
    (``/proc/stat``) minus this process's own, divided by the wall time. ``None`` where ``/proc/stat`` is missing
    (macOS, Windows).

    A load average would answer too, but late: the 1-minute average still counts a run that ended a minute ago,
    so notebook 06 started right after notebook 05 would see 05's run and wrongly call the machine busy.
    """
    import os
    import time

    def machine_busy_seconds() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def own_seconds() -> float:
        t = os.times()
        return t.user + t.system

    try:
        busy0, own0, wall0 = machine_busy_seconds(), own_seconds(), time.perf_counter()
        time.sleep(window_s)
        busy1, own1, wall1 = machine_busy_seconds(), own_seconds(), time.perf_counter()
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)


def notebook_threads() -> tuple[int, str]:
    """Threads for a notebook's long training run, and the reason, to print beside it.

    On an idle machine every core helps a large model (ML-1m, L = 200: about 39 s per epoch with 2 threads against
    63 s with 1 on a 2-core CPU, ``benchmarks/results/plateau/``). On a busy one the package default
    (:func:`default_threads`) is faster: a second thread would wait for a core that is taken. "Idle" means that the
    other processes keep at most half a core busy (:func:`busy_cores_of_others`, measured over one second). Where
    that cannot be measured, the 1-minute load average decides: at most ``cores - 0.5``, since the notebook's own
    kernel, busy with the cells before, counts for about 1.
    """
    import os

    cores = os.cpu_count() or 1
    every_core = max(1, min(4, cores))
    others = busy_cores_of_others()
    if others is not None:
        use = f"other processes use {others:.2f} cores"
        if others <= 0.5:
            return every_core, f"every core, up to 4 ({every_core}): the machine is idle ({use})"
        return default_threads(), (f"the package default, half the cores ({default_threads()}): "
                                   f"the machine is busy ({use})")
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on Windows
        return default_threads(), "the package default (half the cores): the machine's load is unknown"
    if load <= cores - 0.5:
        return every_core, f"every core, up to 4 ({every_core}): the machine is idle (load {load:.2f})"
    return default_threads(), (f"the package default, half the cores ({default_threads()}): the machine is busy "
                               f"(load {load:.2f})")


def notebook_data(sizes: dict[str, Any], data_dir: str = "../data"):
    """Load the notebook's dataset; without it and without a network, switch to ml-100k with a one-line notice.

    ``sizes`` is :func:`run_sizes`'s dict. When the switch happens, ``sizes`` is updated in place (the dataset
    and the config for ml-100k), so that the rest of the notebook describes the data it really uses.
    """
    from ..data import download, load_dataset
    from .datasets import DatasetUnavailable

    name = sizes["dataset"]
    try:
        download(name, data_dir=data_dir)
        return load_dataset(name, data_dir=data_dir)
    except DatasetUnavailable:
        if name == "ml-100k":
            raise
    print(f"{name} is not in {data_dir}/ and cannot be downloaded here: this notebook uses ml-100k instead "
          f"(python -m minibert4rec download --dataset {name} gets it where the internet is reachable).")
    sizes.update({k: v for k, v in _sizes_for("ml-100k", sizes["smoke"]).items() if k != "smoke"})
    download("ml-100k", data_dir=data_dir)
    return load_dataset("ml-100k", data_dir=data_dir)


def notebook_stamp(start_seconds: float) -> str:
    """One line on how this notebook was run: device, threads, time, package version, commit and date.

    ``start_seconds`` is ``time.perf_counter()`` taken in the notebook's first code cell.
    """
    import datetime
    import platform
    import subprocess
    import time
    from pathlib import Path

    import torch

    from .. import __version__

    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as info:
                cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
        except OSError:
            pass
        device = f"a CPU ({cpu}, {os.cpu_count()} cores)"
    commit = "unknown"
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        if out.returncode == 0:
            commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    minutes = (time.perf_counter() - start_seconds) / 60
    today = datetime.date.today().isoformat()
    threads = torch.get_num_threads()
    return (f"Run on {device}, {threads} torch thread{'s' if threads > 1 else ''}, in {minutes:.1f} minutes, with minibert4rec "
            f"{__version__} (commit {commit}), torch {torch.__version__}, on {today}. "
            "The measured record is in docs/results.md.")
