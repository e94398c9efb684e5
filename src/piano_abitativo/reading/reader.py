"""Reading returned workbooks (.xlsx, .xlsm, .xls, .ods) by field name.

The reader never raises on bad input: everything it finds wrong is a `Problem`. It
refuses dangerous files (zip bombs, oversized files) before decompressing them, reads
values with python-calamine, and locates each field by its workbook-level defined name,
cross-checked with the hidden key column of the template, so a clerk who inserts a row
gets either a correct reading or a clear error.
"""

from __future__ import annotations

import functools
import io
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import python_calamine as pc

from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.layout import KEY_HEADER, LAYOUT, NOT_APPLICABLE, VALUE_HEADER
from piano_abitativo.core.problems import Problem, Severity, problem
from piano_abitativo.core.schema import (
    FIELDS,
    SHEET_META,
    SHEET_SCHEDA,
    TEMPLATE_MARK,
    Field,
    Kind,
    Role,
)

#: Limits that make hostile files harmless (a filled template is ~20 KB).
MAX_FILE_BYTES = 15 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 60 * 1024 * 1024
MAX_RATIO = 150  # a member that inflates more than this (and beyond 1 MB) is a bomb
MAX_MEMBERS = 2000

#: members whose compressed size could hide more than a few MB are inflated once,
#: in bounded chunks, to check they are no larger than they declare
_VERIFY_ABOVE = 4096
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"


@dataclass(frozen=True)
class RawCell:
    """Where a field was read and what was in the cell."""

    field: str
    sheet: str
    cell: str
    raw: Any


@dataclass
class Reading:
    """The outcome of reading one file: typed values, their cells and the problems."""

    file: str
    format: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    cells: dict[str, RawCell] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    readable: bool = False  # the fields could be located and read

    def cell_of(self, field_id: str) -> str | None:
        c = self.cells.get(field_id)
        return c.cell if c else None

    def add(self, code: str, message: str | None = None, **kw: Any) -> None:
        self.problems.append(problem(code, self.file, message, **kw))


def col_letter(col: int) -> str:
    s = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        s = chr(65 + rem) + s
    return s


def a1(row: int, col: int) -> str:
    return f"{col_letter(col)}{row + 1}"


_A1 = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")


@functools.lru_cache(maxsize=4096)
def parse_a1(ref: str) -> tuple[int, int] | None:
    m = _A1.match(ref.strip().upper())
    if not m:
        return None
    col = 0
    for ch in m.group(1):
        col = col * 26 + (ord(ch) - 64)
    return int(m.group(2)) - 1, col - 1


# --- entry point --------------------------------------------------------------------


def read_workbook(path: Path | str, *, display_name: str | None = None) -> Reading:
    """Read a returned workbook. Never raises for bad content."""
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
    return read_bytes(data, name)


def read_bytes(data: bytes, name: str) -> Reading:
    """Read a workbook held in memory (an e-mail attachment, an archived file)."""
    rd = Reading(file=name)
    try:
        _read(data, rd)
    except Exception as exc:  # last line of defence: a report, never a traceback
        rd.add("F03", f"Il file non si può leggere: {type(exc).__name__}", value=str(exc)[:200])
        rd.readable = False
    return rd


def _read(data: bytes, rd: Reading) -> None:
    if not data:
        rd.add("F07")
        return
    if len(data) > MAX_FILE_BYTES:
        rd.add("F06", value=len(data))
        return
    head = data[:8]
    names: dict[str, str] | None = None
    formulas: set[str] | None = None
    if head.startswith(_ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        opened = _inspect_zip(data, rd)
        if opened is None:
            return
        names, formulas = opened
    elif head == _OLE_MAGIC:
        if not _inspect_ole(data, rd):
            return
        rd.format = "xls"
    else:
        _not_a_workbook(data, rd)
        return
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
        _read_grid(wb, rd, names, formulas)
    finally:
        wb.close()


def _not_a_workbook(data: bytes, rd: Reading) -> None:
    kinds = {
        b"%PDF": "un documento PDF",
        b"\x89PNG": "un'immagine PNG",
        b"\xff\xd8\xff": "un'immagine JPEG",
        b"{\\rtf": "un documento RTF",
        b"<html": "una pagina web",
        b"<!DOC": "una pagina web",
    }
    what = next((v for k, v in kinds.items() if data.startswith(k)), None)
    if what is None and b"," in data[:2000] and b"\x00" not in data[:2000]:
        what = "un file di testo (forse CSV)"
    msg = (
        f"Il file è {what}, non una cartella di lavoro"
        if what
        else ("Il file non è una cartella di lavoro Excel o LibreOffice")
    )
    rd.add("F02", msg)


def _inspect_ole(data: bytes, rd: Reading) -> bool:
    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception:
        rd.add("F03", "Il file (formato Office binario) è danneggiato")
        return False
    try:
        streams = {"/".join(s) for s in ole.listdir(streams=True, storages=True)}
        if "EncryptionInfo" in streams or "EncryptedPackage" in streams:
            rd.add("F04")
            return False
        book = "Workbook" if "Workbook" in streams else "Book" if "Book" in streams else None
        if book is None:
            if "WordDocument" in streams:
                rd.add("F02", "Il file è un documento Word, non una cartella di lavoro")
            else:
                rd.add("F02")
            return False
        if any(s.startswith("_VBA_PROJECT_CUR") for s in streams):
            rd.add("F05", "Il file .xls contiene macro (non vengono eseguite)")
        stream = ole.openstream(book).read(4096)
        if _xls_has_filepass(stream):
            rd.add("F04")
            return False
        return True
    finally:
        ole.close()


def _xls_has_filepass(stream: bytes) -> bool:
    """True when the BIFF globals declare encryption (FILEPASS record, 0x002F)."""
    pos = 0
    for _ in range(64):
        if pos + 4 > len(stream):
            return False
        rtype = int.from_bytes(stream[pos : pos + 2], "little")
        size = int.from_bytes(stream[pos + 2 : pos + 4], "little")
        if rtype == 0x002F:
            return True
        if rtype == 0x0085:  # BOUNDSHEET: past the point where FILEPASS can be
            return False
        pos += 4 + size
    return False


def _inspect_zip(data: bytes, rd: Reading) -> tuple[dict[str, str], set[str]] | None:
    """Check the archive is a sane spreadsheet; return (defined names, formula cells)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError):
        rd.add("F03", "Il file è danneggiato o incompleto (archivio compresso non valido)")
        return None
    if len(infos) > MAX_MEMBERS:
        rd.add("F06", f"L'archivio contiene {len(infos)} parti", value=len(infos))
        return None
    total = 0
    inflated: dict[str, bytes] = {}
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if total > MAX_UNCOMPRESSED_BYTES or (info.file_size > 1_048_576 and ratio > MAX_RATIO):
            rd.add(
                "F06",
                "Il file decompresso sarebbe enorme (possibile «zip bomb»): "
                "rifiutato senza aprirlo",
                value=info.filename,
            )
            return None
        if info.flag_bits & 0x1:
            rd.add("F04", "Il file contiene parti cifrate")
            return None
        if info.compress_size > _VERIFY_ABOVE:
            body = _inflate_bounded(data, info)
            if body is None:
                rd.add(
                    "F06",
                    "Una parte del file non si decomprime nella dimensione "
                    "dichiarata (possibile «zip bomb» o file alterato): rifiutato",
                    value=info.filename,
                )
                return None
            inflated[info.filename] = body
    members = {i.filename for i in infos}
    try:
        if "xl/workbook.xml" in members:
            rd.format = "xlsm" if "xl/vbaProject.bin" in members else "xlsx"
            if "xl/vbaProject.bin" in members:
                rd.add("F05")
            return _xlsx_names_formulas(zf, members, inflated)
        if "mimetype" in members and zf.read("mimetype").strip().startswith(_ODS_MIME):
            rd.format = "ods"
            manifest = (
                zf.read("META-INF/manifest.xml") if ("META-INF/manifest.xml" in members) else b""
            )
            if b"encryption-data" in manifest:
                rd.add("F04")
                return None
            if any(
                m.startswith("Basic/")
                and m.endswith(".xml")
                and not m.endswith(
                    ("script-lc.xml", "script-lb.xml", "dialog-lc.xml", "dialog-lb.xml")
                )
                for m in members
            ):
                rd.add("F05", "Il file .ods contiene macro (non vengono eseguite)")
            return _ods_names_formulas(inflated.get("content.xml") or zf.read("content.xml"))
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        KeyError,
        ET.ParseError,
        ValueError,
        RuntimeError,
    ) as exc:
        rd.add("F03", "Il file è danneggiato o incompleto", value=str(exc)[:200])
        return None
    if "word/document.xml" in members:
        rd.add("F02", "Il file è un documento Word, non una cartella di lavoro")
    elif any(m.startswith("ppt/") for m in members):
        rd.add("F02", "Il file è una presentazione, non una cartella di lavoro")
    elif "mimetype" in members:
        rd.add("F02", "Il file è un documento OpenDocument ma non un foglio di calcolo")
    else:
        rd.add("F02", "Il file è un archivio .zip, non una cartella di lavoro")
    return None


def _inflate_bounded(data: bytes, info: zipfile.ZipInfo) -> bytes | None:
    """The member's bytes, or None when it does not inflate to exactly its declared size
    (with the declared CRC). Reads the raw stream itself, with output bounded by the
    declared size: zipfile would silently stop at the declared size."""
    off = info.header_offset
    if data[off : off + 4] != _ZIP_MAGIC:
        return None
    name_len, extra_len = struct.unpack_from("<HH", data, off + 26)
    start = off + 30 + name_len + extra_len
    raw = data[start : start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        out = raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            out = zlib.decompressobj(-15).decompress(raw, info.file_size + 1)
        except zlib.error:
            return None
    else:
        return None
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        return None
    return out


_DEFINED = re.compile(rb"<definedName\b([^>]*)>([^<]*)</definedName>")
_ATTR_NAME = re.compile(rb'\bname="([^"]+)"')
_SHEET = re.compile(rb'<sheet\b[^>]*?\bname="([^"]+)"[^>]*?\br:id="([^"]+)"')
_REL = re.compile(rb'<Relationship\b[^>]*?\bId="([^"]+)"[^>]*?\bTarget="([^"]+)"')
_REL2 = re.compile(rb'<Relationship\b[^>]*?\bTarget="([^"]+)"[^>]*?\bId="([^"]+)"')
# in OOXML the formula <f> is always the first child of its cell <c>
_CELL_WITH_F = re.compile(rb'<c\b[^>]*?\br="([A-Z]+\d+)"[^>]*?(?<!/)>\s*<f\b')


def _xml_unescape(b: bytes) -> str:
    return (
        b.decode("utf-8")
        .replace("&apos;", "'")
        .replace("&quot;", '"')
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )


def _xlsx_names_formulas(
    zf: zipfile.ZipFile, members: set[str], inflated: dict[str, bytes]
) -> tuple[dict[str, str], set[str]]:
    wbxml = inflated.get("xl/workbook.xml") or zf.read("xl/workbook.xml")
    names: dict[str, str] = {}
    for attrs, ref in _DEFINED.findall(wbxml):
        if b"localSheetId" in attrs:
            continue
        m = _ATTR_NAME.search(attrs)
        if m:
            names[m.group(1).decode("utf-8")] = _xml_unescape(ref)
    formulas: set[str] = set()
    sheets = {_xml_unescape(n): rid for n, rid in _SHEET.findall(wbxml)}
    rid = sheets.get(SHEET_SCHEDA)
    if rid and "xl/_rels/workbook.xml.rels" in members:
        rels_xml = zf.read("xl/_rels/workbook.xml.rels")
        rels = {i: t for i, t in _REL.findall(rels_xml)}
        rels.update({i: t for t, i in _REL2.findall(rels_xml)})
        target = rels.get(rid, b"").decode("utf-8")
        target = target.lstrip("/") if target.startswith("/") else "xl/" + target
        if target in members:
            sheet = inflated.get(target) or zf.read(target)
            formulas = {m.decode() for m in _CELL_WITH_F.findall(sheet)}
    return names, formulas


_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"


def _ods_names_formulas(content: bytes) -> tuple[dict[str, str], set[str]]:
    names: dict[str, str] = {}
    formulas: set[str] = set()
    in_scheda = False
    row = 0
    col = 0
    depth_table = 0
    if b"<!DOCTYPE" in content[:4096] or b"<!ENTITY" in content:
        # LibreOffice never writes a DTD: entity tricks (billion laughs) are refused
        raise ValueError("content.xml con DTD o entità: rifiutato")
    parser = ET.iterparse(io.BytesIO(content), events=("start", "end"))  # noqa: S314
    for event, el in parser:
        tag = el.tag
        if event == "start":
            if tag == _TABLE + "table":
                depth_table += 1
                in_scheda = el.get(_TABLE + "name") == SHEET_SCHEDA and depth_table == 1
                row = 0
            elif in_scheda and tag == _TABLE + "table-row":
                col = 0
            elif (
                in_scheda
                and tag in (_TABLE + "table-cell", _TABLE + "covered-table-cell")
                and el.get(_TABLE + "formula")
            ):
                formulas.add(a1(row, col))
        else:
            if tag == _TABLE + "table":
                depth_table -= 1
                in_scheda = False
            elif in_scheda and tag == _TABLE + "table-row":
                row += int(el.get(_TABLE + "number-rows-repeated", "1"))
            elif in_scheda and tag in (_TABLE + "table-cell", _TABLE + "covered-table-cell"):
                col += int(el.get(_TABLE + "number-columns-repeated", "1"))
            elif tag == _TABLE + "named-range":
                nm = el.get(_TABLE + "name")
                ref = el.get(_TABLE + "cell-range-address")
                if nm and ref:
                    names[nm] = ref
            if tag != _TABLE + "table":
                el.clear()
    return names, formulas


def _parse_ref(ref: str) -> tuple[str, str] | None:
    """'Scheda!$D$10' (OOXML) or '$Scheda.$D$10' (ODF) -> ('Scheda', 'D10')."""
    ref = ref.strip().lstrip("=")
    if "!" in ref:
        sheet, _, cell = ref.rpartition("!")
    elif "." in ref:
        sheet, _, cell = ref.rpartition(".")
    else:
        return None
    sheet = sheet.lstrip("$").strip("'").replace("''", "'")
    cell = cell.replace("$", "")
    if ":" in cell or parse_a1(cell) is None:
        return None
    return sheet, cell


# --- the grid -----------------------------------------------------------------------


def _grid(wb: Any, sheet: str) -> list[list[Any]]:
    rows: list[list[Any]] = wb.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    return rows


def _at(grid: list[list[Any]], row: int, col: int) -> Any:
    if 0 <= row < len(grid) and 0 <= col < len(grid[row]):
        return grid[row][col]
    return ""


def _read_grid(
    wb: Any, rd: Reading, names: dict[str, str] | None, formulas: set[str] | None
) -> None:
    sheets = list(wb.sheet_names)
    has_scheda = SHEET_SCHEDA in sheets
    if SHEET_META in sheets:
        for r in _grid(wb, SHEET_META)[1:]:
            if len(r) >= 2 and isinstance(r[0], str) and r[0]:
                rd.metadata[r[0].strip()] = _as_text(r[1])
    if not has_scheda:
        if rd.metadata.get("modello") == TEMPLATE_MARK:
            rd.add(
                "M02",
                f'Manca il foglio "{SHEET_SCHEDA}" con i dati',
                sheet=SHEET_SCHEDA,
                value=", ".join(sheets),
            )
        else:
            rd.add(
                "M01",
                'Il file non contiene il foglio "Scheda" del modello del Piano annuale',
                value=", ".join(sheets),
            )
        return
    if SHEET_META not in sheets:
        rd.add(
            "M02",
            f'Manca il foglio nascosto "{SHEET_META}" con i dati del modello: '
            "l'ente è riconosciuto dal codice nella scheda",
            sheet=SHEET_META,
            severity=Severity.AVVISO,
            hint="Compilare il modello originale senza copiarne i dati in un altro file.",
        )
    elif rd.metadata.get("modello") != TEMPLATE_MARK:
        rd.add("M01", "Il foglio nascosto del modello non è riconosciuto", sheet=SHEET_META)
        return
    grid = _grid(wb, SHEET_SCHEDA)
    _locate_and_read(grid, rd, names, formulas)


def _key_index(grid: list[list[Any]]) -> tuple[dict[str, tuple[int, int]], tuple[int, int] | None]:
    """Field id -> (row, col) of its key cell; and (row, col) of the key header."""
    found: dict[str, tuple[int, int]] = {}
    header: tuple[int, int] | None = None
    ids = {f.id for f in FIELDS}
    for r, row in enumerate(grid):
        for c in range(min(len(row), 6)):
            v = row[c]
            if isinstance(v, str) and v:
                if v in ids and v not in found:
                    found[v] = (r, c)
                elif v == KEY_HEADER and header is None:
                    header = (r, c)
    return found, header


_EXPECTED = {f.id: LAYOUT.cell(f.id) for f in FIELDS}


def _locate_and_read(
    grid: list[list[Any]], rd: Reading, names: dict[str, str] | None, formulas: set[str] | None
) -> None:
    keys, header = _key_index(grid)
    shifted = False
    ok = True
    value_col: int | None = None
    if header is not None:
        row = grid[header[0]]
        value_col = next((c for c in range(len(row)) if row[c] == VALUE_HEADER), None)
    for f in FIELDS:
        expected = _EXPECTED[f.id]
        key = keys.get(f.id)
        loc: tuple[int, int] | None = None
        if names is not None:
            ref = names.get(f.id)
            parsed = _parse_ref(ref) if ref else None
            if parsed is None:
                rd.add(
                    "M03",
                    f'Manca il nome definito "{f.id}" ({f.label})',
                    field=f.id,
                    sheet=SHEET_SCHEDA,
                )
                ok = False
                continue
            sheet, cell = parsed
            pos = parse_a1(cell)
            if sheet != SHEET_SCHEDA or pos is None:
                rd.add(
                    "M03",
                    f'Il nome definito "{f.id}" punta a {ref}, fuori dal foglio "{SHEET_SCHEDA}"',
                    field=f.id,
                    value=ref,
                )
                ok = False
                continue
            if key is None or key[0] != pos[0] or value_col != pos[1]:
                rd.add(
                    "M05",
                    f'La cella del campo "{f.label}" ({cell}) non corrisponde '
                    "alla struttura del modello",
                    sheet=SHEET_SCHEDA,
                    cell=cell,
                    field=f.id,
                )
                ok = False
                continue
            loc = pos
        else:
            if key is None:
                rd.add(
                    "M03",
                    f'Campo "{f.label}" non trovato nel foglio "{SHEET_SCHEDA}"',
                    field=f.id,
                    sheet=SHEET_SCHEDA,
                )
                ok = False
                continue
            if header is None or value_col is None or header[1] != key[1]:
                rd.add(
                    "M05",
                    "Colonne del modello spostate: intestazione «Valore» non trovata",
                    sheet=SHEET_SCHEDA,
                    field=f.id,
                )
                ok = False
                continue
            loc = (key[0], value_col)
        cell = a1(*loc)
        if cell != expected:
            shifted = True
        raw = _at(grid, *loc)
        rd.cells[f.id] = RawCell(f.id, SHEET_SCHEDA, cell, raw)
        if formulas is not None:
            has_formula = cell in formulas
            if f.role is Role.FORMULA and not has_formula:
                rd.add(
                    "M13",
                    f'La cella calcolata "{f.label}" è stata sovrascritta con un valore',
                    sheet=SHEET_SCHEDA,
                    cell=cell,
                    field=f.id,
                    value=raw,
                )
            elif f.role is not Role.FORMULA and has_formula:
                rd.add(
                    "M11",
                    f'Nella cella "{f.label}" c\'è una formula invece di un valore',
                    sheet=SHEET_SCHEDA,
                    cell=cell,
                    field=f.id,
                    value=raw,
                )
    if shifted and ok:
        rd.add("M04", sheet=SHEET_SCHEDA)
    rd.readable = ok
    if ok:
        _interpret(rd)


# --- tolerant interpretation of what clerks type ----------------------------------

_INT_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+$")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")
_YES = {"SI", "SÌ", "SÍ", "S", "Y", "YES", "X", "VERO", "TRUE"}
_NO = {"NO", "N", "FALSO", "FALSE"}


def _as_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _parse_number_text(text: str, *, kind: Kind) -> float | None:
    t = text.replace("\u00a0", " ").strip().replace(" ", "")
    value: float | None = None
    if kind is Kind.COUNT and _INT_THOUSANDS.match(t):
        value = float(t.replace(".", ""))
    elif _NUMBER.match(t):
        value = float(t.replace(",", "."))
    return value if value is not None and math.isfinite(value) else None


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _interpret(rd: Reading) -> None:
    tipo = rd.metadata.get("ente_tipo", "")
    for f in FIELDS:
        rc = rd.cells.get(f.id)
        if rc is None:
            continue
        rd.values[f.id] = _interpret_one(rd, f, rc, tipo)


def _interpret_one(rd: Reading, f: Field, rc: RawCell, tipo: str) -> Any:
    raw = rc.raw
    where = {"sheet": rc.sheet, "cell": rc.cell, "field": f.id}
    if isinstance(raw, str):
        raw_s = raw.strip()
        if raw_s == "":
            raw = None
        elif f.comuni_only and raw_s.casefold() == NOT_APPLICABLE and tipo == "ALER":
            return None
    if raw is None or raw == "":
        if f.role is Role.INPUT and f.kind is Kind.COUNT:
            rd.add("L04", f"{f.header}: cella vuota, considerata 0", value=None, **where)
            return 0
        return None
    if f.kind in (Kind.COUNT, Kind.PERCENT, Kind.YEAR):
        return _interpret_number(rd, f, raw, where)
    if f.kind is Kind.YESNO:
        text = _as_text(raw).upper() if not isinstance(raw, bool) else ("SI" if raw else "NO")
        if isinstance(raw, str) and raw.strip() in ("SI", "NO"):
            return raw.strip()
        if text in _YES or text in _NO:
            value = "SI" if text in _YES else "NO"
            rd.add("L02", f"{f.header}: «{_as_text(raw)}» letto come {value}", value=raw, **where)
            return value
        rd.add(
            "L06",
            f"{f.header}: «{_as_text(raw)}» non è una risposta valida (attesi SI o NO)",
            value=raw,
            **where,
        )
        return None
    if f.kind is Kind.CODE:
        text = _as_text(raw)
        if text.isdigit() and len(text) < 6 and tipo != "ALER":
            text = text.zfill(6)
        return text
    text = _as_text(raw)
    if f.max_length and len(text) > f.max_length:
        rd.add(
            "L07",
            f"{f.header}: testo di {len(text)} caratteri, troncato a {f.max_length}",
            value=text[:50] + "…",
            **where,
        )
        text = text[: f.max_length]
    return text


def _interpret_number(rd: Reading, f: Field, raw: Any, where: dict[str, Any]) -> Any:
    if isinstance(raw, bool):
        rd.add(
            "L05",
            f"{f.header}: valore logico ({'VERO' if raw else 'FALSO'}) invece di un numero",
            value=raw,
            **where,
        )
        return None
    if isinstance(raw, int | float):
        value = float(raw)
        if math.isnan(value) or math.isinf(value):
            rd.add("L05", f"{f.header}: valore non numerico", value=str(raw), **where)
            return None
        if f.kind is Kind.PERCENT and 0 < value < 1:
            rd.add(
                "L03",
                f"{f.header}: {_fmt(value)} letto come frazione, cioè {_fmt(value * 100)}%",
                value=raw,
                **where,
            )
            return _num(round(value * 100, 6))
        return _num(value)
    if not isinstance(raw, str):
        # dates, times, durations typed in a number cell
        rd.add("L05", f"{f.header}: «{raw}» non è un numero", value=str(raw), **where)
        return None
    text = raw.strip()
    if f.kind is Kind.PERCENT and text.endswith("%"):
        parsed = _parse_number_text(text[:-1], kind=f.kind)
        if parsed is not None:
            rd.add("L03", f"{f.header}: «{text}» letto come {_fmt(parsed)}%", value=raw, **where)
            return _num(parsed)
    parsed = _parse_number_text(text, kind=f.kind)
    if parsed is None:
        rd.add("L05", f"{f.header}: «{_short(text)}» non è un numero", value=raw, **where)
        return None
    if f.kind is Kind.PERCENT and 0 < parsed < 1:
        rd.add(
            "L03",
            f"{f.header}: «{text}» letto come frazione, cioè {_fmt(parsed * 100)}%",
            value=raw,
            **where,
        )
        return _num(round(parsed * 100, 6))
    rd.add(
        "L01",
        f"{f.header}: «{_short(text)}» scritto come testo, letto come {_fmt(parsed)}",
        value=raw,
        **where,
    )
    return _num(parsed)


def _fmt(v: float) -> str:
    return f"{v:g}".replace(".", ",")


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


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
