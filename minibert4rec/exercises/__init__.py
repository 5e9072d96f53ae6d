"""Exercises that check themselves: ``check_<name>(fn)``, ``hint(name)``, ``solution(name)``, ``list_exercises()``.

Every notebook ends with exercises of rising difficulty: a *question* (answer in prose; ``solution`` prints a model
answer), one to three *implement* exercises, and in notebooks 05 and 07 an *explore* experiment. An implement
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
(correct / wrong / not attempted) for grading. ``grade_notebook(path)`` runs a submitted notebook and checks its
functions itself (what the notebook printed does not count).

The package, one idea per module:

- ``framework``: how a check runs and reports (``CheckResult``, ``Exercise``, ``_run``, the comparisons).
- ``nb01_data`` ... ``nb08_distributed_training``: one module per notebook, holding that notebook's exercises
  (task and hints) and the checks of its implement exercises.
- ``registry``: the list of all exercises (``EXERCISES``) and their checks (``CHECKS``).
- ``grading``: ``grade_notebook`` (runs a notebook, then the checks on the student's functions) and the command
  line ``python -m minibert4rec.exercises list | grade``.
- this file: ``hint`` (the hint ladder), ``solution`` and ``list_exercises``; it re-exports every check, so
  ``from minibert4rec.exercises import check_<name>`` works for every exercise.
"""

from __future__ import annotations

from pathlib import Path

from .framework import CORRECT, NOT_ATTEMPTED, WRONG, CheckResult, Exercise
from .grading import _main, grade, grade_notebook
from .registry import CHECKS, EXERCISES, list_exercises
from .registry import NOTEBOOK_MODULES as _NOTEBOOKS
from .registry import exercise as _exercise
from .nb01_data import check_item_popularity, check_leave_one_out
from .nb02_cloze_masking import check_cloze_mask, check_mask_last
from .nb03_attention_from_scratch import check_causal_mask, check_scaled_dot_product_attention, check_softmax_backward
from .nb04_the_model import check_bert4rec_parameter_count, check_output_scores, check_transformer_block
from .nb05_training_on_a_gpu import check_adamw_step, check_warmup_linear_decay
from .nb06_evaluation import check_ndcg_at_k, check_target_rank
from .nb07_attention_maps import check_attention_entropy, check_recommend_for_user
from .nb08_distributed_training import check_shard_rows

__all__ = [
    "CheckResult", "Exercise", "CORRECT", "WRONG", "NOT_ATTEMPTED", "EXERCISES", "CHECKS", "SOLUTIONS_DIR", "hint",
    "solution", "solution_path", "solution_urls", "list_exercises", "grade", "grade_notebook",
    "check_leave_one_out", "check_item_popularity", "check_cloze_mask", "check_mask_last",
    "check_scaled_dot_product_attention", "check_softmax_backward", "check_causal_mask", "check_bert4rec_parameter_count",
    "check_output_scores", "check_transformer_block", "check_warmup_linear_decay", "check_adamw_step",
    "check_recommend_for_user", "check_ndcg_at_k", "check_target_rank", "check_attention_entropy",
    "check_shard_rows",
]

SOLUTIONS_DIR = Path(__file__).resolve().parents[2] / "solutions"  # present in a git clone, not in a pip install

# Where solution() reads a solution that is not on disk (a pip install, as in Colab): the repository's file at
# the installed commit.
REPOSITORY = "https://github.com/minibert4rec/minibert4rec"


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


def _installed_source() -> tuple[str, str]:
    """(repository URL, git ref) of the installed package: the commit pip installed it from (``pip install
    "minibert4rec @ git+<repository>@<ref>"``, as the notebooks' Colab cell does, records it), else ``main``."""
    import json
    from importlib import metadata

    repository, ref = REPOSITORY, "main"
    try:
        dist = metadata.distribution("minibert4rec")
        for entry in dist.metadata.get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "repository" and url.strip().startswith("https://github.com/"):
                repository = url.strip().rstrip("/")
        commit = json.loads(dist.read_text("direct_url.json") or "{}").get("vcs_info", {}).get("commit_id")
        ref = commit or ref
    except (metadata.PackageNotFoundError, ValueError, AttributeError):
        pass
    return repository.removesuffix(".git"), ref


def solution_urls(name: str) -> tuple[str, str]:
    """(raw text URL, web page URL) of an exercise's solution in the repository, at the installed commit."""
    repository, ref = _installed_source()
    file = f"solutions/{solution_path(name).name}"
    raw = repository.replace("https://github.com/", "https://raw.githubusercontent.com/", 1)
    return f"{raw}/{ref}/{file}", f"{repository}/blob/{ref}/{file}"


def solution(name: str) -> None:
    """Print the solution of an exercise: solutions/<name>.py (.md for questions) of the repository.

    In a clone the file is read from disk. In a pip install (Colab) it is downloaded from the repository at the
    commit that was installed, so it matches the installed checks; without a connection the URL is printed.
    """
    path = solution_path(name)
    if path.is_file():
        print(f"# {path.parent.name}/{path.name}\n{path.read_text(encoding='utf-8').rstrip()}")
        return
    import urllib.request

    raw, page = solution_urls(name)
    try:
        with urllib.request.urlopen(raw, timeout=15) as response:
            text = response.read().decode("utf-8")
    except Exception as error:  # offline, or the repository is not reachable: say where the file is
        print(f"Could not download the solution ({type(error).__name__}: {error}). Read it at {page} "
              f"(or clone the repository: solutions/{path.name}).")
        return
    print(f"# solutions/{path.name}  ({page})\n{text.rstrip()}")
