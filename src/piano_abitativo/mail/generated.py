"""The raccolta's own outputs, recognised among the files given to `importa --da`: its
master workbook (written by `consolida`, or the blank master), the templates of `modelli`
nobody filled in, and the documents of `documento`. None of them is an ente's return.

The master and the document are told by their content (the workbook properties and the
sheets `master.writer` writes, the properties `document.builder` writes), an unfilled
template by its hidden metadata (this raccolta's id) and by its input cells, all empty.
The names below mirror the upper layers' constants (this layer cannot import them);
tests/test_own_outputs.py checks they agree.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from pathlib import Path

from piano_abitativo.core.problems import Report
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.schema import Role

#: the sheets every master has (master.model SHEET_CRUSCOTTO, SHEET_DATI, SHEET_ANOMALIE)
MASTER_SHEETS = ("Cruscotto", "Dati", "Anomalie")
#: the keywords master.writer puts in the master's properties
MASTER_KEYWORDS = "piano-abitativo, consolidato"
#: the keywords document.builder puts in the document's properties
DOCUMENT_KEYWORDS = "piano-abitativo, piano annuale"
#: where `documento` writes (document.base.DOCUMENT_DIR)
DOCUMENT_DIR = "documento"
DOCUMENT_SUFFIXES = (".docx", ".pdf")

#: the label of the raccolta's id on the master's Cruscotto (master.dashboard)
_RACCOLTA_LABEL = "Raccolta"
#: parts larger than this are not what piano-abitativo writes: not read
_MAX_PART = 1_048_576
#: reading problems after which a file's parts are not opened again
_REFUSED = frozenset({"F01", "F02", "F03", "F04", "F06", "F07"})

MOTIVO_MASTER = "cartella di lavoro generata da questa raccolta, non importata"
MOTIVO_TEMPLATE = "modello non compilato generato da questa raccolta, non importato"
MOTIVO_DOCUMENT = "documento del Piano generato da questa raccolta, non importato"
MOTIVO_OTHER_DOCUMENT = (
    "documento del Piano generato da piano-abitativo, non è la risposta di un ente: non importato"
)


def own_output(
    r: Raccolta, name: str, data: bytes, report: Report, *, source: Path | None = None
) -> str | None:
    """Why the file (its `name`, its bytes, their validation `report`; `source`: where it
    was found) is one of the raccolta's own outputs and not a return, in Italian; None
    when it may be a return."""
    suffix = Path(name).suffix.lower()
    if suffix in DOCUMENT_SUFFIXES:
        return _own_document(r, suffix, data, source)
    if report.codes() & _REFUSED:
        return None
    if _is_blank_template(r, report):
        return MOTIVO_TEMPLATE
    if data.startswith(b"PK"):
        return _master(r, data)
    return None


def _is_blank_template(r: Raccolta, report: Report) -> bool:
    """A template of this raccolta in which not one input cell holds anything: the reader
    reads an empty count as 0 with an L04 avviso and every other empty cell as None."""
    if not r.id or report.metadata.get("raccolta_id") != r.id:
        return False
    empty_counts = {p.field for p in report.problems if p.code == "L04"}
    typed = {p.field for p in report.problems if p.code.startswith("L") and p.code != "L04"}
    for f in r.schema.fields:
        if f.role is not Role.INPUT:
            continue
        if f.id not in report.values or f.id in typed:
            return False
        if report.values[f.id] is not None and f.id not in empty_counts:
            return False
    return True


def _part(zf: zipfile.ZipFile, member: str) -> str | None:
    try:
        info = zf.getinfo(member)
        if info.file_size > _MAX_PART or info.flag_bits & 0x1:
            return None
        return zf.read(info).decode("utf-8", "replace")
    except (KeyError, zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError):
        return None


def _open_zip(data: bytes) -> zipfile.ZipFile | None:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError):
        return None


def _keywords(zf: zipfile.ZipFile) -> str:
    core = _part(zf, "docProps/core.xml") or ""
    m = re.search(r"<cp:keywords>(.*?)</cp:keywords>", core, re.S)
    return html.unescape(m.group(1)) if m else ""


def _master(r: Raccolta, data: bytes) -> str | None:
    zf = _open_zip(data)
    if zf is None:
        return None
    with zf:
        if MASTER_KEYWORDS not in _keywords(zf):
            return None
        book = _part(zf, "xl/workbook.xml") or ""
        sheets = {html.unescape(s) for s in re.findall(r'<sheet\b[^>]*\bname="([^"]*)"', book)}
        if not all(s in sheets for s in MASTER_SHEETS):
            return None
    rid = _master_raccolta(data)
    if rid == r.id:
        return MOTIVO_MASTER
    which = f" (raccolta {rid})" if rid else ""
    return (
        f"cartella di lavoro riepilogativa di piano-abitativo{which}, "
        "non è la risposta di un ente: non importata"
    )


def _master_raccolta(data: bytes) -> str | None:
    """The raccolta id written on the master's Cruscotto, beside «Raccolta»."""
    import python_calamine as pc

    try:
        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
        rows = wb.get_sheet_by_name(MASTER_SHEETS[0]).to_python(nrows=12)
    except Exception:  # calamine raises its own errors for damaged parts
        return None
    for row in rows:
        if len(row) > 1 and str(row[0]).strip() == _RACCOLTA_LABEL:
            return str(row[1]).strip() or None
    return None


def _own_document(r: Raccolta, suffix: str, data: bytes, source: Path | None) -> str | None:
    if source is not None:
        try:
            source.resolve().relative_to((r.path / DOCUMENT_DIR).resolve())
        except (OSError, ValueError):
            pass
        else:
            return MOTIVO_DOCUMENT
    if suffix == ".docx" and data.startswith(b"PK"):
        zf = _open_zip(data)
        if zf is not None:
            with zf:
                if DOCUMENT_KEYWORDS in _keywords(zf):
                    return MOTIVO_OTHER_DOCUMENT
    return None
