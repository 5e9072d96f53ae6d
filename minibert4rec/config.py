"""Every option of BERT4Rec in one dataclass, with RecBole's names and defaults.

The model options use the names of RecBole's BERT4Rec (``hidden_size``, ``inner_size``, ``n_layers`` ...), so a
RecBole user can carry a configuration file over unchanged.  The training options (learning rate, batch size,
epochs, warm-up ...) sit in the same dataclass: one object describes one run, and it is saved next to the
checkpoint so that a run can always be reproduced.

>>> cfg = BERT4RecConfig(hidden_size=64, n_heads=2)
>>> cfg.head_dim
32
>>> BERT4RecConfig(hidden_size=64, n_heads=3)
Traceback (most recent call last):
...
ValueError: n_heads=3 must divide hidden_size=64 (each head gets hidden_size / n_heads dimensions); choose e.g. n_heads=2 or 4.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIVATIONS = ("gelu", "relu", "swish", "tanh", "sigmoid")
LOSS_TYPES = ("CE", "BPR")


@dataclass
class BERT4RecConfig:
    """Model and training options of one BERT4Rec run.

    Model options (RecBole names; defaults are RecBole 1.2.1's BERT4Rec defaults):

    * ``hidden_size`` (64): width D of every token representation.
    * ``inner_size`` (256): width of the position-wise feed-forward layer (4 x D as in BERT).
    * ``n_layers`` (2), ``n_heads`` (2): transformer blocks and attention heads per block.
    * ``hidden_dropout_prob``, ``attn_dropout_prob`` (0.2): dropout on hidden states / attention probabilities.
    * ``hidden_act`` ("gelu"): activation of the feed-forward layer, one of gelu, relu, swish, tanh, sigmoid.
    * ``layer_norm_eps`` (1e-12), ``initializer_range`` (0.02): BERT's LayerNorm epsilon and init std.
    * ``mask_ratio`` (0.2): probability that a position is replaced by [mask] in the Cloze task.
    * ``loss_type`` ("CE"): softmax cross-entropy over all items, or "BPR" with one sampled negative.
    * ``max_seq_length`` (50): L, the longest history the model reads (the paper uses 200 on ML-1m).
    * ``norm_first`` (False): pre-LN blocks instead of BERT's post-LN (not a RecBole option: ours, to experiment
      with; False reproduces the paper's architecture).

    Training options: ``learning_rate``, ``batch_size``, ``epochs``, ``weight_decay``, ``warmup_steps``
    (linear warm-up, then linear decay to 0 at the last step), ``clip_grad_norm``, ``last_item_ratio``
    (fraction of extra "mask only the last item" samples, the paper's fine-tuning trick), ``window_step``
    (stride of the sliding windows over long histories; None = max_seq_length // 2), ``eval_every`` (epochs),
    ``patience`` (evaluations without improvement of validation NDCG@10 before early stopping; 0 = never stop),
    ``eval_negatives`` (popularity-sampled negatives per user in the sampled protocol; the paper's 100),
    ``seed``, ``device`` ("auto" = cuda > mps > cpu), ``compile`` (torch.compile), ``amp`` (bf16 autocast on CUDA),
    ``threads`` (torch CPU threads; 0 = :func:`default_threads`; not part of the run's identity: a run resumed with
    another thread count is the same run),
    ``causal`` (True turns the encoder into a left-to-right SASRec-style model),
    ``include_valid_in_train`` (False: train on seq[:-2], select the best epoch on the held-out validation item.
    True: the paper's own protocol — its code trains on seq[:-1], validation item included, for a fixed number
    of steps and tests the final weights; the trainer then evaluates the test split during training, for the
    curve only, and never selects on it).
    """

    # --- model (RecBole names) ---
    hidden_size: int = 64
    inner_size: int = 256
    n_layers: int = 2
    n_heads: int = 2
    hidden_dropout_prob: float = 0.2
    attn_dropout_prob: float = 0.2
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    mask_ratio: float = 0.2
    loss_type: str = "CE"
    max_seq_length: int = 50
    causal: bool = False
    norm_first: bool = False
    # --- training ---
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 50
    weight_decay: float = 0.0
    warmup_steps: int = 100
    clip_grad_norm: float = 5.0
    last_item_ratio: float = 0.1
    window_step: int | None = None
    eval_every: int = 1
    patience: int = 0
    eval_negatives: int = 100
    seed: int = 42
    device: str = "auto"
    compile: bool = False
    amp: bool = True
    include_valid_in_train: bool = False
    threads: int = field(default=0, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field, what is wrong and how to fix it."""
        positive_ints = ("hidden_size", "inner_size", "n_layers", "n_heads", "max_seq_length",
                         "batch_size", "epochs", "eval_every", "eval_negatives")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if self.hidden_size % self.n_heads != 0:
            raise ValueError(
                f"n_heads={self.n_heads} must divide hidden_size={self.hidden_size} (each head gets "
                f"hidden_size / n_heads dimensions); choose e.g. n_heads=2 or 4."
            )
        if self.max_seq_length < 2:
            raise ValueError(f"max_seq_length={self.max_seq_length} must be at least 2 (history + [mask]).")
        for name in ("hidden_dropout_prob", "attn_dropout_prob", "mask_ratio", "last_item_ratio"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name}={value!r} must be a number in [0, 1).")
        if self.mask_ratio == 0.0:
            raise ValueError("mask_ratio=0 would mask nothing; use a value in (0, 1), e.g. the paper's 0.2.")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r} is unknown; choose one of {', '.join(ACTIVATIONS)}.")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type={self.loss_type!r} is unknown; choose 'CE' or 'BPR'.")
        for name in ("layer_norm_eps", "initializer_range", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0.")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise ValueError(f"threads={self.threads!r} must be an integer >= 0 (0 = the default, default_threads()).")
        for name in ("weight_decay", "warmup_steps", "clip_grad_norm", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0.")
        if self.window_step is not None and not (1 <= self.window_step <= self.max_seq_length):
            raise ValueError(
                f"window_step={self.window_step} must be between 1 and max_seq_length={self.max_seq_length}."
            )
        if self.include_valid_in_train and self.patience > 0:
            raise ValueError(
                f"patience={self.patience} stops on validation NDCG@10, but include_valid_in_train=True trains on the "
                "validation item; use patience=0 (a fixed number of epochs, as the paper) or "
                "include_valid_in_train=False."
            )
        if self.device not in ("auto", "cpu", "mps") and not self.device.startswith("cuda"):
            raise ValueError(f"device={self.device!r} is unknown; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")

    @property
    def head_dim(self) -> int:
        """Dimensions per attention head, d = D / h."""
        return self.hidden_size // self.n_heads

    # ---------------------------------------------------------------- file I/O
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BERT4RecConfig":
        """Build a config from a dict; unknown keys are an error that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config option(s) {unknown}; known options are: {', '.join(sorted(known))}.")
        return cls(**values)

    def replace(self, **changes: Any) -> "BERT4RecConfig":
        """A copy with some fields changed (validated again)."""
        return self.from_dict({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> None:
        """Write the config as JSON (``.json``) or YAML (``.yaml``/``.yml``), atomically."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        elif path.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        else:
            raise ValueError(f"cannot save config to {path}: use a .json, .yaml or .yml file name.")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "BERT4RecConfig":
        """Read a config written by :meth:`save` (or by hand) from JSON or YAML."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist.")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(path.read_text()) or {}
        elif path.suffix == ".json":
            values = json.loads(path.read_text())
        else:
            raise ValueError(f"cannot read config {path}: use a .json, .yaml or .yml file.")
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must hold a mapping of option: value, got {type(values).__name__}.")
        return cls.from_dict(values)


def default_threads() -> int:
    """torch CPU threads when ``threads=0``: half the cores, at most 4 (1 on a 2-core machine).

    Measured on ml-100k on a 2-core machine (README, "Threads"): a second thread buys little when the machine is
    idle, but when another process keeps a core busy, two threads are several times SLOWER than one (each step
    waits for the thread that lost its core). Leaving a core free keeps a shared laptop or CI runner fast.
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
        # the paper's model; batch 32 / lr 2e-3 / 500 warm-up steps left the popularity plateau fastest on a CPU
        # (after ~6 minutes on one core on ML-1m; batch 64 needed ~28 and batch 128 more than 8 epochs)
        config = BERT4RecConfig(max_seq_length=200, hidden_dropout_prob=0.1, attn_dropout_prob=0.1, batch_size=32,
                                epochs=60, learning_rate=2e-3, warmup_steps=500)
        return {"smoke": False, "dataset": dataset, "config": config, "compare_epochs": 8, "cpu_time_budget_s": 1200}
    # short histories: the command line's defaults (python -m minibert4rec train --dataset ml-100k), L = 50;
    # on ml-100k an epoch takes seconds on a CPU, so the budget rarely acts
    return {"smoke": False, "dataset": dataset, "config": BERT4RecConfig(), "compare_epochs": 20,
            "cpu_time_budget_s": 300}
