"""Grading: the verdict of every implement exercise in a submitted notebook, and the command line.

``grade_notebook(path)`` re-runs a notebook in a fresh kernel (or only reads its stored outputs) and collects the
verdict lines that the checks printed (``✅ name: correct``, ``❌ name: wrong ...``, ``⏳ name: not attempted``).
``python -m minibert4rec.exercises list | grade NOTEBOOK.ipynb ...`` is the same from a shell
(docs/instructor_guide.md shows how an instructor uses it).
"""

from __future__ import annotations

import re
from pathlib import Path

from .framework import CORRECT

_VERDICT = re.compile(r"^(?:✅|❌|⏳) (\w+): (correct|wrong|not attempted)", re.MULTILINE)


def grade_notebook(path: str | Path, execute: bool = True, timeout: int = 1800,
                   workdir: str | Path | None = None) -> dict[str, str]:
    """Verdict of each implement exercise of a submitted notebook: {name: "correct" | "wrong" | "not attempted" |
    "missing"} ("missing" = its check never ran).

    ``execute=True`` re-runs the notebook in a fresh kernel (needs nbclient and ipykernel, which the ``[dev]`` extra
    installs) so that the verdicts come from the student's code, not from the outputs stored in the file; cells
    that fail do not stop the run; the kernel starts in ``workdir`` (default: the notebook's folder; pass the
    repository's ``notebooks/`` folder so relative data paths resolve as in the repository). ``execute=False``
    only reads the stored outputs. The notebook number is taken from the file name (``05_*.ipynb``); other
    verdicts found are reported too.
    """
    import nbformat

    from . import EXERCISES  # the package's list (imported here: the package imports this module first)

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if execute:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=timeout, allow_errors=True,
                       resources={"metadata": {"path": str(Path(workdir or path.parent).resolve())}}).execute()
    found: dict[str, str] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            for name, status in _VERDICT.findall("".join(text) if isinstance(text, list) else text):
                found[name] = status  # the last verdict of an exercise counts
    number = path.name[:2]
    verdicts = {e.name: "missing" for e in EXERCISES.values() if e.notebook == number and e.kind == "implement"}
    return verdicts | found


def _main(argv: list[str] | None = None) -> None:
    """python -m minibert4rec.exercises list | grade NOTEBOOK.ipynb ... [--no-execute] [--workdir DIR]"""
    import argparse

    from . import list_exercises

    parser = argparse.ArgumentParser(prog="python -m minibert4rec.exercises", description=_main.__doc__)
    parser.add_argument("command", choices=["list", "grade"])
    parser.add_argument("notebooks", nargs="*", help="submitted notebooks (grade)")
    parser.add_argument("--no-execute", action="store_true", help="read the stored outputs, do not re-run")
    parser.add_argument("--workdir", default=None, help="folder the kernel starts in (default: the notebook's)")
    args = parser.parse_intermixed_args(argv)
    if args.command == "list":
        list_exercises()
    for file in args.notebooks if args.command == "grade" else []:
        verdicts = grade_notebook(file, execute=not args.no_execute, workdir=args.workdir)
        done = sum(v == CORRECT for v in verdicts.values())
        print(f"{file}: {done}/{len(verdicts)} correct  " + "  ".join(f"{k}={v}" for k, v in verdicts.items()))
