"""Collect the full-size runs of notebook 05 from the repository's history into one result file.

Notebook 05 prints its own numbers (it is committed with its outputs), but every new run replaces the last one.
This script reads the notebook as committed at each given commit (``git show COMMIT:notebooks/...``), takes the
numbers its cells printed, and writes them side by side, so that run-to-run spread stays visible:

* the final test metrics on every user (sampled HR@10 / NDCG@10, full ranking with seen items removed and kept);
* epochs, minutes of training and seconds per epoch; the time budget; when the 1,000-user curve first reached the
  paper's row;
* the run's own stamp (machine, commit it ran at, torch, date), and the threads it trained with and what it
  read when it chose them (a CPU run): the load average (older runs) or the cores other processes used.

    python benchmarks/notebook05_runs.py --commits COMMIT [COMMIT ...] --out benchmarks/results/notebook05_runs.json

A commit whose notebook holds a smoke run (``MINIBERT4REC_SMOKE=1``) or no outputs is refused.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import provenance  # noqa: E402

from minibert4rec.support.files import atomic_write  # noqa: E402

NOTEBOOK = "notebooks/05_training_on_a_gpu.ipynb"
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def output_text(notebook: dict) -> str:
    """Every text the notebook's cells printed or displayed (stdout and Markdown), one after the other."""
    parts = []
    for cell in notebook["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            for kind in ("text/markdown", "text/plain"):
                if kind in out.get("data", {}):
                    parts.append("".join(out["data"][kind]))
                    break
    return "\n".join(parts)


def table_row(text: str, label: str) -> dict[str, float]:
    """HR@10 and NDCG@10 of one row of the printed metrics table (columns HR@1 HR@5 HR@10 NDCG@5 NDCG@10 MRR)."""
    match = re.search(re.escape(label) + r"\s+" + r"\s+".join([NUMBER] * 6), text)
    if match is None:
        raise ValueError(f"the metrics table has no row {label!r}")
    values = [float(v) for v in match.groups()]
    return {"HR@10": values[2], "NDCG@10": values[4]}


def one_run(text: str) -> dict:
    """The numbers of one executed notebook 05, from its printed outputs."""
    def find(pattern: str, what: str) -> re.Match:
        match = re.search(pattern, text)
        if match is None:
            raise ValueError(f"no {what} in the notebook's outputs: is it a full-size run of notebook 05?")
        return match

    if "ml-1m" not in find(r"dataset (\S+):", "dataset line").group(1):
        raise ValueError("this run is not on ml-1m (a smoke run?): only full-size runs are collected")
    epochs = find(r"(\d+) epochs in " + NUMBER + r" minutes of training \(" + NUMBER
                  + r" minutes with the evaluations\), " + NUMBER + " s per epoch", "training summary")
    stamp = find(r"Run on (.+?), (\d+) torch threads?, in " + NUMBER + r" minutes, with minibert4rec \S+ "
                 r"\(commit (\w+)\), torch (\S+), on ([0-9-]+)\.", "closing stamp")
    threads = re.search(r"device: CPU, (\d+) torch threads?: (.*)", text)  # CPU runs only
    why = threads.group(2) if threads else ""
    load = re.search(r"\(load " + NUMBER + r"\)", why)  # the reason as older notebooks printed it
    others = re.search(r"other processes use " + NUMBER + " cores", why)  # as they print it now
    first = re.search(r"first reached the paper's row after " + NUMBER + " minutes", text)
    return {
        "ran_at_commit": stamp.group(4), "date": stamp.group(6), "machine": stamp.group(1),
        "torch": stamp.group(5), "training_threads": int(threads.group(1)) if threads else None,
        "load_when_threads_chosen": float(load.group(1)) if load else None,
        "other_processes_cores_when_threads_chosen": float(others.group(1)) if others else None,
        "budget_minutes": float(find(NUMBER + r" minutes on (?:cpu|cuda|mps)", "budget line").group(1)),
        "epochs": int(epochs.group(1)), "training_minutes": float(epochs.group(2)),
        "minutes_with_evaluations": float(epochs.group(3)), "median_seconds_per_epoch": float(epochs.group(4)),
        "notebook_minutes": float(stamp.group(3)),
        "curve_first_at_papers_row_minutes": float(first.group(1)) if first else None,
        "test_all_users": {"sampled": table_row(text, "BERT4Rec (ours) / sampled (100 neg.)"),
                           "full_seen_removed": table_row(text, "BERT4Rec (ours) / full, seen removed"),
                           "full_seen_kept": table_row(text, "BERT4Rec (ours) / full, seen kept")},
    }


def notebook_at(commit: str) -> dict:
    shown = subprocess.run(["git", "show", f"{commit}:{NOTEBOOK}"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        raise SystemExit(f"git cannot show {NOTEBOOK} at {commit}: {shown.stderr.strip()}")
    return json.loads(shown.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", nargs="+", required=True, help="commits whose notebook 05 holds a full run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/notebook05_runs.json"))
    args = parser.parse_args()
    runs = []
    for commit in args.commits:
        try:
            runs.append({"notebook_as_committed_at": commit, **one_run(output_text(notebook_at(commit)))})
        except ValueError as error:
            raise SystemExit(f"{commit}: {error}") from None
        print(runs[-1], flush=True)
    payload = {**provenance(), "paper": {"HR@10": 0.697, "NDCG@10": 0.4818}, "runs": runs}
    atomic_write(Path(args.out), json.dumps(payload, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
