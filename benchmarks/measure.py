"""Clocks, peak memory and fresh child processes for the benchmarks.

Every configuration runs in a fresh Python process so that its peak memory
(max RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA) is its own and
not the high-water mark of whatever ran before. The parent alternates the
configurations it compares, round after round, so that load from other work
on a shared machine falls on both sides of a ratio alike.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

RESULT_PREFIX = "RESULT "


def synchronize(device: torch.device) -> None:
    """Wait for queued device work so a wall clock measures it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of ``fn()``, device work included.

    On a CPU shared with other jobs the wall clock also counts the time other
    processes held the cores; the process's CPU time (all its threads) counts
    only its own work, so ratios of CPU times are the steadier measure there.
    """
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_memory_mb(device: torch.device) -> float:
    """This process's peak memory: CUDA tensors on CUDA, max RSS (whole process) on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def current_memory_mb(device: torch.device) -> float:
    """Memory in use now (CUDA tensors, or resident set size on Linux); subtract it from the peak."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class Machine:
    """What a table was measured on."""

    cpu: str
    cores: int
    threads: int
    device: str
    torch: str
    instructions: str = ""  # autonat.runtime.cpu_instruction_set(): bf16 figures hold only with bf16 instructions

    @classmethod
    def here(cls, device: torch.device) -> "Machine":
        from autonat.runtime import cpu_instruction_set

        name = device.type
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        return cls(cpu=_cpu_name(), cores=os.cpu_count() or 0, threads=torch.get_num_threads(),
                   device=name, torch=torch.__version__, instructions=cpu_instruction_set())

    def describe(self) -> str:
        return (f"{self.cpu} ({self.instructions}), {self.cores} cores, {self.threads} torch threads, "
                f"device {self.device}, torch {self.torch}, Python {platform.python_version()}")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class RunLog:
    """Child reports by configuration key, saved after every child so a long run can resume.

    With a ``path`` that exists, earlier reports are loaded and count as done:
    running the same command again measures only what is missing.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.runs: dict[tuple, list[dict]] = {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.runs = {tuple(item["key"]): item["runs"] for item in json.load(f)}

    def count(self, key: tuple) -> int:
        return len(self.runs.get(key, []))

    def add(self, key: tuple, result: dict) -> None:
        self.runs.setdefault(key, []).append(result)
        if self.path:
            tmp = f"{self.path}.tmp"
            with open(tmp, "w") as f:
                json.dump([{"key": list(k), "runs": v} for k, v in self.runs.items()], f, indent=1)
            os.replace(tmp, self.path)


#: For memory-only children on CPU: glibc then serves every allocation of 64 KiB or more
#: with its own mapping and unmaps it when freed, so the peak RSS follows the
#: tensors actually alive (as ``torch.cuda.max_memory_allocated`` does on CUDA)
#: instead of the heap glibc keeps after frees. It slows allocation, so timed
#: children run with the default allocator.
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def run_child(module: str, config: dict, env: dict | None = None) -> dict:
    """Run ``python -m module --child CONFIG`` in a fresh process; return the dict it reports."""
    proc = subprocess.run([sys.executable, "-m", module, "--child", json.dumps(config)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode:
        raise RuntimeError(f"{module} child {config} failed:\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"{module} child {config} reported nothing:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def report(result: dict) -> None:
    """The child's side of :func:`run_child`."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Rows as a Markdown table; ``columns`` pairs a row key with its header."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(row.get(k)) for k, _ in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
