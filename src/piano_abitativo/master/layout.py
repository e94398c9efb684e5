"""The master's sheets in order and the builders that place their cells: the pure
layout of the whole workbook (`master_layout`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from piano_abitativo.consolidation.consolidate import (
    Consolidation,
)
from piano_abitativo.core.schema import SCHEMA, Schema
from piano_abitativo.master.dashboard import (
    _anomalie_sheet,
    _cruscotto_sheet,
    _grafici_sheet,
)
from piano_abitativo.master.model import (
    BUTTON_COL,
    BUTTON_FIRST_ROW,
    SHEET_ANOMALIE,
    SHEET_CRUSCOTTO,
    SHEET_DATI,
    SHEET_DECISIONI,
    SHEET_GRAFICI,
    SHEET_REPORT,
    CellRef,
    CellSink,
    MasterButton,
    MasterLayout,
    NameTarget,
    SheetLayout,
    table_sheets,
    total_name,
)
from piano_abitativo.master.review import decisioni_sheet
from piano_abitativo.master.tables import (
    TableDef,
    _confronto_sheet,
    _dati_positions,
    _dati_sheet,
    _report_sheet,
    _table_sheet,
    confronto_sheet_name,
    table_defs,
)

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
        SHEET_DECISIONI,
        SHEET_GRAFICI,
    ]


SheetBuilder = Callable[[CellSink | None], SheetLayout]


def _sheet_builders(
    cons: Consolidation, buttons: Sequence[MasterButton] = ()
) -> tuple[list[SheetBuilder], dict[str, NameTarget]]:
    """One builder per sheet, in order (run them in that order: the tables fill the names
    and the spans the charts need), and the defined names they fill. A builder can run
    more than once and places the same cells each time."""
    names: dict[str, NameTarget] = {}
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
        lambda sink: decisioni_sheet(cons, sink),
        lambda sink: _grafici_sheet(cons, spans, tds, names, sink),
    ]
    return builders, names


def _check_names(schema: Schema, names: dict[str, NameTarget]) -> dict[str, NameTarget]:
    missing = {total_name(f.id) for f in schema.total_fields} - set(names)
    if missing:  # pragma: no cover - every total field has a table with a total row
        raise ValueError(f"totali senza cella: {sorted(missing)}")
    return dict(sorted(names.items()))


def _layout(
    cons: Consolidation, sheets: list[SheetLayout], names: dict[str, NameTarget]
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
