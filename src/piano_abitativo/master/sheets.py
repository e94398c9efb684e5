"""The consolidated master workbook of a raccolta (``Consolidato_piano_abitativo_<anno>``).

Two halves, kept apart on purpose:

* `master_layout` is **pure data**: for every sheet, which value or formula goes in which
  cell (formulas in US syntax, comma separators, only functions safe in Excel 2010+ and
  LibreOffice 7.4), with a semantic style key, plus the defined names, Excel tables,
  conditional highlights and charts. The same layout can be written into a workbook open in
  Excel (xlwings) by writing each cell's `formula` or `value`.
* `render_master` writes the same sheets with XlsxWriter in constant-memory mode, row by
  row, deterministically (the same `Consolidation` gives the same bytes); `build_master`
  returns them as bytes; `write_master` streams them into a temp file put in place
  atomically, and refuses when the file is open in Excel or LibreOffice.

Data flow inside the workbook: the **Dati** sheet holds the values (one row per ente of the
registry); every table a)–k), every total and the Report refer to Dati by formula, so a
correction typed in Dati updates the whole workbook. Each total cell carries a workbook
name ``totale_<field id>``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import xlsxwriter
from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.archive.store import TZ, Receipt
from piano_abitativo.consolidation.consolidate import (
    STATO_CON_AVVISI,
    STATO_CON_ERRORI,
    STATO_NON_RICEVUTO,
    STATO_VALIDO,
    Consolidation,
)
from piano_abitativo.core.atomic import atomic_writer
from piano_abitativo.core.problems import Problem, Severity
from piano_abitativo.core.raccolta import RaccoltaError
from piano_abitativo.core.schema import OWNER, SCHEMA, Field, Kind, Role, Schema

MASTER_STEM = "Consolidato_piano_abitativo_{anno}"

SHEET_CRUSCOTTO = "Cruscotto"
SHEET_REPORT = "Report programmazione"
SHEET_DATI = "Dati"
SHEET_ANOMALIE = "Anomalie"
SHEET_GRAFICI = "Grafici"


def table_sheets(schema: Schema) -> dict[str, str]:
    """One sheet per table of the plan (names ≤ 31 characters), by section."""
    return {letter: schema.table(letter).sheet for letter in schema.table_letters}


#: the table sheets of the default schema
TABLE_SHEETS: dict[str, str] = table_sheets(SCHEMA)
TABLE_DATI = "Dati"
TABLE_ANOMALIE = "Anomalie"

NESSUNA = "nessuna"
NESSUN_COMUNE = "nessun Comune"
TOTALE = "Totale"
OK, BAD = "✔", "✖"
SI, NO = "Sì", "No"

#: where the buttons of the .xlsm go on the Cruscotto: column M, from the second row
BUTTON_COL = 12
BUTTON_FIRST_ROW = 1

Value = str | int | float | bool | dt.date | dt.datetime | dt.time | None


def total_name(field_id: str) -> str:
    """The workbook name of the total cell of a field: ``totale_b_carenza_manutentiva``."""
    return f"totale_{field_id}"


def master_path(raccolta_path: Path, anno: int, suffix: str = ".xlsx") -> Path:
    """Where the master of a raccolta lives: in the raccolta folder itself."""
    return Path(raccolta_path) / (MASTER_STEM.format(anno=anno) + suffix)


class MasterLocked(RaccoltaError):
    """The master workbook cannot be replaced because it is open (in Excel or LibreOffice,
    here or on another PC of the share); the old file is left as it was."""


@dataclass(frozen=True)
class MasterButton:
    """A form button of the .xlsm master, bound to a VBA macro, with a one-line
    instruction written next to it."""

    macro: str
    caption: str
    istruzione: str


# --------------------------------------------------------------------------- layout model


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell: a constant `value`, or a `formula` whose Python-computed result is
    `value` (written as the cached result); `style` is a key of `STYLES`."""

    value: Value = None
    formula: str | None = None
    style: str = "text"


@dataclass(frozen=True)
class CellRef:
    sheet: str
    row: int
    col: int

    @property
    def a1(self) -> str:
        return str(xl_rowcol_to_cell(self.row, self.col))

    @property
    def ref(self) -> str:
        """Absolute, sheet-qualified: ``'a) Patrimonio'!$B$27``."""
        return _ref(self.sheet, self.row, self.col)


@dataclass(frozen=True)
class TableSpec:
    """An Excel table (ListObject) with autofilter over a header row and data rows."""

    name: str
    first_row: int
    first_col: int
    last_row: int
    last_col: int
    headers: tuple[str, ...]


@dataclass(frozen=True)
class Highlight:
    """Conditional fill of a range: where `formula` (relative to the top-left cell) is
    true, the style `style` ("bad", "warn", "good") applies."""

    first_row: int
    first_col: int
    last_row: int
    last_col: int
    formula: str
    style: str


@dataclass(frozen=True)
class Series:
    name: str
    categories: str  # "='f) Assegnabili'!$A$3:$A$7"
    values: str


@dataclass(frozen=True)
class ChartSpec:
    kind: str  # "bar" | "column"
    subtype: str | None
    title: str
    series: tuple[Series, ...]
    anchor_row: int
    anchor_col: int
    x_title: str = ""
    y_title: str = ""
    width: int = 960
    height: int = 420


#: where the cells of a sheet go when they are not kept: (row, col, cell), rows in order
CellSink = Callable[[int, int, Cell], None]

#: styles whose text may overflow its column: not measured for the column widths
_UNMEASURED = frozenset({"title", "note", "subtitle", "title_wrap"})


@dataclass
class SheetLayout:
    """One sheet. Its cells are kept in `cells`, or, when a `sink` is given, handed to it
    as they are placed (in row order: the streaming writer keeps no sheet in memory); the
    column widths are measured either way."""

    name: str
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    widths: dict[int, float] = field(default_factory=dict)
    row_heights: dict[int, float] = field(default_factory=dict)
    #: the header row of the main table: repeated when printing, panes frozen below it
    header_row: int | None = None
    landscape: bool = False
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)
    tables: list[TableSpec] = field(default_factory=list)
    highlights: list[Highlight] = field(default_factory=list)
    charts: list[ChartSpec] = field(default_factory=list)
    #: tables a)–k): the first and last row of the entries (what the charts plot)
    data_rows: tuple[int, int] | None = None
    #: the last column printed, when not the last column with a cell
    print_last_col: int | None = None
    sink: CellSink | None = field(default=None, repr=False, compare=False)
    _wide: dict[int, int] = field(default_factory=dict, repr=False, compare=False)
    _headers: list[tuple[int, int, str]] = field(default_factory=list, repr=False, compare=False)
    _last: list[int] = field(default_factory=lambda: [0, 0], repr=False, compare=False)

    def put(
        self,
        row: int,
        col: int,
        value: Value = None,
        *,
        formula: str | None = None,
        style: str = "text",
    ) -> Cell:
        cell = Cell(value, formula, style)
        self.place(row, col, cell)
        return cell

    def place(self, row: int, col: int, cell: Cell) -> None:
        last = self._last
        if row > last[0]:
            last[0] = row
        if col > last[1]:
            last[1] = col
        style = cell.style
        if style.startswith("header"):
            self._headers.append((row, col, str(cell.value)))
        elif style not in _UNMEASURED:
            n = _display_len(cell)
            if n > self._wide.get(col, -1):
                self._wide[col] = n
        if self.sink is not None:
            self.sink(row, col, cell)
        else:
            self.cells[(row, col)] = cell

    @property
    def last_row(self) -> int:
        return max(self._last[0], max((r for r, _ in self.cells), default=0))

    @property
    def last_col(self) -> int:
        return max(self._last[1], max((c for _, c in self.cells), default=0))

    def formula_cells(self) -> Iterable[tuple[int, int, Cell]]:
        return ((r, c, cell) for (r, c), cell in self.cells.items() if cell.formula)


@dataclass
class MasterLayout:
    """Everything that goes into the master, as data."""

    anno: int
    ambito: str
    title: str
    created: dt.datetime
    capofila: str
    sheets: list[SheetLayout]
    #: workbook-level defined names → their target cell
    names: dict[str, CellRef]
    #: the Cruscotto cell where the buttons of the .xlsm begin
    buttons_anchor: CellRef

    def sheet(self, name: str) -> SheetLayout:
        for s in self.sheets:
            if s.name == name:
                return s
        raise KeyError(name)


# --------------------------------------------------------------------------- helpers


def _quote(sheet: str) -> str:
    return "'" + sheet.replace("'", "''") + "'"


def _ref(sheet: str, row: int, col: int) -> str:
    return f"{_quote(sheet)}!{xl_rowcol_to_cell(row, col, True, True)}"


def _rng(sheet: str | None, r1: int, c1: int, r2: int, c2: int) -> str:
    """A range: absolute and sheet-qualified with `sheet`, else relative (``B3:B26``)."""
    if sheet is None:
        return f"{xl_rowcol_to_cell(r1, c1)}:{xl_rowcol_to_cell(r2, c2)}"
    a = xl_rowcol_to_cell(r1, c1, True, True)
    b = xl_rowcol_to_cell(r2, c2, True, True)
    return f"{_quote(sheet)}!{a}:{b}"


def _local(t: dt.datetime | None) -> dt.datetime | None:
    """A time as Excel shows it: Italian local time, naive (no time zone in Excel)."""
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(TZ)
    return t.replace(tzinfo=None)


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _num_style(f: Field) -> str:
    if f.kind is Kind.COUNT:
        return "count"
    if f.kind is Kind.PERCENT:
        return "percent"
    return "text"


def dati_header(f: Field) -> str:
    head = f.header
    prefix = f"{f.section})"
    return head if not f.section or head.startswith(prefix) else f"{prefix} {head}"


def _si_no(flag: bool) -> str:
    return SI if flag else NO


# --------------------------------------------------------------------------- Dati

DATI_TITLE_ROW = 0
DATI_HEADER_ROW = 2
DATI_FIXED = ("Codice", "Ente", "Tipo", "Stato", "Ricevuto il", "Versione usata")
DATI_COL_RICEVUTO = 4
DATI_FIRST_FIELD_COL = len(DATI_FIXED)


@dataclass(frozen=True)
class _Dati:
    """Where each ente's values are on the Dati sheet."""

    rows: dict[str, int]  # ente codice -> row
    cols: dict[str, int]  # field id -> column
    schema: Schema

    def ref(self, codice: str, field_id: str) -> str:
        return _ref(SHEET_DATI, self.rows[codice], self.cols[field_id])

    def ricevuto(self, codice: str) -> str:
        return _ref(SHEET_DATI, self.rows[codice], DATI_COL_RICEVUTO)


def _dati_positions(cons: Consolidation) -> _Dati:
    fields = cons.schema.plan_fields
    cols = {f.id: DATI_FIRST_FIELD_COL + i for i, f in enumerate(fields)}
    first = DATI_HEADER_ROW + 1
    return _Dati({s.ente.codice: first + i for i, s in enumerate(cons.enti)}, cols, cons.schema)


def _dati_sheet(cons: Consolidation, pos: _Dati, sink: CellSink | None = None) -> SheetLayout:
    sh = SheetLayout(SHEET_DATI, header_row=DATI_HEADER_ROW, landscape=True, sink=sink)
    cols, rows = pos.cols, pos.rows
    first = DATI_HEADER_ROW + 1
    sh.put(DATI_TITLE_ROW, 0, f"Dati degli enti — Piano annuale {cons.anno}", style="title")
    sh.put(
        DATI_TITLE_ROW + 1,
        0,
        "Valori della versione valida più recente di ogni ente. "
        "Una correzione scritta qui aggiorna le tabelle a)–k), i totali e il Report.",
        style="note",
    )
    fields = cons.schema.plan_fields
    headers = [*DATI_FIXED, *(dati_header(f) for f in fields)]
    for c, h in enumerate(headers):
        sh.put(DATI_HEADER_ROW, c, h, style="header")
    for s in cons.enti:
        r = rows[s.ente.codice]
        used = s.used
        vals = s.values
        sh.put(r, 0, s.ente.codice)
        sh.put(r, 1, s.ente.nome_completo)
        sh.put(r, 2, s.ente.tipo)
        sh.put(r, 3, s.stato)
        sh.put(r, DATI_COL_RICEVUTO, _local(used.ricevuto_il) if used else None, style="datetime_s")
        sh.put(r, 5, used.nome if used else None)
        for f in fields:
            c = cols[f.id]
            style = _num_style(f)
            v = vals.get(f.id) if vals else None
            if vals and f.role is Role.FORMULA:
                refs = "+".join(str(xl_rowcol_to_cell(r, cols[p])) for p in f.sum_of)
                sh.put(r, c, v, formula=f"={refs}", style=style)
            else:
                sh.put(r, c, v, style=style)
    last = max(first, first + len(cons.enti) - 1)
    if not cons.enti:  # an Excel table needs one data row
        sh.put(first, 0, None)
    sh.tables.append(
        TableSpec(TABLE_DATI, DATI_HEADER_ROW, 0, last, len(headers) - 1, tuple(headers))
    )
    _fit_widths(sh, {1: 40, DATI_COL_RICEVUTO: 19})
    return sh


# --------------------------------------------------------------------------- tables a)–k)

TABLE_TITLE_ROW = 0
TABLE_HEADER_ROW = 1
TABLE_FIRST_ROW = 2


@dataclass(frozen=True)
class TableDef:
    letter: str
    headers: tuple[str, ...]
    fields: tuple[str, ...]  # value columns 1.., in order
    comune_col: bool = False  # b)–f): third column "Comune"
    total: bool = True
    count_row: bool = False  # g), h), i): "Numero di Comuni"
    empty: str = NESSUNA
    sheet: str = ""


def table_def(schema: Schema, letter: str, anno: int) -> TableDef:
    """The table of section `letter` (see `core.schema.SectionTable`): a column per
    field, a total row when a column counts."""
    rule = schema.table(letter)
    fields = schema.table_fields(letter)
    return TableDef(
        letter,
        (
            rule.owner,
            *(schema.column_header(f, anno) for f in fields),
            *(("Comune",) if rule.comune_col else ()),
        ),
        tuple(f.id for f in fields),
        comune_col=rule.comune_col,
        total=any(f.kind is Kind.COUNT for f in fields),
        count_row=rule.comuni,
        empty=NESSUN_COMUNE if rule.comuni else NESSUNA,
        sheet=rule.sheet,
    )


def table_defs(anno: int, schema: Schema = SCHEMA) -> list[TableDef]:
    """The tables of the plan, in section order."""
    return [table_def(schema, letter, anno) for letter in schema.table_letters]


def sums_other_sections(schema: Schema, f: Field) -> bool:
    """Whether `f` is the sum of fields of other sections (f) = b + c + d + e): its table
    cell and its total add up theirs."""
    return f.role is Role.FORMULA and any(
        schema.field_by_id[p].section != f.section for p in f.sum_of
    )


def _value_cell(f: Field, codice: str, pos: _Dati, value: Any) -> Cell:
    """A table cell taking the value of `f` for an ente from its Dati row."""
    if sums_other_sections(pos.schema, f):
        parts = "+".join(pos.ref(codice, p) for p in f.sum_of)
        return Cell(value, f"={parts}", "count")
    ref = pos.ref(codice, f.id)
    if f.kind is Kind.COUNT:
        return Cell(value, f"={ref}", "count")
    # empty Dati cells would show as 0 through a plain reference
    return Cell(
        "" if value is None else value,
        f'=IF({ref}="","",{ref})',
        _num_style(f) if f.kind is Kind.PERCENT else "wrap",
    )


def _table_sheet(
    cons: Consolidation,
    td: TableDef,
    pos: _Dati,
    names: dict[str, CellRef],
    sink: CellSink | None = None,
) -> SheetLayout:
    schema = cons.schema
    by_id = schema.field_by_id
    sheet = td.sheet
    sh = SheetLayout(sheet, header_row=TABLE_HEADER_ROW, sink=sink)
    ncols = len(td.headers)
    title = f"{td.letter}) {schema.sections[td.letter]}"
    sh.put(TABLE_TITLE_ROW, 0, title, style="title_wrap")
    sh.merges.append((TABLE_TITLE_ROW, 0, TABLE_TITLE_ROW, ncols - 1))
    for c, h in enumerate(td.headers):
        sh.put(TABLE_HEADER_ROW, c, h, style="header")
    rows = cons.table(td.letter)
    r = TABLE_FIRST_ROW
    for s in rows:
        sh.put(r, 0, s.ente.nome_completo)
        for i, fid in enumerate(td.fields, start=1):
            sh.place(r, i, _value_cell(by_id[fid], s.ente.codice, pos, s.values.get(fid)))
        if td.comune_col:
            sh.put(r, ncols - 1, s.ente.denominazione if s.ente.is_comune else "")
        r += 1
    if not rows:
        sh.put(r, 0, td.empty, style="empty")
        for c in range(1, ncols):
            sh.put(r, c, None, style="count")
        r += 1
    last_data = r - 1
    sh.data_rows = (TABLE_FIRST_ROW, last_data)
    if td.total:
        totals = cons.totals
        sh.put(r, 0, TOTALE, style="total_label")
        for c in range(1, ncols):
            sh.put(r, c, None, style="total_label")
        for i, fid in enumerate(td.fields, start=1):
            if by_id[fid].kind is not Kind.COUNT:
                continue
            total = totals.get(fid, 0)
            if sums_other_sections(schema, by_id[fid]):
                formula = "=" + "+".join(total_name(p) for p in by_id[fid].sum_of)
            else:
                formula = f"=SUM({_rng(None, TABLE_FIRST_ROW, i, last_data, i)})"
            sh.put(r, i, total, formula=formula, style="total_count")
            names[total_name(fid)] = CellRef(sheet, r, i)
        r += 1
    if td.count_row:
        names_rng = _rng(None, TABLE_FIRST_ROW, 0, last_data, 0)
        sh.put(r, 0, "Numero di Comuni", style="total_label")
        sh.put(
            r,
            1,
            len(rows),
            style="total_count",
            formula=f"=COUNTA({names_rng})-COUNTIF({names_rng},{_q(td.empty)})",
        )
        r += 1
    for i, fid in enumerate(td.fields, start=1):
        f = by_id[fid]
        if not sums_other_sections(schema, f):
            continue
        r += 1
        parts = "+".join(total_name(p) for p in f.sum_of)
        rows_sum = f"SUM({_rng(None, TABLE_FIRST_ROW, i, last_data, i)})"
        letters = " + ".join(f"{by_id[p].section})" for p in f.sum_of)
        sh.put(r, 0, f"Controllo {td.letter}) = {letters}", style="label")
        sh.put(r, i, OK, formula=f'=IF({rows_sum}={parts},"{OK}","{BAD}")', style="check")
        sh.highlights.append(Highlight(r, i, r, i, f'{xl_rowcol_to_cell(r, i)}="{BAD}"', "bad"))
        sh.highlights.append(Highlight(r, i, r, i, f'{xl_rowcol_to_cell(r, i)}="{OK}"', "good"))
    texts = [i for i, fid in enumerate(td.fields, start=1) if by_id[fid].kind is Kind.TEXT]
    _fit_widths(sh, {0: 36, **dict.fromkeys(texts, 70)} if texts else {0: 44})
    # the merged title wraps: give it the lines it needs
    width = sum(sh.widths.get(c, 10) for c in range(ncols))
    sh.row_heights[TABLE_TITLE_ROW] = 18.0 * max(1, -(-len(title) * 1.15 // width))
    return sh


# --------------------------------------------------------------------------- Report

REPORT_HEADER_ROW = 2


def report_columns(schema: Schema) -> tuple[tuple[str, str | None], ...]:
    """(header, field id or None for date/time/ours) in the order of the annex."""
    return (
        (OWNER, None),
        ("Data Ricezione", None),
        ("Ora Ricezione", None),
        *((schema.annex_headers.get(f.id, dati_header(f)), f.id) for f in schema.annex_fields),
        ("Orario certificato", None),
        ("Fonte dell'orario", None),
    )


#: the annex's columns for the default schema
REPORT_COLUMNS: tuple[tuple[str, str | None], ...] = report_columns(SCHEMA)


def _report_sheet(cons: Consolidation, pos: _Dati, sink: CellSink | None = None) -> SheetLayout:
    sh = SheetLayout(SHEET_REPORT, header_row=REPORT_HEADER_ROW, landscape=True, sink=sink)
    sh.put(0, 0, f"Report programmazione annuale {cons.anno}", style="title")
    sh.put(
        1,
        0,
        "Enti che hanno inviato dati validi, in ordine di ricezione della versione usata.",
        style="note",
    )
    columns = report_columns(cons.schema)
    by_id = cons.schema.field_by_id
    for c, (h, _) in enumerate(columns):
        sh.put(REPORT_HEADER_ROW, c, h, style="header")
    r = REPORT_HEADER_ROW + 1
    for s in cons.answered:
        used = s.used
        if used is None:  # pragma: no cover - answered means a valid version exists
            continue
        codice = s.ente.codice
        when = _local(used.ricevuto_il)
        ric = pos.ricevuto(codice)
        sh.put(r, 0, s.ente.nome_completo)
        sh.put(
            r,
            1,
            when.date() if when else "",
            style="date_dash",
            formula=f'=IF({ric}="","",INT({ric}))',
        )
        sh.put(
            r,
            2,
            when.time() if when else "",
            style="time",
            formula=f'=IF({ric}="","",{ric}-INT({ric}))',
        )
        for c, (_, fid) in enumerate(columns[3:-2], start=3):
            if fid is None:  # pragma: no cover - every middle column has a field
                continue
            cell = _value_cell(by_id[fid], codice, pos, s.values.get(fid))
            style = "center" if by_id[fid].kind is Kind.YESNO else cell.style
            sh.place(r, c, Cell(cell.value, cell.formula, style))
        sh.put(r, len(columns) - 2, _si_no(used.certificato), style="center")
        sh.put(r, len(columns) - 1, used.fonte_data)
        r += 1
    if not cons.answered:
        sh.put(r, 0, NESSUNA, style="empty")
    _fit_widths(sh, {0: 40, 1: 12, 2: 10, len(columns) - 1: 30}, header_cap=14)
    return sh


# --------------------------------------------------------------------------- Confronto

#: the fields compared with last year on the master for the default schema, in order
#: (`Schema.confronto_fields`)
CONFRONTO_FIELDS: tuple[str, ...] = tuple(f.id for f in SCHEMA.confronto_fields)
CONFRONTO_HEADER_ROW = 3


def confronto_sheet_name(anno_precedente: int) -> str:
    return f"Confronto {anno_precedente}"


def _confronto_sheet(cons: Consolidation, pos: _Dati, sink: CellSink | None = None) -> SheetLayout:
    """Each ente's figures last year and this year and the change: the current ones read
    Dati, so a correction there shows here too."""
    yoy = cons.confronto
    if yoy is None:  # pragma: no cover - the sheet exists only with a comparison
        raise ValueError("no comparison")
    prev_anno = yoy.anno_precedente
    sh = SheetLayout(
        confronto_sheet_name(prev_anno), header_row=CONFRONTO_HEADER_ROW, landscape=True, sink=sink
    )
    sh.put(0, 0, f"Confronto con il Piano {prev_anno}", style="title")
    sh.put(
        1,
        0,
        f"Raccolta {prev_anno}: {yoy.raccolta_precedente}. Le righe sono gli enti "
        f"che hanno inviato dati validi in almeno uno dei due anni; la variazione è "
        f"{cons.anno} meno {prev_anno}.",
        style="note",
    )
    fields = [f.id for f in cons.schema.confronto_fields]
    by_id = cons.schema.field_by_id
    top = CONFRONTO_HEADER_ROW - 1
    sh.put(top, 0, None, style="header")
    for i, fid in enumerate(fields):
        c = 1 + 3 * i
        sh.merges.append((top, c, top, c + 2))
        sh.put(top, c, dati_header(by_id[fid]), style="header")
        sh.put(top, c + 1, None, style="header")
        sh.put(top, c + 2, None, style="header")
    sh.put(CONFRONTO_HEADER_ROW, 0, "Ente", style="header")
    for i in range(len(fields)):
        for k, label in enumerate((str(prev_anno), str(cons.anno), "Variazione")):
            sh.put(CONFRONTO_HEADER_ROW, 1 + 3 * i + k, label, style="header")
    rows = [*yoy.enti, *yoy.solo_precedente]
    first = CONFRONTO_HEADER_ROW + 1
    r = first
    for ch in rows:
        here = ch.answered_current and ch.ente.codice in pos.rows
        sh.put(r, 0, ch.ente.nome_completo)
        for i, fid in enumerate(fields):
            c = 1 + 3 * i
            fc = ch.field(fid)
            sh.put(r, c, fc.previous if ch.answered_previous else None, style="count")
            prev_cell = xl_rowcol_to_cell(r, c)
            if here:
                ref = pos.ref(ch.ente.codice, fid)
                sh.put(r, c + 1, fc.current, formula=f"={ref}", style="count")
            else:
                sh.put(r, c + 1, None, style="count")
            cur_cell = xl_rowcol_to_cell(r, c + 1)
            if here and ch.answered_previous:
                sh.put(r, c + 2, fc.delta, formula=f"={cur_cell}-{prev_cell}", style="delta")
            else:
                sh.put(r, c + 2, None, style="delta")
        r += 1
    if not rows:
        sh.put(r, 0, NESSUNA, style="empty")
        r += 1
    last = r - 1
    sh.put(r, 0, TOTALE, style="total_label")
    for i, fid in enumerate(fields):
        c = 1 + 3 * i
        prev_total, cur_total = yoy.totals.get(fid, (0, 0))
        sh.put(
            r, c, prev_total, formula=f"=SUM({_rng(None, first, c, last, c)})", style="total_count"
        )
        sh.put(r, c + 1, cur_total, formula=f"={total_name(fid)}", style="total_count")
        sh.put(
            r,
            c + 2,
            cur_total - prev_total,
            style="total_delta",
            formula=f"={xl_rowcol_to_cell(r, c + 1)}-{xl_rowcol_to_cell(r, c)}",
        )
    for i in range(len(fields)):
        c = 3 + 3 * i
        cell = xl_rowcol_to_cell(first, c)
        sh.highlights.append(Highlight(first, c, r, c, f"AND(ISNUMBER({cell}),{cell}<0)", "bad"))
        sh.highlights.append(Highlight(first, c, r, c, f"AND(ISNUMBER({cell}),{cell}>0)", "good"))
    _fit_widths(sh, {0: 40}, header_cap=12)
    sh.row_heights[top] = 17.0  # its labels span three columns: one line
    return sh


# --------------------------------------------------------------------------- Cruscotto

CRUSCOTTO_HEADER_ROW = 8
CRUSCOTTO_HEADERS = (
    "Codice",
    "Ente",
    "Tipo",
    "Stato",
    "Ricevuto il",
    "Orario certificato",
    "Versioni",
    "Canale",
    "Errori",
    "Avvisi",
    "File",
)
#: the unattributed returns are listed in the columns of the ente list, plus the message
STRAY_HEADERS = (
    "Codice dichiarato",
    "Ente dichiarato",
    "Tipo",
    "Stato",
    "Ricevuto il",
    "Orario certificato",
    "Versioni",
    "Canale",
    "Errori",
    "Avvisi",
    "File",
    "Messaggio",
)
STATO_NON_ATTRIBUITO = "non attribuito"


def _declared(rc: Receipt) -> str:
    rep = rc.report
    if rep.ente_denominazione and rep.ente:
        return f"{rep.ente_denominazione} ({rep.ente})"
    return rep.ente_denominazione or rep.ente or "non indicato"


def _stray_message(rc: Receipt) -> str:
    rep = rc.report
    first = rep.errors[0] if rep.errors else (rep.problems[0] if rep.problems else None)
    return first.message if first else "Ente non riconosciuto"


def _cruscotto_sheet(
    cons: Consolidation, sink: CellSink | None = None, buttons: Sequence[MasterButton] = ()
) -> SheetLayout:
    """The state of the raccolta; with `buttons`, the label "Comandi" and each button's
    instruction beside the place of the buttons (column M on)."""
    sh = SheetLayout(SHEET_CRUSCOTTO, header_row=CRUSCOTTO_HEADER_ROW, landscape=True, sink=sink)
    last_col = len(CRUSCOTTO_HEADERS) - 1
    sh.merges.append((0, 0, 0, last_col))
    sh.put(
        0,
        0,
        f"Piano annuale dell'offerta abitativa {cons.anno} — Ambito {cons.ambito}",
        style="title",
    )
    sh.row_heights[0] = 24.0
    if buttons:
        sh.put(BUTTON_FIRST_ROW - 1, BUTTON_COL, "Comandi", style="label")
    info: list[tuple[str, Value, str]] = [
        ("Capofila", cons.capofila, "bold"),
        ("Raccolta", cons.raccolta_id, "bold"),
        ("Scadenza", cons.scadenza, "date_bold"),
        ("Aggiornato al", _local(cons.generated_at.replace(microsecond=0)), "datetime_bold"),
    ]
    first = CRUSCOTTO_HEADER_ROW + 1
    last = first + max(len(cons.enti), 1) - 1
    stati = _rng(None, first, 3, last, 3)
    n = len(cons.enti)
    counts: list[tuple[str, str, int, str]] = [
        ("Enti nell'elenco", f"=COUNTA({stati})", n, "count_bold"),
        (
            "Hanno risposto",
            f"=COUNTA({stati})-COUNTIF({stati},{_q(STATO_NON_RICEVUTO)})",
            n - cons.count(STATO_NON_RICEVUTO),
            "count_bold",
        ),
        (
            "Non hanno risposto",
            f"=COUNTIF({stati},{_q(STATO_NON_RICEVUTO)})",
            cons.count(STATO_NON_RICEVUTO),
            "count_warn",
        ),
        (
            "Da correggere",
            f"=COUNTIF({stati},{_q(STATO_CON_ERRORI)})",
            cons.count(STATO_CON_ERRORI),
            "count_bad",
        ),
        (
            "Ricevuti con avvisi",
            f"=COUNTIF({stati},{_q(STATO_CON_AVVISI)})",
            cons.count(STATO_CON_AVVISI),
            "count_bold",
        ),
    ]
    stray_row = len(counts) + 1
    # rows in order (the streaming writer cannot go back): information, counts, buttons
    for row in range(1, max(len(info), stray_row, BUTTON_FIRST_ROW + len(buttons)) + 1):
        if row <= len(info):
            label, value, style = info[row - 1]
            sh.put(row, 0, label, style="label")
            sh.put(row, 1, value, style=style)
        if row <= len(counts):
            label, formula, number, style = counts[row - 1]
            sh.put(row, 3, label, style="label")
            sh.put(row, 4, number, formula=formula, style=style)
        elif row == stray_row:
            sh.put(row, 3, "Ritorni non attribuiti", style="label")
            sh.put(
                row,
                4,
                len(cons.non_attribuiti),
                style="count_bad" if cons.non_attribuiti else "count_bold",
            )
        if 0 <= row - BUTTON_FIRST_ROW < len(buttons):
            sh.put(
                row, BUTTON_COL + 1, buttons[row - BUTTON_FIRST_ROW].istruzione, style="instruction"
            )
    for c, h in enumerate(CRUSCOTTO_HEADERS):
        sh.put(CRUSCOTTO_HEADER_ROW, c, h, style="header")
    for i, s in enumerate(cons.enti):
        r = first + i
        last_rc = s.latest
        sh.put(r, 0, s.ente.codice)
        sh.put(r, 1, s.ente.nome_completo)
        sh.put(r, 2, s.ente.tipo)
        sh.put(r, 3, s.stato, style="bold")
        sh.put(r, 4, _local(last_rc.ricevuto_il) if last_rc else None, style="datetime_s")
        sh.put(r, 5, _si_no(last_rc.certificato) if last_rc else None, style="center")
        sh.put(r, 6, len(s.versions), style="count")
        sh.put(r, 7, last_rc.canale if last_rc else None)
        sh.put(r, 8, s.errori, style="count")
        sh.put(r, 9, s.avvisi, style="count")
        sh.put(r, 10, last_rc.nome if last_rc else None)
    if not cons.enti:
        sh.put(first, 1, "nessun ente nell'elenco", style="empty")
    for criteria, style in (
        (f'$D{first + 1}="{STATO_CON_ERRORI}"', "bad"),
        (f'$D{first + 1}="{STATO_NON_RICEVUTO}"', "warn"),
        (f'OR($D{first + 1}="{STATO_VALIDO}",$D{first + 1}="{STATO_CON_AVVISI}")', "good"),
    ):
        sh.highlights.append(Highlight(first, 0, last, last_col, criteria, style))
    if cons.non_attribuiti:
        r = last + 2
        sh.put(r, 0, "Ritorni non attribuiti a un ente dell'elenco", style="subtitle")
        r += 1
        for c, h in enumerate(STRAY_HEADERS):
            sh.put(r, c, h, style="header_bad")
        for rc in cons.non_attribuiti:
            r += 1
            rep = rc.report
            stray: tuple[tuple[Value, str], ...] = (
                (rep.ente, "text"),
                (rep.ente_denominazione or "non indicato", "text"),
                (rep.metadata.get("ente_tipo"), "text"),
                (STATO_NON_ATTRIBUITO, "bold_bad"),
                (_local(rc.ricevuto_il), "datetime_s"),
                (_si_no(rc.certificato), "center"),
                (None, "count"),
                (rc.canale, "text"),
                (len(rep.errors), "count"),
                (len(rep.warnings), "count"),
                (rc.nome, "text"),
                (_stray_message(rc), "wrap"),
            )
            for c, (v, style) in enumerate(stray):
                sh.put(r, c, v, style=style)
    _fit_widths(sh, {0: 14, 1: 40, 3: 22, 4: 19, 5: 11, 10: 56, 11: 60}, header_cap=12)
    sh.print_last_col = len(STRAY_HEADERS) - 1 if cons.non_attribuiti else last_col
    if buttons:
        sh.widths[BUTTON_COL] = 26
        sh.widths[BUTTON_COL + 1] = 60
        for i in range(len(buttons)):
            sh.row_heights[BUTTON_FIRST_ROW + i] = 24
    return sh


# --------------------------------------------------------------------------- Anomalie

ANOMALIE_HEADER_ROW = 2
ANOMALIE_HEADERS = (
    "Ente",
    "File",
    "Ricevuto il",
    "Gravità",
    "Codice",
    "Foglio",
    "Cella",
    "Campo",
    "Valore",
    "Messaggio",
    "Suggerimento",
)


def _by_severity(problems: Iterable[Problem]) -> list[Problem]:
    ps = list(problems)
    return [p for p in ps if p.severity is Severity.ERRORE] + [
        p for p in ps if p.severity is not Severity.ERRORE
    ]


def _anomalie_rows(cons: Consolidation) -> list[tuple[str, Receipt | None, Problem]]:
    rows: list[tuple[str, Receipt | None, Problem]] = []
    for s in cons.enti:
        silent = cons.coverage.get(s.ente.codice)
        found = [*s.open_problems, *([silent] if silent else [])]
        rows += [(s.ente.nome_completo, s.latest, p) for p in _by_severity(found)]
    for rc in cons.non_attribuiti:
        rows += [(_declared(rc), rc, p) for p in _by_severity(rc.report.problems)]
    return rows


def _cell_value(v: Any) -> Value:
    if v is None or isinstance(v, str | int | float):
        return v
    return str(v)


def _anomalie_sheet(cons: Consolidation, sink: CellSink | None = None) -> SheetLayout:
    sh = SheetLayout(SHEET_ANOMALIE, header_row=ANOMALIE_HEADER_ROW, landscape=True, sink=sink)
    sh.put(0, 0, "Anomalie aperte", style="title")
    sh.put(
        1,
        0,
        "Errori e avvisi dell'ultima versione ricevuta da ogni ente, enti che non "
        "hanno risposto e ritorni non attribuiti.",
        style="note",
    )
    for c, h in enumerate(ANOMALIE_HEADERS):
        sh.put(ANOMALIE_HEADER_ROW, c, h, style="header")
    r = ANOMALIE_HEADER_ROW
    rows = _anomalie_rows(cons)
    for ente, rc, p in rows:
        r += 1
        values: tuple[Value, ...] = (
            ente,
            p.file or (rc.nome if rc else None),
            _local(rc.ricevuto_il) if rc else None,
            p.severity.value,
            p.code,
            p.sheet,
            p.cell,
            p.field,
            _cell_value(p.value),
            p.message,
            p.hint,
        )
        for c, v in enumerate(values):
            style = "datetime_s" if c == 2 else ("wrap" if c in (9, 10) else "text")
            if c == 8 and isinstance(v, int | float) and not isinstance(v, bool):
                style = "general"
            sh.put(r, c, v, style=style)
    if not rows:
        r += 1
        sh.put(r, 0, "Nessuna anomalia", style="empty")
    last_col = len(ANOMALIE_HEADERS) - 1
    sh.tables.append(
        TableSpec(TABLE_ANOMALIE, ANOMALIE_HEADER_ROW, 0, r, last_col, ANOMALIE_HEADERS)
    )
    top = xl_rowcol_to_cell(ANOMALIE_HEADER_ROW + 1, 3)
    sh.highlights.append(
        Highlight(ANOMALIE_HEADER_ROW + 1, 3, r, 3, f'{top}="{Severity.ERRORE.value}"', "bad")
    )
    sh.highlights.append(
        Highlight(ANOMALIE_HEADER_ROW + 1, 3, r, 3, f'{top}="{Severity.AVVISO.value}"', "warn")
    )
    _fit_widths(sh, {0: 34, 1: 36, 2: 19, 9: 60, 10: 60}, header_cap=12)
    return sh


# --------------------------------------------------------------------------- Grafici


def _grafici_sheet(
    spans: dict[str, tuple[int, int]], tds: dict[str, TableDef], sink: CellSink | None = None
) -> SheetLayout:
    """Charts of tables f) and a); `spans` are their entries' first and last rows."""
    sh = SheetLayout(SHEET_GRAFICI, landscape=True, sink=sink)
    sh.put(0, 0, "Grafici (si aggiornano con le tabelle)", style="title")
    f1, f2 = spans["f"]
    fs = tds["f"].sheet
    f_height = max(300, 60 + 32 * (f2 - f1 + 1))
    f_rows_end = 2 + f_height // 20 + 2
    sh.charts.append(
        ChartSpec(
            "bar",
            None,
            "f) Unità abitative SAP assegnabili nell'anno, per ente",
            (
                Series(
                    "Unità assegnabili", "=" + _rng(fs, f1, 0, f2, 0), "=" + _rng(fs, f1, 1, f2, 1)
                ),
            ),
            anchor_row=2,
            anchor_col=0,
            y_title="Numero unità immobiliari",
            height=f_height,
        )
    )
    a1, a2 = spans["a"]
    as_ = tds["a"].sheet
    sap = 1 + tds["a"].fields.index("a_sap")
    sas = 1 + tds["a"].fields.index("a_sas")
    sh.charts.append(
        ChartSpec(
            "column",
            "stacked",
            "a) Alloggi SAP e SAS per ente proprietario",
            (
                Series(
                    "N. alloggi SAP",
                    "=" + _rng(as_, a1, 0, a2, 0),
                    "=" + _rng(as_, a1, sap, a2, sap),
                ),
                Series(
                    "N. alloggi SAS",
                    "=" + _rng(as_, a1, 0, a2, 0),
                    "=" + _rng(as_, a1, sas, a2, sas),
                ),
            ),
            anchor_row=f_rows_end,
            anchor_col=0,
            y_title="Numero alloggi",
            height=520,
        )
    )
    sh.widths[0] = 12
    return sh


# --------------------------------------------------------------------------- widths

_DISPLAY_WIDTH = {
    "date": 10,
    "date_bold": 10,
    "date_dash": 10,
    "time": 8,
    "datetime": 16,
    "datetime_bold": 16,
    "datetime_s": 19,
}


def _display_len(cell: Cell) -> int:
    v = cell.value
    if cell.style in _DISPLAY_WIDTH:
        return _DISPLAY_WIDTH[cell.style]
    if v is None:
        return 0
    if isinstance(v, int | float) and not isinstance(v, bool):
        return len(f"{v:,}")
    return max((len(line) for line in str(v).splitlines()), default=0)


def _fit_widths(sh: SheetLayout, caps: dict[int, float], *, header_cap: int = 18) -> None:
    """Column widths that fit the content placed so far (titles and notes may overflow);
    headers wrap, so they count up to `header_cap`; `caps` bounds chosen columns (long
    names, messages wrap)."""
    wide = dict(sh._wide)
    for _, c, text in sh._headers:
        longest = max((len(w) for w in text.split()), default=0)
        n = max(min(max((len(line) for line in text.splitlines()), default=0), header_cap), longest)
        wide[c] = max(wide.get(c, 0), n)
    for c, n in sorted(wide.items()):
        width: float = min(max(n + 2, 8), 60)
        if c in caps:
            width = min(width, caps[c])
        sh.widths[c] = float(width)
    # header rows wrap: give them the lines their longest header needs
    lines: dict[int, int] = {}
    for r, c, text in sh._headers:
        n = _wrapped_lines(text, sh.widths.get(c, 8.43) - 1)
        lines[r] = max(lines.get(r, 1), n)
    for r, n in sorted(lines.items()):
        sh.row_heights[r] = 13.0 * n + 4


def _wrapped_lines(text: str, width: float) -> int:
    """How many lines `text` takes when wrapped at word boundaries in `width` characters."""
    lines, used = 1, 0
    for word in text.split():
        if used and used + 1 + len(word) > width:
            lines, used = lines + 1, len(word)
        else:
            used += len(word) + (1 if used else 0)
    return lines


# --------------------------------------------------------------------------- layout


def sheet_names(cons: Consolidation | None = None) -> list[str]:
    """The sheets of the master of `cons`, in order (the comparison with last year only
    when `cons` has one)."""
    confronto = (
        [confronto_sheet_name(cons.confronto.anno_precedente)]
        if cons is not None and cons.confronto is not None
        else []
    )
    return [
        SHEET_CRUSCOTTO,
        *table_sheets(cons.schema if cons is not None else SCHEMA).values(),
        SHEET_REPORT,
        *confronto,
        SHEET_DATI,
        SHEET_ANOMALIE,
        SHEET_GRAFICI,
    ]


SheetBuilder = Callable[[CellSink | None], SheetLayout]


def _sheet_builders(
    cons: Consolidation, buttons: Sequence[MasterButton] = ()
) -> tuple[list[SheetBuilder], dict[str, CellRef]]:
    """One builder per sheet, in order (run them in that order: the tables fill the names
    and the spans the charts need), and the defined names they fill. A builder can run
    more than once and places the same cells each time."""
    names: dict[str, CellRef] = {}
    spans: dict[str, tuple[int, int]] = {}
    pos = _dati_positions(cons)
    tds = {td.letter: td for td in table_defs(cons.anno, cons.schema)}

    def table(td: TableDef) -> SheetBuilder:
        def build(sink: CellSink | None) -> SheetLayout:
            sh = _table_sheet(cons, td, pos, names, sink)
            if sh.data_rows is not None:
                spans[td.letter] = sh.data_rows
            return sh

        return build

    builders: list[SheetBuilder] = [
        lambda sink: _cruscotto_sheet(cons, sink, buttons),
        *(table(td) for td in tds.values()),
        lambda sink: _report_sheet(cons, pos, sink),
        *([lambda sink: _confronto_sheet(cons, pos, sink)] if cons.confronto else []),
        lambda sink: _dati_sheet(cons, pos, sink),
        lambda sink: _anomalie_sheet(cons, sink),
        lambda sink: _grafici_sheet(spans, tds, sink),
    ]
    return builders, names


def _check_names(schema: Schema, names: dict[str, CellRef]) -> dict[str, CellRef]:
    missing = {total_name(f.id) for f in schema.total_fields} - set(names)
    if missing:  # pragma: no cover - every total field has a table with a total row
        raise ValueError(f"totali senza cella: {sorted(missing)}")
    return dict(sorted(names.items()))


def _layout(
    cons: Consolidation, sheets: list[SheetLayout], names: dict[str, CellRef]
) -> MasterLayout:
    created = cons.generated_at
    if created.tzinfo is not None:
        created = created.astimezone(dt.UTC).replace(tzinfo=None)
    return MasterLayout(
        anno=cons.anno,
        ambito=cons.ambito,
        capofila=cons.capofila,
        created=created,
        title=f"Piano annuale dell'offerta abitativa {cons.anno} — Ambito {cons.ambito}",
        sheets=sheets,
        names=_check_names(cons.schema, names),
        buttons_anchor=CellRef(SHEET_CRUSCOTTO, BUTTON_FIRST_ROW, BUTTON_COL),
    )


def master_layout(cons: Consolidation, *, buttons: Sequence[MasterButton] = ()) -> MasterLayout:
    """What goes where in the master: every sheet's cells (values and formulas), names,
    tables, highlights and charts, all kept in memory. Pure: nothing is written."""
    builders, names = _sheet_builders(cons, buttons)
    return _layout(cons, [build(None) for build in builders], names)


# --------------------------------------------------------------------------- rendering

_BASE: dict[str, Any] = {"font_name": "Calibri", "font_size": 10, "valign": "vcenter"}
_HEADER: dict[str, Any] = {
    "bold": True,
    "bg_color": "#1F3864",
    "font_color": "#FFFFFF",
    "border": 1,
    "text_wrap": True,
    "valign": "top",
}
#: semantic style key -> XlsxWriter format properties
STYLES: dict[str, dict[str, Any]] = {
    "text": {"border": 1, "border_color": "#BFBFBF"},
    "wrap": {"border": 1, "border_color": "#BFBFBF", "text_wrap": True},
    "center": {"border": 1, "border_color": "#BFBFBF", "align": "center"},
    "general": {"border": 1, "border_color": "#BFBFBF", "align": "left"},
    "bold": {"bold": True, "border": 1, "border_color": "#BFBFBF"},
    "bold_bad": {
        "bold": True,
        "border": 1,
        "border_color": "#BFBFBF",
        "bg_color": "#FFC7CE",
        "font_color": "#9C0006",
    },
    "empty": {"italic": True, "font_color": "#595959", "border": 1, "border_color": "#BFBFBF"},
    "label": {"bold": True},
    "title": {"bold": True, "font_size": 14, "font_color": "#1F3864"},
    "title_wrap": {
        "bold": True,
        "font_size": 12,
        "font_color": "#1F3864",
        "text_wrap": True,
        "valign": "top",
    },
    "subtitle": {"bold": True, "font_size": 12, "font_color": "#9C0006"},
    "note": {"italic": True, "font_color": "#404040"},
    "header": _HEADER,
    "header_bad": {**_HEADER, "bg_color": "#9C0006"},
    "count": {"num_format": "#,##0", "border": 1, "border_color": "#BFBFBF"},
    "count_bold": {"num_format": "#,##0", "bold": True, "align": "left"},
    "count_bad": {"num_format": "#,##0", "bold": True, "align": "left", "font_color": "#9C0006"},
    "count_warn": {"num_format": "#,##0", "bold": True, "align": "left", "font_color": "#9C5700"},
    # percentage points (10 means 10%): shown as the plain number the plan prints
    "percent": {"num_format": "General", "border": 1, "border_color": "#BFBFBF"},
    "date": {"num_format": "dd/mm/yyyy", "border": 1, "border_color": "#BFBFBF"},
    "date_bold": {"num_format": "dd/mm/yyyy", "bold": True, "align": "left"},
    "date_dash": {
        "num_format": "dd-mm-yyyy",
        "border": 1,
        "border_color": "#BFBFBF",
        "align": "center",
    },
    "time": {"num_format": "hh:mm:ss", "border": 1, "border_color": "#BFBFBF", "align": "center"},
    "datetime": {"num_format": "dd/mm/yyyy hh:mm", "border": 1, "border_color": "#BFBFBF"},
    "datetime_bold": {"num_format": "dd/mm/yyyy hh:mm", "bold": True, "align": "left"},
    "datetime_s": {"num_format": "dd/mm/yyyy hh:mm:ss", "border": 1, "border_color": "#BFBFBF"},
    "total_label": {"bold": True, "bg_color": "#D9E1F2", "top": 2, "border": 1},
    "total_count": {
        "bold": True,
        "bg_color": "#D9E1F2",
        "top": 2,
        "border": 1,
        "num_format": "#,##0",
    },
    # a change: its sign always shown
    "delta": {"num_format": "+#,##0;-#,##0;0", "border": 1, "border_color": "#BFBFBF"},
    "total_delta": {
        "bold": True,
        "bg_color": "#D9E1F2",
        "top": 2,
        "border": 1,
        "num_format": "+#,##0;-#,##0;0",
    },
    "check": {"bold": True, "align": "center", "border": 1, "font_size": 12},
    "instruction": {"italic": True, "font_color": "#404040", "text_wrap": True},
}
#: conditional fills
HIGHLIGHTS: dict[str, dict[str, Any]] = {
    "bad": {"bg_color": "#FFC7CE", "font_color": "#9C0006"},
    "warn": {"bg_color": "#FFEB9C", "font_color": "#9C5700"},
    "good": {"bg_color": "#C6EFCE", "font_color": "#006100"},
}

_EPOCH = dt.datetime(1899, 12, 30)  # noqa: DTZ001 - Excel serials have no time zone


def _excel_serial(v: dt.date | dt.datetime | dt.time) -> float:
    if isinstance(v, dt.datetime):
        return (v.replace(tzinfo=None) - _EPOCH) / dt.timedelta(days=1)
    if isinstance(v, dt.date):
        return float((v - _EPOCH.date()).days)
    return (v.hour * 3600 + v.minute * 60 + v.second + v.microsecond / 1e6) / 86400


def _cached(v: Value) -> Any:
    if v is None:
        return ""
    if isinstance(v, dt.date | dt.time):
        return _excel_serial(v)
    return v


def _header_footer(text: str) -> str:
    return text.replace("&", "&&")


def _write_cell(ws: Any, r: int, c: int, cell: Cell, fmt: Any) -> None:
    v = cell.value
    if cell.formula:
        ws.write_formula(r, c, cell.formula, fmt, _cached(v))
    elif v is None or v == "":
        ws.write_blank(r, c, None, fmt)
    elif isinstance(v, bool):
        ws.write_boolean(r, c, v, fmt)
    elif isinstance(v, int | float):
        ws.write_number(r, c, v, fmt)
    elif isinstance(v, dt.date | dt.time):
        ws.write_datetime(r, c, v, fmt)
    else:
        ws.write_string(r, c, str(v), fmt)


class _RowStream:
    """The sink of one worksheet in constant-memory mode: writes each cell at once; a row
    is flushed to disk by XlsxWriter when a later row begins, so rows must come in order."""

    def __init__(self, ws: Any, fmts: dict[str, Any], merges: Sequence[tuple[int, ...]]):
        self.ws = ws
        self.fmts = fmts
        self.merged = {(r1, c1): (r2, c2) for r1, c1, r2, c2 in merges}
        self.row = 0

    def __call__(self, r: int, c: int, cell: Cell) -> None:
        if r < self.row:
            raise ValueError(f"{self.ws.name}: row {r} placed after row {self.row}")
        self.row = r
        fmt = self.fmts[cell.style]
        if (r, c) in self.merged:
            r2, c2 = self.merged[(r, c)]
            self.ws.merge_range(r, c, r2, c2, "", fmt)
        _write_cell(self.ws, r, c, cell, fmt)


def _discard(r: int, c: int, cell: Cell) -> None:
    """The sink of the measuring pass: only the widths are wanted."""


def _start_sheet(wb: Any, sh: SheetLayout, fmts: dict[str, Any]) -> Any:
    """A worksheet set up, before its cells, from the measured layout `sh`."""
    ws = wb.add_worksheet(sh.name)
    for c, w in sorted(sh.widths.items()):
        ws.set_column(c, c, w)
    for r, h in sorted(sh.row_heights.items()):
        ws.set_row(r, h)
    # XlsxWriter refuses tables in constant-memory mode only because a table writes its
    # header cells: declared before any cell is written, they take their place in row
    # order (the sheet's own header cells, identical, then replace them). XlsxWriter also
    # notes every cell of a table, only to refuse overlapping tables or merges (a layout
    # has none): a dictionary as big as the table, not kept.
    ws.constant_memory = False
    ws.table_cells = _Unrecorded()
    for t in sh.tables:
        ws.add_table(
            t.first_row,
            t.first_col,
            t.last_row,
            t.last_col,
            {
                "name": t.name,
                "style": "Table Style Light 9",
                "autofilter": True,
                "columns": [{"header": h, "header_format": fmts["header"]} for h in t.headers],
            },
        )
    ws.constant_memory = wb.constant_memory
    return ws


class _Unrecorded(dict[Any, Any]):
    """A mapping that forgets what is put in it."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _finish_sheet(
    wb: Any, ws: Any, sh: SheetLayout, fmts: dict[str, Any], anno: int, ambito: str
) -> None:
    for hl in sh.highlights:
        ws.conditional_format(
            hl.first_row,
            hl.first_col,
            hl.last_row,
            hl.last_col,
            {"type": "formula", "criteria": f"={hl.formula}", "format": fmts["hl_" + hl.style]},
        )
    for ch in sh.charts:
        opts: dict[str, Any] = {"type": ch.kind}
        if ch.subtype:
            opts["subtype"] = ch.subtype
        chart = wb.add_chart(opts)
        for s in ch.series:
            series: dict[str, Any] = {
                "name": s.name,
                "categories": s.categories,
                "values": s.values,
            }
            if ch.kind == "bar":
                series["data_labels"] = {"value": True}
            chart.add_series(series)
        chart.set_title({"name": ch.title, "name_font": {"size": 12}})
        value_axis = {
            "name": ch.y_title,
            "num_format": "#,##0",
            "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}},
        }
        if ch.kind == "bar":
            chart.set_x_axis(value_axis)
            chart.set_y_axis({"reverse": True})
        else:
            chart.set_y_axis(value_axis)
            chart.set_x_axis({"num_font": {"rotation": -45}})
        chart.set_legend({"position": "bottom" if len(ch.series) > 1 else "none"})
        chart.set_size({"width": ch.width, "height": ch.height})
        ws.insert_chart(ch.anchor_row, ch.anchor_col, chart)
    # print setup
    ws.set_paper(9)  # A4
    if sh.landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.4, right=0.4, top=0.7, bottom=0.7)
    last_row = sh.last_row
    last_col = sh.last_col if sh.print_last_col is None else sh.print_last_col
    for ch in sh.charts:  # default rows are 20 px high, default columns 64 px wide
        last_row = max(last_row, ch.anchor_row + ch.height // 20 + 1)
        last_col = max(last_col, ch.anchor_col + ch.width // 64)
    ws.print_area(0, 0, last_row, last_col)
    ws.set_header(f"&C&9{_header_footer(f'Piano annuale {anno} — Ambito {ambito}')}")
    ws.set_footer("&L&8" + _header_footer(sh.name) + "&R&8Pagina &P di &N")
    if sh.header_row is not None:
        ws.repeat_rows(sh.header_row)
        ws.freeze_panes(sh.header_row + 1, 0)


def render_master(
    cons: Consolidation,
    out: BinaryIO | str,
    *,
    vba_project: bytes | None = None,
    buttons: Sequence[MasterButton] = (),
    conf_sheet: tuple[str, Sequence[tuple[str, str, str]]] | None = None,
) -> None:
    """Write the master workbook into `out` (a binary file or a path): .xlsx, or .xlsm
    when `vba_project` (a vbaProject.bin) is given, with `buttons` bound to its macros on
    the Cruscotto. `conf_sheet` adds a last sheet of (key, value, note) rows from A1
    (xlwings' settings). Deterministic.

    Memory stays flat in the number of enti: each sheet is built twice, first only to
    measure its column widths, then cell by cell into XlsxWriter's constant-memory mode,
    which keeps one row and streams the rest through a temporary file."""
    if buttons and vba_project is None:
        raise ValueError("buttons need the vba_project with their macros")
    builders, names = _sheet_builders(cons, buttons)
    measured = [build(_discard) for build in builders]
    lay = _layout(cons, measured, names)
    wb = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    wb.set_properties(
        {
            "title": lay.title,
            "subject": "Consolidato dei dati degli enti",
            "author": lay.capofila or "Comune capofila",
            "company": lay.ambito,
            "keywords": "piano-abitativo, consolidato",
            "created": lay.created,
            "comments": "Generato da piano-abitativo. I valori si correggono nel foglio Dati.",
        }
    )
    fmts = {k: wb.add_format({**_BASE, **v}) for k, v in STYLES.items()}
    fmts.update({"hl_" + k: wb.add_format(v) for k, v in HIGHLIGHTS.items()})
    sheets: dict[str, Any] = {}
    for build, m in zip(builders, measured, strict=True):
        ws = _start_sheet(wb, m, fmts)
        sheets[m.name] = ws
        sh = build(_RowStream(ws, fmts, m.merges))
        _finish_sheet(wb, ws, sh, fmts, lay.anno, lay.ambito)
    for name, target in lay.names.items():
        wb.define_name(name, "=" + target.ref)
    if conf_sheet is not None:
        _conf_sheet(wb, fmts, *conf_sheet)
    if vba_project is not None:
        wb.set_vba_name()
        wb.add_vba_project(io.BytesIO(vba_project), is_stream=True)
        ws = sheets[lay.buttons_anchor.sheet]
        for i, b in enumerate(buttons):
            ws.insert_button(
                lay.buttons_anchor.row + i,
                lay.buttons_anchor.col,
                {
                    "macro": b.macro,
                    "caption": b.caption,
                    "width": 180,
                    "height": 28,
                    "x_offset": 2,
                    "y_offset": 2,
                },
            )
    first = sheets[SHEET_CRUSCOTTO]
    first.activate()
    first.set_first_sheet()
    wb.close()


def build_master(
    cons: Consolidation,
    *,
    vba_project: bytes | None = None,
    buttons: Sequence[MasterButton] = (),
    conf_sheet: tuple[str, Sequence[tuple[str, str, str]]] | None = None,
) -> bytes:
    """The master workbook as bytes (see `render_master`)."""
    buf = io.BytesIO()
    render_master(cons, buf, vba_project=vba_project, buttons=buttons, conf_sheet=conf_sheet)
    return buf.getvalue()


def _conf_sheet(
    wb: Any, fmts: dict[str, Any], name: str, rows: Sequence[tuple[str, str, str]]
) -> None:
    """Keys in A from A1 down and values in B, as xlwings reads them; notes in D (not
    adjacent, so not part of what xlwings reads)."""
    ws = wb.add_worksheet(name)
    for r, (key, value, note) in enumerate(rows):
        ws.write_string(r, 0, key, fmts["label"])
        ws.write_string(r, 1, value)
        ws.write_string(r, 3, note, fmts["note"])
    ws.set_column(0, 0, 30)
    ws.set_column(1, 1, 60)
    ws.set_column(3, 3, 90)


# --------------------------------------------------------------------------- writing


def _excel_owner(path: Path) -> str | None:
    """The user name in Excel's owner file "~$<name>" next to `path`, or None.

    Excel writes the name's length in byte 0 and the name in the next bytes (up to 54);
    some versions replace the first two characters of a long name instead of prefixing."""
    for cand in (path.with_name("~$" + path.name), path.with_name("~$" + path.name[2:])):
        try:
            data = cand.read_bytes()
        except OSError:
            continue
        n = data[0] if data else 0
        name = data[1 : 1 + min(n, 54)].decode("cp1252", "replace").strip("\x00 ").strip()
        return name or "un altro utente"
    return None


def _libreoffice_owner(path: Path) -> str | None:
    """The user name in LibreOffice's lock file ".~lock.<name>#" (CSV, user first)."""
    lock = path.with_name(f".~lock.{path.name}#")
    try:
        text = lock.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    first = next(csv.reader(io.StringIO(text)), [])
    name = first[0].strip() if first else ""
    return name or "un altro utente"


def _check_not_open(path: Path) -> None:
    for owner, program, lockname in (
        (_excel_owner(path), "Excel", f"~${path.name}"),
        (_libreoffice_owner(path), "LibreOffice", f".~lock.{path.name}#"),
    ):
        if owner is not None:
            raise MasterLocked(
                f"Il file {path.name} è aperto da {owner} in {program}: chiuderlo e ripetere. "
                f"Se nessuno lo ha aperto (ad esempio dopo un arresto del programma), "
                f"eliminare il file di blocco «{lockname}» nella cartella {path.parent}."
            )


_SHARING_VIOLATION = {5, 32, 33}  # Windows: access denied, sharing/lock violation


def write_master(
    cons: Consolidation,
    path: Path,
    *,
    vba_project: bytes | None = None,
    buttons: Sequence[MasterButton] = (),
    conf_sheet: tuple[str, Sequence[tuple[str, str, str]]] | None = None,
    data: bytes | None = None,
) -> Path:
    """Write the master (streamed into a temp file beside `path`, or the built `data`) and
    put it in place atomically (os.replace); refuse with `MasterLocked` when the file is
    open, leaving the old file as it was."""
    path = Path(path)
    macro = vba_project is not None or (data is not None and b"vbaProject.bin" in data)
    if macro and path.suffix.lower() != ".xlsm":
        raise ValueError(f"{path.name}: a workbook with macros must be saved as .xlsm")
    _check_not_open(path)
    try:
        with atomic_writer(path) as fh:
            if data is None:
                render_master(
                    cons, fh, vba_project=vba_project, buttons=buttons, conf_sheet=conf_sheet
                )
            else:
                fh.write(data)
            # Excel or LibreOffice may have opened it while it was being built
            _check_not_open(path)
    except PermissionError as exc:
        raise MasterLocked(
            f"Impossibile sostituire il file {path.name}: probabilmente è aperto in Excel "
            "o in un altro programma (anche da un altro PC). Chiuderlo e ripetere; il file "
            "precedente non è stato modificato."
        ) from exc
    except OSError as exc:
        if getattr(exc, "winerror", None) in _SHARING_VIOLATION:  # pragma: no cover
            raise MasterLocked(
                f"Impossibile sostituire il file {path.name}: è aperto in un altro programma. "
                "Chiuderlo e ripetere; il file precedente non è stato modificato."
            ) from exc
        raise RaccoltaError(
            f"Impossibile scrivere {path}: {exc.strerror or exc}. Il file precedente non è "
            "stato modificato."
        ) from exc
    return path


__all__ = [
    "MASTER_STEM",
    "MasterButton",
    "MasterLayout",
    "MasterLocked",
    "build_master",
    "master_layout",
    "master_path",
    "render_master",
    "sheet_names",
    "total_name",
    "write_master",
]
