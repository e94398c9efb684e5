"""Writing the master's layout into an open workbook through xlwings: each sheet as one
grid of values and formulas from A1 (`sheet_grid`), date formats, tables and names
(`refresh`). Used by the buttons (`excel.buttons`)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# the master's styles are imported by the functions that write a layout: importing the
# buttons (which re-export these functions) does not load the master
if TYPE_CHECKING:
    import xlwings as xw

    from piano_abitativo.master.sheets import MasterLayout, SheetLayout

Grid = list[list[Any]]

_BOOLEAN_WORDS = frozenset({"TRUE", "FALSE", "VERO", "FALSO"})
#: text Excel reads as a month-name date, as typed in any language ("mar 2024", "gen-24")
_MONTH_DATE = re.compile(r"[^\W\d_]{3,9}[ ./-]+\d")


def _needs_text_prefix(text: str) -> bool:
    """Whether Excel would read `text`, written as a value, as something else: a formula
    (``=``, ``+``, ``-``, ``@``), an error (``#N/A``), a number or code with leading zeros
    (``019035``), a negative number in brackets, a date or time (``3/12``, ``mar 2024``),
    a percentage or a boolean. Conservative: a needless prefix is invisible."""
    t = text.lstrip()
    if not t:
        return False
    return (
        t[0] in "=+-@'#(.,$€£"
        or t[0].isdigit()
        or t.upper() in _BOOLEAN_WORDS
        or _MONTH_DATE.match(t) is not None
    )


def _xl_value(v: Any) -> Any:
    """A layout value as it is written into a cell (None leaves the cell empty)."""
    if isinstance(v, str):
        # the apostrophe makes Excel keep the text as typed; it is not part of the value
        return "'" + v if _needs_text_prefix(v) else v
    if isinstance(v, dt.time):
        return (v.hour * 3600 + v.minute * 60 + v.second + v.microsecond / 1e6) / 86400
    return v


def sheet_grid(sheet: SheetLayout) -> Grid:
    """The cells of one sheet from A1, row by row: formula (``=...``) or value, None where
    the cell is empty. Rectangular."""
    nrows, ncols = sheet.last_row + 1, sheet.last_col + 1
    grid: Grid = [[None] * ncols for _ in range(nrows)]
    for (r, c), cell in sheet.cells.items():
        grid[r][c] = cell.formula or _xl_value(cell.value)
    return grid


def layout_grids(layout: MasterLayout) -> dict[str, Grid]:
    """Every sheet of the master as one grid from A1 (see `sheet_grid`). Pure."""
    return {sh.name: sheet_grid(sh) for sh in layout.sheets}


def _is_datetime_format(style: str, styles: Mapping[str, Mapping[str, object]]) -> bool:
    fmt = str(styles.get(style, {}).get("num_format", ""))
    return "yy" in fmt or "hh" in fmt


def datetime_format_runs(sheet: SheetLayout) -> list[tuple[int, int, int, str]]:
    """(column, first row, last row, number format) of the vertical runs of date and time
    cells: they get their format again, so that rows added since the master was built show
    a date and not a serial number. Pure."""
    from piano_abitativo.master.sheets import STYLES

    cells = sorted(
        (c, r, str(STYLES[cell.style]["num_format"]))
        for (r, c), cell in sheet.cells.items()
        if _is_datetime_format(cell.style, STYLES)
    )
    runs: list[tuple[int, int, int, str]] = []
    for c, r, fmt in cells:
        if runs and runs[-1][0] == c and runs[-1][2] == r - 1 and runs[-1][3] == fmt:
            runs[-1] = (c, runs[-1][1], r, fmt)
        else:
            runs.append((c, r, r, fmt))
    return runs


#: styles of titles, notes and labels: above the tables, never on rows a refresh adds
_UNFORMATTED = frozenset({"title", "title_wrap", "subtitle", "note", "label", "instruction"})


@dataclass(frozen=True)
class StyleBlock:
    """A rectangle of cells of one style (zero-based, inclusive)."""

    first_row: int
    first_col: int
    last_row: int
    last_col: int
    style: str


def style_blocks(sheet: SheetLayout) -> list[StyleBlock]:
    """The cells of the tables of a sheet as rectangles of one style, for `refresh` to
    format rows it adds as the writer formats them: runs of a row, then identical runs
    of consecutive rows merged. Titles, notes and labels are left out. Pure."""
    rows: dict[int, list[tuple[int, int, str]]] = {}
    for (r, c), cell in sorted(sheet.cells.items()):
        if cell.style in _UNFORMATTED:
            continue
        runs = rows.setdefault(r, [])
        if runs and runs[-1][1] == c - 1 and runs[-1][2] == cell.style:
            runs[-1] = (runs[-1][0], c, cell.style)
        else:
            runs.append((c, c, cell.style))
    open_blocks: dict[tuple[int, int, str], StyleBlock] = {}
    done: list[StyleBlock] = []
    for r in sorted(rows):
        current = {}
        for c1, c2, style in rows[r]:
            key = (c1, c2, style)
            prev = open_blocks.pop(key, None)
            if prev is not None and prev.last_row == r - 1:
                current[key] = StyleBlock(prev.first_row, c1, r, c2, style)
            else:
                if prev is not None:
                    done.append(prev)
                current[key] = StyleBlock(r, c1, r, c2, style)
        done += open_blocks.values()
        open_blocks = current
    done += open_blocks.values()
    return sorted(done, key=lambda b: (b.first_row, b.first_col))


def _apply_style(rng: Any, style: str) -> None:
    """Give `rng` the borders, fill, font and number format the writer gives the cells of
    `style` (`master.writer.STYLES`, over Calibri 10). Not the alignment: xlwings sets it
    only from Office.js, not from the VBA client of the buttons."""
    from piano_abitativo.master.sheets import STYLES

    props = STYLES.get(style, {})
    rng.number_format = str(props.get("num_format", "General"))
    rng.color = props.get("bg_color")
    font = rng.font
    font.bold = bool(props.get("bold", False))
    font.italic = bool(props.get("italic", False))
    font.color = str(props.get("font_color", "#000000"))
    font.size = props.get("font_size", 10)
    rng.wrap_text = bool(props.get("text_wrap", False))
    if props.get("border"):
        rng.borders.line_style = "continuous"
        rng.borders.weight = "thin"
        rng.borders.color = str(props.get("border_color", "#000000"))
        if props.get("top") == 2:  # the Totale row: a medium line above
            rng.borders["edge_top"].weight = "medium"
    else:
        rng.borders.clear()


def _a1(row: int, col: int, absolute: bool = False) -> str:
    """A1 reference of a zero-based cell."""
    letters = ""
    n = col + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return f"${letters}${row + 1}" if absolute else f"{letters}{row + 1}"


def _norm_ref(ref: str) -> str:
    """A sheet-qualified reference in one spelling: ``='b) X'!$B$7`` -> ``b) x!B7``."""
    text = ref.strip().lstrip("=").replace("$", "")
    sheet, _, addr = text.rpartition("!")
    if len(sheet) >= 2 and sheet[0] == sheet[-1] == "'":
        sheet = sheet[1:-1].replace("''", "'")
    return f"{sheet.casefold()}!{addr.upper()}"


@dataclass
class Refresh:
    """What one refresh wrote into the workbook."""

    sheets: list[str] = field(default_factory=list)
    added_sheets: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    #: sheets whose rows were formatted again (their number of rows changed)
    formatted: list[str] = field(default_factory=list)


def _extent(ws: Any) -> tuple[int, int]:
    """Rows and columns from A1 to the last used cell of a sheet."""
    ur = ws.used_range
    nrows, ncols = ur.shape
    return ur.row + nrows - 1, ur.column + ncols - 1


def _table(ws: Any, name: str) -> Any | None:
    try:
        return ws.tables[name]
    except Exception:  # no such table (removed or renamed by hand)
        return None


def refresh(
    book: xw.Book,
    layout: MasterLayout,
    *,
    only: Collection[str] | None = None,
    status: Callable[[str], None] | None = None,
) -> Refresh:
    """Write `layout` into the open workbook: each sheet's values and formulas (in `only`,
    or all), the Excel tables' extents and the ``totale_*`` names.

    On each sheet, the part of the old used range that the new grid does not cover is
    cleared (the rows below: contents and formats), then the grid is written from A1 in
    one assignment, where None empties a cell; when the number of rows changed, the
    table cells get the writer's formats again (`style_blocks`). The columns of the
    buttons on the Cruscotto are never touched. Sheets that are not in the layout
    (``xlwings.conf``...) are left alone.
    """
    done = Refresh()
    existing = {ws.name: ws for ws in book.sheets}
    anchor = layout.buttons_anchor
    for sh in layout.sheets:
        if only is not None and sh.name not in only:
            continue
        if status is not None:
            status(f"Piano abitativo: aggiornamento del foglio {sh.name}…")
        ws = existing.get(sh.name)
        if ws is None:
            ws = book.sheets.add(sh.name, after=book.sheets[-1])
            done.added_sheets.append(sh.name)
            old_rows, old_cols = 0, 0
        else:
            old_rows, old_cols = _extent(ws)
        if sh.name == anchor.sheet:
            old_cols = min(old_cols, anchor.col)
        grid = sheet_grid(sh)
        rows, cols = len(grid), len(grid[0])
        if old_rows > rows:
            below = ws.range((rows + 1, 1), (old_rows, max(old_cols, 1)))
            below.clear_contents()
            below.clear_formats()  # a Totale row's fill and lines left below the table
        if old_cols > cols:
            ws.range((1, cols + 1), (min(rows, old_rows), old_cols)).clear_contents()
        ws["A1"].value = grid
        if rows != old_rows:
            # the rows moved: each table's rows get the writer's borders, fills and
            # fonts again, so added rows look like the others and a Totale row moved
            # down leaves no plain row behind it
            for b in style_blocks(sh):
                _apply_style(
                    ws.range((b.first_row + 1, b.first_col + 1), (b.last_row + 1, b.last_col + 1)),
                    b.style,
                )
            done.formatted.append(sh.name)
        for col, first, last, fmt in datetime_format_runs(sh):
            ws.range((first + 1, col + 1), (last + 1, col + 1)).number_format = fmt
        for t in sh.tables:
            want = f"{_a1(t.first_row, t.first_col, True)}:{_a1(t.last_row, t.last_col, True)}"
            table = _table(ws, t.name)
            if table is None:  # removed by hand: the values are written anyway
                continue
            if str(table.range.address).replace("$", "") != want.replace("$", ""):
                table.resize(ws.range(want))
                done.tables.append(t.name)
        done.sheets.append(sh.name)
    if only is None or any(ref.sheet in only for ref in layout.names.values()):
        for name, ref in layout.names.items():
            target = "=" + ref.ref
            if book.names.contains(name) and (
                _norm_ref(str(book.names(name).refers_to)) == _norm_ref(target)
            ):
                continue
            book.names.add(name, target)  # replaces the old definition
            done.names.append(name)
    return done
