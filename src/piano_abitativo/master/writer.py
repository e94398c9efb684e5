"""Writing the master: XlsxWriter styles, the streaming writer (`render_master`,
`build_master`) and the atomic replacement of the file (`write_master`), refused while
the workbook is open."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import math
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import xlsxwriter
import xlsxwriter.exceptions

from piano_abitativo.consolidation.consolidate import (
    Consolidation,
)
from piano_abitativo.core.atomic import atomic_writer
from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.raccolta import RaccoltaError
from piano_abitativo.master.layout import (
    _layout,
    _sheet_builders,
)
from piano_abitativo.master.locks import check_not_open
from piano_abitativo.master.model import (
    BUTTON_HEIGHT_PX,
    BUTTON_WIDTH_PX,
    SHEET_CRUSCOTTO,
    Cell,
    MasterButton,
    MasterLocked,
    SheetLayout,
    Value,
)
from piano_abitativo.master.printing import fixed_print_scale, pages_across
from piano_abitativo.master.worksheet import Worksheet

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
_RETT: dict[str, Any] = {"border": 1, "border_color": "#2F5597", "bg_color": "#DDEBF7"}
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
    "count_center": {
        "num_format": "#,##0",
        "border": 1,
        "border_color": "#BFBFBF",
        "align": "center",
    },
    # a value corrected by the capofila (rettifica): blue, with a comment
    "count_rett": {
        "num_format": "#,##0",
        "border": 1,
        "border_color": "#2F5597",
        "bg_color": "#DDEBF7",
    },
    "percent_rett": {
        "num_format": "General",
        "border": 1,
        "border_color": "#2F5597",
        "bg_color": "#DDEBF7",
    },
    "text_rett": {"border": 1, "border_color": "#2F5597", "bg_color": "#DDEBF7"},
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
    "total_label_wrap": {
        "bold": True,
        "bg_color": "#D9E1F2",
        "top": 2,
        "border": 1,
        "text_wrap": True,
    },
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
    # one line, running over the empty cells to its right
    "instruction": {"italic": True, "font_color": "#404040", "valign": "vcenter"},
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


#: what the master shows in place of a number that is not finite (NaN, infinity)
NOT_FINITE = "valore non valido"
_NOT_FINITE_NOTE = (
    "Il valore ricevuto non è un numero finito (NaN o infinito): non è stato usato. "
    "Vedere il foglio Anomalie."
)


def _finite(v: object) -> bool:
    return not isinstance(v, float) or math.isfinite(v)


def _cached(v: Value) -> Any:
    if v is None or not _finite(v):
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
    elif isinstance(v, int | float) and _finite(v):
        ws.write_number(r, c, v, fmt)
    elif isinstance(v, float):  # XlsxWriter refuses NaN/Inf: say so in the cell
        ws.write_string(r, c, NOT_FINITE, fmt)
    elif isinstance(v, dt.date | dt.time):
        ws.write_datetime(r, c, v, fmt)
    else:
        ws.write_string(r, c, str(v), fmt)
    comment = cell.comment or ("" if _finite(v) else _NOT_FINITE_NOTE)
    if comment:
        ws.write_comment(r, c, comment, {"x_scale": 2.5, "y_scale": 1.6})


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
    ws = wb.add_worksheet(sh.name, worksheet_class=Worksheet)
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
            if ch.kind == "bar":  # the value beside (or inside) each bar; zeros left out
                series["data_labels"] = {"value": True, "num_format": "#,##0;;;"}
            with _names_in_charts():
                chart.add_series(series)
        chart.set_title({"name": ch.title, "name_font": {"size": 12}})
        value_axis = {
            "name": ch.y_title,
            "min": 0,  # a bar starts at nought, or the ALER's 997 would look like 7
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
    ws.set_margins(left=0.4, right=0.4, top=0.7, bottom=0.7)
    last_row = sh.last_row
    last_col = sh.last_col if sh.print_last_col is None else sh.print_last_col
    for ch in sh.charts:  # default rows are 20 px high, default columns 64 px wide
        last_row = max(last_row, ch.anchor_row + ch.height // 20 + 1)
        last_col = max(last_col, ch.anchor_col + ch.width // 64)
    ws.print_area(0, 0, last_row, last_col)
    if sh.page_breaks:
        # Excel ignores manual page breaks on a sheet fitted to pages: a fixed scale
        ws.set_h_pagebreaks(sh.page_breaks)
        ws.set_print_scale(fixed_print_scale(sh, last_col))
    else:
        pages = pages_across(sh, last_col)
        ws.fit_to_pages(pages, 0)
        if pages > 1 and sh.repeat_cols is not None:
            ws.repeat_columns(*sh.repeat_cols)
    ws.set_header(f"&C&9{_header_footer(f'Piano annuale {anno} — Ambito {ambito}')}")
    ws.set_footer("&L&8" + _header_footer(sh.name) + "&R&8Pagina &P di &N")
    if sh.header_row is not None:
        top = sh.header_row if sh.print_titles_from is None else sh.print_titles_from
        ws.repeat_rows(top, sh.header_row)
        ws.freeze_panes(sh.header_row + 1, 0)


def render_master(
    cons: Consolidation,
    out: BinaryIO | str,
    *,
    vba_project: bytes | None = None,
    buttons: Sequence[MasterButton] = (),
    conf_sheet: tuple[str, Sequence[tuple[str, str, str]]] | None = None,
) -> None:
    """Write the master workbook into `out` (see `_render`), then free XlsxWriter's
    workbook: a web of cycles (its sheets' rows, columns, formats and temporary files,
    0.6 MiB at 1,500 enti) that only the cycle collector frees — now (~15 ms), not under
    what the caller does next."""
    try:
        _render(cons, out, vba_project=vba_project, buttons=buttons, conf_sheet=conf_sheet)
    finally:
        gc.collect()


def _render(
    cons: Consolidation,
    out: BinaryIO | str,
    *,
    vba_project: bytes | None,
    buttons: Sequence[MasterButton],
    conf_sheet: tuple[str, Sequence[tuple[str, str, str]]] | None,
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
                    "width": BUTTON_WIDTH_PX,
                    "height": BUTTON_HEIGHT_PX,
                    "x_offset": 2,
                    "y_offset": 2,
                },
            )
    first = sheets[SHEET_CRUSCOTTO]
    first.activate()
    first.set_first_sheet()
    try:
        with _names_in_charts():
            wb.close()
    except xlsxwriter.exceptions.FileCreateError as exc:
        # a full disk: XlsxWriter leaves its ZipFile open in the traceback's frames; when
        # it is collected after `out` is closed it prints "Exception ignored … seek of
        # closed file" — let it go without writing, and raise the OSError it wraps
        _forget_open_zips(exc)
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, OSError):
            raise cause from None
        raise


@contextlib.contextmanager
def _names_in_charts() -> Iterator[None]:
    """Quiet XlsxWriter's warning about chart series that read a workbook name
    (``[0]!grafico_f_enti``): not a range it can cache, it writes the reference as given,
    which is what Excel itself writes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unknown worksheet reference '\\[0\\]'")
        yield


def _forget_open_zips(exc: BaseException | None) -> None:
    """Detach the ZipFiles left open in the frames of `exc` (and of its causes) from their
    file, so that collecting them later writes nothing and says nothing."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            for value in tb.tb_frame.f_locals.values():
                if isinstance(value, zipfile.ZipFile):
                    value.fp = None
            tb = tb.tb_next
        if isinstance(exc.args[0] if exc.args else None, BaseException):
            _forget_open_zips(exc.args[0])
        exc = exc.__cause__ or exc.__context__


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
    adjacent, so not part of what xlwings reads). Hidden, so that it neither prints nor
    clutters the tabs: xlwings' ``GetConfigFromSheet`` finds it by name
    (``wb.Sheets("xlwings.conf")``), which works on a hidden sheet; IT shows it again with
    right click on a tab > Scopri."""
    ws = wb.add_worksheet(name, worksheet_class=Worksheet)
    ws.hide()
    for r, (key, value, note) in enumerate(rows):
        ws.write_string(r, 0, key, fmts["label"])
        ws.write_string(r, 1, value)
        ws.write_string(r, 3, note, fmts["note"])
    ws.set_column(0, 0, 30)
    ws.set_column(1, 1, 60)
    ws.set_column(3, 3, 90)


# --------------------------------------------------------------------------- writing


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
    check_not_open(path)
    try:
        with atomic_writer(path) as fh:
            if data is None:
                render_master(
                    cons, fh, vba_project=vba_project, buttons=buttons, conf_sheet=conf_sheet
                )
            else:
                fh.write(data)
            # Excel or LibreOffice may have opened it while it was being built
            check_not_open(path)
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
            f"Impossibile scrivere {path}: {os_reason(exc)}. Il file precedente non è "
            "stato modificato."
        ) from exc
    return path
