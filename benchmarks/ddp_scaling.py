"""Data-parallel scaling: 1 process against N processes (torchrun, gloo on CPUs / NCCL on GPUs), same global batch.

    python benchmarks/ddp_scaling.py                       # ml-100k time to NDCG@10 + ML-1m throughput, 2 CPU cores
    python benchmarks/ddp_scaling.py --skip-ml1m --epochs 20
    python benchmarks/ddp_scaling.py --device cuda --procs 1,2,4,8 --threads 8   # a GPU node

Settings are (processes x torch threads per process); every run uses the same *global* batch, so the runs follow
(nearly) the same optimisation path and differ in speed only. Reported per setting: training throughput
(sequences/s over all ranks, the last epoch's, evaluation excluded) and, on ml-100k, the training time until the
validation NDCG@10 (full ranking) first reaches ``--target``. ML-1m is measured for throughput only, on the first
one epoch (178 steps of global batch 64) with the paper's model (L = 200).

Each run is a subprocess (``torchrun --standalone --nproc_per_node N benchmarks/ddp_scaling.py --worker ...``);
results go to benchmarks/results/ddp_scaling_<device>.json with the machine, the load average and the commit.
Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, git_commit, machine

from minibert4rec.support.files import atomic_write


def worker(args: argparse.Namespace) -> None:
    """One run, on every rank: train and let rank 0 write its history."""
    import torch

    from minibert4rec import distributed
    from minibert4rec.support.config import BERT4RecConfig
    from minibert4rec.data import load_dataset
    from minibert4rec.train import train

    torch.set_num_threads(args.threads)
    parallel = distributed.init_from_env(args.device)
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    if args.users:
        data = dataclasses.replace(data, sequences=data.sequences[: args.users], user_ids=data.user_ids[: args.users])
    config = BERT4RecConfig(max_seq_length=args.max_seq_length, batch_size=args.global_batch // parallel.world_size,
                            epochs=args.epochs, eval_every=args.eval_every, device=args.device,
                            threads=args.threads, **json.loads(args.config))  # train() sets the threads from it
    result = train(config, data, progress=False)
    if parallel.is_main:
        Path(args.worker).write_text(json.dumps({
            "history": result.history.to_dict(orient="records"), "config": config.to_dict(),
            "world_size": parallel.world_size, "users": data.n_users}))
    parallel.close()


def seconds_to_levels(history: list[dict], levels=(0.015, 0.02, 0.022, 0.025, 0.03, 0.035, 0.04)) -> dict:
    """Training seconds until validation NDCG@10 (full) first reaches each level (None: not within the run)."""
    return {str(level): next((round(row["elapsed_seconds"], 1) for row in history
                              if row.get("valid_full_NDCG@10", -1.0) >= level), None) for level in levels}


def run(setting: tuple[int, int], dataset: str, args: argparse.Namespace, *, epochs: int, eval_every: int,
        max_seq_length: int, users: int, config: dict, tag: str) -> dict:
    procs, threads = setting
    out = ROOT / "benchmarks" / "results" / f".ddp_{tag}_{procs}x{threads}.json"
    script = [str(Path(__file__).resolve()), "--worker", str(out), "--dataset", dataset, "--data-dir", args.data_dir,
              "--device", args.device, "--threads", str(threads), "--global-batch", str(args.global_batch),
              "--epochs", str(epochs), "--eval-every", str(eval_every), "--max-seq-length", str(max_seq_length),
              "--users", str(users), "--config", json.dumps(config)]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
                if procs > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    done = subprocess.run(launcher + script, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{procs} x {threads} on {dataset} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    result = json.loads(out.read_text())
    out.unlink()
    history = result["history"]
    reached = next((row["elapsed_seconds"] for row in history
                    if row.get("valid_full_NDCG@10", -1.0) >= args.target), None)
    summary = {
        "processes": procs, "threads_per_process": threads, "global_batch": args.global_batch,
        "batch_per_process": args.global_batch // procs, "epochs": len(history), "users": result["users"],
        "sequences_per_s": round(history[-1]["sequences_per_s"], 1),
        "masked_tokens_per_s": round(history[-1]["tokens_per_s"], 1),
        "seconds_per_epoch": [round(row["epoch_seconds"], 2) for row in history],
        "train_loss": [round(row["train_loss"], 4) for row in history],
        "valid_full_NDCG@10": [round(row["valid_full_NDCG@10"], 4) for row in history if "valid_full_NDCG@10" in row],
        "seconds_to_target": None if reached is None else round(reached, 1), "wall_seconds_with_startup": round(wall, 1),
        "seconds_to_ndcg": seconds_to_levels(history),
    }
    print(f"{dataset} {procs} proc x {threads} thread(s): {summary['sequences_per_s']:,.0f} seq/s, "
          f"{summary['seconds_per_epoch'][-1]:.1f} s/epoch, time to NDCG@10 {args.target}: {summary['seconds_to_target']}",
          flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: the run inside torchrun, writes this JSON
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--ml1m", default="ml-1m", help="ML-1m: a name for load_dataset or a 'user item' file")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--procs", default="1,2", help="process counts to compare, e.g. 1,2,4,8 on a GPU node")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the whole machine, shared by the ranks")
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20, help="ml-100k epochs")
    parser.add_argument("--eval-every", type=int, default=1)
    parser.add_argument("--target", type=float, default=0.04, help="ml-100k validation NDCG@10 (full ranking)")
    parser.add_argument("--ml1m-users", type=int, default=0, help="ML-1m on the first N users only (0 = all)")
    parser.add_argument("--ml1m-batch", type=int, default=64, help="ML-1m global batch (one epoch = 178 steps at 64)")
    parser.add_argument("--skip-ml1m", action="store_true")
    # worker-only options
    parser.add_argument("--max-seq-length", type=int, default=50)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--config", default="{}")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    settings = [(p, max(1, args.threads // p)) for p in map(int, args.procs.split(","))]
    if args.device == "cpu":  # the reference: one process on one core
        settings = [(1, 1)] + settings
    report = {"command": " ".join(sys.argv), "git_commit": git_commit(), "machine": machine(),
              "load_average_before": os.getloadavg(), "device": args.device, "runs": {}}
    report["runs"][args.dataset] = [run(s, args.dataset, args, epochs=args.epochs, eval_every=args.eval_every,
                                        max_seq_length=50, users=0, config={}, tag="small") for s in settings]
    if not args.skip_ml1m:  # the paper's model on ML-1m, throughput only: one short epoch of a subset of users
        ml1m = dict(hidden_dropout_prob=0.1, attn_dropout_prob=0.1, learning_rate=2e-3, warmup_steps=500)
        ml1m_args = argparse.Namespace(**{**vars(args), "global_batch": args.ml1m_batch})
        report["runs"]["ml-1m"] = [run(s, args.ml1m, ml1m_args, epochs=1, eval_every=1, max_seq_length=200,
                                       users=args.ml1m_users, config=ml1m, tag="ml1m") for s in settings]
    report["load_average_after"] = os.getloadavg()
    out = ROOT / "benchmarks" / "results" / f"ddp_scaling_{args.device}.json"
    atomic_write(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
