"""What the document of the Piano annuale is called, where it goes, what writing it
returns, and the page geometry its tables are measured against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docx.shared import Cm, RGBColor

from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.errors import DocumentLocked as DocumentLocked
from piano_abitativo.core.errors import PdfError as PdfError
from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.raccolta import RaccoltaError

if TYPE_CHECKING:
    pass


DOCUMENT_DIR = "documento"
TESTI_DIR = "testi"
DOCUMENT_STEM = "Piano_annuale_offerta_abitativa_{anno}"
#: the path of soffice (soffice.exe) when it is not found by itself
ENV_SOFFICE = "PIANO_ABITATIVO_SOFFICE"
#: seconds LibreOffice may take to convert the document (the first start is the slowest)
PDF_TIMEOUT = 240.0

TITLE = "Piano annuale dell'offerta abitativa pubblica e sociale"
LEGAL_REFERENCES = (
    "Predisposto ai sensi della Legge Regionale Lombardia 8 luglio 2016, n. 16 «Disciplina "
    "regionale dei servizi abitativi» e dell'art. 4 del Regolamento Regionale 4 agosto "
    "2017, n. 4 «Disciplina della programmazione dell'offerta abitativa pubblica e sociale "
    "e dell'accesso e della permanenza nei servizi abitativi pubblici», e successive "
    "modifiche e integrazioni."
)


@dataclass(frozen=True)
class DocumentResult:
    """What `write_document` wrote, and what the clerk should know (Italian notes)."""

    docx: Path
    pdf: Path | None
    note: tuple[str, ...] = ()
    #: text blocks created now with their neutral wording (first run of the raccolta)
    testi_creati: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "docx": str(self.docx),
            "pdf": str(self.pdf) if self.pdf else None,
            "note": list(self.note),
        }


def document_path(raccolta_path: Path, anno: int, suffix: str = ".docx") -> Path:
    """Where the document of a raccolta goes: ``<raccolta>/documento/<stem><suffix>``."""
    return Path(raccolta_path) / DOCUMENT_DIR / (DOCUMENT_STEM.format(anno=anno) + suffix)


# --------------------------------------------------------------------------- page geometry

A4_SHORT, A4_LONG = Cm(21.0), Cm(29.7)
MARGIN = Cm(2.0)
ANNEX_MARGIN = Cm(1.2)
TEXT_WIDTH_CM = 21.0 - 2 * 2.0
ANNEX_WIDTH_CM = 29.7 - 2 * 1.2

FONT = "Arial"  # LibreOffice draws it with the metric-compatible Liberation Sans
BLUE = RGBColor(0x1F, 0x38, 0x64)
HEADER_FILL = "D9E2F3"
TOTAL_FILL = "EDF1F9"


def _open_by(path: Path) -> str | None:
    """The program whose lock file says `path` is open, or None."""
    for lock, program in (
        (path.with_name("~$" + path.name), "Word"),
        (path.with_name("~$" + path.name[2:]), "Word"),
        (path.with_name(f".~lock.{path.name}#"), "LibreOffice"),
    ):
        if lock.exists():
            return f"{program} (file di blocco «{lock.name}»)"
    return None


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except PermissionError as exc:
        raise DocumentLocked(
            f"Impossibile sostituire {path.name}: probabilmente è aperto in Word, in "
            "LibreOffice o in un lettore PDF (anche da un altro PC). Chiuderlo e ripetere; "
            "il file precedente non è stato modificato."
        ) from exc
    except OSError as exc:
        raise RaccoltaError(
            f"Impossibile scrivere {path}: {os_reason(exc)}. Il file "
            "precedente non è stato modificato."
        ) from exc
