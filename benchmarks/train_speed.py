"""Training speed of minibert4rec: seconds per epoch, sequences and masked tokens per second, peak memory.

    python benchmarks/train_speed.py --dataset ml-100k
    python benchmarks/train_speed.py --dataset ../shared/data/ml-1m/sequences_by_time.txt --max-seq-length 200

Not a test: numbers depend on the machine. Report them with the machine line it prints.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import machine, peak_memory_mb

from minibert4rec.support.config import BERT4RecConfig
from minibert4rec.data import load_dataset
from minibert4rec.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--max-seq-length", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (the first includes warm-up effects)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    load_seconds = time.perf_counter() - t0
    config = BERT4RecConfig(max_seq_length=args.max_seq_length, batch_size=args.batch_size, epochs=args.epochs,
                            hidden_size=args.hidden_size, inner_size=4 * args.hidden_size, device=args.device,
                            compile=args.compile, eval_every=args.epochs)
    result = train(config, data, progress=False)
    h = result.history
    t1 = time.perf_counter()
    # evaluation time alone: both protocols on the test split, for every user
    from minibert4rec.evaluate import evaluate

    split = data.split()
    evaluate(result.model, split.test_inputs, split.test_targets, data.item_counts(),
             max_len=config.max_seq_length, mask_id=data.mask_id)
    eval_seconds = time.perf_counter() - t1
    report = {
        "dataset": data.name, "users": data.n_users, "items": data.n_items, "max_seq_length": args.max_seq_length,
        "batch_size": args.batch_size, "device": result.device, "load_seconds": round(load_seconds, 2),
        "seconds_per_epoch": [round(s, 2) for s in h["epoch_seconds"]],
        "sequences_per_s": round(float(h["sequences_per_s"].iloc[-1]), 1),
        "masked_tokens_per_s": round(float(h["tokens_per_s"].iloc[-1]), 1),
        "eval_seconds_full_and_sampled": round(eval_seconds, 2),
        "peak_memory_mb": round(peak_memory_mb(result.device), 1), "machine": machine(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
