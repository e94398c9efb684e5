"""Reading returned workbooks (.xlsx, .xlsm, .xls, .ods) by field name.

The reader never raises on bad input: everything it finds wrong is a `Problem`. It
refuses dangerous files (zip bombs, oversized files) before decompressing them, reads
values with python-calamine (a plain .xlsx, as Excel and LibreOffice save the template:
its two sheets straight from their XML, `xlsx_fast`, with the same values), and locates
each field by its workbook-level defined name,
cross-checked with the hidden key column of the template, so a clerk who inserts a row
gets either a correct reading or a clear error.

The work is split by concept: `safety` (what is refused before parsing), `parts`
(defined names, formula cells, where each field is), `interpret` (what clerks type),
`cells` (what a reading is made of). The fields come from the schema given.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.schema import SCHEMA, Schema
from piano_abitativo.reading.cells import RawCell, Reading, a1, col_letter, parse_a1
from piano_abitativo.reading.parts import read_grid
from piano_abitativo.reading.safety import (
    MAX_FILE_BYTES,
    MAX_MEMBERS,
    MAX_RATIO,
    MAX_UNCOMPRESSED_BYTES,
    OLE_MAGIC,
    ZIP_MAGIC,
    inspect_ole,
    inspect_zip,
    not_a_workbook,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_MEMBERS",
    "MAX_RATIO",
    "MAX_UNCOMPRESSED_BYTES",
    "RawCell",
    "Reading",
    "a1",
    "col_letter",
    "iter_workbook_files",
    "parse_a1",
    "read_bytes",
    "read_workbook",
]

# --- entry point --------------------------------------------------------------------


def read_workbook(
    path: Path | str, *, display_name: str | None = None, schema: Schema = SCHEMA
) -> Reading:
    """Read a returned workbook made for `schema`. Never raises for bad content."""
    path = Path(path)
    name = display_name or path.name
    rd = Reading(file=name)
    try:
        size = path.stat().st_size
        if not path.is_file():
            rd.add("F01", f"{name} non è un file")
            return rd
    except OSError as exc:
        rd.add("F01", f"Impossibile leggere il file: {os_reason(exc)}")
        return rd
    if size == 0:
        rd.add("F07")
        return rd
    if size > MAX_FILE_BYTES:
        rd.add(
            "F06",
            f"Il file pesa {size / 1048576:.1f} MB, oltre il limite di "
            f"{MAX_FILE_BYTES // 1048576} MB per un modello compilato",
            value=size,
        )
        return rd
    try:
        data = path.read_bytes()
    except OSError as exc:
        rd.add("F01", f"Impossibile leggere il file: {os_reason(exc)}")
        return rd
    return read_bytes(data, name, schema)


def read_bytes(data: bytes, name: str, schema: Schema = SCHEMA) -> Reading:
    """Read a workbook held in memory (an e-mail attachment, an archived file)."""
    rd = Reading(file=name)
    try:
        _read(data, rd, schema)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # last line of defence: a report, never a traceback
        # (a panic inside calamine is a pyo3 PanicException, a BaseException)
        rd.add("F03", f"Il file non si può leggere: {type(exc).__name__}", value=str(exc)[:200])
        rd.readable = False
    return rd


def _read(data: bytes, rd: Reading, schema: Schema) -> None:
    if not data:
        rd.add("F07")
        return
    if len(data) > MAX_FILE_BYTES:
        rd.add("F06", value=len(data))
        return
    head = data[:8]
    names: dict[str, str] | None = None
    formulas: set[str] | None = None
    if head.startswith(ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        opened = inspect_zip(data, rd, schema)
        if opened is None:
            return
        names, formulas = opened.names, opened.formulas
        if opened.book is not None:  # a plain .xlsx: its two sheets are already read
            read_grid(opened.book, rd, names, formulas, schema)
            return
    elif head == OLE_MAGIC:
        if not inspect_ole(data, rd, schema):
            return
        rd.format = "xls"
    else:
        not_a_workbook(data, rd)
        return
    import python_calamine as pc  # only for the files the fast path does not read

    try:
        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except pc.PasswordError:
        rd.add("F04")
        return
    except Exception as exc:
        rd.add(
            "F03",
            "Il file è danneggiato e non si può aprire come cartella di lavoro",
            value=str(exc)[:200],
        )
        return
    try:
        read_grid(wb, rd, names, formulas, schema)
    finally:
        wb.close()


def iter_workbook_files(paths: list[Path]) -> Iterator[Path]:
    """Files named on the command line, folders expanded (hidden and temp files skipped)."""
    for p in paths:
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if (
                    child.is_file()
                    and not child.name.startswith((".", "~$"))
                    and (child.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"))
                ):
                    yield child
        else:
            yield p
