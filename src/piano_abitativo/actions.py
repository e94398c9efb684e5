"""The operations of the capofila, as the CLI and the Excel buttons offer them.

Each is one call into the core stages (archive, consolidate, master); the adapters only
render the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import archive
from .consolidate import Consolidation, consolidate
from .raccolta import Raccolta


def importa(r: Raccolta, paths: Sequence[Path], *,
            progress: Callable[[Path], None] | None = None,
            waiting: Callable[[str], None] | None = None) -> archive.ImportResult:
    """Archive, validate and record the returned files found at `paths`."""
    return archive.import_files(r, paths, progress=progress, waiting=waiting)


def consolidation(r: Raccolta) -> Consolidation:
    """The current consolidation of the raccolta (nothing written)."""
    return consolidate(r, archive.receipts(r))


@dataclass(frozen=True)
class ConsolidaResult:
    master: Path
    consolidation: Consolidation


def consolida(r: Raccolta, *, waiting: Callable[[str], None] | None = None
              ) -> ConsolidaResult:
    """Write the master workbook (.xlsm with its buttons) from the latest valid return of
    each ente."""
    from .xlsm import write_master_xlsm

    with archive.locked(r.path, waiting=waiting):
        cons = consolidation(r)
        target = write_master_xlsm(cons, r.path)
    return ConsolidaResult(target, cons)
