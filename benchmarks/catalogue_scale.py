"""Evaluation and training on a large catalogue: Amazon Beauty, 54,542 items.

Three measurements, each saved in one JSON file (``benchmarks/results/catalogue_scale.json`` by default):

1. ``sampler``: popularity-sampled negatives for 1,024 users (100 each, the user's items excluded): the exact
   rejection sampler (``metrics.sample_negatives``) against the Gumbel-top-k reference it replaced
   (``metrics.sample_negatives_gumbel``), several repeats, in CPU seconds of this process (robust to other jobs).
2. ``step``: one training step at Beauty's settings (L=50, hidden 64, mask 0.6, full softmax), batch 64 and 32:
   milliseconds, user and system CPU seconds and minor page faults per step (``resource.getrusage``), with the
   loss as it was ("before": autograd's full ``(m, N)`` logits) and as it is ("after": ``model.linear_cross_entropy``
   on the CPU). Each variant runs in a fresh process, so that one's allocator state cannot help another.
   ``--profile`` adds torch.profiler's top operators for the "before" step.
3. ``quality`` (``--quality-cpu-seconds S``): full cross-entropy against sampled softmax (``loss_negatives``) at
   equal CPU time: each trains S CPU seconds from the same seed, then sampled and full (seen removed) metrics of the
   test item on a fixed subset of users. CPU time, not wall time, so that a shared machine treats both alike.

    python benchmarks/catalogue_scale.py --data data/beauty/beauty.txt
    python benchmarks/catalogue_scale.py --data data/beauty/beauty.txt --quality-cpu-seconds 300 --profile

The data is read with ``min_user_count=min_item_count=0``: BERT4Rec's ``beauty.txt`` is already preprocessed.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch

from common import ROOT, git_commit, machine  # noqa: F401  (common puts the repository on sys.path)

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.support.runtime import set_threads
from minibert4rec.data import load_dataset
from minibert4rec.support.files import atomic_write
from minibert4rec.masking import ClozeDataset
from minibert4rec.metrics import sample_negatives, sample_negatives_gumbel
from minibert4rec.evaluate import evaluate
from minibert4rec.train import make_optimizer, warmup_linear_decay
import minibert4rec.model as model_module


def load(path: str):
    data = load_dataset(path, min_user_count=0, min_item_count=0)
    return data, data.split(True), data.item_counts(True)  # the paper's protocol: validation item trained on


def bench_sampler(path: str, users: int, repeats: int, n_negatives: int) -> dict:
    data, split, counts = load(path)
    targets = torch.tensor(split.test_targets[:users])
    exclude = [data.sequences[u] for u in split.eval_users[:users]]
    times: dict[str, list[float]] = {"gumbel_top_k": [], "rejection": []}
    for r in range(repeats):
        for name, fn in (("gumbel_top_k", sample_negatives_gumbel), ("rejection", sample_negatives)):
            t0 = time.process_time()
            fn(counts, targets, n_negatives, exclude=exclude, generator=torch.Generator().manual_seed(r))
            times[name].append(time.process_time() - t0)
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"users": users, "n_items": data.n_items, "n_negatives": n_negatives, "repeats": repeats,
            "cpu_seconds": times, "median_cpu_seconds": median,
            "speedup": median["gumbel_top_k"] / max(median["rejection"], 1e-9)}


def step_worker(path: str, batch_size: int, steps: int, variant: str, profile: bool) -> dict:
    """Runs in its own process: train ``steps`` steps on a fixed random sample of one epoch's batches."""
    set_threads(1)
    if variant == "before":
        model_module.LARGE_LOGITS_BYTES = 2**62  # never slice: the (m, N) logits through autograd
    data, split, _ = load(path)
    config = BERT4RecConfig(max_seq_length=50, mask_ratio=0.6, batch_size=batch_size, hidden_dropout_prob=0.1,
                            attn_dropout_prob=0.1)
    dataset = ClozeDataset(split.train, 50, 0.6, data.mask_id, data.n_items, last_item_ratio=0.1, seed=0)
    batches = list(dataset.batches(batch_size, 1, group_by_length=True))
    pick = torch.randperm(len(batches), generator=torch.Generator().manual_seed(0))[: steps + 5].tolist()
    torch.manual_seed(0)
    model = model_module.BERT4Rec(config, data.n_items)
    optimizer = make_optimizer(model, config)

    def step(inputs, labels):
        loss = model.loss(inputs, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    for i in pick[:5]:  # warm-up: first-touch of parameters, optimizer state
        step(*batches[i])
    labels = sum(int((batches[i][1] > 0).sum()) for i in pick[5:])
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for i in pick[5:]:
        step(*batches[i])
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    out = {"variant": variant, "batch_size": batch_size, "steps": steps, "labels_per_step": labels / steps,
           "ms_per_step": 1000 * (t1 - t0) / steps,
           "user_s_per_step": (r1.ru_utime - r0.ru_utime) / steps, "sys_s_per_step": (r1.ru_stime - r0.ru_stime) / steps,
           "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps}
    out["cpu_ms_per_sequence"] = 1000 * (out["user_s_per_step"] + out["sys_s_per_step"]) / batch_size
    out["sys_share"] = out["sys_s_per_step"] / max(out["user_s_per_step"] + out["sys_s_per_step"], 1e-9)
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in pick[5:10]:
                step(*batches[i])
        out["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return out


def bench_steps(path: str, steps: int, profile: bool) -> list[dict]:
    rows = []
    for batch_size in (64, 32):
        for variant in ("before", "after"):
            cmd = [sys.executable, __file__, "--data", path, "--_step-worker", variant, str(batch_size), str(steps)]
            if profile and variant == "before" and batch_size == 64:
                cmd.append("--profile")
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items() if k != "profile"})
            if "profile" in rows[-1]:
                print(rows[-1]["profile"])
    return rows


def bench_quality(path: str, cpu_seconds: float, negatives: list[int], eval_users: int, batch_size: int) -> list[dict]:
    """Equal-CPU-time runs: the same model, seed and schedule; only ``loss_negatives`` differs."""
    set_threads(1)
    data, split, counts = load(path)
    users = torch.randperm(len(split.test_targets), generator=torch.Generator().manual_seed(0))[:eval_users].tolist()
    histories = [split.test_inputs[u] for u in users]
    targets = [split.test_targets[u] for u in users]
    interacted = [data.sequences[split.eval_users[u]] for u in users]
    rows = []
    for k in negatives:
        config = BERT4RecConfig(max_seq_length=50, mask_ratio=0.6, batch_size=batch_size, hidden_dropout_prob=0.1,
                                attn_dropout_prob=0.1, learning_rate=2e-3, loss_negatives=k, seed=0)
        dataset = ClozeDataset(split.train, 50, 0.6, data.mask_id, data.n_items, last_item_ratio=0.1, seed=0)
        torch.manual_seed(0)
        model = model_module.BERT4Rec(config, data.n_items)
        optimizer = make_optimizer(model, config)
        # the schedule of a 5-epoch run; the budget cuts it short the same way for every k
        total_steps = 5 * dataset.num_batches(batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_linear_decay(100, total_steps))
        model.train()
        t0, w0, steps, epoch, losses = time.process_time(), time.perf_counter(), 0, 0, []
        while time.process_time() - t0 < cpu_seconds:
            epoch += 1
            for inputs, labels in dataset.batches(batch_size, epoch, group_by_length=True):
                loss = model.loss(inputs, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                scheduler.step()
                steps += 1
                losses.append(float(loss))
                if time.process_time() - t0 >= cpu_seconds:
                    break
        train_cpu, train_wall = time.process_time() - t0, time.perf_counter() - w0
        metrics = evaluate(model, histories, targets, counts, max_len=50, mask_id=data.mask_id,
                           protocols=("full_filtered", "sampled"), interacted=interacted, seed=0)
        rows.append({"loss_negatives": k, "train_cpu_seconds": train_cpu, "train_wall_seconds": train_wall,
                     "steps": steps, "sequences": steps * batch_size, "cpu_ms_per_step": 1000 * train_cpu / steps,
                     "last_100_loss": sum(losses[-100:]) / len(losses[-100:]), "eval_users": len(users),
                     "test_sampled": metrics["sampled"], "test_full_filtered": metrics["full_filtered"]})
        print({k2: v for k2, v in rows[-1].items() if not k2.startswith("test_")},
              "sampled NDCG@10", round(metrics["sampled"]["NDCG@10"], 4), "HR@10", round(metrics["sampled"]["HR@10"], 4),
              "full_filtered NDCG@10", round(metrics["full_filtered"]["NDCG@10"], 4))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/beauty/beauty.txt", help="a BERT4Rec-format file (user item per line)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/catalogue_scale.json"))
    parser.add_argument("--sampler-users", type=int, default=1024)
    parser.add_argument("--sampler-repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per variant")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of the 'before' step")
    parser.add_argument("--quality-cpu-seconds", type=float, default=0.0, help="0 = skip the quality runs")
    parser.add_argument("--quality-negatives", type=int, nargs="+", default=[0, 256])
    parser.add_argument("--quality-eval-users", type=int, default=4000)
    parser.add_argument("--quality-batch-size", type=int, default=64)
    parser.add_argument("--skip", nargs="*", default=[], choices=["sampler", "step"])
    parser.add_argument("--_step-worker", nargs=3, metavar=("VARIANT", "BATCH", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._step_worker:
        variant, batch_size, steps = args._step_worker
        print(json.dumps(step_worker(args.data, int(batch_size), int(steps), variant, args.profile)))
        return
    set_threads(1)
    result = {"machine": machine(), "commit": git_commit(), "data": args.data, "threads": 1}
    if "sampler" not in args.skip:
        result["sampler"] = bench_sampler(args.data, args.sampler_users, args.sampler_repeats, 100)
        print("sampler:", result["sampler"]["median_cpu_seconds"], f"speedup {result['sampler']['speedup']:.1f}x")
    if "step" not in args.skip:
        result["step"] = bench_steps(args.data, args.steps, args.profile)
    if args.quality_cpu_seconds > 0:
        result["quality"] = bench_quality(args.data, args.quality_cpu_seconds, args.quality_negatives,
                                          args.quality_eval_users, args.quality_batch_size)
    result["load_average_1min_at_end"] = round(__import__("os").getloadavg()[0], 2)
    atomic_write(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
