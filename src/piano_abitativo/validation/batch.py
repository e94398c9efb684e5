"""Validation of many returned workbooks: the same reports as `validate_file` one by one,
in the same order, using the machine's cores for large batches.

Each file is independent and the work is CPU-bound Python (the bounded scan, the rules),
so a pool of processes divides the time of a large batch by the cores available. Small
batches are validated here: starting the workers costs more than they would save.

The workers are forked (Linux): they start in a few milliseconds with the context
already in memory. Where processes can only be spawned (Windows, macOS), a spawned
worker imports the caller's main module again, which a script without an
``if __name__ == "__main__":`` guard does not survive: there, and in a process that
runs other threads (forking them is unsafe), the batch stays in this process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from piano_abitativo.core.problems import Report
from piano_abitativo.validation.validate import ValidationContext, validate_file

#: from this many files a batch is split among processes (below: one process; measured
#: on 2 cores, a worker's start costs about as much as validating 20 files)
PARALLEL_FROM = 64
#: files a worker validates per message: few messages, and a balanced end of the batch
_CHUNK = 16

_context: ValidationContext | None = None


def _set_context(ctx: ValidationContext | None) -> None:
    global _context
    _context = ctx


def _validate_one(item: tuple[str, str]) -> Report:
    path, name = item
    return validate_file(path, _context, display_name=name)


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether a pool of forked workers is safe here: Linux, and no other thread."""
    import multiprocessing  # 25 ms: only for a batch large enough to use it
    import threading

    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


def validate_files(
    paths: Sequence[Path],
    context: ValidationContext | None = None,
    *,
    display_name: Callable[[Path], str] = str,
    workers: int | None = None,
) -> list[Report]:
    """The report of each of `paths`, in order, as `validate_file(path, context,
    display_name=display_name(path))` gives it. With `workers` (default: the cores
    available) above 1, at least `PARALLEL_FROM` files and `can_fork`, the files are
    validated by a pool of that many forked processes."""
    n = min(workers or cores(), max(1, len(paths) // _CHUNK))
    if n < 2 or len(paths) < PARALLEL_FROM or not can_fork():
        return [validate_file(p, context, display_name=display_name(p)) for p in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    items = [(str(p), display_name(p)) for p in paths]
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=n, mp_context=fork, initializer=_set_context, initargs=(context,)
    ) as pool:
        return list(pool.map(_validate_one, items, chunksize=_CHUNK))
