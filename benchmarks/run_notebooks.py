"""Execute notebooks at full size, one after the other, and record how long each one took.

    python benchmarks/run_notebooks.py 05 06 07 08

Each notebook runs with ``jupyter nbconvert --to notebook --execute --inplace`` in ``notebooks/``, so its outputs
are saved into it, ready to commit. For each one the script records the wall time, the CPU time of the kernel and
its children (user and system, from ``getrusage``), and how busy the machine was just before it started (the
1-minute load average, and the cores other processes were using, which is what each notebook reads to choose its
torch threads). The rows go into ``benchmarks/results/notebooks_cpu_run.json``: a notebook run again replaces its
row, the others keep theirs, and every row names the commit it ran.

The size is full (``run_sizes()`` without ``MINIBERT4REC_SMOKE``): a smoke run is not what the file records, so
the script refuses one. It also refuses to start when the package or the notebooks have uncommitted changes,
because the row's commit must be the code that ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, git_commit, machine

from minibert4rec.support.files import atomic_write
from minibert4rec.support.runtime import busy_cores_of_others

RESULT = ROOT / "benchmarks/results/notebooks_cpu_run.json"


def find_notebook(folder: Path, prefix: str) -> Path:
    """``05`` -> ``notebooks/05_training_on_a_gpu.ipynb``; an unknown or ambiguous prefix is an error."""
    found = sorted(folder.glob(f"{prefix}*.ipynb"))
    if len(found) != 1:
        names = ", ".join(p.name for p in sorted(folder.glob("*.ipynb")))
        raise SystemExit(f"notebook {prefix!r}: {len(found)} matches in {folder} (give a prefix of one of: {names})")
    return found[0]


def uncommitted(paths: list[str]) -> list[str]:
    """Files under ``paths`` that differ from the last commit (``git status --porcelain``)."""
    done = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True, text=True)
    return [line[3:] for line in done.stdout.splitlines()]


def run_one(notebook: Path) -> dict:
    """Execute one notebook in place and measure it."""
    load, others = os.getloadavg()[0], busy_cores_of_others()
    commit = git_commit()[:7]  # the code the notebook runs: read before it starts, not after it ends
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, wall = time.gmtime(), time.perf_counter()
    done = subprocess.run(["jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                           "--ExecutePreprocessor.timeout=-1", notebook.name], cwd=notebook.parent)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"notebook": notebook.name, "git_commit": commit, "date": time.strftime("%Y-%m-%d", started),
            "started_utc": time.strftime("%H:%M:%S", started), "wall_s": round(wall, 2),
            "user_cpu_s": round(after.ru_utime - before.ru_utime, 2),
            "sys_cpu_s": round(after.ru_stime - before.ru_stime, 2), "exit_code": done.returncode,
            "load_average_1min_before": round(load, 2),
            "other_processes_cores_before": None if others is None else round(others, 2)}


def merge(old: dict | None, rows: list[dict]) -> list[dict]:
    """The old file's rows with the new ones in their place, in notebook order. Rows of the older layouts, which
    kept one commit, date or command for all rows at the top, get them into the row."""
    kept = {}
    if old:
        shared = old.get("git_commit")
        for row in old.get("rows", []):
            if "git_commit" not in row and isinstance(shared, dict):
                row = {**row, "git_commit": next(iter(shared.values())), "date": old.get("date")}
            if "command" not in row and old.get("command"):
                row = {**row, "command": old["command"]}
            kept[row["notebook"]] = row
    kept.update({row["notebook"]: row for row in rows})
    return [kept[name] for name in sorted(kept)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="notebook numbers (prefixes), e.g. 05 06 07 08")
    parser.add_argument("--notebooks-dir", default=str(ROOT / "notebooks"))
    parser.add_argument("--out", default=str(RESULT))
    parser.add_argument("--allow-uncommitted", action="store_true", help=argparse.SUPPRESS)  # for the tests only
    args = parser.parse_args()
    if os.environ.get("MINIBERT4REC_SMOKE"):
        raise SystemExit("MINIBERT4REC_SMOKE is set: this script records full-size runs; unset it and run again")
    notebooks = [find_notebook(Path(args.notebooks_dir), prefix) for prefix in args.notebooks]
    dirty = uncommitted(["minibert4rec", "notebooks", "benchmarks/common.py"])
    if dirty and not args.allow_uncommitted:
        raise SystemExit("commit these first, so that the recorded commit is the code that runs: " + ", ".join(dirty))
    command = "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:])
    rows = []
    for notebook in notebooks:
        print(f"executing {notebook.name} ...", flush=True)
        rows.append({**run_one(notebook), "command": command})  # each row names the call that ran it
        print(f"  {rows[-1]['wall_s']:.0f} s wall, {rows[-1]['user_cpu_s']:.0f} s user CPU, "
              f"exit code {rows[-1]['exit_code']}", flush=True)
        if rows[-1]["exit_code"] != 0:
            break  # later notebooks read what this one writes (05's checkpoint)
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else None
    about = machine()
    about.pop("torch_threads", None)  # each notebook chooses its own (its first cells print them)
    about.pop("load_average_1min_at_start", None)  # each row has its own
    payload = {"command": "python benchmarks/run_notebooks.py NUMBER [NUMBER ...] (each row names its own call)",
               "how": "cd notebooks && jupyter nbconvert --to notebook --execute --inplace "
                      "--ExecutePreprocessor.timeout=-1 NOTEBOOK.ipynb, one notebook after the other",
               "size": "full (run_sizes() without MINIBERT4REC_SMOKE): ML-1m for 05-07, ml-100k for 08",
               "machine": about, "rows": merge(old, rows)}
    atomic_write(out, json.dumps(payload, indent=1) + "\n")
    print("wrote", out)
    if rows[-1]["exit_code"] != 0:
        raise SystemExit(f"{rows[-1]['notebook']} failed (exit code {rows[-1]['exit_code']}); its row is recorded")


if __name__ == "__main__":
    main()
