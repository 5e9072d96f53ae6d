"""Shared helpers for the benchmark scripts: machine description, git commit, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> dict[str, str | int]:
    """CPU model, core count, torch version and GPU name (when one is used)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, str | int] = {"cpu": cpu, "cores": os.cpu_count() or 0, "torch_threads": torch.get_num_threads(),
                                  "torch": torch.__version__, "python": platform.python_version(),
                                  "load_average_1min_at_start": round(os.getloadavg()[0], 2)}
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < (os.cpu_count() or 0):
        info["pinned_to_cores"] = ",".join(map(str, sorted(os.sched_getaffinity(0))))  # e.g. plateau.py --pin-cores
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance() -> dict[str, object]:
    """The fields every result file starts with: the command as typed, the git commit, the date (UTC), the machine."""
    import time

    return {"command": "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]), "git_commit": git_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine()}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated by torch on CUDA, else the process's peak resident memory."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(out: str | Path, payload: dict, load_before: float) -> None:
    """Write a result file atomically (never half a file), with the 1-minute load average before and after the
    measurement, and say where it went."""
    import json

    from minibert4rec.support.files import atomic_write

    payload = {**payload, "load_average_1min_before": load_before, "load_average_1min_after": os.getloadavg()[0]}
    atomic_write(Path(out), json.dumps(payload, indent=1) + "\n")
    print("wrote", out)
