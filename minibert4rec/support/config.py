"""Every option of BERT4Rec in one dataclass, with RecBole's names and defaults.

The model options use the names of RecBole's BERT4Rec (``hidden_size``, ``inner_size``, ``n_layers`` ...), so a
RecBole user can carry a configuration file over unchanged.  The training options (learning rate, batch size,
epochs, warm-up ...) sit in the same dataclass: one object describes one run, and it is saved next to the
checkpoint so that a run can always be reproduced.

(Over ~300 lines on purpose: every option is documented and checked here, in one table (``RULES``), so that a
wrong value is caught before any work, with the field's own hint; ``run_sizes`` and the memory estimate that
refuses an impossible run live next to the options they read.)

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
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .files import atomic_write, regular_file

# The feed-forward activations (RecBole's hidden_act names) and the torch module each one builds.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "swish": nn.SiLU,  # swish(x) = x * sigmoid(x) = SiLU
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
LOSS_TYPES = ("CE", "BPR")
OUTPUT_BIAS_INITS = ("popularity", "zeros")
POSITION_COUNTINGS = ("left", "right")
MASKINGS = ("fixed", "independent")
POPULARITY_COUNTS = ("train", "whole")
DEVICE_PATTERN = r"auto|cpu(:0)?|mps(:0)?|cuda(:[0-9]+)?"


class ConfigTypeError(ValueError, TypeError):
    """An option has the wrong type: a string where a boolean belongs, 1.5 where an integer belongs ...

    Both a ``TypeError`` (what Python raises for a wrong type) and a ``ValueError`` (what the package raises for
    every mistake in its input, and what the command line reports as one line). A wrong *value* of the right type
    is a plain ``ValueError``."""


@dataclass(frozen=True)
class Rule:
    """The allowed range of one config field. Its *type* is not here: it is the field's annotation.

    ``low``/``high``: bounds, inclusive unless ``low_open``/``high_open``; ``choices``: the allowed strings;
    ``pattern``: a regular expression the whole string must match; ``hint``: what the option means / the fix.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    hint: str = ""


# One rule per field of BERT4RecConfig -- a new field needs a line here (tests/test_bad_inputs.py fails otherwise).
# Upper bounds are far beyond any sensible run: they catch typos (an extra zero or three), not experiments.
RULES: dict[str, Rule] = {
    "hidden_size": Rule(1, 65_536, hint="the width D of every representation; RecBole's default is 64"),
    "inner_size": Rule(1, 262_144, hint="the feed-forward width, usually 4 x hidden_size"),
    "n_layers": Rule(1, 1_000, hint="transformer blocks; the paper uses 2"),
    "n_heads": Rule(1, 65_536, hint="attention heads per block; the paper uses 2"),
    "hidden_dropout_prob": Rule(0.0, 1.0, high_open=True, hint="a probability, e.g. 0.1 or 0.2"),
    "attn_dropout_prob": Rule(0.0, 1.0, high_open=True, hint="a probability, e.g. 0.1 or 0.2"),
    "hidden_act": Rule(choices=tuple(ACTIVATIONS)),
    "layer_norm_eps": Rule(0.0, 1.0, low_open=True, hint="BERT uses 1e-12"),
    "initializer_range": Rule(0.0, 1.0, low_open=True, hint="the init std; BERT uses 0.02"),
    "mask_ratio": Rule(0.0, 1.0, high_open=True, hint="the paper uses 0.2 on ML-1m"),
    "loss_type": Rule(choices=LOSS_TYPES),
    "loss_negatives": Rule(0, 100_000_000, hint="0 = softmax over all items (the paper's); k = sampled softmax "
                           "against k uniform negatives shared by the batch"),
    "max_seq_length": Rule(2, 100_000, hint="history + [mask]; the paper uses 200 on ML-1m, 50 on ml-100k"),
    "causal": Rule(),
    "norm_first": Rule(),
    "output_bias_init": Rule(choices=OUTPUT_BIAS_INITS, hint="'popularity' starts the model as the popularity baseline"),
    "position_counting": Rule(choices=POSITION_COUNTINGS, hint="'left': the oldest item is position 0 (the paper's)"),
    "masking": Rule(choices=MASKINGS, hint="'fixed': exactly min(max_predictions, round(len x mask_ratio)) masks "
                    "(the authors' code); 'independent': each item with probability mask_ratio"),
    "max_predictions": Rule(1, 100_000, hint="the authors' cap on masks per window (40 on ML-1m); used by masking='fixed'"),
    "learning_rate": Rule(0.0, 10.0, low_open=True, hint="AdamW's step size, e.g. 1e-3"),
    "batch_size": Rule(1, 10_000_000, hint="e.g. 128"),
    "epochs": Rule(1, 1_000_000),
    "weight_decay": Rule(0.0, 1_000.0, hint="AdamW's decoupled decay; 0 turns it off, 0.01 is usual"),
    "warmup_steps": Rule(0, 1_000_000_000, hint="0 = no warm-up"),
    "clip_grad_norm": Rule(0.0, None, hint="0 turns clipping off"),
    "last_item_ratio": Rule(0.0, 1.0, high_open=True, hint="a fraction, e.g. 0.1"),
    "dropout_start": Rule(0.0, 1.0, high_open=True, hint="a share of the epochs, e.g. 0.5; 0 = dropout from the "
                          "first step (the paper's)"),
    "dropout_stop": Rule(0.0, 1.0, low_open=True, hint="a share of the epochs, e.g. 0.5; 1 = dropout to the last "
                         "step (the paper's)"),
    "window_step": Rule(1, 100_000, hint="None = max_seq_length // 2"),
    "eval_every": Rule(1, 1_000_000, hint="evaluate every this many epochs"),
    "patience": Rule(0, 1_000_000, hint="0 = never stop early"),
    "eval_negatives": Rule(1, 1_000_000, hint="the paper samples 100; it cannot exceed the catalogue"),
    "popularity_counts": Rule(choices=POPULARITY_COUNTS, hint="what the sampled negatives' popularity is counted on: "
                              "'train' (ours) or 'whole' sequences (the authors')"),
    "eval_users": Rule(0, 1_000_000_000, hint="0 = the curve uses every user; n = a fixed sample of n users"),
    "seed": Rule(0, 2**32 - 1, hint="any integer from 0 to 2**32 - 1, as numpy accepts"),
    "device": Rule(pattern=DEVICE_PATTERN, hint="use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    "compile": Rule(),
    "amp": Rule(),
    "amp_cpu": Rule(),
    "include_valid_in_train": Rule(),
    "threads": Rule(0, 4096, hint="torch CPU threads; 0 = default_threads(), half the cores, at most 4"),
    "extra": Rule(),
}

# What each annotation accepts; a field whose annotation is missing here fails loudly (see check_field).
TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false (a boolean, not a string or 0/1)",
              "str": "a string", "int | None": "an integer or null (None)", "dict[str, Any]": "a mapping"}


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
    * ``loss_negatives`` (0): 0 = the softmax over all N items (the paper's); k > 0 = sampled softmax against k
      uniform negatives shared by the batch (``model.sampled_softmax_loss``; ours, for large catalogues; CE only).
    * ``max_seq_length`` (50): L, the longest history the model reads (the paper uses 200 on ML-1m).
    * ``norm_first`` (False): pre-LN blocks instead of BERT's post-LN (not a RecBole option: ours, to experiment
      with; False reproduces the paper's architecture).
    * ``output_bias_init`` ("zeros", the paper's and BERT's): "popularity" starts the output layer's item bias at
      log item popularity, so the model starts as the popularity baseline
      (``BERT4Rec.init_output_bias_from_popularity``). An initialisation choice, not an architecture change; the
      reproduction recipe uses it, as it leaves the ML-1m popularity plateau sooner (measured in the README).
      With a large learning rate it can stall instead (lr 1e-2 on the synthetic test data never left the
      popularity level in 20 epochs, where "zeros" learned): not the default.
    * ``position_counting`` ("left", the paper's): which end of the window is position 0. "left" is the paper's,
      the authors' code's and RecBole's: the oldest item in the window is position 0 (the authors pad on the
      right; we pad on the left and subtract each row's padding, which gives exactly the same outputs). "right"
      (this package's earlier default, kept as an option): the most recent item always has the last position
      embedding, whatever the history's length. Measured on ML-1m: no difference beyond seed noise (README).
    * ``masking`` ("fixed", the authors'), ``max_predictions`` (40): how many items the Cloze task hides.
      "fixed" hides exactly ``min(max_predictions, max(1, round(len * mask_ratio)))`` items chosen uniformly, as
      the authors' data generator does (their cap: 40 on ML-1m and ML-20m); "independent" (RecBole's, and this
      package's earlier default) hides each item with probability ``mask_ratio``, at least one per row. Same mean
      on ML-1m; "fixed" has no spread. Measured on ML-1m: "fixed" as good or better (README).

    Training options: ``learning_rate``, ``batch_size``, ``epochs``, ``weight_decay``, ``warmup_steps``
    (linear warm-up, then linear decay to 0 at the last step), ``clip_grad_norm``, ``last_item_ratio``
    (fraction of extra "mask only the last item" samples, the paper's fine-tuning trick), ``dropout_start``
    (0, the paper's: dropout from the first step. s > 0: the first share s of the schedule's epochs trains without
    any dropout, the rest with the model's; a training choice, the model is unchanged), ``dropout_stop`` (1, the
    paper's: dropout to the last step. s < 1: the epochs after the first share s of the schedule train without
    dropout, "early dropout"; with ``dropout_start`` the two bound the share that trains with it), ``window_step``
    (stride of the sliding windows over long histories; None = max_seq_length // 2), ``eval_every`` (epochs),
    ``patience`` (evaluations without improvement of validation NDCG@10 before early stopping; 0 = never stop),
    ``eval_negatives`` (popularity-sampled negatives per user in the sampled protocol; the paper's 100),
    ``popularity_counts`` ("whole", the authors': the sampled negatives are drawn by popularity counted on the
    users' whole sequences, train + valid + test, as the authors' code does; "train": counted on the training part
    only, this package's earlier default. On ML-1m the two change sampled NDCG@10 by less than 0.001),
    ``eval_users`` (0 = every user; n > 0 draws the learning curve on a fixed, seeded sample of n users, which
    makes each evaluation during training cheaper -- the final valid/test numbers always use every user),
    ``seed``, ``device`` ("auto" = cuda > mps > cpu), ``compile`` (torch.compile), ``amp`` (bf16 autocast on CUDA),
    ``amp_cpu`` (False: bf16 autocast on a CPU too, where it multiplies bf16 natively -- AVX-512 BF16 or AMX; off by
    default, since float32 is the paper's arithmetic and a CPU without native bf16 would emulate it slowly),
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
    loss_negatives: int = 0
    max_seq_length: int = 50
    causal: bool = False
    norm_first: bool = False
    output_bias_init: str = "zeros"
    position_counting: str = "left"
    masking: str = "fixed"
    max_predictions: int = 40
    # --- training ---
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 50
    weight_decay: float = 0.0
    warmup_steps: int = 100
    clip_grad_norm: float = 5.0
    last_item_ratio: float = 0.1
    dropout_start: float = 0.0
    dropout_stop: float = 1.0
    window_step: int | None = None
    eval_every: int = 1
    patience: int = 0
    eval_negatives: int = 100
    popularity_counts: str = "whole"
    eval_users: int = 0
    seed: int = 42
    device: str = "auto"
    compile: bool = False
    amp: bool = True
    amp_cpu: bool = False
    include_valid_in_train: bool = False
    threads: int = field(default=0, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check every field's type and range, then the fields against each other; raise ``ValueError``
        (:class:`ConfigTypeError` for a wrong type) naming the first invalid field, its value, what is wrong and how to fix it.

        The checks are a table, :data:`RULES`: a field's *type* comes from its annotation (``int``, ``float``,
        ``bool``, ``str``, ``int | None``, ``dict[str, Any]``), its *range* from its :class:`Rule`. Numbers are
        normalised on the way (``numpy.int64(64)`` -> ``64``, an int given for a float field -> ``float``).
        """
        for f in dataclasses.fields(self):
            setattr(self, f.name, check_field(f.name, getattr(self, f.name), str(f.type)))
        if self.hidden_size % self.n_heads != 0:
            raise ValueError(
                f"n_heads={self.n_heads} must divide hidden_size={self.hidden_size} (each head gets "
                f"hidden_size / n_heads dimensions); choose e.g. n_heads=2 or 4."
            )
        if self.mask_ratio == 0.0:
            raise ValueError("mask_ratio=0 would mask nothing; use a value in (0, 1), e.g. the paper's 0.2.")
        if self.window_step is not None and not (1 <= self.window_step <= self.max_seq_length):
            raise ValueError(
                f"window_step={self.window_step} must be between 1 and max_seq_length={self.max_seq_length}."
            )
        if self.dropout_start >= self.dropout_stop:
            raise ValueError(
                f"dropout_start={self.dropout_start} must be below dropout_stop={self.dropout_stop}: dropout is on "
                "from the first share to the second; use e.g. dropout_start=0 with dropout_stop=0.5."
            )
        if self.include_valid_in_train and self.patience > 0:
            raise ValueError(
                f"patience={self.patience} stops on validation NDCG@10, but include_valid_in_train=True trains on the "
                "validation item; use patience=0 (a fixed number of epochs, as the paper) or "
                "include_valid_in_train=False."
            )
        need = training_memory_lower_bound(self)
        if need > MAX_TRAINING_BYTES:
            raise ValueError(
                f"this model cannot fit in memory: hidden_size={self.hidden_size}, inner_size={self.inner_size}, "
                f"n_layers={self.n_layers}, n_heads={self.n_heads}, max_seq_length={self.max_seq_length} and "
                f"batch_size={self.batch_size} need at least {need / 2**30:,.0f} GiB to train (more than "
                f"{MAX_TRAINING_BYTES / 2**40:.0f} TiB, before counting the item embeddings); use smaller sizes, "
                "e.g. the paper's hidden_size=64, max_seq_length=200, batch_size=128."
            )

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
        if not isinstance(values, dict):
            raise ConfigTypeError(f"a config must be a mapping of option: value; got {type(values).__name__} "
                                  f"{values!r:.80}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((k for k in values if k not in known), key=str)
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
        atomic_write(path, text)

    @classmethod
    def load(cls, path: str | Path) -> "BERT4RecConfig":
        """Read a config written by :meth:`save` (or by hand) from JSON or YAML (:func:`read_config_file`)."""
        return cls.from_dict(read_config_file(path))


# A config file is a few dozen lines: these limits only stop what would hang or crash the reader.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 32
MAX_INT_DIGITS = 100
JSON_TYPES = (dict, list, str, int, float, bool, type(None))


def _short(text: Any, limit: int = 80) -> str:
    """``repr`` of a piece of the input, cut to ``limit`` characters: a message stays one readable line."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


class _BigNumber(Exception):
    def __init__(self, digits: str) -> None:
        self.digits = digits


def _json_int(digits: str) -> int:
    if len(digits.lstrip("+-")) > MAX_INT_DIGITS:
        raise _BigNumber(digits)
    return int(digits)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key in values:
            raise ValueError(f"duplicate key {_short(key)}")
        values[key] = value
    return values


def _strict_yaml_loader():
    """A ``yaml.SafeLoader`` that reads numbers as JSON does (plain decimal integers; no YAML 1.1 octal ``010``,
    sexagesimal ``1:30``, hex or underscores, which are refused), refuses anchors/aliases (``&``/``*``: a "billion
    laughs" file), duplicate keys and nesting deeper than ``MAX_CONFIG_DEPTH``."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise yaml.composer.ComposerError(None, None, "anchors and aliases (& and *) are not allowed in a "
                                                  "config file; write the values out", event.start_mark)
            self._depth += 1
            if self._depth > MAX_CONFIG_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_CONFIG_DEPTH} levels",
                                                  event.start_mark)
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):
            if not isinstance(node, yaml.MappingNode):
                return super().construct_mapping(node, deep)
            self.flatten_mapping(node)
            values: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(None, None, "a key must be a string",
                                                            key_node.start_mark) from None
                if key in values:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {_short(key)}",
                                                            key_node.start_mark)
                try:
                    values[key] = self.construct_object(value_node, deep=deep)
                except yaml.constructor.ConstructorError as error:
                    if error.context is None and isinstance(key, str):
                        error.context, error.context_mark = f"the value of {key}", None
                    raise
            return values

    StrictLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:bool")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                       list("tTfF"))
    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                                       list("-+0123456789"))
    ambiguous = re.compile(r"""^(?:[-+]?0[0-9_]+|[-+]?0[xXbBoO][0-9a-fA-F_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
                               |[-+]?[1-9][0-9]*(?:_[0-9]+)+|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$""", re.X)
    StrictLoader.add_implicit_resolver("tag:minibert4rec,2024:ambiguous", ambiguous, list("-+0123456789yYnNoO"))
    for first in list("-+0123456789yYnNoO"):  # ours first: the YAML 1.1 float resolver would read 1:30.5 as 90.5
        resolvers = StrictLoader.yaml_implicit_resolvers[first]
        resolvers.sort(key=lambda r: r[0] != "tag:minibert4rec,2024:ambiguous")

    def refuse_ambiguous(loader, node):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is read differently by YAML 1.1 (octal 010 = 8, sexagesimal 1:30 = 90, hex, "
            "underscores, yes/no/on/off = booleans); write a plain decimal number or true/false, or quote it for a "
            "string", node.start_mark)

    def big_int(loader, node):
        if len(node.value.lstrip("+-")) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"an integer of {len(node.value):,} digits is too "
                                                    "long", node.start_mark)
        return int(node.value)

    StrictLoader.add_constructor("tag:minibert4rec,2024:ambiguous", refuse_ambiguous)
    StrictLoader.add_constructor("tag:yaml.org,2002:int", big_int)
    return StrictLoader


def _check_json_types(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what JSON cannot hold (dates, binary, sets ...) and nesting deeper than ``MAX_CONFIG_DEPTH``."""
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"{where} is nested deeper than {MAX_CONFIG_DEPTH} levels")
    if not isinstance(value, JSON_TYPES):
        raise ValueError(f"{where} is a {type(value).__name__} ({_short(value, 40)}); a config holds only strings, "
                         "numbers, booleans, null, lists and mappings (quote a date to keep it as text)")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_json_types(item, f"{where}.{key}" if where else str(key), depth + 1)
    elif isinstance(value, list):
        for number, item in enumerate(value):
            _check_json_types(item, f"{where}[{number}]", depth + 1)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The ``option: value`` mapping of a .json/.yaml/.yml config file, strictly read: a regular file of at most
    ``MAX_CONFIG_BYTES``, no duplicate keys, JSON's number rules in YAML too, no anchors/aliases, only JSON types,
    nesting of at most ``MAX_CONFIG_DEPTH`` levels. Every problem is one ``ValueError`` naming the file."""
    path = regular_file(path, "config file")
    if path.suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"cannot read config {path}: use a .json, .yaml or .yml file.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"config file {path} is {path.stat().st_size:,} bytes; a config file is a few dozen lines "
                         f"(at most {MAX_CONFIG_BYTES:,} bytes are read).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not text (not UTF-8); write it as JSON or YAML.") from None
    try:
        if path.suffix == ".json":
            values = _read_json(path, text)
        else:
            values = _read_yaml(path, text)
    except RecursionError:
        raise ValueError(f"config file {path} is nested too deeply (at most {MAX_CONFIG_DEPTH} levels).") from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value, got {type(values).__name__}.")
    try:
        _check_json_types(values, "")
    except ValueError as error:
        raise ValueError(f"config file {path}: {error}.") from None
    return values


def _read_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
    except json.JSONDecodeError as error:
        raise ValueError(f"config file {path} is not valid JSON: {error.msg} at line {error.lineno}, "
                         f"column {error.colno}; fix it (e.g. quotes around keys, no trailing commas).") from None
    except _BigNumber as big:
        at = text.find(big.digits)
        key = re.findall(r'"([^"\\]{1,80})"\s*:', text[max(0, at - 2000):at])
        where = f" (option {key[-1]})" if key else ""
        raise ValueError(f"config file {path}: the integer{where} has {len(big.digits):,} digits; at most "
                         f"{MAX_INT_DIGITS} are accepted.") from None
    except ValueError as error:  # a duplicate key
        raise ValueError(f"config file {path}: {error}; each option may appear once.") from None


def _read_yaml(path: Path, text: str) -> Any:
    import yaml

    try:
        values = yaml.load(text, Loader=_strict_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        context = getattr(error, "context", None)
        of = f" ({context})" if context and context.startswith("the value of") else ""
        raise ValueError(f"config file {path} is not valid YAML: {problem}{of}{at}; fix it (one "
                         "'option: value' per line).") from None
    return {} if values is None else values


def _describe(rule: Rule, kind: str) -> str:
    """'a positive integer', 'a number in [0, 1)', 'at least 2 and at most 100000' ... from a rule."""
    low, high = rule.low, rule.high
    if kind == "float":
        if low is not None and high is not None:
            return f"a number in {'(' if rule.low_open else '['}{low:g}, {high:g}{')' if rule.high_open else ']'}"
        if low is not None:
            return f"a finite number {'>' if rule.low_open else '>='} {low:g}"
        return "a finite number"
    text = {1: "a positive integer", 0: "a non-negative integer"}.get(low, f"at least {low}")  # type: ignore[arg-type]
    return text + (f" and at most {high:,}" if high is not None else "")


def check_field(name: str, value: Any, annotation: str) -> Any:
    """Check one field against its annotation and ``RULES[name]``; return the value normalised
    (numpy scalars -> Python ones, int -> float for float fields). Raises ``ValueError``."""
    if annotation not in TYPE_NAMES:  # a developer added a field of a new kind: fail loudly, never skip the check
        raise TypeError(f"BERT4RecConfig.{name} has the annotation {annotation!r}, which config.check_field cannot "
                        f"check; use one of {sorted(TYPE_NAMES)} or teach check_field the new kind.")
    rule = RULES.get(name, Rule())
    fix = f"; {rule.hint}" if rule.hint else ""
    kind = annotation
    if annotation == "int | None":
        if value is None:
            return None
        kind = "int"

    def wrong_type(extra: str = "") -> ConfigTypeError:
        return ConfigTypeError(f"{name}={value!r} must be {TYPE_NAMES[annotation]}, not "
                               f"{type(value).__name__}{extra}{fix}.")

    if kind == "bool":
        if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):  # numpy.bool_
            value = bool(value)
        if not isinstance(value, bool):
            hint = " (write true or false without quotes)" if isinstance(value, str) else ""
            raise wrong_type(hint)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            hint = (f" (write {int(value)})" if isinstance(value, float) and math.isfinite(value)
                    and value.is_integer() else "")
            raise wrong_type(hint)
        value = int(value)
        if (rule.low is not None and value < rule.low) or (rule.high is not None and value > rule.high):
            raise ValueError(f"{name}={value!r} must be {_describe(rule, 'int')}{fix}.")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            hint = (" (PyYAML reads 1e-3 as text: write 1.0e-3)" if isinstance(value, str) else "")
            raise wrong_type(hint)
        value = float(value)
        bad = not math.isfinite(value)
        bad = bad or (rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low))
        bad = bad or (rule.high is not None and (value >= rule.high if rule.high_open else value > rule.high))
        if bad:
            raise ValueError(f"{name}={value!r} must be {_describe(rule, 'float')}{fix}.")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise wrong_type()
        if rule.choices is not None and value not in rule.choices:
            raise ValueError(f"{name}={value!r} is unknown; choose one of {', '.join(rule.choices)}.")
        if rule.pattern is not None and not re.fullmatch(rule.pattern, value):
            raise ValueError(f"{name}={value!r} is unknown{fix}.")
        return value
    # dict[str, Any]
    if not isinstance(value, dict):
        raise wrong_type()
    bad_keys = [k for k in value if not isinstance(k, str)]
    if bad_keys:
        raise ConfigTypeError(f"{name} keys must be strings; got {bad_keys[:3]!r}.")
    return value


# Nothing this package trains needs a terabyte; a config that does is a typo (hidden_size=100000000).
MAX_TRAINING_BYTES = 2**40


def training_memory_lower_bound(config: BERT4RecConfig, n_items: int = 0) -> int:
    """Bytes that training ``config`` needs AT LEAST (a lower bound, so a refusal based on it is never wrong):

    * parameters, fp32, each with its gradient and AdamW's two moments (16 bytes): per block 4 D^2 (Q, K, V and
      output projections) + 2 D x inner (feed-forward), plus L x D positions and (n_items + 2) x D items;
    * activations: each block keeps its attention probabilities, batch x heads x L^2 floats, for the backward pass.
    """
    d, inner, layers, length = config.hidden_size, config.inner_size, config.n_layers, config.max_seq_length
    params = layers * (4 * d * d + 2 * d * inner) + length * d + (n_items + 2) * d
    attention = layers * config.batch_size * config.n_heads * length * length
    return 16 * params + 4 * attention
