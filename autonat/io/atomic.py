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
from typing import Callable, Iterator

from autonat.errors import AutonatError

#: The file every directory output of the toolkit holds, naming its kind ("token-cache", "tokenizer", ...).
MARKER = ".autonat-output"

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
    if where is not None and isinstance(exc, (OSError, RuntimeError)) and getattr(exc, "errno", None) is None:
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
            follow_umask(tmp_path)  # after the write: mkstemp, and writers that replace the file, make 0600
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
    write_text(path, read_log(path) + line.rstrip("\n") + "\n")


def read_log(path: str | os.PathLike) -> str:
    """The text of the log file ``path`` ('' if missing); anything but text is a one-line error, not appended to."""
    path = Path(path)
    try:
        return path.read_text() if path.exists() else ""
    except UnicodeDecodeError:
        raise AutonatError(f"{path} is not a text file, so nothing is appended to it; give another path "
                           "(it was not changed)") from None


def follow_umask(path: str | os.PathLike) -> None:
    """Give the file ``path`` the mode a user's new files get (0o666 less the umask), as ``open`` would."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    """The process's file-mode creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_kind(path: str | os.PathLike) -> str | None:
    """The kind recorded in ``path``'s marker file, or None when it holds none."""
    marker = Path(path) / MARKER
    try:
        return marker.read_text().strip() or None
    except OSError:
        return None


def check_output_dir(path: str | os.PathLike, kind: str,
                     recognise: Callable[[Path], bool] | None = None) -> Path:
    """Refuse, before any work, to write a ``kind`` directory where that would lose something.

    ``path`` may be missing, an empty directory, or a directory holding an
    earlier output of the same kind (its marker file names ``kind``, or, for
    outputs written before markers existed, ``recognise(path)`` is true).
    Anything else (a file, a folder of the user's, an output of another kind)
    is a one-line :class:`AutonatError`, and so is a parent that cannot be
    written to. Returns ``path`` as a :class:`Path`.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise AutonatError(f"{path} is a file, not a {kind} folder; give a new folder name (nothing was changed)")
    if path.is_dir():
        found = output_kind(path)
        entries = sorted(p.name for p in path.iterdir())
        if found is not None and found != kind:
            raise AutonatError(f"{path} holds an autonat {found}, not a {kind}; give another folder so it is kept")
        if found is None and entries and not (recognise is not None and recognise(path)):
            raise AutonatError(f"{path} already exists and is not an autonat {kind} (it holds {len(entries)} "
                               f"entries, e.g. {entries[0]!r}); give a new or empty folder, nothing was changed")
    check_writable(path.parent)
    return path


def check_writable(folder: str | os.PathLike) -> None:
    """One-line error unless ``folder`` (or its nearest existing ancestor) is a directory we may write into."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise AutonatError(f"cannot create {folder}: {probe} is a file, not a folder")
    try:  # a real write: permissions alone miss read-only file systems, and root passes every access check
        handle, name = tempfile.mkstemp(prefix=".autonat-probe-", dir=probe)
    except OSError as exc:
        reason = (exc.strerror or "not writable").lower()
        raise AutonatError(f"cannot write into {probe}: {reason} (choose an output location you can write)") from None
    os.close(handle)
    os.unlink(name)


def check_output_file(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a file output whose path is a folder or whose folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise AutonatError(f"{path} is a folder; give a file path for this output (nothing was changed)")
    check_writable(path.parent)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, kind: str,
               recognise: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` on success.

    ``path`` is first checked by :func:`check_output_dir`: only a missing or
    empty folder, or an earlier output of the same ``kind``, is ever replaced.
    The new directory gets the marker file naming ``kind``. An existing
    ``path`` is moved aside first and deleted only after the new directory is
    in place, so a crash leaves either the old or the new directory (or,
    between the two renames, the old one at ``.<name>.old``, which
    :func:`recover_dir` and the next ``atomic_dir`` on ``path`` put back).
    """
    path = Path(path)
    recover_dir(path)
    check_output_dir(path, kind, recognise)
    path.parent.mkdir(parents=True, exist_ok=True)
    with explain_disk_full(path):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a user's folders follow their umask
            yield tmp
            (tmp / MARKER).write_text(kind + "\n")
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
