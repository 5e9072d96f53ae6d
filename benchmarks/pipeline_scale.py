"""Does the data pipeline scale to ML-20m? A synthetic data set of its size, timed and measured stage by stage.

    python benchmarks/pipeline_scale.py                       # 138,493 users, 20M actions, 26,744 items
    python benchmarks/pipeline_scale.py --users 2000 --actions 200000 --items 3000 --out /tmp/small.json

ML-20m itself cannot be downloaded here, so this script writes a file of its size and shape to a temporary
folder, in ML-20m's own format (``ratings.csv``: userId,movieId,rating,timestamp), and runs the package on it:

1. **load** -- ``load_interactions`` (pandas reads the CSV);
2. **preprocess** -- ``preprocess``: the paper's 5-core, sort by user and time, re-index;
3. **split** -- ``SequenceData.split`` with the paper's protocol, plus ``item_counts`` (the popularity the
   sampled negatives use), as the trainer needs both;
4. **batches** -- ``ClozeDataset`` (windows of L = 200, step 100, mask 0.2, mask-last share 0.1: the ML-20m
   preset) and its batches, without the model: the whole epoch, or ``--max-batches`` of them and the epoch's time
   extrapolated from them (the JSON says which);
5. **evaluate** -- one pass of ``minibert4rec.train.evaluate`` (all three protocols) with a small untrained model
   over ``--eval-users`` test users (after an untimed warm-up call), extrapolated to all users (the JSON says so).

Each stage reports its wall time, its CPU time (this process's; the honest number when other jobs share the
cores) and its peak resident memory (VmHWM, reset before the stage through
/proc/self/clear_refs where Linux allows it, else the process's peak so far -- the JSON says which). Targets:
peak RSS <= 8 GB, load + preprocess + split <= 2 minutes on a 2-core CPU.

The synthetic data: user lengths long-tailed (20 + a log-normal, scaled to the total; ML-20m's minimum is 20,
its mean 144), item popularity log-normal with a capped head (the top item 0.34% of actions, about a quarter
of the items under 5 interactions, as in ML-20m), ratings 0.5-5, timestamps increasing per user from a start
in ML-20m's range. Items are drawn with replacement, so a user can repeat an item (ML-20m has no repeats); that
changes no cost measured here. Its statistics are in the JSON (length quantiles, the top item's share, items
under 5 interactions).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from common import git_commit, machine

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.support.runtime import set_threads
from minibert4rec.data import load_interactions, preprocess
from minibert4rec.support.files import atomic_write
from minibert4rec.masking import ClozeDataset
from minibert4rec.model import BERT4Rec
from minibert4rec.evaluate import evaluate

ML20M = {"users": 138_493, "items": 26_744, "actions": 20_000_263}
TARGETS = {"peak_rss_gb": 8.0, "load_preprocess_split_seconds": 120.0}


def _popularity(rng: np.random.Generator, n_items: int, sigma: float = 2.6, top_share: float = 0.0034) -> np.ndarray:
    """Item probabilities: log-normal weights (a long tail: on ML-20m's size about a quarter of the items get
    fewer than 5 interactions, as in ML-20m, whose 5-core keeps 18,345 of 26,744 items), the head capped so that
    the most popular item gets ``top_share`` of all actions (ML-20m: 67,310 of 20M ratings, 0.34%)."""
    weights = np.exp(sigma * rng.standard_normal(n_items))
    low, high = 0.0, float(weights.max())
    for _ in range(60):  # bisection on the cap: share of the top item = cap / sum(min(w, cap))
        cap = (low + high) / 2
        low, high = (cap, high) if cap / np.minimum(weights, cap).sum() < top_share else (low, cap)
    weights = np.minimum(weights, high)
    return weights / weights.sum()


def generate(path: Path, n_users: int, n_items: int, n_actions: int, seed: int = 0) -> dict[str, float]:
    """Write a synthetic ratings.csv of this size to ``path``; return its statistics."""
    rng = np.random.default_rng(seed)
    min_len = max(1, min(20, n_actions // n_users // 2))
    raw = rng.lognormal(mean=0.0, sigma=1.25, size=n_users)  # long tail: mean / median ~ 2.2, as ML-20m's
    lengths = np.maximum(min_len, np.round(min_len + raw * (n_actions - min_len * n_users) / raw.sum())).astype(np.int64)
    lengths[np.argmax(lengths)] += n_actions - int(lengths.sum())  # exact total
    popularity = _popularity(rng, n_items)
    items = 1 + np.searchsorted(np.cumsum(popularity), rng.random(n_actions), side="right").clip(0, n_items - 1)
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), lengths)
    gaps = rng.exponential(86_400.0, size=n_actions).astype(np.int64)  # about a day between ratings
    starts = np.cumsum(lengths) - lengths
    elapsed = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts] - gaps[starts], lengths)
    timestamps = np.repeat(rng.integers(789_652_009, 1_300_000_000, size=n_users), lengths) + elapsed
    ratings = rng.integers(1, 11, size=n_actions) / 2
    frame = pd.DataFrame({"userId": users, "movieId": items, "rating": ratings, "timestamp": timestamps})
    frame.to_csv(path, index=False, float_format="%.1f", chunksize=1_000_000)
    counts = np.bincount(items, minlength=n_items + 1)[1:]
    return {"users": n_users, "items_drawn": int((counts > 0).sum()), "actions": n_actions,
            "length_min": int(lengths.min()), "length_median": float(np.median(lengths)),
            "length_mean": round(float(lengths.mean()), 1), "length_max": int(lengths.max()),
            "top_item_share": round(float(counts.max() / n_actions), 5),
            "items_under_5_interactions": int(((counts > 0) & (counts < 5)).sum()),
            "file_mb": round(path.stat().st_size / 2**20, 1)}


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) where Linux allows it; False where it does not."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def stage(results: dict, name: str) -> Iterator[dict]:
    """Time a stage and record its peak RSS in ``results[name]``."""
    gc.collect()
    reset = _reset_peak()
    row: dict = {}
    start, cpu = time.perf_counter(), time.process_time()
    yield row
    row.update(seconds=round(time.perf_counter() - start, 2), cpu_seconds=round(time.process_time() - cpu, 2),
               peak_rss_mb=round(_peak_mb(), 1), peak_is="this stage's" if reset else "the process's so far")
    results[name] = row
    print(f"{name:12s} {row['seconds']:8.1f} s ({row['cpu_seconds']:.1f} s CPU)  peak RSS {row['peak_rss_mb']:8.0f} MB  "
          + " ".join(f"{k}={v}" for k, v in row.items() if k not in ("seconds", "cpu_seconds", "peak_rss_mb", "peak_is")), flush=True)


def run(args: argparse.Namespace) -> dict:
    set_threads(args.threads)
    started = machine()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="pipeline_scale.") as tmp:
        path = Path(tmp) / "synthetic-ml-20m-size" / "ratings.csv"  # not named ml-20m: that name is checksummed
        path.parent.mkdir()
        start = time.perf_counter()
        generated = generate(path, args.users, args.items, args.actions, args.seed)
        generated["seconds"] = round(time.perf_counter() - start, 1)
        print(f"generated {path} in {generated['seconds']} s: {generated}", flush=True)
        with stage(results, "load") as row:
            df = load_interactions(path)
            row["rows"] = len(df)
    with stage(results, "preprocess") as row:
        data = preprocess(df, min_user_count=5, min_item_count=5)
        del df
        row.update(users=data.n_users, items=data.n_items, actions=data.n_actions)
    with stage(results, "split") as row:
        split = data.split(include_valid_in_train=True)
        row["eval_users"] = len(split.eval_users)
    with stage(results, "item_counts") as row:
        counts = data.item_counts(include_valid_in_train=True)
        row["nonzero"] = int((counts > 0).sum())
    with stage(results, "batches") as row:
        t0 = time.perf_counter()
        dataset = ClozeDataset(split.train, max_len=args.max_len, mask_ratio=0.2, mask_id=data.mask_id,
                               n_items=data.n_items, step=args.max_len // 2, last_item_ratio=0.1, seed=args.seed)
        built = time.perf_counter()
        total = dataset.num_batches(args.batch_size)
        wanted = total if args.max_batches <= 0 else min(args.max_batches, total)
        masked = 0
        for number, (inputs, labels) in enumerate(dataset.batches(args.batch_size, epoch=0)):
            masked += int((labels > 0).sum())
            if number + 1 >= wanted:
                break
        iterated = time.perf_counter() - built
        row.update(windows=len(dataset), batches_per_epoch=total, batches_iterated=wanted,
                   build_seconds=round(built - t0, 2),
                   masked_per_batch=round(masked / wanted, 1), iterate_seconds=round(iterated, 2),
                   epoch_seconds_estimate=round(iterated * total / wanted, 1),
                   how="whole epoch" if wanted == total else f"{wanted} of {total} batches, epoch extrapolated")
        del dataset
    with stage(results, "evaluate") as row:
        config = BERT4RecConfig(hidden_size=args.hidden_size, inner_size=4 * args.hidden_size,
                                max_seq_length=args.max_len, device="cpu", threads=args.threads)
        model = BERT4Rec(config, data.n_items).eval()
        users = np.random.default_rng(args.seed).permutation(len(split.eval_users))[:args.eval_users]
        users = sorted(users.tolist())
        evaluate(model, [split.test_inputs[u] for u in users[:8]], [split.test_targets[u] for u in users[:8]],
                 counts, max_len=args.max_len, mask_id=data.mask_id, n_negatives=args.eval_negatives,
                 protocols=("full",))  # warm-up (torch's first call costs seconds): not timed
        start = time.perf_counter()
        metrics = evaluate(model, [split.test_inputs[u] for u in users], [split.test_targets[u] for u in users],
                           counts, max_len=args.max_len, mask_id=data.mask_id, seed=args.seed,
                           n_negatives=args.eval_negatives,
                           interacted=[data.sequences[split.eval_users[u]] for u in users])
        seconds = time.perf_counter() - start
        row.update(users=len(users), all_users_seconds_estimate=round(seconds * len(split.eval_users) / len(users), 1),
                   hidden_size=args.hidden_size, untrained_sampled_NDCG10=round(metrics["sampled"]["NDCG@10"], 4),
                   how=f"{len(users)} of {len(split.eval_users)} test users, all three protocols; time for all "
                       "users extrapolated")
    gate = sum(results[s]["seconds"] for s in ("load", "preprocess", "split"))
    gate_cpu = sum(results[s]["cpu_seconds"] for s in ("load", "preprocess", "split"))
    peak = max(r["peak_rss_mb"] for r in results.values()) / 1024
    return {
        "command": " ".join([Path(sys.executable).name] + sys.argv), "git_commit": git_commit(),
        "machine": started, "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "note": "shared 2-core machine: other processes may have been running (see the load averages)",
        "size": {"users": args.users, "items": args.items, "actions": args.actions, "ml-20m": ML20M},
        "generated": generated, "stages": results,
        "load_preprocess_split_seconds": round(gate, 1), "load_preprocess_split_cpu_seconds": round(gate_cpu, 1),
        "peak_rss_gb": round(peak, 2), "targets": TARGETS,
        "meets_targets": {"peak_rss": peak <= TARGETS["peak_rss_gb"],
                          "load_preprocess_split": gate <= TARGETS["load_preprocess_split_seconds"]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=ML20M["users"])
    parser.add_argument("--items", type=int, default=ML20M["items"])
    parser.add_argument("--actions", type=int, default=20_000_000)
    parser.add_argument("--max-len", type=int, default=200, help="L, as the ML-20m preset")
    parser.add_argument("--batch-size", type=int, default=256, help="the authors' batch size")
    parser.add_argument("--max-batches", type=int, default=0, help="0 = the whole epoch; n = n batches, extrapolated")
    parser.add_argument("--eval-users", type=int, default=2000, help="test users scored; the time is extrapolated")
    parser.add_argument("--eval-negatives", type=int, default=100, help="the paper's 100 popularity negatives")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/pipeline_scale.json")
    args = parser.parse_args(argv)
    if min(args.users, args.items, args.actions) < 1 or args.actions < 3 * args.users:
        parser.error("--users, --items, --actions must be positive, with at least 3 actions per user")
    payload = run(args)
    atomic_write(args.out, json.dumps(payload, indent=2) + "\n")
    print(f"load + preprocess + split {payload['load_preprocess_split_seconds']} s (target <= 120), peak RSS "
          f"{payload['peak_rss_gb']} GB (target <= 8); {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
