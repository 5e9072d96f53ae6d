"""Grading: run a submitted notebook, then check the student's functions ourselves, and the command line.

``grade_notebook(path)`` never trusts what the notebook printed: a "✅ name: correct" line in an output is only
text, and a student can print it. Instead the grader

1. runs the notebook top to bottom in a fresh kernel (cells that fail do not stop the run),
2. then, in the SAME kernel, runs a cell of its own: it re-imports the checks from the grader's copy of the
   package (so that a check redefined in the notebook does not count), calls ``check_<name>`` on the student's
   function of each implement exercise of that notebook (the function named like the exercise, as the notebook's
   own check cell calls it: ``check_ndcg_at_k(ndcg_at_k)``),
3. and reads the verdicts back from a JSON file with a random name in a private temporary folder, stamped with a
   random token: the path and the token exist only in that last cell, which runs after every student cell, so no
   printed line and no student code can write a verdict that the grader accepts.

A verdict is the check's own: "correct", "wrong" (with the failing input, what was expected and what the function
gave), "not attempted" (the function still raises NotImplementedError), or "missing" (the notebook defines no
function of that name). ``python -m minibert4rec.exercises list | grade NOTEBOOK.ipynb ...`` is the same from a
shell (docs/instructor_guide.md shows how an instructor uses it).
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .framework import CORRECT
from .registry import implement_exercises, list_exercises

MISSING, NOT_GRADED = "missing", "not graded"

# The cell the grader appends to the student's notebook. It runs in the student's kernel after all their cells.
_GRADER_CELL = '''
def _minibert4rec_grader(names, out_path, token, package_root):
    import builtins, importlib, json, sys
    namespace = sys._getframe().f_globals  # the notebook's variables (builtins from the module: a student's own
    functions = {name: namespace.get(name, _minibert4rec_grader) for name in names}  # open or dict do not count)
    # The grader's own checks, freshly imported: whatever the notebook did to the modules it imported is left behind.
    for module in builtins.list(sys.modules):
        if module == "minibert4rec" or module.startswith("minibert4rec."):
            del sys.modules[module]
    sys.path.insert(0, package_root)
    importlib.invalidate_caches()
    from minibert4rec.exercises.registry import CHECKS
    verdicts = {}
    for name, fn in functions.items():
        if fn is _minibert4rec_grader:
            verdicts[name] = {"status": "missing", "message": "\u2753 " + name + ": missing \u2014 the notebook "
                              "defines no function `" + name + "`; write it in the exercise's cell, under that "
                              "name, and run the notebook again"}
        else:
            result = CHECKS[name](fn)
            verdicts[name] = {"status": result.status, "message": result.message}
    with builtins.open(out_path, "w", encoding="utf-8") as f:
        json.dump({"token": token, "verdicts": verdicts}, f)
_minibert4rec_grader(@NAMES@, @OUT_PATH@, @TOKEN@, @PACKAGE_ROOT@)
del _minibert4rec_grader
'''


@dataclass(frozen=True)
class Verdict:
    """One exercise's grade: ``status`` ("correct", "wrong", "not attempted", "missing", "not graded") and the
    check's report (for a wrong answer: the failing input, what was expected and what the function gave)."""

    name: str
    status: str
    message: str

    def __str__(self) -> str:
        return self.message


def grade(path: str | Path, timeout: int = 1800, workdir: str | Path | None = None) -> dict[str, Verdict]:
    """The :class:`Verdict` of each implement exercise of a submitted notebook, in the notebook's order.

    The notebook number comes from the file name (``06_*.ipynb``). The kernel starts in ``workdir`` (default: the
    notebook's folder; pass the repository's ``notebooks/`` folder so that relative data paths resolve as they
    do there) and every cell gets ``timeout`` seconds. Needs nbclient and ipykernel (the ``[dev]`` extra).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    exercises = implement_exercises(path.name[:2])
    if not exercises:
        raise ValueError(f"{path.name}: no implement exercises for notebook {path.name[:2]!r}; the file name must "
                         "start with the notebook's number, as the repository's notebooks do (06_evaluation.ipynb)")
    nb = nbformat.read(path, as_version=4)
    package_root = str(Path(__file__).resolve().parents[2])
    token = secrets.token_hex(16)
    stopped = ""
    with tempfile.TemporaryDirectory(prefix="grade-") as private:  # mode 700: only this user can look inside
        out_path = str(Path(private) / f"{secrets.token_hex(16)}.json")
        names = [e.function for e in exercises]
        source = _GRADER_CELL
        for key, value in {"NAMES": names, "OUT_PATH": out_path, "TOKEN": token, "PACKAGE_ROOT": package_root}.items():
            source = source.replace(f"@{key}@", repr(value))
        nb.cells.append(nbformat.v4.new_code_cell(source.strip()))
        log = logging.getLogger("minibert4rec.grading")
        log.setLevel(logging.CRITICAL)  # the kernel's start-up and shut-down chatter is not part of the grade
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3", log=log,
                                resources={"metadata": {"path": str(Path(workdir or path.parent).resolve())}})
        try:
            client.execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the kernel's own warnings too
        except CellTimeoutError:
            stopped = f"a cell ran longer than {timeout} s (the time limit per cell)"
        except DeadKernelError:
            stopped = "the notebook stopped its own kernel (sys.exit, os._exit or a crash)"
        try:
            report = json.loads(Path(out_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = {}
    if report.get("token") != token:  # the grader's cell did not finish: nothing is graded
        why = stopped or "the grading cell did not finish after the notebook's last cell"
        return {e.name: Verdict(e.name, NOT_GRADED, f"⚠ {e.name}: not graded — {why}; fix the notebook so that it "
                                "runs to the end and grade it again") for e in exercises}
    found = report["verdicts"]
    return {e.name: Verdict(e.name, found[e.function]["status"], found[e.function]["message"]) for e in exercises}


def grade_notebook(path: str | Path, timeout: int = 1800, workdir: str | Path | None = None) -> dict[str, str]:
    """{exercise name: "correct" | "wrong" | "not attempted" | "missing" | "not graded"} for a submitted notebook;
    :func:`grade` gives the reasons too."""
    return {name: verdict.status for name, verdict in grade(path, timeout, workdir).items()}


def _main(argv: list[str] | None = None) -> None:
    """python -m minibert4rec.exercises list | grade NOTEBOOK.ipynb ... [--workdir DIR] [--timeout S]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m minibert4rec.exercises", description=_main.__doc__)
    parser.add_argument("command", choices=["list", "grade"])
    parser.add_argument("notebooks", nargs="*", help="submitted notebooks (grade), named like the repository's")
    parser.add_argument("--workdir", default=None, help="folder the kernel starts in (default: the notebook's)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds each cell may run (default 1800)")
    args = parser.parse_intermixed_args(argv)
    if args.command == "list":
        list_exercises()
    elif not args.notebooks:
        parser.error("grade needs at least one notebook: python -m minibert4rec.exercises grade 06_evaluation.ipynb")
    for file in args.notebooks if args.command == "grade" else []:
        verdicts = grade(file, timeout=args.timeout, workdir=args.workdir)
        done = sum(v.status == CORRECT for v in verdicts.values())
        print(f"{file}: {done}/{len(verdicts)} correct  " + "  ".join(f"{k}={v.status}" for k, v in verdicts.items()))
        for verdict in verdicts.values():
            if verdict.status != CORRECT:
                print("   " + verdict.message.replace("\n", "\n   "))
