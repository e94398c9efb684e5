"""The operations of the capofila, as the CLI and the Excel buttons offer them.

Each is one call into the core stages (archive, consolidate, master); the adapters only
render the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import archive
from .consolidate import Consolidation, consolidate
from .raccolta import Raccolta

if TYPE_CHECKING:
    from .document import DocumentResult


def importa(r: Raccolta, paths: Sequence[Path], *,
            progress: Callable[[Path], None] | None = None,
            waiting: Callable[[str], None] | None = None) -> archive.ImportResult:
    """Archive, validate and record the returned files found at `paths`."""
    return archive.import_files(r, paths, progress=progress, waiting=waiting)


def consolidation(r: Raccolta) -> Consolidation:
    """The current consolidation of the raccolta (nothing written), with the comparison
    with last year's raccolta when it is linked and usable."""
    from .yoy import year_over_year

    cons = consolidate(r, archive.iter_receipts(r))
    cons.confronto = year_over_year(r, cons)
    return cons


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


def documento(r: Raccolta, *, pdf: bool = True,
              progress: Callable[[str], None] | None = None) -> DocumentResult:
    """Write the document of the Piano annuale (.docx, and .pdf through LibreOffice) from
    the current consolidation, with the comparison with last year when the raccolta is
    linked to last year's (a link that cannot be used is one more note)."""
    from .document import write_document
    from .yoy import previous_notice

    cons = consolidation(r)
    res = write_document(r, cons, confronto=cons.confronto, pdf=pdf, progress=progress)
    notice = previous_notice(r)
    return replace(res, note=(notice, *res.note)) if notice else res
