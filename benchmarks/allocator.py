"""Seconds per ML-1m training epoch with the C library's allocator as it comes, and with freed memory reused.

``train`` calls ``support.runtime.reuse_freed_memory()`` on a CPU: two ``mallopt`` calls that keep the memory a
step frees inside the process, so that the next step does not fault its pages in again from the kernel. This
script measures what that buys. Each run is a fresh process (the setting is process-wide and cannot be undone)
that trains the paper's model on ML-1m (L = 200, batch 32, the recipe) for a few epochs as the trainer does:
``train.train_epoch``, then the learning-curve evaluation on 1,000 users after each epoch. Two arms:

* ``glibc defaults``: ``runtime.tune_allocator = False``, the allocator as the C library sets it up;
* ``reuse freed memory``: what ``train`` does.

For every thread count, each seed runs both arms one after the other (the order alternates between seeds), so
that a slow minute hits both alike. Per epoch it records wall seconds, user and system CPU seconds and minor
page faults (``getrusage``), and the process's peak resident memory at the end. Nothing computed differs
between the arms: the training losses must agree, and the script checks that they do.

    python benchmarks/allocator.py --threads 2 1 --seeds 0 1 2 --epochs 3 --out benchmarks/results/allocator_ml1m_cpu.json

Linux with glibc only (elsewhere there is nothing to compare). Run it with nothing else on the machine; the load
average before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import provenance, write_result  # noqa: E402

ARMS = ("glibc defaults", "reuse freed memory")


def child(arm: str, threads: int, seed: int, epochs: int, eval_users: int, dataset: str, data_dir: str) -> dict:
    """One fresh process's run: ``epochs`` epochs of the trainer's loop with ``arm``'s allocator settings."""
    import torch

    from minibert4rec import distributed
    from minibert4rec.data import load_dataset
    from minibert4rec.evaluate import curve_subset, evaluate_split, prepare_split
    from minibert4rec.masking import make_dataset
    from minibert4rec.model import BERT4Rec
    from minibert4rec.support import runtime
    from minibert4rec.train import make_optimizer, make_scheduler, train_epoch

    runtime.tune_allocator = arm == "reuse freed memory"
    applied = runtime.reuse_freed_memory()  # what train() does on a CPU; a no-op in the defaults arm
    torch.set_num_threads(threads)
    data = load_dataset(dataset, data_dir=data_dir)
    config = runtime.run_sizes()["config"].replace(include_valid_in_train=True, device="cpu", seed=seed,
                                                   eval_users=eval_users)
    torch.manual_seed(seed)
    train_data = make_dataset(config, data.split(True).train, data.n_items, data.mask_id)
    model = BERT4Rec(config, data.n_items)
    model.init_output_bias_from_popularity(data.item_counts(True))
    steps = train_data.num_batches(config.batch_size)
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps * config.epochs)
    watched = prepare_split(data, config, "test")
    users = curve_subset(len(watched.targets), config.eval_users, config.seed)
    device, parallel = torch.device("cpu"), distributed.current()
    rows = []
    for epoch in range(1, epochs + 1):
        before = resource.getrusage(resource.RUSAGE_SELF)
        row = train_epoch(model, model.loss, train_data, optimizer, scheduler, config, epoch,
                          batch_size=config.batch_size, device=device, bf16=False, parallel=parallel, progress=False)
        after = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        evaluate_split(model, data, config, watched, users=users, batch_size=1024, device=device, shard=parallel.shard)
        rows.append({"epoch": epoch, "epoch_seconds": round(row["epoch_seconds"], 2),
                     "user_cpu_seconds": round(after.ru_utime - before.ru_utime, 2),
                     "system_cpu_seconds": round(after.ru_stime - before.ru_stime, 2),
                     "minor_faults_per_step": round((after.ru_minflt - before.ru_minflt) / steps),
                     "train_loss": round(row["train_loss"], 5), "eval_seconds": round(time.perf_counter() - t0, 2)})
    return {"arm": arm, "applied": applied, "threads": threads, "seed": seed, "steps_per_epoch": steps,
            "peak_resident_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "epochs": rows}


def run_child(arm: str, threads: int, seed: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", arm, "--threads", str(threads), "--seeds", str(seed),
               "--epochs", str(args.epochs), "--eval-users", str(args.eval_users), "--dataset", args.dataset,
               "--data-dir", args.data_dir]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the run {arm!r}, {threads} threads, seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float], digits: int = 2) -> list[float]:
    values = sorted(values)
    return [round(values[0], digits), round(statistics.median(values), digits), round(values[-1], digits)]


def summarize(runs: list[dict]) -> dict:
    """min / median / max over the seeds' epochs (every epoch, and the last one alone)."""
    every = [e for r in runs for e in r["epochs"]]
    last = [r["epochs"][-1] for r in runs]
    return {"arm": runs[0]["arm"], "threads": runs[0]["threads"], "seeds": [r["seed"] for r in runs],
            "applied": all(r["applied"] for r in runs),
            "epoch_seconds_min_median_max": spread([e["epoch_seconds"] for e in every]),
            "last_epoch_seconds_min_median_max": spread([e["epoch_seconds"] for e in last]),
            "user_cpu_seconds_per_epoch_min_median_max": spread([e["user_cpu_seconds"] for e in every]),
            "system_cpu_seconds_per_epoch_min_median_max": spread([e["system_cpu_seconds"] for e in every]),
            "minor_faults_per_step_min_median_max": spread([e["minor_faults_per_step"] for e in every], 0),
            "peak_resident_mb_min_median_max": spread([r["peak_resident_mb"] for r in runs], 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (each run is a fresh process)")
    parser.add_argument("--eval-users", type=int, default=1000, help="users of the evaluation after each epoch")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/allocator_ml1m_cpu.json"))
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)  # one run, in its own process
    args = parser.parse_args()
    if args.epochs < 1 or args.eval_users < 1 or any(t < 1 for t in args.threads) or not args.seeds:
        parser.error("--epochs, --eval-users and every --threads value must be positive integers; give a seed")
    if args.child:
        print(json.dumps(child(args.child, args.threads[0], args.seeds[0], args.epochs, args.eval_users,
                               args.dataset, args.data_dir)))
        return
    load_before = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        for i, seed in enumerate(args.seeds):
            for arm in (ARMS if i % 2 == 0 else ARMS[::-1]):
                runs[arm].append(run_child(arm, threads, seed, args))
                print(json.dumps(runs[arm][-1]), flush=True)
            losses = {arm: [e["train_loss"] for e in runs[arm][-1]["epochs"]] for arm in ARMS}
            if max(abs(a - b) for a, b in zip(*losses.values())) > 1e-3:
                raise SystemExit(f"seed {seed}, {threads} threads: the two arms trained differently: {losses}")
        summaries = {arm: summarize(runs[arm]) for arm in ARMS}
        base = summaries[ARMS[0]]["epoch_seconds_min_median_max"][1]
        for arm in ARMS:
            median = summaries[arm]["epoch_seconds_min_median_max"][1]
            rows.append({**summaries[arm], "speedup_vs_glibc_defaults_median": round(base / median, 2),
                         "runs": runs[arm]})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "runs"}), flush=True)
    payload = {**provenance(), "dataset": args.dataset, "epochs_per_run": args.epochs,
               "eval_users_after_each_epoch": args.eval_users, "rows": rows}
    write_result(args.out, payload, load_before)


if __name__ == "__main__":
    main()
