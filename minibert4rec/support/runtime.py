"""How big a run is and how many CPU threads it uses: the one place that reads the environment.

``run_sizes`` gives the notebooks their dataset, model and time budgets; ``MINIBERT4REC_SMOKE=1`` shrinks them to
a CI-sized smoke run and ``MINIBERT4REC_DATASET`` picks the dataset. ``set_threads`` sets torch's CPU threads.
"""

from __future__ import annotations

from typing import Any

from .config import BERT4RecConfig


def default_threads() -> int:
    """torch CPU threads when ``threads=0``: half the cores, at most 4 (1 on a 2-core machine).

    Measured on ml-100k on a 2-core machine that other jobs were using (README, "Threads"): two threads were
    slower than one (7.5-8.2 s per epoch against 5.5-5.9 s; an earlier report: 17.9 s against 4.7 s), because each
    step waits for the thread whose core was taken. Leaving a core free keeps a shared laptop or CI runner fast.
    """
    import os

    return max(1, min(4, (os.cpu_count() or 1) // 2))


def set_threads(threads: int = 0) -> int:
    """Set torch's CPU thread count (``0`` = :func:`default_threads`) and return it."""
    import torch

    n = threads or default_threads()
    torch.set_num_threads(n)
    return n


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
    ``compare_epochs`` is for the short comparison runs of notebook 06; ``cpu_time_budget_s`` bounds notebook
    05's training when no GPU is present.
    """
    smoke, dataset = _environment()
    if smoke:
        config = BERT4RecConfig(hidden_size=16, inner_size=32, max_seq_length=20, epochs=1, batch_size=128,
                                warmup_steps=5, learning_rate=2e-3)
        return {"smoke": True, "dataset": dataset or "ml-100k", "config": config, "compare_epochs": 1,
                "cpu_time_budget_s": 60}
    dataset = dataset or "ml-1m"
    if dataset in LONG_HISTORIES:
        # the paper's model with the reproduction recipe (README, "Leaving the popularity plateau"): batch 32,
        # lr 2e-3, 500 warm-up steps, the output bias started at log popularity
        config = BERT4RecConfig(max_seq_length=200, hidden_dropout_prob=0.1, attn_dropout_prob=0.1, batch_size=32,
                                epochs=60, learning_rate=2e-3, warmup_steps=500, output_bias_init="popularity")
        return {"smoke": False, "dataset": dataset, "config": config, "compare_epochs": 8, "cpu_time_budget_s": 720}
    # short histories: the command line's defaults (python -m minibert4rec train --dataset ml-100k), L = 50;
    # on ml-100k an epoch takes seconds on a CPU, so the budget rarely acts
    return {"smoke": False, "dataset": dataset, "config": BERT4RecConfig(), "compare_epochs": 20,
            "cpu_time_budget_s": 300}
