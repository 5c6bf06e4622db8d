"""Where the work runs: the device a command uses, and accelerate's processes.

torch and accelerate are imported inside the functions, so the command line
imports this module without loading them.

Devices are named as torch names them: ``cpu``, ``cuda`` (the current GPU),
``cuda:N`` (GPU number N) or ``mps`` (Apple GPUs). ``None`` asks for the
default: CUDA when a GPU is present, else the CPU.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping

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
