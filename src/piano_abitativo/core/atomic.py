"""Atomic writes: a file is either the old one or the complete new one, never half."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: files are created as any program would create them (mkstemp alone gives 0600, which
#: colleagues on a shared folder could not read)
_UMASK = _umask()


def new_file_mode(path: Path, *, default: int = 0o666) -> int:
    """The mode for a replacement of `path`: the existing file's, else default & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return default & ~_UMASK


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; Windows cannot and need not."""
    if os.name == "nt":  # pragma: no cover - directories cannot be fsynced on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hold(fd: int) -> bool:
    """Lock an open temp file for this writer (POSIX); False when another holds it."""
    if os.name == "nt":  # pragma: no cover - Windows cannot delete a file that is open
        return True
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the temp files of earlier writes of `path` that were interrupted (a killed
    or crashed process: ``.<name>.*.tmp``); a temp file another writer still holds is left
    alone. Returns the removed ones."""
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for tmp in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.*.tmp"):
            try:
                fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
            except OSError:
                continue
            try:
                if _hold(fd):
                    os.unlink(tmp)
                    removed.append(tmp)
            except OSError:
                pass
            finally:
                os.close(fd)
    return removed


def _put_in_place(tmp: str, path: Path, mtime: float | None) -> None:
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.chmod(tmp, new_file_mode(path))
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_writer(path: Path, *, mtime: float | None = None) -> Iterator[BinaryIO]:
    """A binary file to write the new content of `path` into: a temp file in the same
    folder, flushed and put in place with `os.replace` (then the folder is flushed) only
    when the block ends without an exception; otherwise `path` is left as it was.
    `mtime` sets the file's modification time. Temp files of earlier interrupted writes of
    `path` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _hold(fd)  # a later writer of `path` must not take this one for a leftover
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            if os.name != "nt":  # put in place while still locked (see `remove_leftovers`)
                _put_in_place(tmp, path, mtime)
        if os.name == "nt":  # pragma: no cover - Windows cannot rename an open file
            _put_in_place(tmp, path, mtime)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, mtime: float | None = None) -> None:
    """Write `data` to `path` atomically (see `atomic_writer`)."""
    with atomic_writer(path, mtime=mtime) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
