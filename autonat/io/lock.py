"""An exclusive lock on an output directory, so two runs never write into one at once.

The lock is ``flock`` on ``DIR/.autonat-lock`` (or, for an output replaced
as a whole when it is written, ``.NAME.autonat-lock`` beside it), a file
holding the owner's process id. The operating system releases it when the owning process ends,
however it ends, so a run killed with SIGKILL never leaves a stale lock: the
next run simply takes it. The file itself stays (removing it would let two
runs lock two different files).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from autonat.errors import AutonatError

LOCK_FILE = ".autonat-lock"

#: Directories this process holds locked; taking one of them again is a no-op (nested runs).
_HELD: set[str] = set()


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike, enabled: bool = True, beside: bool = False) -> Iterator[Path]:
    """Hold ``directory`` (created if missing) for one run; a second run gets a one-line error.

    ``enabled=False`` takes no lock: processes other than the main one of a
    multi-process run, whose main process holds it for all of them.
    ``beside=True`` keeps the lock file next to ``directory`` (created
    there, ``directory`` itself is not): for outputs that
    :func:`autonat.io.atomic.atomic_dir` replaces as a whole.
    """
    directory = Path(directory)
    folder, name = (directory.parent, f".{directory.name}{LOCK_FILE}") if beside else (directory, LOCK_FILE)
    key = os.path.abspath(directory)
    if not enabled or key in _HELD:
        yield directory
        return
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock
        yield directory
        return
    if directory.exists() and not directory.is_dir():
        raise AutonatError(f"{directory} is a file, not an output folder; give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise AutonatError(f"cannot create {folder / name}: {exc.strerror or exc} "
                           "(choose an output location you can write)") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AutonatError(f"another autonat run is using {directory} (pid {owner}); wait for it to end, "
                           "or give another output directory") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD.add(key)
        yield directory
    finally:
        _HELD.discard(key)
        os.close(fd)  # releases the lock
