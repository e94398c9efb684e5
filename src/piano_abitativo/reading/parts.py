"""The parts of a workbook the reader relies on: defined names, formula cells, the
Scheda's key column and value column, and so the cell of every field of the schema."""

from __future__ import annotations

import functools
import io
import math
import re
import zipfile
from typing import Any
from xml.etree import ElementTree as ET

from piano_abitativo.core.layout import COL_VALUE, KEY_HEADER, VALUE_HEADER, layout_for
from piano_abitativo.core.rules.typed import as_text
from piano_abitativo.core.schema import (
    SCHEMA,
    SHEET_META,
    SHEET_SCHEDA,
    TEMPLATE_MARK,
    Field,
    Role,
    Schema,
)
from piano_abitativo.reading.cells import RawCell, Reading, a1, parse_a1
from piano_abitativo.reading.interpret import interpret

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


_RELS = "xl/_rels/workbook.xml.rels"


def xlsx_defined_names(wbxml: bytes) -> dict[str, str]:
    """The workbook-level defined names of workbook.xml: name -> reference."""
    names: dict[str, str] = {}
    for attrs, ref in _DEFINED.findall(wbxml):
        if b"localSheetId" in attrs:
            continue
        m = _ATTR_NAME.search(attrs)
        if m:
            names[m.group(1).decode("utf-8")] = (
                _xml_unescape(ref) if b"&" in ref else ref.decode("utf-8")
            )
    return names


def xlsx_names_formulas(
    zf: zipfile.ZipFile, members: set[str], inflated: dict[str, bytes]
) -> tuple[dict[str, str], set[str]]:
    wbxml = inflated.get("xl/workbook.xml") or zf.read("xl/workbook.xml")
    names = xlsx_defined_names(wbxml)
    formulas: set[str] = set()
    sheets = {_xml_unescape(n): rid for n, rid in _SHEET.findall(wbxml)}
    rid = sheets.get(SHEET_SCHEDA)
    if rid and _RELS in members:
        rels_xml = inflated.get(_RELS) or zf.read(_RELS)
        rels = {i: t for i, t in _REL.findall(rels_xml)}
        rels.update({i: t for t, i in _REL2.findall(rels_xml)})
        target = rels.get(rid, b"").decode("utf-8")
        target = target.lstrip("/") if target.startswith("/") else "xl/" + target
        if target in members:
            sheet = inflated.get(target) or zf.read(target)
            formulas = {m.decode() for m in _CELL_WITH_F.findall(sheet)}
    return names, formulas


_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"


def ods_names_formulas(content: bytes) -> tuple[dict[str, str], set[str]]:
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


@functools.lru_cache(maxsize=1024)
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


#: what a cell holding NaN or an infinity reads as (as Excel shows it): only finite
#: numbers leave the reader, so no NaN reaches a rule, a problem or a writer
NOT_FINITE = "#NUM!"


def _at(grid: list[list[Any]], row: int, col: int) -> Any:
    if 0 <= row < len(grid) and 0 <= col < len(grid[row]):
        value = grid[row][col]
        if isinstance(value, float) and not math.isfinite(value):
            return NOT_FINITE
        return value
    return ""


def read_grid(
    wb: Any,
    rd: Reading,
    names: dict[str, str] | None,
    formulas: set[str] | None,
    schema: Schema = SCHEMA,
) -> None:
    """Find the Scheda and the metadata, locate every field of `schema`, read it."""
    sheets = list(wb.sheet_names)
    has_scheda = SHEET_SCHEDA in sheets
    if SHEET_META in sheets:
        for r in _grid(wb, SHEET_META)[1:]:
            if len(r) >= 2 and isinstance(r[0], str) and r[0]:
                rd.metadata[r[0].strip()] = as_text(r[1])
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
            "M15",
            f'Manca il foglio nascosto "{SHEET_META}" con i dati del modello: '
            "l'ente è riconosciuto dal codice nella scheda",
            sheet=SHEET_META,
        )
    elif rd.metadata.get("modello") != TEMPLATE_MARK:
        rd.add("M01", "Il foglio nascosto del modello non è riconosciuto", sheet=SHEET_META)
        return
    grid = _grid(wb, SHEET_SCHEDA)
    _locate_and_read(grid, rd, names, formulas, schema)


def _key_index(
    grid: list[list[Any]], schema: Schema
) -> tuple[dict[str, tuple[int, int]], tuple[int, int] | None]:
    """Field id -> (row, col) of its key cell; and (row, col) of the key header."""
    found: dict[str, tuple[int, int]] = {}
    header: tuple[int, int] | None = None
    ids = set(schema.field_ids)
    wanted = ids | {KEY_HEADER}
    for r, row in enumerate(grid):
        for c, v in enumerate(row[:6]):
            # membership first: a number or a date is never a key (and is hashable)
            if v in wanted and isinstance(v, str):
                if v in ids and v not in found:
                    found[v] = (r, c)
                elif v == KEY_HEADER and header is None:
                    header = (r, c)
    return found, header


@functools.cache
def _field_places(schema: Schema) -> tuple[tuple[Field, str, int], ...]:
    """Each field, the cell the template puts it in, and its column's offset from the
    column of the values (the identification stands beside it: core.layout)."""
    lay = layout_for(schema)
    return tuple((f, lay.cell(f.id), lay.col(f.id) - COL_VALUE) for f in schema.fields)


def _locate_and_read(
    grid: list[list[Any]],
    rd: Reading,
    names: dict[str, str] | None,
    formulas: set[str] | None,
    schema: Schema,
) -> None:
    keys, header = _key_index(grid, schema)
    shifted = False
    ok = True
    value_col: int | None = None
    if header is not None:
        row = grid[header[0]]
        value_col = next((c for c in range(len(row)) if row[c] == VALUE_HEADER), None)
    for f, expected, shift in _field_places(schema):
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
            if key is None or key[0] != pos[0] or value_col is None or value_col + shift != pos[1]:
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
            loc = (key[0], value_col + shift)
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
        interpret(rd, schema)
