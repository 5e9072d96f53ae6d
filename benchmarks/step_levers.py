"""Which levers make a CPU training step faster? Each one measured on the same ML-1m batches.

A training step of the paper's model (L = 200, hidden 64, 2 layers, 2 heads) is timed as the trainer runs it
(``train.training_step``: forward, masked cross-entropy, backward, gradient clipping, AdamW, schedule), once per
lever, everything else equal:

* ``plain``: the trainer's default step (in CPU training, attention with dropout goes through
  ``fast/attention.py``: the from-scratch maths in fewer passes over memory, with the CPU dropout bits).
* ``from-scratch attention``: the same step with attention computed by ``attention.scaled_dot_product_attention``
  exactly as notebook 03 writes it (the same numbers, more passes over the (b, h, n, n) scores).
* ``compile``: ``model.compile()`` (TorchInductor on the CPU), as ``--compile`` does; its compile time is
  reported apart, the step time is the steady state after it.
* ``fused attention, same dropout``: PyTorch's fused ``F.scaled_dot_product_attention`` in training, with the
  paper's attention dropout drawn by the fused kernel.
* ``fused attention, no attention dropout``: the same without attention dropout (not the paper's model: an upper
  bound on what the fused kernel can give).
* ``batch 64`` / ``batch 128``: more sequences per step (time per sequence is what counts for an epoch).
* ``bf16 autocast``: the step under ``torch.autocast("cpu", dtype=torch.bfloat16)``, as ``amp_cpu=True`` runs it:
  matrix products in bfloat16, which CPUs with AVX-512 BF16 or AMX compute natively (the result records whether
  this one does), attention's included (``fast/attention.py`` takes bf16 inputs; its softmax and dropout stay in
  float32).

Each lever is measured ``--repeats`` times (seeds ``--first-seed``, +1, +2, ...: other weights and other
batches). For every lever the result gives milliseconds per sequence (min / median / max over the repeats) and
per step, GFLOP/s (FLOPs of the plain step, counted by ``FlopCounterMode``, over the median time) and the
speed-up of the median time per sequence over ``plain``'s. Batches keep their full width (L = 200, no length
grouping), so that every lever sees the same shapes and the compiled model is not
recompiled for each width; ML-1m's windows are 98% real items, so this is within 2% of the trainer's step.

    python benchmarks/step_levers.py --threads 2 1 --steps 15 --repeats 3 --out benchmarks/results/step_levers_ml1m_cpu.json

Run it with nothing else on the machine; the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import provenance, write_result  # noqa: E402

from minibert4rec import attention  # noqa: E402
from minibert4rec.data import load_dataset  # noqa: E402
from minibert4rec.fast import attention as fast_attention  # noqa: E402
from minibert4rec.masking import ClozeDataset  # noqa: E402
from minibert4rec.model import BERT4Rec  # noqa: E402
from minibert4rec.support.runtime import run_sizes  # noqa: E402
from minibert4rec.train import make_optimizer, make_scheduler, training_step  # noqa: E402

LEVERS = ("plain", "from-scratch attention", "compile", "fused attention, same dropout", "fused attention, no attention dropout",
          "batch 64", "batch 128", "bf16 autocast")


class FusedInTraining:
    """Within this block, attention takes PyTorch's fused kernel in training too (dropout drawn by that kernel)."""

    def __enter__(self) -> None:
        self.original = attention.MultiHeadAttention.forward

        def forward(module, x, attn_mask=None, return_probs=False, fast=False, last_query_only=False):
            if return_probs:
                return self.original(module, x, attn_mask, return_probs, False, last_query_only)
            q = attention.rearrange(module.q_proj(x), "b n (h d) -> b h n d", h=module.n_heads)
            k, v = (attention.rearrange(p(x), "b n (h d) -> b h n d", h=module.n_heads)
                    for p in (module.k_proj, module.v_proj))
            p = module.attn_dropout_prob if module.training else 0.0
            out = attention._fast_attention(q, k, v, attn_mask, p)
            return module.out_proj(attention.rearrange(out, "b h n d -> b n (h d)")), None

        attention.MultiHeadAttention.forward = forward

    def __exit__(self, *exc) -> None:
        attention.MultiHeadAttention.forward = self.original


def make_batches(data, config, batch_size: int, n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    dataset = ClozeDataset(data.split(True).train, config.max_seq_length, config.mask_ratio, data.mask_id,
                           data.n_items, seed=seed)
    return [b for _, b in zip(range(n), dataset.batches(batch_size, epoch=1, group_by_length=False))]


def measure(lever: str, threads: int, steps: int, data, config, seed: int = 0) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    batch_size = {"batch 64": 64, "batch 128": 128}.get(lever, config.batch_size)
    n_steps = max(3, steps * config.batch_size // batch_size)  # about the same number of sequences per lever
    if lever == "fused attention, no attention dropout":
        config = config.replace(attn_dropout_prob=0.0)
    model = BERT4Rec(config, data.n_items)
    model.init_output_bias_from_popularity(data.item_counts(True))
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, 10_000)
    batches = make_batches(data, config, batch_size, n_steps + 3, seed)
    warm, timed = batches[:3], batches[3:]
    compile_seconds = None
    bf16 = lever == "bf16 autocast"
    if lever == "compile":
        model.compile()
    fused = (FusedInTraining() if lever.startswith("fused")
             else fast_attention.disabled() if lever == "from-scratch attention" else None)
    if fused:
        fused.__enter__()
    try:
        model.train()
        t0 = time.perf_counter()
        for inputs, labels in warm:
            training_step(model.loss, model, optimizer, scheduler, inputs, labels, config, bf16)
        if lever == "compile":
            compile_seconds = round(time.perf_counter() - t0, 1)
        cpu0, start = time.process_time(), time.perf_counter()
        for inputs, labels in timed:
            training_step(model.loss, model, optimizer, scheduler, inputs, labels, config, bf16)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    finally:
        if fused:
            fused.__exit__(None, None, None)
    sequences = sum(len(inputs) for inputs, _ in timed)
    return {"lever": lever, "threads": threads, "seed": seed, "batch_size": batch_size, "steps": len(timed),
            "ms_per_step": round(1000 * wall / len(timed), 1),
            "ms_per_sequence": round(1000 * wall / sequences, 3),
            "cpu_seconds_per_wall_second": round(cpu / wall, 2),
            "compile_and_warmup_seconds": compile_seconds}


def summarize(runs: list[dict], flops: float, plain_median: float | None) -> dict:
    """One row per (lever, threads): min / median / max over the repeats."""
    per_sequence = sorted(r["ms_per_sequence"] for r in runs)
    median = statistics.median(per_sequence)
    return {"lever": runs[0]["lever"], "threads": runs[0]["threads"], "batch_size": runs[0]["batch_size"],
            "repeats": len(runs), "steps_per_repeat": runs[0]["steps"],
            "ms_per_sequence_min_median_max": [per_sequence[0], round(median, 3), per_sequence[-1]],
            "ms_per_step_median": round(statistics.median(r["ms_per_step"] for r in runs), 1),
            "gflops_achieved_at_median": round(flops / (median / 1000) / 1e9, 1),
            "speedup_vs_plain_median": round(plain_median / median, 2) if plain_median else None,
            "cpu_seconds_per_wall_second_median": statistics.median(r["cpu_seconds_per_wall_second"] for r in runs),
            "compile_and_warmup_seconds": [r["compile_and_warmup_seconds"] for r in runs]
            if runs[0]["compile_and_warmup_seconds"] is not None else None,
            "runs": runs}


def plain_flops_per_sequence(data, config) -> float:
    torch.manual_seed(0)
    model = BERT4Rec(config, data.n_items)
    batches = make_batches(data, config, config.batch_size, 4)
    with FlopCounterMode(display=False) as counter:
        for inputs, labels in batches:
            model.loss(inputs, labels).backward()
    return counter.get_total_flops() / sum(len(inputs) for inputs, _ in batches)


def native_bf16() -> bool | None:
    """Whether oneDNN computes bfloat16 matrix products natively on this CPU (AVX-512 BF16 or AMX); None if unknown."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--steps", type=int, default=15, help="timed steps at batch 32 (fewer at larger batches)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per lever (seeds 0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first repeat's seed (then +1, +2, ...)")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=LEVERS, metavar="LEVER")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/step_levers_ml1m_cpu.json"))
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1 or any(t < 1 for t in args.threads):
        parser.error("--steps, --repeats and every --threads value must be positive integers")
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    config = run_sizes()["config"].replace(include_valid_in_train=True, device="cpu")
    load_before = os.getloadavg()[0]
    flops = plain_flops_per_sequence(data, config)
    rows = []
    for threads in args.threads:
        runs: dict[str, list[dict]] = {lever: [] for lever in args.levers}
        # the levers interleaved, so that a slow minute hits every lever alike
        for seed in range(args.first_seed, args.first_seed + args.repeats):
            for lever in args.levers:
                runs[lever].append(measure(lever, threads, args.steps, data, config, seed))
                print(runs[lever][-1], flush=True)
        plain = statistics.median(r["ms_per_sequence"] for r in runs["plain"]) if "plain" in runs else None
        for lever in args.levers:
            rows.append(summarize(runs[lever], flops, plain))
            print({k: v for k, v in rows[-1].items() if k != "runs"}, flush=True)
    payload = {**provenance(), "dataset": args.dataset,
               "model": {k: getattr(config, k) for k in ("max_seq_length", "hidden_size", "inner_size", "n_layers",
                                                          "n_heads", "mask_ratio", "hidden_dropout_prob",
                                                          "attn_dropout_prob")},
               "gflop_per_sequence_plain": round(flops / 1e9, 3), "cpu_has_native_bf16": native_bf16(), "rows": rows}
    write_result(args.out, payload, load_before)


if __name__ == "__main__":
    main()
