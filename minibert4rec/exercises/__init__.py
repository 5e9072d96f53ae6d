"""Exercises that check themselves: ``check_<name>(fn)``, ``hint(name)``, ``solution(name)``, ``list_exercises()``.

Every notebook ends with exercises of rising difficulty: a *question* (answer in prose; ``solution`` prints a model
answer), one or two *implement* exercises, and in notebooks 05 and 07 an *explore* experiment. An implement
exercise is one cell, ending with its check (the notebook imported ``check_leave_one_out, hint, solution`` from
this module earlier)::

    def leave_one_out(sequence: list[int]) -> tuple[list[int], int, int]:
        raise NotImplementedError  # replace this line with your code
    check_leave_one_out(leave_one_out)

The check runs your function on hand-picked edge cases and seeded random inputs, compares it with the package's
own implementation and returns a :class:`CheckResult`. Jupyter shows the result of a cell's last line, and a
CheckResult shows itself as its verdict, so the cell prints exactly one of::

    ✅ leave_one_out: correct (14 cases)
    ❌ leave_one_out: wrong on case 2 of 14   (then the input, what was expected and what your function gave)
    ⏳ leave_one_out: not attempted ...       (your function still raises NotImplementedError)

A check never raises: whatever your function does (raise, return nonsense, change its input in place) becomes a
"wrong" verdict with the reason. Its inputs are seeded, so the verdict is the same on every run. In a script, use
``print(check_x(fn))``; a CheckResult is truthy only when correct, and ``.passed`` is True / False / None
(correct / wrong / not attempted) for grading. ``grade_notebook(path)`` collects the verdicts of a notebook.

The package, one idea per module:

- ``framework``: how a check runs and reports (``CheckResult``, ``Exercise``, ``_run``, the comparisons).
- ``nb01_data`` ... ``nb08_distributed_training``: one module per notebook, holding that notebook's exercises
  (task and hints) and the checks of its implement exercises.
- ``grading``: ``grade_notebook`` and the command line ``python -m minibert4rec.exercises list | grade``.
- this file: the list of all exercises, ``hint`` (the hint ladder), ``solution`` and ``list_exercises``; it
  re-exports every check, so ``from minibert4rec.exercises import check_<name>`` works for every exercise.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable

from . import (nb01_data, nb02_cloze_masking, nb03_attention_from_scratch, nb04_the_model, nb05_training_on_a_gpu,
               nb06_evaluation, nb07_attention_maps, nb08_distributed_training)
from .framework import CORRECT, NOT_ATTEMPTED, WRONG, CheckResult, Exercise
from .grading import _main, grade_notebook
from .nb01_data import check_item_popularity, check_leave_one_out
from .nb02_cloze_masking import check_cloze_mask, check_mask_last
from .nb03_attention_from_scratch import check_causal_mask, check_scaled_dot_product_attention
from .nb04_the_model import check_bert4rec_parameter_count, check_output_scores
from .nb05_training_on_a_gpu import check_warmup_linear_decay
from .nb06_evaluation import check_ndcg_at_k, check_target_rank
from .nb07_attention_maps import check_attention_entropy
from .nb08_distributed_training import check_shard_rows

__all__ = [
    "CheckResult", "Exercise", "CORRECT", "WRONG", "NOT_ATTEMPTED", "EXERCISES", "CHECKS", "SOLUTIONS_DIR",
    "hint", "solution", "solution_path", "list_exercises", "grade_notebook",
    "check_leave_one_out", "check_item_popularity", "check_cloze_mask", "check_mask_last",
    "check_scaled_dot_product_attention", "check_causal_mask", "check_bert4rec_parameter_count",
    "check_output_scores", "check_warmup_linear_decay", "check_ndcg_at_k", "check_target_rank",
    "check_attention_entropy", "check_shard_rows",
]

SOLUTIONS_DIR = Path(__file__).resolve().parents[2] / "solutions"  # present in a git clone, not in a pip install

_NOTEBOOKS = (nb01_data, nb02_cloze_masking, nb03_attention_from_scratch, nb04_the_model, nb05_training_on_a_gpu,
              nb06_evaluation, nb07_attention_maps, nb08_distributed_training)

EXERCISES: dict[str, Exercise] = {e.name: e for module in _NOTEBOOKS for e in module.EXERCISES}

CHECKS: dict[str, Callable[[Callable], CheckResult]] = {
    e.name: getattr(module, f"check_{e.name}") for module in _NOTEBOOKS for e in module.EXERCISES
    if e.kind == "implement"}


def _exercise(name: str) -> Exercise:
    if name not in EXERCISES:
        close = difflib.get_close_matches(str(name), EXERCISES, n=1)
        suggestion = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"unknown exercise {name!r}; {suggestion}list_exercises() shows them all.")
    return EXERCISES[name]


def hint(name: str, level: int = 1) -> None:
    """Print the first ``level`` hints of an exercise, each more helpful than the last.

    A ladder: levels 1 to 3 are hints and none of them is the answer; the last rung is ``solution(name)``.
    """
    hints = _exercise(name).hints
    level = max(1, min(int(level), len(hints)))
    for i in range(level):
        print(f"Hint {i + 1}/{len(hints)}: {hints[i]}")
    if level < len(hints):
        print(f"(more: hint('{name}', {level + 1}))")
    else:
        print(f"(that was the last hint; the answer: solution('{name}'))")


def solution_path(name: str) -> Path:
    """Where the solution of an exercise lives in a git clone: solutions/<name>.py (questions: .md)."""
    return SOLUTIONS_DIR / f"{name}{'.py' if _exercise(name).kind == 'implement' else '.md'}"


def solution(name: str) -> None:
    """Print the solution of an exercise (from the repository's solutions/ folder)."""
    path = solution_path(name)
    if path.is_file():
        print(f"# {path.parent.name}/{path.name}\n{path.read_text(encoding='utf-8').rstrip()}")
    else:
        print(f"The solution is the file solutions/{path.name} of the minibert4rec repository; it is not part of "
              "the installed package. Open it on GitHub, or clone the repository (git clone) to have it locally.")


def list_exercises(notebook: str | int | None = None) -> None:
    """Print a table of the exercises (all, or those of one notebook: list_exercises(3))."""
    wanted = None if notebook is None else f"{int(notebook):02d}"
    rows = [e for e in EXERCISES.values() if wanted in (None, e.notebook)]
    width = max(len(e.name) for e in rows) if rows else 4
    print(f"{'nb':<3} {'name':<{width}} {'kind':<9} task")
    for e in rows:
        print(f"{e.notebook:<3} {e.name:<{width}} {e.kind:<9} {e.task}")
