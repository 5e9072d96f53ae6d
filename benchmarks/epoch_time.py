"""Seconds per training epoch on ML-1m: two ways of running the same step, side by side.

One epoch of the paper's model (L = 200, hidden 64, 2 layers, 2 heads, batch 32) is run as the trainer runs it
(``train.train_epoch``: the Cloze samples of ``masking.make_dataset``, length-grouped batches, AdamW, the recipe's
schedule, freed memory kept for the next step), once per arm. ``--compare attention`` (the default):

* ``default``: what ``train`` does on a CPU: attention with dropout through ``fast/attention.py``;
* ``from-scratch``: attention through ``attention.scaled_dot_product_attention``, as notebook 03 writes it.

Both compute the same numbers from the same random state (``tests/test_fast_paths.py``); only the time differs.
``--compare precision``:

* ``float32``: the trainer's default step, the paper's arithmetic;
* ``bf16 autocast``: the step with ``amp_cpu=True``: matrix products in bfloat16 (attention's through
  ``fast/attention.py`` too), the rest in float32. The losses then differ by bfloat16's rounding, and the result
  records both. The result also records whether the CPU multiplies bfloat16 natively (``cpu_has_native_bf16``).

``--compare attention-dropout``:

* ``bf16, no attention dropout``: the bf16 step of the paper's model without its attention dropout
  (``attn_dropout_prob=0``, what ``reproduce.py --amp-cpu --attn-dropout 0`` trains): attention through
  ``fast/attention.py`` without random numbers. This changes the model (``docs/differences.md``);
* ``bf16 autocast``: the bf16 step of the paper's model, attention dropout 0.1.

``--compare loss-and-optimizer``:

* ``bf16 autocast``: the trainer's bf16 step (``amp_cpu``): the output layer's softmax cross-entropy through
  ``fast/cross_entropy.py`` (its three products in bfloat16, the gradient in closed form, a slice of rows at a
  time) and PyTorch's fused AdamW;
* ``bf16, autograd's loss, per-tensor AdamW``: the same step with autograd's full ``(m, N)`` logits
  (``fast_ce.autograd_path_under_autocast``) and AdamW's per-tensor loop (``fused=False``).

Both compute the same loss up to bfloat16's rounding (``tests/test_fast_paths.py``, ``tests/test_train.py``).

For each thread count, every seed runs both arms one after the other (the order alternates between seeds), so
that a slow minute hits both alike. The result gives epoch seconds and CPU seconds, min / median / max over the
seeds, and the speed-up of the medians over the second arm.

    python benchmarks/epoch_time.py --threads 2 1 --seeds 0 1 2 --out benchmarks/results/epoch_time_ml1m_cpu.json
    python benchmarks/epoch_time.py --compare precision --out benchmarks/results/epoch_time_bf16_ml1m_cpu.json
    python benchmarks/epoch_time.py --compare attention-dropout  # epoch_time_bf16_attn_dropout0_ml1m_cpu.json
    python benchmarks/epoch_time.py --compare loss-and-optimizer  # epoch_time_bf16_loss_optimizer_ml1m_cpu.json

Run it with nothing else on the machine; the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import provenance, write_result  # noqa: E402

from minibert4rec import distributed  # noqa: E402
from minibert4rec.data import load_dataset  # noqa: E402
from minibert4rec.fast import attention as fast_attention  # noqa: E402
from minibert4rec.fast import cross_entropy as fast_ce  # noqa: E402
from minibert4rec.masking import make_dataset  # noqa: E402
from minibert4rec.model import BERT4Rec  # noqa: E402
from minibert4rec.support.runtime import reuse_freed_memory, run_sizes  # noqa: E402
from minibert4rec.train import cpu_has_native_bf16, make_optimizer, make_scheduler, train_epoch  # noqa: E402

OLD_LOSS_AND_OPTIMIZER = "bf16, autograd's loss, per-tensor AdamW"
ARMS = {"attention": ("default", "from-scratch"), "precision": ("bf16 autocast", "float32"),
        "attention-dropout": ("bf16, no attention dropout", "bf16 autocast"),
        "loss-and-optimizer": ("bf16 autocast", OLD_LOSS_AND_OPTIMIZER)}
BF16_PATHS = ("bf16 autocast", "bf16, no attention dropout", OLD_LOSS_AND_OPTIMIZER)
DEFAULT_OUT = {"attention": "epoch_time_ml1m_cpu.json", "precision": "epoch_time_bf16_ml1m_cpu.json",
               "attention-dropout": "epoch_time_bf16_attn_dropout0_ml1m_cpu.json",
               "loss-and-optimizer": "epoch_time_bf16_loss_optimizer_ml1m_cpu.json"}


def one_epoch(path: str, threads: int, seed: int, data, config) -> dict:
    """Time epoch 1 of a fresh run with ``seed``: wall seconds, CPU seconds, sequences."""
    torch.set_num_threads(threads)
    config = config.replace(seed=seed, **({"attn_dropout_prob": 0.0} if path == "bf16, no attention dropout" else {}))
    torch.manual_seed(seed)
    dataset = make_dataset(config, data.split(config.include_valid_in_train).train, data.n_items, data.mask_id)
    model = BERT4Rec(config, data.n_items)
    model.init_output_bias_from_popularity(data.item_counts(config.include_valid_in_train))
    steps = dataset.num_batches(config.batch_size)
    optimizer = make_optimizer(model, config)
    old_step = path == OLD_LOSS_AND_OPTIMIZER
    if old_step:  # the same groups, AdamW's per-tensor loop
        optimizer = torch.optim.AdamW([{"params": g["params"], "weight_decay": g["weight_decay"]}
                                       for g in optimizer.param_groups], lr=config.learning_rate, fused=False)
    scheduler = make_scheduler(optimizer, config, steps * config.epochs)
    context = (fast_attention.disabled() if path == "from-scratch"
               else fast_ce.autograd_path_under_autocast() if old_step else nullcontext())
    with context:
        cpu0 = time.process_time()
        row = train_epoch(model, model.loss, dataset, optimizer, scheduler, config, 1, batch_size=config.batch_size,
                          device=torch.device("cpu"), bf16=path in BF16_PATHS, parallel=distributed.current(),
                          progress=False)
        cpu = time.process_time() - cpu0
    return {"path": path, "threads": threads, "seed": seed, "attn_dropout_prob": config.attn_dropout_prob,
            "steps": steps, "epoch_seconds": round(row["epoch_seconds"], 2), "cpu_seconds": round(cpu, 1),
            "train_loss": round(row["train_loss"], 4)}


def summarize(runs: list[dict]) -> dict:
    seconds = sorted(r["epoch_seconds"] for r in runs)
    cpu = sorted(r["cpu_seconds"] for r in runs)
    return {"path": runs[0]["path"], "threads": runs[0]["threads"], "seeds": [r["seed"] for r in runs],
            "epoch_seconds_min_median_max": [seconds[0], round(statistics.median(seconds), 2), seconds[-1]],
            "cpu_seconds_min_median_max": [cpu[0], round(statistics.median(cpu), 1), cpu[-1]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", choices=tuple(ARMS), default="attention",
                        help="attention: the trainer's against the from-scratch one; precision: bf16 against float32; "
                             "attention-dropout: bf16 without attention dropout against bf16 with the paper's 0.1; "
                             "loss-and-optimizer: the bf16 step against it with autograd's loss and per-tensor AdamW")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--out", help="the result file (default: benchmarks/results/epoch_time_ml1m_cpu.json for "
                        "--compare attention, epoch_time_bf16_ml1m_cpu.json for precision, "
                        "epoch_time_bf16_attn_dropout0_ml1m_cpu.json for attention-dropout, "
                        "epoch_time_bf16_loss_optimizer_ml1m_cpu.json for loss-and-optimizer)")
    args = parser.parse_args()
    if any(t < 1 for t in args.threads) or not args.seeds:
        parser.error("every --threads value must be a positive integer, and give at least one seed")
    out = args.out or str(ROOT / "benchmarks/results" / DEFAULT_OUT[args.compare])
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    config = run_sizes()["config"].replace(include_valid_in_train=True, device="cpu")
    arms = ARMS[args.compare]
    reuse_freed_memory()  # as train() does on a CPU
    load_before = os.getloadavg()[0]
    rows = []
    for threads in args.threads:
        runs: dict[str, list[dict]] = {path: [] for path in arms}
        for i, seed in enumerate(args.seeds):
            for path in (arms if i % 2 == 0 else arms[::-1]):
                runs[path].append(one_epoch(path, threads, seed, data, config))
                print(runs[path][-1], flush=True)
        summaries = {path: summarize(runs[path]) for path in arms}
        baseline = summaries[arms[1]]["epoch_seconds_min_median_max"][1]
        for path in arms:
            median = summaries[path]["epoch_seconds_min_median_max"][1]
            speedup_key = "speedup_vs_" + arms[1].replace("-", "_").replace(" ", "_") + "_median"
            rows.append({**summaries[path], speedup_key: round(baseline / median, 2),
                         "runs": runs[path]})
            print({k: v for k, v in rows[-1].items() if k != "runs"}, flush=True)
    payload = {**provenance(), "dataset": args.dataset, "compare": args.compare,
               "cpu_has_native_bf16": cpu_has_native_bf16(),
               "model": {k: getattr(config, k) for k in ("max_seq_length", "hidden_size", "inner_size", "n_layers",
                                                          "n_heads", "batch_size", "mask_ratio", "hidden_dropout_prob",
                                                          "attn_dropout_prob")},
               "rows": rows}
    write_result(out, payload, load_before)


if __name__ == "__main__":
    main()
