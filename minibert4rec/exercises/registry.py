"""The list of all exercises and their checks, in one module that the rest of the package imports.

``EXERCISES`` maps each exercise's name to its :class:`~.framework.Exercise` (notebook, kind, task, hints) and
``CHECKS`` maps each *implement* exercise to its ``check_<name>``; ``list_exercises`` prints them. The package's
``__init__`` (hints, solutions) and ``grading`` both read them from here, so neither imports the other.
"""

from __future__ import annotations

import difflib
from typing import Callable

from . import (nb01_data, nb02_cloze_masking, nb03_attention_from_scratch, nb04_the_model, nb05_training_on_a_gpu,
               nb06_evaluation, nb07_attention_maps, nb08_distributed_training)
from .framework import CheckResult, Exercise

NOTEBOOK_MODULES = (nb01_data, nb02_cloze_masking, nb03_attention_from_scratch, nb04_the_model,
                    nb05_training_on_a_gpu, nb06_evaluation, nb07_attention_maps, nb08_distributed_training)

EXERCISES: dict[str, Exercise] = {e.name: e for module in NOTEBOOK_MODULES for e in module.EXERCISES}

CHECKS: dict[str, Callable[[Callable], CheckResult]] = {
    e.name: getattr(module, f"check_{e.name}") for module in NOTEBOOK_MODULES for e in module.EXERCISES
    if e.kind == "implement"}


def exercise(name: str) -> Exercise:
    """The exercise called ``name``; an unknown name raises ValueError with the closest known one."""
    if name not in EXERCISES:
        close = difflib.get_close_matches(str(name), EXERCISES, n=1)
        suggestion = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"unknown exercise {name!r}; {suggestion}list_exercises() shows them all.")
    return EXERCISES[name]


def implement_exercises(notebook: str) -> list[Exercise]:
    """The implement exercises of one notebook ("01" .. "08"), in the order the notebook has them."""
    return [e for e in EXERCISES.values() if e.notebook == notebook and e.kind == "implement"]


def list_exercises(notebook: str | int | None = None) -> None:
    """Print a table of the exercises (all, or those of one notebook: list_exercises(3))."""
    wanted = None if notebook is None else f"{int(notebook):02d}"
    rows = [e for e in EXERCISES.values() if wanted in (None, e.notebook)]
    width = max(len(e.name) for e in rows) if rows else 4
    print(f"{'nb':<3} {'name':<{width}} {'kind':<9} task")
    for e in rows:
        print(f"{e.notebook:<3} {e.name:<{width}} {e.kind:<9} {e.task}")
