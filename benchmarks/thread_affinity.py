"""Does pinning threads to cores make a CPU training step faster? The paper's ML-1m step, timed per layout.

By default the operating system moves torch's threads between cores as it likes. OpenMP (which torch's CPU
kernels use) can instead *bind* each thread to one core (``OMP_PROC_BIND`` / ``OMP_PLACES``), and a whole
process can be confined to chosen cores (``taskset``, ``os.sched_setaffinity``). This script measures the
trainer's step (``step_levers.py --levers plain``) in each layout, every measurement in a fresh process (OpenMP
reads its environment once, when it starts):

* ``one process, T threads, unpinned``: the default, T = 1 and 2.
* ``one process, T threads, OMP bound``: ``OMP_PROC_BIND=close OMP_PLACES=cores``.
* ``two 1-thread processes, unpinned``: how the benchmarks run two seeds at once (one per core).
* ``two 1-thread processes, one core each``: the same, each process confined to its own core.
* ``two 1-thread processes, both OMP bound``: the trap. Each process binds its one thread to the *first* core
  of its affinity mask, so both land on core 0 unless they are also given different cores.

For every layout the result gives milliseconds per sequence of each process (min / median / max over the rounds;
for two processes, over both processes of every round) and the machine's throughput, sequences per second of
all processes together. The layouts are interleaved round by round (round r uses seed r), so that a slow minute
of a shared machine hits every layout alike.

    python benchmarks/thread_affinity.py --rounds 3 --steps 30 --out benchmarks/results/thread_affinity_ml1m_cpu.json

Run it with nothing else on the machine; the load average before and after is recorded. It needs as many cores
as the largest layout (2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import provenance, write_result  # noqa: E402


OMP_BOUND = {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}


@dataclass(frozen=True)
class Process:
    """One process of a layout: its torch threads, extra environment and the cores it may run on (None: any)."""

    threads: int
    env: dict[str, str] = field(default_factory=dict)
    cores: frozenset[int] | None = None


@dataclass(frozen=True)
class Layout:
    name: str
    processes: tuple[Process, ...]


def layouts(cores: int) -> list[Layout]:
    """Every layout this machine can hold: one process with 1 and 2 threads, and two 1-thread processes side by side."""
    out = []
    for threads in (1, 2):
        if threads <= cores:
            out.append(Layout(f"one process, {threads} thread{'s' * (threads > 1)}, unpinned", (Process(threads),)))
            out.append(Layout(f"one process, {threads} thread{'s' * (threads > 1)}, OMP bound",
                              (Process(threads, OMP_BOUND),)))
    if cores >= 2:
        out.append(Layout("two 1-thread processes, unpinned", (Process(1), Process(1))))
        out.append(Layout("two 1-thread processes, one core each",
                          (Process(1, cores=frozenset({0})), Process(1, cores=frozenset({1})))))
        out.append(Layout("two 1-thread processes, both OMP bound", (Process(1, OMP_BOUND), Process(1, OMP_BOUND))))
    return out


def launch(process: Process, seed: int, steps: int, dataset: str, data_dir: str, out: Path) -> subprocess.Popen:
    """Start ``step_levers.py --levers plain`` for one process of a layout (returns at once)."""
    command = [sys.executable, str(ROOT / "benchmarks/step_levers.py"), "--levers", "plain", "--threads",
               str(process.threads), "--repeats", "1", "--first-seed", str(seed), "--steps", str(steps),
               "--dataset", dataset, "--data-dir", data_dir, "--out", str(out)]
    env = {**os.environ, **process.env}
    cores = process.cores
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores is not None else None)


def measure(layout: Layout, seed: int, steps: int, dataset: str, data_dir: str) -> list[dict]:
    """Run every process of ``layout`` at once; return each one's plain-step measurement."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"process{i}.json" for i in range(len(layout.processes))]
        children = [launch(p, seed, steps, dataset, data_dir, out) for p, out in zip(layout.processes, outs)]
        for child in children:
            _, err = child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"{layout.name}: step_levers.py failed:\n{err[-2000:]}")
        return [json.loads(out.read_text())["rows"][0]["runs"][0] for out in outs]


def summarize(layout: Layout, rounds: list[list[dict]]) -> dict:
    """min / median / max ms per sequence over every process of every round, and the machine's sequences/s."""
    per_sequence = sorted(run["ms_per_sequence"] for processes in rounds for run in processes)
    throughput = sorted(sum(1000 / run["ms_per_sequence"] for run in processes) for processes in rounds)
    return {"layout": layout.name,
            "processes": [{"threads": p.threads, "env": p.env, "cores": sorted(p.cores) if p.cores else "any"}
                          for p in layout.processes],
            "rounds": len(rounds),
            "ms_per_sequence_min_median_max": [per_sequence[0], round(statistics.median(per_sequence), 3),
                                               per_sequence[-1]],
            "machine_sequences_per_s_min_median_max": [round(throughput[0], 1),
                                                       round(statistics.median(throughput), 1),
                                                       round(throughput[-1], 1)],
            "runs": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="measurements per layout (round r uses seed r)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps of batch 32 per measurement")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/thread_affinity_ml1m_cpu.json"))
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be positive integers")
    cores = len(os.sched_getaffinity(0))
    plan = layouts(cores)
    if cores < 2:
        print(f"only {cores} core available: the two-process layouts are left out", flush=True)
    load_before = os.getloadavg()[0]
    measured: dict[str, list[list[dict]]] = {layout.name: [] for layout in plan}
    for seed in range(args.rounds):
        for layout in plan:
            measured[layout.name].append(measure(layout, seed, args.steps, args.dataset, args.data_dir))
            print(f"round {seed}: {layout.name}: ms per sequence "
                  f"{[run['ms_per_sequence'] for run in measured[layout.name][-1]]}", flush=True)
    rows = [summarize(layout, measured[layout.name]) for layout in plan]
    for row in rows:
        print(f"{row['layout']:42} ms/sequence {row['ms_per_sequence_min_median_max']}  "
              f"machine sequences/s {row['machine_sequences_per_s_min_median_max']}")
    payload = {**provenance(), "dataset": args.dataset, "cores": cores, "steps_per_measurement": args.steps,
               "rows": rows}
    write_result(args.out, payload, load_before)


if __name__ == "__main__":
    main()
