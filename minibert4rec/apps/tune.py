"""Hyper-parameter search that reads RecBole's ``hyper.test`` files unchanged.

A ``hyper.test`` file has one parameter per line: ``name kind values``::

    learning_rate choice [0.01,0.005,0.001]
    hidden_dropout_prob uniform 0.1,0.5
    weight_decay loguniform -9,-4        # exp(uniform(-9, -4)), as hyperopt's loguniform
    train_batch_size choice [128,256]

When every line is a ``choice`` the search is the full grid (as RecBole's exhaustive search); otherwise
``--max-trials`` configurations are drawn at random (seeded). Each trial is a normal :func:`train` run; the table
is sorted by validation NDCG@10 (full ranking with the user's seen items removed, as the trainer selects its
best epoch) and shows the test metrics of every trial (seen removed; NDCG@10 with seen items kept and sampled
beside them, labelled). The command line
(``python -m minibert4rec tune``) only parses its options into the arguments of :func:`run_search`.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import random
from pathlib import Path
from typing import Any

import pandas as pd

from ..support.config import BERT4RecConfig
from ..data import SequenceData
from ..support.files import atomic_write, regular_file

# RecBole names that differ from ours
RECBOLE_ALIASES = {"train_batch_size": "batch_size", "epochs": "epochs", "MAX_ITEM_LIST_LENGTH": "max_seq_length"}
KINDS = ("choice", "uniform", "loguniform", "quniform")


def parse_hyper_file(path: str | Path) -> dict[str, tuple[str, Any]]:
    """``{config_field: (kind, values)}`` from a RecBole ``hyper.test`` file; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"parameter file {path} does not exist.")
    regular_file(path, "parameter file")
    try:
        text_of_file = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"parameter file {path} is not text (not UTF-8).") from None
    known = set(BERT4RecConfig().to_dict()) - {"extra"}
    space: dict[str, tuple[str, Any]] = {}
    for number, line in enumerate(text_of_file.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(maxsplit=2)
        if len(parts) != 3 or parts[1] not in KINDS:
            raise ValueError(f"{path}, line {number}: expected 'name {'|'.join(KINDS)} values', got {line!r:.80}.")
        name, kind, text = parts
        field = RECBOLE_ALIASES.get(name, name)
        if field not in known:
            raise ValueError(f"{path}, line {number}: {name!r} is not a BERT4Rec option; known: {', '.join(sorted(known))}.")
        try:
            values = ast.literal_eval(text) if kind == "choice" else [float(v) for v in text.split(",")]
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"{path}, line {number}: cannot read the values {text!r:.80}.") from None
        if kind == "choice" and (not isinstance(values, list) or not values):
            raise ValueError(f"{path}, line {number}: 'choice' needs a non-empty list like [0.1,0.2].")
        if kind != "choice" and len(values) != (3 if kind == "quniform" else 2):
            raise ValueError(f"{path}, line {number}: {kind} needs low,high{',q' if kind == 'quniform' else ''}.")
        if field in space:
            raise ValueError(f"{path}, line {number}: {name!r} is already given on an earlier line; give it once.")
        if kind != "choice":
            problem = _range_problem(kind, values)
            if problem:
                raise ValueError(f"{path}, line {number}: {kind} {text}: {problem}.")
        space[field] = (kind, values)
    if not space:
        raise ValueError(f"parameter file {path} holds no parameter line.")
    return space


def _range_problem(kind: str, values: list[float]) -> str | None:
    """What is wrong with the bounds of a uniform/loguniform/quniform line, or None."""
    if not all(math.isfinite(v) for v in values):
        return "the bounds must be finite numbers"
    low, high = values[0], values[1]
    if low > high:
        return f"low={low:g} is above high={high:g}"
    if kind == "loguniform" and high > math.log(1e300):
        return (f"the values are exp(low)..exp(high), and exp({high:g}) is beyond any float; give natural logs, "
                "e.g. -9,-4 for 1.2e-4..1.8e-2")
    if kind == "quniform" and values[2] <= 0:
        return f"q={values[2]:g} must be a positive step"
    return None


def check_max_trials(max_trials: int | None) -> None:
    """``max_trials``: None (the whole grid, or 10 random draws) or a positive integer."""
    if max_trials is not None and (isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1):
        raise ValueError(f"max_trials={max_trials!r} must be a positive integer (--max-trials N), or left out for "
                         "every grid point (10 random draws when some parameter is not a choice).")


def _typed(base: BERT4RecConfig, params: dict[str, Any]) -> dict[str, Any]:
    """Integral values for integer fields (a draw of 128.0 is batch_size=128)."""
    return {k: int(v) if isinstance(getattr(base, k), int) and not isinstance(getattr(base, k), bool)
            and isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() else v
            for k, v in params.items()}


def trials(space: dict[str, tuple[str, Any]], max_trials: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The configurations to try: the grid when all are ``choice``, else ``max_trials`` random draws."""
    check_max_trials(max_trials)
    names = list(space)
    if all(kind == "choice" for kind, _ in space.values()):
        grid = [dict(zip(names, combo)) for combo in itertools.product(*(space[n][1] for n in names))]
        return grid[:max_trials] if max_trials else grid
    rng = random.Random(seed)

    def draw(kind: str, values: Any) -> Any:
        if kind == "choice":
            return rng.choice(values)
        if kind == "uniform":
            return rng.uniform(*values)
        if kind == "loguniform":
            return math.exp(rng.uniform(*values))
        low, high, q = values
        return round(rng.uniform(low, high) / q) * q

    return [{n: draw(*space[n]) for n in names} for _ in range(max_trials or 10)]


def check_search(base: BERT4RecConfig, space: dict[str, tuple[str, Any]]) -> None:
    """Refuse a search that cannot be ranked honestly (before any data is loaded or model trained)."""
    if base.include_valid_in_train or "include_valid_in_train" in space:
        raise ValueError("tune ranks trials by validation NDCG@10, so the validation item must stay out of training; "
                         "drop --include-valid-in-train (use it for the final run with the chosen parameters).")
    for name, (kind, values) in space.items():  # every value the search can take must be a valid config
        if kind == "choice":
            candidates = list(values)
        elif kind == "loguniform":
            candidates = [math.exp(values[0]), math.exp(values[1])]
        elif kind == "quniform":
            low, high, q = values
            candidates = [round(low / q) * q, round(high / q) * q]
        else:
            candidates = list(values[:2])
        for value in candidates:
            try:
                base.replace(**_typed(base, {name: value}))
            except ValueError as error:
                raise ValueError(f"the search space's {name} ({kind} {values}) reaches a value the config "
                                 f"refuses: {error}") from None


def run_search(base: BERT4RecConfig, space: dict[str, tuple[str, Any]], data: SequenceData, *,
               max_trials: int | None = None, out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Train every trial of ``space`` (from :func:`parse_hyper_file`) on ``data``, each ``base`` with the trial's
    values; print the table sorted by validation NDCG@10 and write it to ``out`` (default runs/tune-DATASET)
    as ``trials.csv`` and ``best.json``."""
    from ..train import train

    check_search(base, space)
    check_max_trials(max_trials)
    rows = []
    for number, params in enumerate(trials(space, max_trials, seed=base.seed), start=1):
        params = _typed(base, params)
        config = base.replace(**params)
        result = train(config, data, progress=progress)
        # ranked as the trainer selects its epoch: full ranking with the user's seen items removed (the field's)
        row = {"trial": number, **params, "valid NDCG@10": result.valid["full_filtered"]["NDCG@10"],
               **{f"test {m}": v for m, v in result.test["full_filtered"].items()},
               "test NDCG@10 (seen kept)": result.test["full"]["NDCG@10"],
               "test sampled NDCG@10": result.test["sampled"]["NDCG@10"], "seconds": round(result.train_seconds, 1)}
        rows.append(row)
        print(f"trial {number}: {params} -> valid NDCG@10 {row['valid NDCG@10']:.4f}", flush=True)
    table = pd.DataFrame(rows).sort_values("valid NDCG@10", ascending=False).reset_index(drop=True)
    out = Path(out or f"runs/tune-{data.name}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "trials.csv", table.to_csv(index=False))
    atomic_write(out / "best.json", json.dumps(table.iloc[0].to_dict(), indent=2, default=str) + "\n")
    print(summary_table(table, list(space)))
    print(f"(every column: {out / 'trials.csv'}; the best trial: {out / 'best.json'})")
    return table


def summary_table(table: pd.DataFrame, params: list[str]) -> str:
    """The trials, best first, in a few labelled columns (all of them are in trials.csv)."""
    columns = {"trial": "trial", **{p: p for p in params}, "valid NDCG@10": "valid NDCG@10",
               "test NDCG@10": "test NDCG@10", "test HR@10": "test HR@10", "seconds": "seconds"}
    shown = table[[c for c in columns if c in table.columns]].rename(columns=columns)
    lines = ["trials, best first (valid/test: full ranking, seen items removed):",
             shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    return "\n".join(lines)
