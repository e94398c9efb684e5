"""Atomic writes: a file is either the old one or the complete new one, never half."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def atomic_writer(path: Path, *, mtime: float | None = None) -> Iterator[BinaryIO]:
    """A binary file to write the new content of `path` into: a temp file in the same
    folder, flushed and put in place with `os.replace` (then the folder is flushed) only
    when the block ends without an exception; otherwise `path` is left as it was.
    `mtime` sets the file's modification time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.chmod(tmp, new_file_mode(path))
        os.replace(tmp, path)
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
