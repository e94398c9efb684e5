"""Atomic writes: a file is either the old one or the complete new one, never half."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Callable, Iterator
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


#: from how many files one system-wide `sync` is used instead of an fsync of each
_SYNC_FROM = 16


def _flush_all(paths: list[str]) -> None:
    """Put the content of freshly written files on disk: for many files one `sync` where
    the system has it (one call instead of one fsync per file), else an fsync of each."""
    if len(paths) >= _SYNC_FROM and hasattr(os, "sync"):
        os.sync()
        return
    for p in paths:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write_files(folder: Path) -> Iterator[Callable[[str, bytes], Path]]:
    """Write many files into one folder atomically and fast: the block gets a
    ``put(name, data)`` that writes each into a temp file beside its target; when the
    block ends without an exception the contents are flushed to disk once, every temp
    file is put in place with `os.replace` and the folder is flushed once (instead of
    two fsyncs and a folder scan per file). On an exception no target is touched and the
    temp files are removed. Leftover temp files of interrupted earlier writes of the
    same names are removed, as `atomic_writer` does, from one listing of the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    leftovers = [
        e.name for e in os.scandir(folder) if e.name.startswith(".") and e.name.endswith(".tmp")
    ]
    pending: list[tuple[str, Path]] = []

    def put(name: str, data: bytes) -> Path:
        path = folder / name
        for old in [o for o in leftovers if o.startswith(f".{name}.")]:
            leftovers.remove(old)
            remove_leftovers(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        pending.append((tmp, path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path

    try:
        yield put
        _flush_all([tmp for tmp, _ in pending])
        for tmp, path in pending:
            _put_in_place(tmp, path, None)
        fsync_dir(folder)
    except BaseException:
        for tmp, _ in pending:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
