"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the toolkit writes (checkpoints, token caches, strategies, results)
goes through these helpers: the content is written to a temporary sibling,
flushed to disk, then renamed over the destination in one step.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import AutonatError

#: errno values meaning the write cannot fit: the disk, or the user's quota, is full.
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: How libraries that do not raise OSError (safetensors, torch's zip writer) word the same failure.
_FULL_WORDS = ("No space left on device", "StorageFull", "Disk quota exceeded", "os error 28")


def is_disk_full(exc: BaseException, where: str | os.PathLike | None = None) -> bool:
    """True if ``exc`` is a write failing for lack of space.

    safetensors and torch wrap the OS error in their own exception types, so
    the message is checked too, and (for ``where``) whether the disk is now
    (nearly) out of space.
    """
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if any(word in str(exc) for word in _FULL_WORDS):
        return True
    if where is not None and isinstance(exc, (OSError, RuntimeError)):
        try:
            return shutil.disk_usage(Path(where)).free < (1 << 20)
        except OSError:
            return False
    return False


@contextlib.contextmanager
def explain_disk_full(path: str | os.PathLike, kept: str = "the previous version, if any, is intact") -> Iterator[None]:
    """Turn a full disk while writing ``path`` into a one-line :class:`AutonatError` saying what is kept."""
    try:
        yield
    except AutonatError:
        raise
    except Exception as exc:
        if not is_disk_full(exc, Path(path).parent if Path(path).parent.exists() else None):
            raise
        raise AutonatError(f"the disk is full while writing {path}; {kept} (free some space and run "
                           f"the same command again)") from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with explain_disk_full(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to ``path`` by rewriting it atomically (small log files only)."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    write_text(path, old + line.rstrip("\n") + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` on success.

    An existing ``path`` is moved aside first and deleted only after the new
    directory is in place, so a crash leaves either the old or the new directory
    (or, between the two renames, the old one at ``.<name>.old``, which
    :func:`recover_dir` and the next ``atomic_dir`` on ``path`` put back).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    with explain_disk_full(path):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(path: str | os.PathLike) -> bool:
    """Put back ``.<name>.old`` if a crash between :func:`atomic_dir`'s two renames left ``path`` missing."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if path.exists() or not old.is_dir():
        return False
    os.replace(old, path)
    return True
