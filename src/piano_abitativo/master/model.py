"""The master workbook as data: cells, sheets, names, tables, highlights, charts, and
the helpers that place them (references, widths). See `master.sheets`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.archive.store import TZ
from piano_abitativo.core.errors import MasterLocked as MasterLocked
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Schema

MASTER_STEM = "Consolidato_piano_abitativo_{anno}"

SHEET_CRUSCOTTO = "Cruscotto"
SHEET_REPORT = "Report programmazione"
SHEET_DATI = "Dati"
SHEET_ANOMALIE = "Anomalie"
SHEET_GRAFICI = "Grafici"
SHEET_DECISIONI = "Decisioni e rettifiche"

#: how the verification of a PEC envelope (``verifica_pec``) is shown
PEC_LEVELS = {
    "verificata": "firma del gestore verificata",
    "gestore_non_verificato": "firma valida, gestore non verificato (manca il file dei gestori)",
    "non_valida": "firma del gestore non valida: orario non certificato",
    "assente": "busta PEC senza firma del gestore: orario non certificato",
}
TABLE_DECISIONI = "Decisioni"


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

#: where the buttons of the .xlsm go on the Cruscotto: on the first screen, right of the
#: information panel (A:E) and above the table, column F from the second row; each button
#: spans F:G and its instruction is in H, running over the empty cells to its right
BUTTON_COL = 5
BUTTON_FIRST_ROW = 1
BUTTON_INSTRUCTION_COL = 7
#: the buttons' size in pixels (F and G are at least `BUTTON_MIN_WIDTH` characters wide)
BUTTON_WIDTH_PX = 150
BUTTON_HEIGHT_PX = 28
BUTTON_MIN_WIDTH = 11

Value = str | int | float | bool | dt.date | dt.datetime | dt.time | None


def total_name(field_id: str) -> str:
    """The workbook name of the total cell of a field: ``totale_b_carenza_manutentiva``."""
    return f"totale_{field_id}"


def master_path(raccolta_path: Path, anno: int, suffix: str = ".xlsx") -> Path:
    """Where the master of a raccolta lives: in the raccolta folder itself."""
    return Path(raccolta_path) / (MASTER_STEM.format(anno=anno) + suffix)


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
    #: a cell comment (a rettifica: who, when, why)
    comment: str | None = None


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
class RangeRef:
    """A block of cells (a column of a table, for a chart's series)."""

    sheet: str
    first_row: int
    first_col: int
    last_row: int
    last_col: int

    @property
    def ref(self) -> str:
        """Absolute, sheet-qualified: ``'f) Assegnabili'!$A$3:$A$7``; one cell as Excel
        writes it (``Grafici!$Z$1``)."""
        if (self.first_row, self.first_col) == (self.last_row, self.last_col):
            return _ref(self.sheet, self.first_row, self.first_col)
        return _rng(self.sheet, self.first_row, self.first_col, self.last_row, self.last_col)


#: what a defined name of the master points at
NameTarget = CellRef | RangeRef


def chart_ref(name: str) -> str:
    """A chart series' reference to the workbook-level name `name`, as Excel writes it in
    a chart (``[0]!name``: the workbook itself); LibreOffice reads it too."""
    return f"=[0]!{name}"


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
_UNMEASURED = frozenset({"title", "note", "subtitle", "title_wrap", "instruction"})


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
    #: the first row repeated at the top of every printed page, when the header spans
    #: more than `header_row` (the Confronto's field names above the years)
    print_titles_from: int | None = None
    #: columns repeated on the left of every printed page when the sheet is printed
    #: on more than one page across (the ente's name)
    repeat_cols: tuple[int, int] | None = None
    #: rows that begin a printed page (each chart on its own page); a sheet with page
    #: breaks prints at a fixed scale instead of fitting its width
    page_breaks: list[int] = field(default_factory=list)
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
        comment: str | None = None,
    ) -> Cell:
        cell = Cell(value, formula, style, comment)
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
    #: workbook-level defined names → their target cell or block (the charts' series)
    names: dict[str, NameTarget]
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


def cell_value(v: object) -> Value:
    """A value as a cell holds it: text, a number or empty; anything else as its text."""
    if v is None or isinstance(v, str | int | float):
        return v
    return str(v)


def start_list_sheet(
    name: str,
    header_row: int,
    title: str,
    note: str,
    headers: Sequence[str],
    sink: CellSink | None = None,
) -> SheetLayout:
    """A landscape sheet listing records: title, note, then the header row."""
    sh = SheetLayout(name, header_row=header_row, landscape=True, sink=sink)
    sh.put(0, 0, title, style="title")
    sh.put(1, 0, note, style="note")
    for c, h in enumerate(headers):
        sh.put(header_row, c, h, style="header")
    return sh


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
