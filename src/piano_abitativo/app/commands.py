"""The operations of the capofila, as the CLI and the Excel buttons offer them.

Each is one call into the core stages (archive, consolidate, master); the adapters only
render the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.consolidate import Consolidation, consolidate
from piano_abitativo.consolidation.context import iter_receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail.folder import import_files
from piano_abitativo.mail.texts import write_message_templates

if TYPE_CHECKING:
    from piano_abitativo.document.docx import DocumentResult


def crea(path: Path, **options: Any) -> Raccolta:
    """Create a new raccolta folder (see `core.raccolta.create` for the options) with the
    editable texts of its messages in messaggi/; refuses to touch an existing raccolta."""
    r = rc.create(path, **options)
    write_message_templates(r.path)
    return r


def importa(
    r: Raccolta,
    paths: Sequence[Path],
    *,
    progress: Callable[[Path], None] | None = None,
    waiting: Callable[[str], None] | None = None,
) -> archive.ImportResult:
    """Archive, validate and record the returned files found at `paths`."""
    return import_files(r, paths, progress=progress, waiting=waiting)


def consolidation(r: Raccolta) -> Consolidation:
    """The current consolidation of the raccolta (nothing written), with the comparison
    with last year's raccolta when it is linked and usable."""
    from piano_abitativo.consolidation.confronto import year_over_year

    cons = consolidate(r, iter_receipts(r))
    cons.confronto = year_over_year(r, cons)
    return cons


@dataclass(frozen=True)
class ConsolidaResult:
    master: Path
    consolidation: Consolidation


def consolida(r: Raccolta, *, waiting: Callable[[str], None] | None = None) -> ConsolidaResult:
    """Write the master workbook (.xlsm with its buttons) from the latest valid return of
    each ente."""
    from piano_abitativo.master.xlsm import write_master_xlsm

    with archive.locked(r.path, waiting=waiting):
        cons = consolidation(r)
        target = write_master_xlsm(cons, r.path)
    return ConsolidaResult(target, cons)


def documento(
    r: Raccolta, *, pdf: bool = True, progress: Callable[[str], None] | None = None
) -> DocumentResult:
    """Write the document of the Piano annuale (.docx, and .pdf through LibreOffice) from
    the current consolidation, with the comparison with last year when the raccolta is
    linked to last year's (a link that cannot be used is one more note)."""
    from piano_abitativo.consolidation.context import previous_notice
    from piano_abitativo.document.docx import write_document

    cons = consolidation(r)
    res = write_document(r, cons, confronto=cons.confronto, pdf=pdf, progress=progress)
    notice = previous_notice(r)
    return replace(res, note=(notice, *res.note)) if notice else res
