"""Bounded reading: the area of every sheet is checked before any parser sees it.

python-calamine builds a dense grid from the first to the last cell that holds a value:
one value at XFD1048576 asks for half a terabyte and aborts the process. So before
calamine opens a file, the cells that would be materialised are located by a bounded
scan of the sheet data (a regex over the decompressed XML, the BIFF records of an
.xls): no cell with a value may lie beyond the template's area plus a generous margin,
the grid they span must fit an absolute cell budget, and the scan itself stops after a
fixed number of cells, so the check is O(size) in time and needs no memory beyond the
bytes it scans.

What calamine does not materialise is not counted (measured with python-calamine):
empty cells (a self-closing `<c/>`, an .ods cell without value repeated 16384 times,
as LibreOffice writes at the end of every row; a BLANK record) and rows without cells.
"""

from __future__ import annotations

import operator
import re
import struct
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from piano_abitativo.core.layout import COL_HELP, layout_for
from piano_abitativo.core.schema import SCHEMA, Schema
from piano_abitativo.reading.cells import Reading, a1

#: rows and columns a clerk may add beyond the template's area (inserted rows, notes)
ROW_MARGIN = 4000
COL_MARGIN = 60
#: the largest grid (rows x columns) any sheet may span
CELL_BUDGET = 150_000
#: the most cell elements (or records) a scan looks at: a filled template has a few
#: hundred, so a file with more is refused and the scan stays well under a second
SCAN_BUDGET = 300_000


@dataclass(frozen=True)
class Area:
    """The largest sheet a return may have (0-based last row and column)."""

    last_row: int
    last_col: int

    @classmethod
    def of(cls, schema: Schema = SCHEMA) -> Area:
        return cls(layout_for(schema).last_row + ROW_MARGIN, COL_HELP + COL_MARGIN)


class OutOfArea(Exception):
    """A sheet holds a cell (or declares an area) beyond the template's area."""

    def __init__(self, message: str, sheet: str) -> None:
        super().__init__(message)
        self.message = message
        self.sheet = sheet


def _cell_name(row: int, col: int) -> str:
    if row > 99_999_999 or col > 99_999:
        return f"riga {row + 1}, colonna {col + 1}"
    return a1(row, col)


class _Extent:
    """The grid a sheet's cells span, checked as it grows."""

    def __init__(self, sheet: str, area: Area, budget: list[int] | None = None) -> None:
        self.sheet = sheet
        self.area = area
        self.max_row = -1
        self.max_col = -1
        #: cells scanned in the whole file (shared by its sheets)
        self.budget = budget if budget is not None else [0]

    def tick(self) -> None:
        self.budget[0] += 1
        if self.budget[0] > SCAN_BUDGET:
            raise OutOfArea(
                f"Il foglio «{self.sheet}» contiene più di {SCAN_BUDGET:,} celle".replace(",", ".")
                + ": il modello ne ha poche centinaia",
                self.sheet,
            )

    def cell(self, row: int, col: int, *, what: str = "cella") -> None:
        if row > self.area.last_row or col > self.area.last_col or row < 0 or col < 0:
            limit = a1(self.area.last_row, self.area.last_col)
            raise OutOfArea(
                f"{what} fuori dall'area del modello: {_cell_name(row, col)} nel foglio "
                f"«{self.sheet}» (il limite è {limit})",
                self.sheet,
            )
        self.max_row = max(self.max_row, row)
        self.max_col = max(self.max_col, col)
        if (self.max_row + 1) * (self.max_col + 1) > CELL_BUDGET:
            raise OutOfArea(
                f"Il foglio «{self.sheet}» occupa un'area di {self.max_row + 1} righe per "
                f"{self.max_col + 1} colonne, troppo grande per un modello compilato",
                self.sheet,
            )


def check_sheets(
    rd: Reading,
    scans: Iterable[tuple[str, str, bytes | Sequence[tuple[int, int]]]],
    schema: Schema,
) -> bool:
    """Run the scan of every (kind, sheet, data); add F06 and return False when one is
    out of the area. Kind "cells": the data are the (row, col) of the cells with a value
    of a sheet already read (`xlsx_fast`), in the order of the sheet."""
    area = Area.of(schema)
    budget = [0]
    try:
        for kind, sheet, data in scans:
            if not isinstance(data, bytes):
                check_cells(data, _Extent(sheet, area, budget))
            elif kind == "xlsx":
                scan_xlsx_sheet(data, _Extent(sheet, area, budget))
            elif kind == "ods":
                scan_ods_content(data, area, budget)
            else:
                scan_biff(data, area, budget)
    except OutOfArea as exc:
        message = exc.message[0].upper() + exc.message[1:]
        rd.add("F06", f"{message}: file rifiutato senza leggerlo", sheet=exc.sheet)
        return False
    return True


_second = operator.itemgetter(1)


def check_cells(cells: Sequence[tuple[int, int]], ext: _Extent) -> None:
    """The check of `scan_xlsx_sheet` on the cells of a sheet already located: each
    counts once in the budget; the first cell out of the area is the one reported."""
    ext.budget[0] += len(cells)
    if ext.budget[0] > SCAN_BUDGET:
        ext.budget[0] = SCAN_BUDGET
        ext.tick()  # raises
    if not cells:
        return
    max_row = max(cells)[0]
    max_col = max(map(_second, cells))
    inside = max_row <= ext.area.last_row and max_col <= ext.area.last_col
    positive = min(cells)[0] >= 0 and min(map(_second, cells)) >= 0
    if inside and positive and (max_row + 1) * (max_col + 1) <= CELL_BUDGET:
        ext.max_row, ext.max_col = max(ext.max_row, max_row), max(ext.max_col, max_col)
        return
    for row, col in cells:
        ext.cell(row, col)  # raises on the first cell that breaks a limit


# --- OOXML ------------------------------------------------------------------------------

_X_R = re.compile(rb"""(?:^|\s)r\s*=\s*["']([^"']*)["']""")
_X_REF = re.compile(rb"\$?([A-Za-z]{1,10})\$?(\d{1,12})")


def _ref(ref: bytes) -> tuple[int, int] | None:
    m = _X_REF.fullmatch(ref.strip())
    if not m:
        return None
    col = 0
    for ch in m.group(1).upper():
        col = col * 26 + (ch - 64)
    return int(m.group(2)) - 1, col - 1


#: a row, cell or dimension tag (its name with an optional prefix): closing slash, name,
#: attributes and, when `r` is the first attribute, its value (what `_X_R.search` would
#: find in the attributes); [^<>] keeps every match within one tag, so the scan is
#: linear even on garbage
_X_TAG_R = re.compile(
    rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|c|dimension)(?=[\s/>])"
    rb"""((?:\s+r\s*=\s*["']([^"'<>]*)["'])?[^<>]*)>"""
)


def scan_xlsx_sheet(data: bytes, ext: _Extent) -> None:
    """Check the <dimension>, <row r> and <c r> of one worksheet part.

    The loop keeps the extent in locals and leaves it to `_Extent` only to raise (with
    its messages): a filled template has a few hundred cells per sheet, every return is
    scanned, and the references of the template's cells are converted once."""
    row = -1
    col = -1
    last_row, last_col = ext.area.last_row, ext.area.last_col
    max_row, max_col = ext.max_row, ext.max_col
    scanned = ext.budget[0]
    search_r = _X_R.search
    refs = _REFS
    for closing, name, attrs, first_r in _X_TAG_R.findall(data):
        if closing:
            continue
        if name == b"c":
            scanned += 1
            if scanned > SCAN_BUDGET:
                ext.budget[0] = scanned - 1
                ext.tick()
            if first_r:
                ref: bytes | None = first_r
            else:
                found = search_r(attrs)
                ref = found.group(1) if found is not None else None
            if ref is not None:
                pos = refs.get(ref)
                if pos is None:
                    pos = _ref(ref)
                    if pos is None:
                        raise OutOfArea(
                            f"riferimento di cella non valido «{ref[:20].decode('latin-1')}» "
                            f"nel foglio «{ext.sheet}»",
                            ext.sheet,
                        )
                    if len(refs) < 65536:
                        refs[ref] = pos
                row, col = pos
            else:
                col += 1
                row = max(row, 0)
            if not attrs.endswith(b"/"):
                if row > last_row or col > last_col or row < 0 or col < 0:
                    ext.cell(row, col)  # raises
                if row > max_row:
                    max_row = row
                if col > max_col:
                    max_col = col
                if (max_row + 1) * (max_col + 1) > CELL_BUDGET:
                    ext.max_row, ext.max_col = max_row, max_col
                    ext.cell(row, col)  # raises
        elif name == b"row":
            r = search_r(attrs)
            # a row only places the cells that follow: by itself it is never materialised
            row = int(r.group(1)) - 1 if r and r.group(1).strip().isdigit() else row + 1
            col = -1
        else:
            ext.max_row, ext.max_col, ext.budget[0] = max_row, max_col, scanned
            ref_m = _X_R_REF.search(attrs)
            for part in ref_m.group(1).split(b":") if ref_m else []:
                pos = _ref(part)
                if pos is not None:
                    ext.cell(*pos, what="area dichiarata")
            max_row, max_col = ext.max_row, ext.max_col
    ext.max_row, ext.max_col, ext.budget[0] = max_row, max_col, scanned


#: cell references already converted (bounded: a hostile file may hold any)
_REFS: dict[bytes, tuple[int, int]] = {}


_X_R_REF = re.compile(rb"""(?:^|\s)ref\s*=\s*["']([^"']*)["']""")


# --- OpenDocument -----------------------------------------------------------------------

_O_TAG = re.compile(
    rb"<(/?)table:(table|table-row|table-cell|covered-table-cell)(?=[\s/>])([^<>]*)>"
)
_O_NAME = re.compile(rb"""table:name\s*=\s*["']([^"']*)["']""")
_O_ROWS = re.compile(rb"""number-rows-repeated\s*=\s*["']\s*(\d{1,12})""")
_O_COLS = re.compile(rb"""number-columns-repeated\s*=\s*["']\s*(\d{1,12})""")


def _repeat(pattern: re.Pattern[bytes], attrs: bytes) -> int:
    m = pattern.search(attrs)
    return max(int(m.group(1)), 1) if m else 1


def scan_ods_content(content: bytes, area: Area, budget: list[int]) -> None:
    """Check every table of content.xml: the cells with a value, their repeats included.

    python-calamine matches the literal `table:` names, so does this scan. A table
    nested in a cell goes on counting in its outer table (more, never less, than any
    reading of it)."""
    depth = 0
    ext = _Extent("?", area, budget)
    row = 0
    col = 0
    row_repeat = 1
    for m in _O_TAG.finditer(content):
        closing, name, attrs = m.group(1), m.group(2), m.group(3)
        empty = attrs.endswith(b"/")
        if name == b"table":
            if closing:
                depth = max(depth - 1, 0)
            elif not empty:
                if depth == 0:
                    nm = _O_NAME.search(attrs)
                    sheet = nm.group(1).decode("utf-8", "replace") if nm else "?"
                    ext = _Extent(_unescape(sheet), area, ext.budget)
                    row = 0
                depth += 1
            continue
        if name == b"table-row":
            if closing:
                row += row_repeat
                row_repeat = 1
            elif empty:  # a row without cells
                row += _repeat(_O_ROWS, attrs)
            else:
                ext.tick()
                row_repeat = _repeat(_O_ROWS, attrs)
                col = 0
            continue
        if closing:
            continue
        ext.tick()
        repeat = _repeat(_O_COLS, attrs)
        if not empty or b"value-type" in attrs or b"formula" in attrs:
            ext.cell(row + row_repeat - 1, col + repeat - 1)
        col += repeat


def _unescape(s: str) -> str:
    return (
        s.replace("&apos;", "'")
        .replace("&quot;", '"')
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )


# --- BIFF (.xls) --------------------------------------------------------------------------

#: records of a cell with a value: row and column in the first 4 bytes (BIFF2-8)
_BIFF_VALUE = {
    0x0203,  # NUMBER
    0x00FD,  # LABELSST
    0x027E,  # RK
    0x0205,  # BOOLERR
    0x0006,  # FORMULA
    0x0206,  # FORMULA (BIFF3)
    0x0406,  # FORMULA (BIFF4)
    0x0204,  # LABEL
    0x00D6,  # RSTRING
    0x0003,  # NUMBER (BIFF2)
    0x0004,  # LABEL (BIFF2)
    0x0005,  # BOOLERR (BIFF2)
    0x007E,  # RK (BIFF2)
}
_BIFF_MULRK = 0x00BD
_BIFF_DIMENSIONS = (0x0200, 0x0000)
_BIFF_BOF = (0x0809, 0x0409, 0x0209, 0x0009)
_BIFF_BOUNDSHEET = 0x0085


def scan_biff(stream: bytes, area: Area, budget: list[int]) -> None:
    """Check the DIMENSIONS and every value record of every sheet of a Workbook stream."""
    names: dict[int, str] = {}
    ext = _Extent("?", area, budget)
    pos = 0
    n = len(stream)
    while pos + 4 <= n:
        rtype, size = struct.unpack_from("<HH", stream, pos)
        body = stream[pos + 4 : pos + 4 + size]
        if rtype == _BIFF_BOUNDSHEET and len(body) >= 8:
            names[struct.unpack_from("<I", body)[0]] = _biff_sheet_name(body)
        elif rtype in _BIFF_BOF:
            ext = _Extent(names.get(pos, "?"), area, ext.budget)
        elif rtype in _BIFF_VALUE and len(body) >= 4:
            ext.tick()
            r, c = struct.unpack_from("<HH", body)
            ext.cell(r, c)
        elif rtype == _BIFF_MULRK and len(body) >= 6:
            ext.tick()
            r, c = struct.unpack_from("<HH", body)
            last = struct.unpack_from("<H", body, len(body) - 2)[0]
            ext.cell(r, max(c, last))
        elif rtype in _BIFF_DIMENSIONS and len(body) >= 8:
            if len(body) >= 14:  # BIFF8: rows as 32-bit numbers
                r0, r1, c0, c1 = struct.unpack_from("<IIHH", body)
            else:
                r0, r1, c0, c1 = struct.unpack_from("<HHHH", body)
            if r1 > r0 and c1 > c0:
                ext.cell(r1 - 1, c1 - 1, what="area dichiarata")
        pos += 4 + size


def _biff_sheet_name(body: bytes) -> str:
    """The name in a BIFF8 BOUNDSHEET record (BIFF5: 8-bit, no flags byte)."""
    if len(body) < 8:
        return "?"
    cch = body[6]
    if len(body) >= 8 + cch and body[7] in (0, 1):
        raw = body[8:]
        if body[7] == 1:
            return raw[: 2 * cch].decode("utf-16-le", "replace")
        return raw[:cch].decode("latin-1")
    return body[7 : 7 + cch].decode("latin-1", "replace")


# --- which parts hold the sheets --------------------------------------------------------

_WB_SHEET = re.compile(rb"<(?:\w+:)?sheet\b([^<>]*)>")
_WB_NAME = re.compile(rb"""\bname\s*=\s*["']([^"']*)["']""")
_WB_RID = re.compile(rb"""\br:id\s*=\s*["']([^"']*)["']""")
_REL = re.compile(rb"<(?:\w+:)?Relationship\b([^<>]*)>")
_REL_ID = re.compile(rb"""\bId\s*=\s*["']([^"']*)["']""")
_REL_TARGET = re.compile(rb"""\bTarget\s*=\s*["']([^"']*)["']""")
_REL_TYPE = re.compile(rb"""\bType\s*=\s*["']([^"']*)["']""")


def workbook_sheets(wb: bytes, rels: bytes) -> list[tuple[str, str]]:
    """(sheet name, part) of every sheet the workbook names whose relationship is found,
    in the workbook's order."""
    targets: dict[bytes, str] = {}
    for attrs in _REL.findall(rels):
        i, t = _REL_ID.search(attrs), _REL_TARGET.search(attrs)
        if i and t:
            tgt = t.group(1).decode("utf-8", "replace")
            targets[i.group(1)] = tgt.lstrip("/") if tgt.startswith("/") else "xl/" + tgt
    out: list[tuple[str, str]] = []
    for attrs in _WB_SHEET.findall(wb):
        nm, rid = _WB_NAME.search(attrs), _WB_RID.search(attrs)
        if nm and rid and rid.group(1) in targets:
            out.append((_unescape(nm.group(1).decode("utf-8", "replace")), targets[rid.group(1)]))
    return out


def workbook_part(rels: bytes, kind: str) -> str | bool | None:
    """The part of the workbook's relationship of `kind` ("sharedStrings", "styles"):
    its name, None when there is none, False when there are several."""
    found: list[str] = []
    for attrs in _REL.findall(rels):
        ty, t = _REL_TYPE.search(attrs), _REL_TARGET.search(attrs)
        if ty and t and ty.group(1).decode("utf-8", "replace").endswith("/" + kind):
            tgt = t.group(1).decode("utf-8", "replace")
            found.append(tgt.lstrip("/") if tgt.startswith("/") else "xl/" + tgt)
    if len(found) > 1:
        return False
    return found[0] if found else None


def xlsx_sheet_parts(
    zf: zipfile.ZipFile, members: set[str], inflated: dict[str, bytes]
) -> list[tuple[str, str, bytes | Sequence[tuple[int, int]]]]:
    """("xlsx", sheet name, part) for every part that holds sheet data: the sheets named
    by the workbook, and any other part with a <sheetData> (a parser may follow
    relationships this reading does not)."""
    try:
        wb = inflated.get("xl/workbook.xml") or zf.read("xl/workbook.xml")
        rels = (inflated.get(_RELS) or zf.read(_RELS)) if _RELS in members else b""
    except KeyError:
        wb, rels = b"", b""
    names = {part: name for name, part in workbook_sheets(wb, rels)}
    parts: list[tuple[str, str, bytes | Sequence[tuple[int, int]]]] = []
    for member in sorted(members):
        if not member.lower().endswith(".xml") or member == "xl/workbook.xml":
            continue
        data = inflated.get(member) or zf.read(member)
        if member in names or b"sheetData" in data:
            parts.append(("xlsx", names.get(member, member), data))
    return parts


WORKBOOK_RELS = _RELS = "xl/_rels/workbook.xml.rels"
