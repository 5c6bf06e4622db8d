"""Where the work runs: the device a command uses, and accelerate's processes.

torch and accelerate are imported inside the functions, so the command line
imports this module without loading them.

Devices are named as torch names them: ``cpu``, ``cuda`` (the current GPU),
``cuda:N`` (GPU number N) or ``mps`` (Apple GPUs). ``None`` asks for the
default: CUDA when a GPU is present, else the CPU.
"""
from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from autonat.errors import AutonatError

DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?|mps")
DEVICE_CHOICES = "cpu, cuda, cuda:N or mps"


def check_device(requested: str | None) -> str | None:
    """``requested`` when it names a device this machine has (``None`` passes), else a one-line error."""
    if requested is None:
        return None
    if not DEVICE_PATTERN.fullmatch(requested):
        raise AutonatError(f"unknown --device {requested!r}; choose {DEVICE_CHOICES} "
                           "(or leave --device out: CUDA when present, else the CPU)")
    import torch

    if requested.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(requested.partition(":")[2] or 0)
        if index >= count:
            have = f"only cuda:0..cuda:{count - 1}" if count else "no CUDA GPU"
            raise AutonatError(f"--device {requested} but this machine has {have}; "
                               "use --device cpu or leave --device out")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise AutonatError("--device mps but this machine has no MPS GPU; use --device cpu or leave --device out")
    return requested


def default_device(requested: str | None) -> str:
    """The device a single-process command uses: ``requested`` (checked), else CUDA when present, else the CPU."""
    if check_device(requested):
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def process_state(device: str | None):
    """accelerate's process state; processes without CUDA join a gloo (CPU) group.

    ``accelerate launch --multi_gpu --num_processes K`` (or ``torchrun
    --nproc_per_node K``) starts K processes, and on a machine without CUDA
    they work on the CPU; without ``--multi_gpu`` it starts one (see
    :func:`single_process_note`).
    """
    import torch
    from accelerate import PartialState

    check_device(device)
    return PartialState(cpu=not torch.cuda.is_available() or str(device or "").startswith("cpu"))


def launched_world_size(env: Mapping[str, str]) -> int:
    """The number of processes the launcher started, from the variables it sets (1 when none)."""
    for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):  # torchrun / --multi_gpu, Open MPI, MPICH
        if env.get(name, "").isdigit():
            return int(env[name])
    return 1


def single_process_note(env: Mapping[str, str] | None = None) -> str | None:
    """A note when ``accelerate launch --num_processes K`` (K > 1) started one process, else None.

    accelerate's simple launcher (used without ``--multi_gpu``, e.g. with
    ``--cpu`` or on a machine with at most one GPU) sets
    ``ACCELERATE_USE_CPU`` always and ``MASTER_PORT`` only when more than one
    process was asked for, yet starts a single process and sets no
    ``WORLD_SIZE`` (unless MPI starts the copies).
    """
    env = os.environ if env is None else env
    if "ACCELERATE_USE_CPU" in env and "MASTER_PORT" in env and launched_world_size(env) == 1:
        return ("note: `accelerate launch --num_processes K` started one process (no --multi_gpu); add "
                "--multi_gpu (it works on the CPU too) or use torchrun --nproc_per_node K to share the work")
    return None


# --------------------------------------------------------------------------- bf16 on the CPU
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
"""/proc/cpuinfo flags of bf16 arithmetic: x86 AVX512-BF16 and AMX-BF16, Arm's BF16 (its ``Features`` line)."""

BF16_CPU_SLOWDOWN = {"sampling": "4x", "training": "40x"}
"""bf16 autocast against fp32 on a 2-core AVX2 CPU without bf16 instructions (issue 19's measurement)."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str] | None:
    """The instruction-set flags of the first CPU listed in ``cpuinfo``, None where it cannot be read.

    Reads the ``flags`` line (x86) or the ``Features`` line (Arm) of Linux's
    /proc/cpuinfo; other systems have no such file.
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool | None:
    """Whether this CPU has bf16 instructions; None when it cannot tell.

    True when ``flags`` (default: :func:`cpu_flags`) hold one of
    :data:`BF16_CPU_FLAGS`. Without /proc/cpuinfo, on an x86 CPU it asks
    torch's own CPU probe (``torch.cpu._is_avx512_bf16_supported`` and
    ``_is_amx_tile_supported``); elsewhere (an Arm Mac), or where torch has
    no such probe, it says None.
    """
    flags = cpu_flags() if flags is None else flags
    if flags is not None:
        return any(flag in flags for flag in BF16_CPU_FLAGS)
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if not any(probes):
        return None
    return any(probe() for probe in probes if probe is not None)


def cpu_instruction_set() -> str:
    """The CPU's instruction set as benchmark tables name it, e.g. ``AVX512, with bf16 (avx512_bf16)``.

    The first part is torch's vector kernel level
    (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512, ...),
    the second what :func:`cpu_has_bf16` finds.
    """
    import torch

    flags = cpu_flags() or frozenset()
    found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    has = cpu_has_bf16()
    bf16 = f"with bf16 ({', '.join(found)})" if found else {True: "with bf16", False: "no bf16 instructions",
                                                            None: "bf16 instructions unknown"}[has]
    return f"{torch.backends.cpu.get_cpu_capability()}, {bf16}"


def bf16_cpu_warning(workload: str, fix: str) -> str | None:
    """The one-line warning for bf16 ``workload`` (``sampling`` or ``training``) on a CPU without bf16 instructions.

    None when the CPU has them or cannot tell. bf16 is kept (the user asked
    for it, and its numbers differ from fp32's), the warning names the cost.
    """
    if cpu_has_bf16() is not False:
        return None
    return (f"autonat: warning: bf16 {workload} on a CPU without bf16 instructions "
            f"({', '.join(BF16_CPU_FLAGS)} absent): measured {BF16_CPU_SLOWDOWN[workload]} slower "
            f"than fp32 on such a CPU; {fix}")


def warn_bf16_cpu(workload: str, fix: str) -> None:
    """Print :func:`bf16_cpu_warning` to stderr when it applies."""
    warning = bf16_cpu_warning(workload, fix)
    if warning:
        print(warning, file=sys.stderr, flush=True)
