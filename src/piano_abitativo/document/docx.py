"""The Piano annuale as a Word document (.docx) and, through LibreOffice, as PDF.

The document follows the structure of the published plan of the Ambito Cremasco 2025:
title page, index, premessa and narrative sections, the tables a)–k) in the plan's form
(same columns, only the rows the plan shows, totals, Italian number formats, "nessuna"
where a section is empty), the comparison with the previous year when there is one, and
the annex *Report programmazione annuale* in a landscape section.

* Every number comes from a `Consolidation` (the same one the master workbook shows) and
  the document says as of when (``Dati consolidati al …``: the last reception used) and,
  apart, when it was produced.
* The narrative sections come from editable text blocks, one UTF-8 file per block in
  ``<raccolta>/testi/``: written with neutral wording the first time and never overwritten.
  Markup: a blank line starts a new paragraph, a line starting with ``- `` is a bullet,
  lines starting with ``#`` are comments; placeholders such as ``{anno}`` are replaced, an
  unknown one is left as it is and reported in the notes. A block still in its default
  wording carries a visible "testo predefinito da adattare" note, and the notes name it.
* With the PDF, the index's page numbers (read from the PDF's outline) are written as the
  fields' cached results; without it Word is asked to update the fields on opening.
* `build_document` is pure (bytes in memory, deterministic for the same data and texts);
  `write_document` writes ``<raccolta>/documento/Piano_annuale_offerta_abitativa_<anno>.docx``
  atomically and converts it to PDF with LibreOffice headless when it is installed.

The code lives in `base`, `texts`, `ooxml`, `measure`, `builder` and `pdf`; this
module builds and writes the document and gathers the public names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.document.base import (
    DOCUMENT_DIR,
    DOCUMENT_STEM,
    ENV_SOFFICE,
    PDF_TIMEOUT,
    TESTI_DIR,
    DocumentLocked,
    DocumentResult,
    PdfError,
    _open_by,
    _write,
    document_path,
)
from piano_abitativo.document.builder import (
    _Builder,
)
from piano_abitativo.document.pdf import (
    convert_to_pdf,
    find_soffice,
    outline_pages,
)
from piano_abitativo.document.texts import (
    BLOCKS,
    TextBlock,
    fill_placeholders,
    parse_block,
    placeholder_values,
    read_text_blocks,
    write_text_blocks,
)

if TYPE_CHECKING:
    from piano_abitativo.consolidation.changes import Confronto


__all__ = [
    "BLOCKS",
    "DOCUMENT_DIR",
    "DOCUMENT_STEM",
    "ENV_SOFFICE",
    "TESTI_DIR",
    "DocumentLocked",
    "DocumentResult",
    "PdfError",
    "TextBlock",
    "build_document",
    "convert_to_pdf",
    "document_path",
    "fill_placeholders",
    "find_soffice",
    "parse_block",
    "placeholder_values",
    "read_text_blocks",
    "write_document",
    "write_text_blocks",
]


def build_document(
    r: Raccolta,
    cons: Consolidation,
    *,
    texts: Mapping[str, str] | None = None,
    confronto: Confronto | None = None,
    notes: list[str] | None = None,
    pages: Mapping[str, int] | None = None,
) -> bytes:
    """The .docx of the Piano annuale as bytes (pure, deterministic). `texts` maps a block
    key to its text (missing keys: the default wording); problems with the texts, such as
    unknown placeholders, are appended to `notes`. `pages` (heading → page, as laid out in
    the PDF) fills the index's page numbers; without it Word is asked to update them."""
    b = _Builder(r, cons, texts or {}, confronto, pages)
    data = b.build()
    if notes is not None:
        notes.extend(b.notes)
    return data


# --------------------------------------------------------------------------- writing


def write_document(
    r: Raccolta,
    cons: Consolidation,
    *,
    confronto: Confronto | None = None,
    pdf: bool = True,
    progress: Callable[[str], None] | None = None,
    timeout: float = PDF_TIMEOUT,
) -> DocumentResult:
    """Write the Piano annuale into ``<raccolta>/documento/``: the .docx always, the .pdf
    through LibreOffice when `pdf` and LibreOffice is found. Creates the missing text
    blocks in ``<raccolta>/testi/`` first (never overwrites them). Refuses with
    `DocumentLocked` when the .docx is open; every other PDF problem is a note."""

    def say(text: str) -> None:
        if progress is not None:
            progress(text)

    target = document_path(r.path, cons.anno)
    target_pdf = target.with_suffix(".pdf")
    notes: list[str] = []
    owner = _open_by(target)
    if owner is not None:
        raise DocumentLocked(
            f"Il file {target.name} è aperto in {owner}: chiuderlo e ripetere. Se nessuno lo "
            f"ha aperto (ad esempio dopo un arresto del programma), eliminare il file di "
            f"blocco nella cartella {target.parent}."
        )
    created = write_text_blocks(r.path)
    if created:
        notes.append(
            f"Creati i testi modificabili del documento nella cartella "
            f"{r.path / TESTI_DIR} ({len(created)} file): modificarli e rigenerare "
            "il documento; non vengono mai sovrascritti."
        )
    texts = read_text_blocks(r.path, notes)
    say("Scrittura del documento…")
    data = build_document(r, cons, texts=texts, confronto=confronto, notes=notes)
    _write(target, data)
    errors = cons.count("da correggere")
    if errors:
        notes.append(
            f"{errors} enti hanno l'ultima versione da correggere: nel documento ci "
            "sono i dati della loro ultima versione valida."
        )
    if cons.non_attribuiti:
        notes.append(
            f"{len(cons.non_attribuiti)} file ricevuti non sono attribuiti a un ente "
            "dell'elenco e non sono nel documento (vedere il Cruscotto)."
        )
    pdf_path: Path | None = None
    stale = target_pdf.exists()
    if pdf:
        soffice = find_soffice()
        if soffice is None:
            notes.append(
                f"LibreOffice non trovato: scritto solo il .docx. Per il PDF "
                f"installare LibreOffice, oppure indicare il percorso di soffice "
                f"nella variabile d'ambiente {ENV_SOFFICE}, oppure aprire il .docx "
                "e salvarlo in PDF."
            )
        else:
            say("Conversione in PDF con LibreOffice…")
            try:
                pdf_path = convert_to_pdf(target, target_pdf, soffice=soffice, timeout=timeout)
                try:
                    pages = outline_pages(pdf_path.read_bytes())
                except OSError:  # the PDF is there; the index keeps Word's update
                    pages = {}
                if pages:  # the index's page numbers as LibreOffice laid them out
                    data = build_document(r, cons, texts=texts, confronto=confronto, pages=pages)
                    _write(target, data)
            except PdfError as exc:
                notes.append(str(exc))
            except DocumentLocked as exc:
                notes.append(str(exc))
    if pdf_path is None and stale:
        notes.append(
            f"Il PDF {target_pdf.name} già presente nella cartella è di una versione "
            "precedente del documento e non è stato aggiornato."
        )
    return DocumentResult(target, pdf_path, tuple(notes), tuple(created))
