"""How long does BERT4Rec sit on the popularity plateau? The recipe over seeds and thread counts, min/median/max.

    python benchmarks/plateau.py --seeds 0 1 2 --threads 1 2 --budget-minutes 6

BERT4Rec first learns item popularity (sampled NDCG@10 ~0.07 on ML-1m, exactly the popularity baseline), then
sits there -- the *popularity plateau* -- until attention starts to use the history, and then climbs fast. How
long it sits there is chaotic: the same command left it 2-4 epochs later on another 2-core machine, and with one
thread not in 25 epochs. One run is an anecdote, so this script runs ``benchmarks/reproduce.py`` (the paper's
model and protocol, the recipe's defaults) once per (seed, threads) pair, each in its own process, and reports
the min / median / max over seeds of

* the training time to leave the plateau: the first evaluation with test sampled NDCG@10 >= 0.20;
* the training time to reach the paper's row (test sampled HR@10 >= 0.6970 and NDCG@10 >= 0.4818 together);
* the training time to reach full-ranking NDCG@10 >= 0.162 with seen items removed (the field's protocol; RecTools'
  BERT4Rec reports 0.1618 on this file).

``--schedule planned`` plans the learning-rate decay to end with ``--budget-minutes`` (what a user with that much
time should run); the default, ``cut``, stops a longer schedule at the budget (how the earlier tables were made).

Evaluations happen at epoch ends (on a fixed sample of ``--eval-users`` test users), so a time is the end of the
first epoch past the line: an upper bound, within one epoch. A run that never gets there within the budget counts
as "not reached" (and the median then says so when half the runs did not). Runs with one thread go ``--parallel``
at a time (default 2: one per core, as a student's laptop with one other busy job); runs with more threads go
alone. ``--pin-cores`` gives each side-by-side run a core of its own (``os.sched_setaffinity``), which is close to
how a run goes alone: on a 2-core EPYC two unpinned one-thread training steps side by side took a median 8.09 ms per
sequence, two pinned ones 7.10, one alone 6.81 (``benchmarks/results/thread_affinity_ml1m_cpu.json``, 3 rounds).
Results: one JSON per run under ``--out-dir`` plus ``summary.json``, and a Markdown table on stdout.

Any dataset of ``reproduce.py`` works the same way (its paper's row is the line), e.g. Beauty:

    python benchmarks/plateau.py --dataset beauty --seeds 0 1 --threads 1 --budget-minutes 60 --epochs 16 \
        --eval-users 5000 --out-dir benchmarks/results/beauty_spread
    python benchmarks/plateau.py --dataset beauty --seeds 2 0 --threads 2 ...   # later, the same --out-dir
    python benchmarks/plateau.py --summarize --out-dir benchmarks/results/beauty_spread --budget-minutes 60

``--summarize`` runs nothing and tabulates every finished run in ``--out-dir``; ``--parallel-all`` runs any runs
``--parallel`` at a time (on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, git_commit, machine

from minibert4rec.support.files import atomic_write


def summarize(values: list[float | None]) -> dict[str, float | int | None]:
    """min / median / max in minutes over runs; a run that never got there counts as +infinity (shown as None)."""
    reached = sorted(v / 60 for v in values if v is not None)
    ordered = reached + [float("inf")] * (len(values) - len(reached))
    median = statistics.median(ordered) if ordered else float("inf")
    show = lambda v: None if v == float("inf") else round(v, 2)  # noqa: E731
    return {"min": show(ordered[0]) if ordered else None, "median": show(median),
            "max": show(ordered[-1]) if ordered else None, "reached": len(reached), "runs": len(values)}


def free_core(taken: list[int | None], threads: int) -> int | None:
    """The lowest core this process may use that no running side-by-side run holds; None (no pinning) for a run
    with more than one thread, which goes alone and may use every core."""
    if threads != 1:
        return None
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    free = [core for core in allowed if core not in taken]
    if not free:
        raise SystemExit(f"--pin-cores: {len(taken)} runs already hold all {len(allowed)} cores; lower --parallel")
    return free[0]


def run_all(args: argparse.Namespace) -> list[dict]:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, threads) for threads in args.threads for seed in args.seeds]
    pending = list(jobs)
    running: list[tuple[subprocess.Popen, Path, int, int | None]] = []  # process, result file, threads, core
    results = []
    while pending or running:
        # one-thread runs share the machine (--parallel at a time); multi-thread runs go alone
        while pending and (not running or (len(running) < args.parallel and (args.parallel_all or (
                pending[0][1] == 1 and all(t == 1 for _, _, t, _ in running))))):
            seed, threads = pending.pop(0)
            core = free_core([c for *_, c in running], threads) if args.pin_cores else None
            path = out_dir / f"seed{seed}_threads{threads}.json"
            command = [sys.executable, str(ROOT / "benchmarks/reproduce.py"), "--dataset", args.dataset,
                       "--data-dir", args.data_dir, "--seed", str(seed), "--threads", str(threads),
                       "--epochs", str(args.epochs), "--eval-every", "1", "--eval-users", str(args.eval_users),
                       "--time-budget-minutes", str(args.budget_minutes),
                       *(["--cut-at-budget"] if args.schedule == "cut" else []), "--out", str(path),
                       "--checkpoint-dir", str(out_dir / f"ck_seed{seed}_threads{threads}"), *args.extra]
            where = "" if core is None else f" on core {core}"
            print(f"start seed {seed}, {threads} thread(s){where}: {' '.join(command[1:])}", flush=True)
            pin = None if core is None else (lambda core=core: os.sched_setaffinity(0, {core}))
            running.append((subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, preexec_fn=pin),
                            path, threads, core))
        time.sleep(2)
        for job in list(running):
            process, path, *_ = job
            if process.poll() is not None:
                running.remove(job)
                if process.returncode != 0:
                    raise SystemExit(f"{path.name}: reproduce.py failed with exit code {process.returncode}")
                results.append(json.loads(path.read_text()))
                print(f"done {path.name}: leaves plateau at {results[-1].get('test_leaves_plateau_at_seconds')} s, "
                      f"paper's row at {results[-1].get('test_reaches_paper_at_seconds')} s", flush=True)
    return results


def summary_rows(results: list[dict], threads_list: list[int]) -> list[dict]:
    """One row per thread count: min / median / max inputs over the seeds, each list in seed order."""
    rows = []
    for threads in threads_list:
        # seed order, so that each list below lines up with "seeds" (parallel runs finish in any order)
        runs = sorted((r for r in results if r["config"]["threads"] == threads), key=lambda r: r["config"]["seed"])
        rows.append({"threads": threads, "seeds": sorted(r["config"]["seed"] for r in runs),
                     "leave_plateau_minutes": summarize([r["test_leaves_plateau_at_seconds"] for r in runs]),
                     "paper_row_minutes": summarize([r["test_reaches_paper_at_seconds"] for r in runs]),
                     "full_target_minutes": summarize([r.get("test_reaches_full_target_at_seconds") for r in runs]),
                     "cpu_minutes": [round(r["cpu_seconds"] / 60, 2) for r in runs if "cpu_seconds" in r],
                     "final_test_sampled_HR@10": [round(r["test"]["sampled"]["HR@10"], 4) for r in runs],
                     "final_test_sampled_NDCG@10": [round(r["test"]["sampled"]["NDCG@10"], 4) for r in runs],
                     "final_test_full_filtered_NDCG@10": [round(r["test"]["full_filtered"]["NDCG@10"], 4) for r in runs],
                     "final_test_full_seen_kept_NDCG@10": [round(r["test"]["full"]["NDCG@10"], 4) for r in runs],
                     "train_minutes": [round(r["train_seconds"] / 60, 2) for r in runs],
                     "epochs_run": [r["epochs_run"] for r in runs],
                     "device": sorted({r["device"] for r in runs}),
                     "seconds_per_epoch": round(statistics.median(
                         c["epoch_seconds"] for r in runs for c in r["curve"]), 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared/data/ml-1m/sequences_by_time.txt"))
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budget-minutes", type=float, default=6.0, help="training time per run")
    parser.add_argument("--epochs", type=int, default=60,
                        help="the schedule's length (the learning rate decays to 0 at its end), not the budget")
    parser.add_argument("--schedule", choices=("cut", "planned"), default="cut",
                        help="cut (default): the --epochs schedule, stopped after the epoch that passes the budget; "
                             "planned: the learning-rate decay is planned to end with the budget (--epochs is then "
                             "the most it may plan)")
    parser.add_argument("--eval-users", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=2, help="one-thread runs at a time")
    parser.add_argument("--pin-cores", action="store_true",
                        help="give each one-thread run a core of its own (Linux); multi-thread runs stay unpinned")
    parser.add_argument("--parallel-all", action="store_true",
                        help="run every run --parallel at a time, whatever its threads (on a GPU machine, where the "
                             "CPU threads are not what limits a run)")
    parser.add_argument("--out-dir", default="benchmarks/results/plateau")
    parser.add_argument("extra", nargs="*", help="after --: more reproduce.py options, e.g. -- --output-bias-init zeros")
    parser.add_argument("--summarize", action="store_true",
                        help="run nothing: summarise the seed*_threads*.json already in --out-dir (runs started by "
                             "several calls, e.g. the one-thread pairs first and the two-thread runs later)")
    args = parser.parse_args()
    started = machine()
    if args.summarize:
        results = [json.loads(p.read_text()) for p in sorted(Path(args.out_dir).glob("seed*_threads*.json"))]
        results = [r for r in results if r.get("status") == "done"]
        args.threads = sorted({r["config"]["threads"] for r in results}, reverse=True)
        started = results[0]["machine"] if results else started
    else:
        results = run_all(args)
    rows = summary_rows(results, args.threads)
    summary = {"command": " ".join([Path(sys.executable).name] + sys.argv), "git_commit": git_commit(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": started, "budget_minutes": args.budget_minutes, "rows": rows,
               "load_average_1min_at_end": round(os.getloadavg()[0], 2)}
    atomic_write((Path(args.out_dir) / "summary.json"), json.dumps(summary, indent=2) + "\n")
    fmt = lambda s: " / ".join("not reached" if s[k] is None else f"{s[k]:.1f}" for k in ("min", "median", "max"))  # noqa: E731
    print(f"\n{started['cpu']}, {args.budget_minutes:g} min of training per run (at most), minutes min / median / max")
    spread = lambda xs, digits=4: " / ".join(  # noqa: E731
        f"{v:.{digits}f}" for v in (min(xs), statistics.median(xs), max(xs))) if xs else "-"
    print("| threads | seeds | leaves the plateau (NDCG@10 >= 0.20) | paper's row | full NDCG@10 seen removed >= 0.162 "
          "| final test sampled HR@10 | sampled NDCG@10 | full NDCG@10 seen removed | seen kept | training min | "
          "s / epoch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['threads']} | {', '.join(map(str, row['seeds']))} | {fmt(row['leave_plateau_minutes'])} "
              f"({row['leave_plateau_minutes']['reached']}/{row['leave_plateau_minutes']['runs']}) | "
              f"{fmt(row['paper_row_minutes'])} ({row['paper_row_minutes']['reached']}/{row['paper_row_minutes']['runs']}) | "
              f"{fmt(row['full_target_minutes'])} ({row['full_target_minutes']['reached']}/{row['full_target_minutes']['runs']}) | "
              f"{spread(row['final_test_sampled_HR@10'])} | {spread(row['final_test_sampled_NDCG@10'])} | "
              f"{spread(row['final_test_full_filtered_NDCG@10'])} | {spread(row['final_test_full_seen_kept_NDCG@10'])} | "
              f"{spread(row['train_minutes'], 2)} | {row['seconds_per_epoch']} |")


if __name__ == "__main__":
    main()
