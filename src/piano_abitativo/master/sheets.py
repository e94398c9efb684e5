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

This module gathers the master's public names; the code lives in `model` (the layout
model), `tables` (Dati, tables a)–k), Report, Confronto), `dashboard` (Cruscotto,
Anomalie, Grafici), `layout` (the sheets in order) and `render` (XlsxWriter, writing).
"""

from __future__ import annotations

from piano_abitativo.master.dashboard import (
    ANOMALIE_HEADER_ROW,
    ANOMALIE_HEADERS,
    CRUSCOTTO_HEADER_ROW,
    CRUSCOTTO_HEADERS,
    STATO_NON_ATTRIBUITO,
    STRAY_HEADERS,
)
from piano_abitativo.master.layout import (
    SheetBuilder,
    master_layout,
    sheet_names,
)
from piano_abitativo.master.model import (
    BAD,
    BUTTON_COL,
    BUTTON_FIRST_ROW,
    MASTER_STEM,
    NESSUN_COMUNE,
    NESSUNA,
    NO,
    OK,
    SHEET_ANOMALIE,
    SHEET_CRUSCOTTO,
    SHEET_DATI,
    SHEET_GRAFICI,
    SHEET_REPORT,
    SI,
    TABLE_ANOMALIE,
    TABLE_DATI,
    TABLE_SHEETS,
    TOTALE,
    Cell,
    CellRef,
    CellSink,
    ChartSpec,
    Highlight,
    MasterButton,
    MasterLayout,
    MasterLocked,
    Series,
    SheetLayout,
    TableSpec,
    Value,
    dati_header,
    master_path,
    table_sheets,
    total_name,
)
from piano_abitativo.master.tables import (
    CONFRONTO_FIELDS,
    CONFRONTO_HEADER_ROW,
    DATI_COL_RICEVUTO,
    DATI_FIRST_FIELD_COL,
    DATI_FIXED,
    DATI_HEADER_ROW,
    DATI_TITLE_ROW,
    REPORT_COLUMNS,
    REPORT_HEADER_ROW,
    TABLE_FIRST_ROW,
    TABLE_HEADER_ROW,
    TABLE_TITLE_ROW,
    TableDef,
    confronto_sheet_name,
    confronto_total_label,
    confronto_waiting_note,
    report_columns,
    sums_other_sections,
    table_def,
    table_defs,
)
from piano_abitativo.master.writer import (
    HIGHLIGHTS,
    STYLES,
    build_master,
    render_master,
    write_master,
)

__all__ = [
    "ANOMALIE_HEADERS",
    "ANOMALIE_HEADER_ROW",
    "BAD",
    "BUTTON_COL",
    "BUTTON_FIRST_ROW",
    "CONFRONTO_FIELDS",
    "CONFRONTO_HEADER_ROW",
    "CRUSCOTTO_HEADERS",
    "CRUSCOTTO_HEADER_ROW",
    "DATI_COL_RICEVUTO",
    "DATI_FIRST_FIELD_COL",
    "DATI_FIXED",
    "DATI_HEADER_ROW",
    "DATI_TITLE_ROW",
    "HIGHLIGHTS",
    "MASTER_STEM",
    "NESSUNA",
    "NESSUN_COMUNE",
    "NO",
    "OK",
    "REPORT_COLUMNS",
    "REPORT_HEADER_ROW",
    "SHEET_ANOMALIE",
    "SHEET_CRUSCOTTO",
    "SHEET_DATI",
    "SHEET_GRAFICI",
    "SHEET_REPORT",
    "SI",
    "STATO_NON_ATTRIBUITO",
    "STRAY_HEADERS",
    "STYLES",
    "TABLE_ANOMALIE",
    "TABLE_DATI",
    "TABLE_FIRST_ROW",
    "TABLE_HEADER_ROW",
    "TABLE_SHEETS",
    "TABLE_TITLE_ROW",
    "TOTALE",
    "Cell",
    "CellRef",
    "CellSink",
    "ChartSpec",
    "Highlight",
    "MasterButton",
    "MasterLayout",
    "MasterLocked",
    "Series",
    "SheetBuilder",
    "SheetLayout",
    "TableDef",
    "TableSpec",
    "Value",
    "build_master",
    "confronto_sheet_name",
    "confronto_total_label",
    "confronto_waiting_note",
    "dati_header",
    "master_layout",
    "master_path",
    "render_master",
    "report_columns",
    "sheet_names",
    "sums_other_sections",
    "table_def",
    "table_defs",
    "table_sheets",
    "total_name",
    "write_master",
]
