"""Where a training step's time goes, and how close it runs to the machine's matrix-multiply speed.

One ML-1m training step of the paper's model (L = 200, hidden 64, 2 layers, 2 heads, batch 32 by default) is
split into its parts: the encoder's forward pass (embeddings and transformer blocks), the output layer with the
masked cross-entropy, the backward pass and the AdamW step. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, forward and backward) on the same batches, so
GFLOP/s is the arithmetic the step really does divided by its time. The reference is a large fp32 matrix product
on the same threads: about the best this CPU does.

    python benchmarks/profile_step.py --threads 1 2 --steps 20 --out benchmarks/results/profile_step_ml1m_cpu.json

``--amp-cpu`` profiles the trainer's bfloat16 step instead (``train.training_step`` under CPU autocast, as
``amp_cpu=True`` trains): its parts are the forward pass with the loss (the sliced loss of
``fast/cross_entropy.py`` computes the output layer's gradients there), the backward pass, and clipping with the
AdamW step; the reference adds a bfloat16 matrix product. Either way, ``op_shares`` splits the step's operator
time (``torch.profiler``, self time of each operator on the calling thread, a second pass over the same batches)
into matrix products, softmax and cross-entropy, dropout's random bits, dtype casts, the AdamW kernel and the rest.

    python benchmarks/profile_step.py --amp-cpu --threads 2 1 --steps 30 --out benchmarks/results/profile_step_bf16_ml1m_cpu.json

Run it with nothing else on the machine; the load average before and after is recorded in the result file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import provenance, write_result  # noqa: E402

from minibert4rec.data import load_dataset  # noqa: E402
from minibert4rec.masking import ClozeDataset  # noqa: E402
from minibert4rec.model import BERT4Rec  # noqa: E402
from minibert4rec.support.runtime import run_sizes  # noqa: E402
from minibert4rec.train import cpu_has_native_bf16, make_optimizer, make_scheduler, training_step  # noqa: E402


#: Operator names (torch.profiler keys) of each part of ``op_shares``; every other operator counts as "the rest".
OP_GROUPS = {
    "matrix products": ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"),
    "softmax and cross-entropy": ("aten::_softmax", "aten::_softmax_backward_data", "aten::_log_softmax",
                                  "aten::_log_softmax_backward_data", "aten::logsumexp", "aten::exp", "aten::exp_",
                                  "aten::nll_loss_forward", "aten::nll_loss_backward"),
    "dropout random bits": ("aten::random_",),
    "dtype casts and copies": ("aten::copy_", "aten::_to_copy"),
    "AdamW kernel": ("aten::_fused_adamw_", "aten::_fused_adamw"),
}


def op_shares(step, batches) -> dict[str, float]:
    """The share of operator self time (torch.profiler, calling thread) in each part of :data:`OP_GROUPS`."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for inputs, labels in batches:
            step(inputs, labels)
    times = {event.key: event.self_cpu_time_total for event in prof.key_averages()}
    total = sum(times.values())
    shares = {group: sum(times.get(name, 0.0) for name in names) / total for group, names in OP_GROUPS.items()}
    shares["the rest (element-wise, layer norm, autograd bookkeeping)"] = 1.0 - sum(shares.values())
    return {group: round(share, 3) for group, share in shares.items()}


def matmul_gflops(threads: int, n: int = 1024, repeats: int = 20, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of an n x n matrix product in ``dtype``: the reference for what this CPU can do."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def fresh_step_setup(threads: int, steps: int, batch_size: int, data, config):
    """A fresh model (seed 0, output bias at popularity), its AdamW and schedule in training mode, and the first
    ``steps + 3`` length-grouped batches of epoch 1: 3 for warm-up, then the timed ones."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BERT4Rec(config, data.n_items)
    model.init_output_bias_from_popularity(data.item_counts(True))
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, 10_000)
    dataset = ClozeDataset(data.split(True).train, config.max_seq_length, config.mask_ratio, data.mask_id,
                           data.n_items, seed=0)
    batches = [b for _, b in zip(range(steps + 3), dataset.batches(batch_size, epoch=1, group_by_length=True))]
    warm, timed = batches[:3], batches[3:]
    model.train()
    return model, optimizer, scheduler, warm, timed


def profile_bf16(threads: int, steps: int, batch_size: int, data, config) -> dict:
    """The trainer's bfloat16 step (``train.training_step`` with bf16 autocast), timed in three parts."""
    model, optimizer, scheduler, warm, timed = fresh_step_setup(threads, steps, batch_size, data, config)

    def step(inputs, labels):
        return training_step(model.loss, model, optimizer, scheduler, inputs, labels, config, True)

    for inputs, labels in warm:  # warm-up: allocator, caches
        step(inputs, labels)
    with FlopCounterMode(display=False) as counter, torch.autocast("cpu", dtype=torch.bfloat16):
        for inputs, labels in timed:
            model.loss(inputs, labels).backward()
    optimizer.zero_grad()
    flops = counter.get_total_flops()
    parts = {"forward with the loss": 0.0, "backward": 0.0, "clip + AdamW + schedule": 0.0}
    positions = real = 0
    start_all = time.perf_counter()
    for inputs, labels in timed:  # training_step's lines, timed one by one
        positions += inputs.numel()
        real += int((inputs > 0).sum())
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model.loss(inputs, labels)
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        t3 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
            parts[name] += seconds
    total = time.perf_counter() - start_all
    return {"threads": threads, "steps": len(timed), "batch_size": batch_size, "arithmetic": "bf16 autocast",
            "ms_per_step": round(1000 * total / len(timed), 1),
            "gflop_per_step": round(flops / len(timed) / 1e9, 2),
            "gflops_achieved": round(flops / total / 1e9, 1),
            "matmul_reference_gflops": round(matmul_gflops(threads), 1),
            "matmul_reference_bf16_gflops": round(matmul_gflops(threads, dtype=torch.bfloat16), 1),
            "share": {name: round(seconds / total, 3) for name, seconds in parts.items()},
            "op_shares": op_shares(step, timed),
            "padding_share_of_positions": round(1 - real / positions, 3)}


def profile(threads: int, steps: int, batch_size: int, data, config) -> dict:
    model, optimizer, scheduler, warm, timed = fresh_step_setup(threads, steps, batch_size, data, config)
    for inputs, labels in warm:  # warm-up: allocator, caches
        optimizer.zero_grad()
        model.loss(inputs, labels).backward()
        optimizer.step()
    with FlopCounterMode(display=False) as counter:
        for inputs, labels in timed:
            model.loss(inputs, labels).backward()
    optimizer.zero_grad()
    flops = counter.get_total_flops()
    parts = {"encoder forward": 0.0, "output layer + loss forward": 0.0, "backward": 0.0, "AdamW step": 0.0}
    positions = real = 0
    start_all = time.perf_counter()
    for inputs, labels in timed:
        positions += inputs.numel()
        real += int((inputs > 0).sum())
        t0 = time.perf_counter()
        hidden, _ = model(inputs)
        t1 = time.perf_counter()
        is_target = labels > 0
        logits = model.item_logits(hidden[is_target]).float()
        loss = torch.nn.functional.cross_entropy(logits, labels[is_target] - 1)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        t4 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[name] += seconds
    total = time.perf_counter() - start_all
    return {"threads": threads, "steps": len(timed), "batch_size": batch_size,
            "ms_per_step": round(1000 * total / len(timed), 1),
            "gflop_per_step": round(flops / len(timed) / 1e9, 2),
            "gflops_achieved": round(flops / total / 1e9, 1),
            "matmul_reference_gflops": round(matmul_gflops(threads), 1),
            "share": {name: round(seconds / total, 3) for name, seconds in parts.items()},
            "op_shares": op_shares(lambda x, y: training_step(model.loss, model, optimizer, scheduler, x, y, config,
                                                              False), timed),
            "padding_share_of_positions": round(1 - real / positions, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--amp-cpu", action="store_true", help="profile the trainer's bfloat16 step (amp_cpu)")
    parser.add_argument("--out", help="the result file (default: benchmarks/results/profile_step_ml1m_cpu.json, "
                        "or profile_step_bf16_ml1m_cpu.json with --amp-cpu)")
    args = parser.parse_args()
    out = args.out or str(ROOT / "benchmarks/results" / ("profile_step_bf16_ml1m_cpu.json" if args.amp_cpu
                                                          else "profile_step_ml1m_cpu.json"))
    if args.steps < 1 or args.batch_size < 1 or any(t < 1 for t in args.threads):
        parser.error("--steps, --batch-size and every --threads value must be positive integers")
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    config = run_sizes()["config"].replace(include_valid_in_train=True, device="cpu")
    load_before = os.getloadavg()[0]
    if args.amp_cpu and not cpu_has_native_bf16():
        print("warning: this CPU does not multiply bfloat16 natively; the bf16 step is emulated and slow")
    run = profile_bf16 if args.amp_cpu else profile
    rows = [run(t, args.steps, args.batch_size, data, config) for t in args.threads]
    for row in rows:
        print(row)
    payload = {**provenance(), "dataset": args.dataset, "cpu_has_native_bf16": cpu_has_native_bf16(),
               "model": {k: getattr(config, k) for k in ("max_seq_length", "hidden_size", "inner_size", "n_layers",
                                                          "n_heads", "mask_ratio")},
               "rows": rows}
    write_result(out, payload, load_before)


if __name__ == "__main__":
    main()
