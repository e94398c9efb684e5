"""The master's sheets of data: *Dati* (one row per ente), the tables a)–k) of the
plan, the *Report programmazione* (the annex) and the comparison with last year; all
of them derived from the consolidation's schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.archive.decisions import Rettifica
from piano_abitativo.archive.store import TZ
from piano_abitativo.consolidation.confronto import like_for_like
from piano_abitativo.consolidation.consolidate import (
    Consolidation,
)
from piano_abitativo.core.schema import OWNER, SCHEMA, Field, Kind, Role, Schema
from piano_abitativo.master.model import (
    BAD,
    NESSUN_COMUNE,
    NESSUNA,
    OK,
    PEC_LEVELS,
    SHEET_DATI,
    SHEET_REPORT,
    TABLE_DATI,
    TOTALE,
    Cell,
    CellRef,
    CellSink,
    Highlight,
    NameTarget,
    SheetLayout,
    TableSpec,
    _fit_widths,
    _local,
    _num_style,
    _q,
    _ref,
    _rng,
    _si_no,
    dati_header,
    total_name,
)

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
        "Valori della versione valida più recente di ogni ente; in azzurro le rettifiche "
        "del Comune capofila (il commento dice chi, quando e perché). Un valore corretto "
        "qui non va perso: al consolidamento successivo si sceglie se registrarlo come "
        "rettifica, con il motivo, o scartarlo.",
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
        corrected = s.rettificati
        for f in fields:
            c = cols[f.id]
            style = _num_style(f)
            v = vals.get(f.id) if vals else None
            rt = corrected.get(f.id)
            if rt is not None:
                sh.put(r, c, v, style=f"{style}_rett", comment=rettifica_comment(rt))
            elif vals and f.role is Role.FORMULA:
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
    sh.repeat_cols = (0, 1)
    return sh


def rettifica_comment(rt: Rettifica) -> str:
    """The comment of a corrected cell: the value the ente sent, who, when and why."""
    was = "vuoto" if rt.valore_precedente is None else str(rt.valore_precedente)
    return (
        f"Rettifica del Comune capofila: valore dell'ente {was}.\n"
        f"Motivo: {rt.motivo}\nDa {rt.utente}, il {rt.il.astimezone(TZ):%d/%m/%Y %H:%M}"
    )


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
    names: dict[str, NameTarget],
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
        level = used.extra.get("verifica_pec")
        fonte = used.fonte_data + (f" ({PEC_LEVELS[level]})" if level in PEC_LEVELS else "")
        sh.put(r, len(columns) - 1, fonte)
        r += 1
    if not cons.answered:
        sh.put(r, 0, NESSUNA, style="empty")
    _fit_widths(sh, {0: 40, 1: 12, 2: 10, len(columns) - 1: 30}, header_cap=14)
    sh.repeat_cols = (0, 0)
    return sh


# --------------------------------------------------------------------------- Confronto

#: the fields compared with last year on the master for the default schema, in order
#: (`Schema.confronto_fields`)
CONFRONTO_FIELDS: tuple[str, ...] = tuple(f.id for f in SCHEMA.confronto_fields)
CONFRONTO_HEADER_ROW = 3


def confronto_sheet_name(anno_precedente: int) -> str:
    return f"Confronto {anno_precedente}"


def confronto_total_label(both: int) -> str:
    """The label of the like-with-like total row of the comparison."""
    return f"Totale dei {both} enti presenti in entrambi gli anni"


def confronto_waiting_note(waiting: int, new: int, anno_precedente: int, anno: int) -> str:
    """How many enti of last year have not answered yet (and who answered only now)."""
    if waiting == 1:
        text = (
            f"Non ha ancora risposto per il {anno} 1 ente che aveva risposto nel "
            f"{anno_precedente} (escluso dalla variazione)."
        )
    elif waiting:
        text = (
            f"Non hanno ancora risposto per il {anno} {waiting} enti che avevano risposto "
            f"nel {anno_precedente} (esclusi dalla variazione)."
        )
    else:
        text = f"Tutti gli enti che avevano risposto nel {anno_precedente} hanno risposto."
    if new == 1:
        text += f" 1 ente ha risposto solo nel {anno} (escluso dalla variazione)."
    elif new:
        text += f" {new} enti hanno risposto solo nel {anno} (esclusi dalla variazione)."
    return text


def _confronto_sheet(cons: Consolidation, pos: _Dati, sink: CellSink | None = None) -> SheetLayout:
    """Each ente's figures last year and this year and the change: the current ones read
    Dati, so a correction there shows here too."""
    confronto = cons.confronto
    if confronto is None:  # pragma: no cover - the sheet exists only with a comparison
        raise ValueError("no comparison")
    prev_anno = confronto.anno_precedente
    sh = SheetLayout(
        confronto_sheet_name(prev_anno), header_row=CONFRONTO_HEADER_ROW, landscape=True, sink=sink
    )
    sh.put(0, 0, f"Confronto con il Piano {prev_anno}", style="title")
    sh.put(
        1,
        0,
        f"Raccolta {prev_anno}: {confronto.raccolta_precedente}. Le righe sono gli enti "
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
    rows = [*confronto.enti, *confronto.solo_precedente]
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
    # like with like: the change is the one of the enti with a valid return in both years
    # (a delta cell is filled only for them); the totals of all who answered follow,
    # without a change, and how many have not answered yet
    same = like_for_like(confronto)
    total_row = r
    sh.put(r, 0, confronto_total_label(same.both), style="total_label")
    for i, fid in enumerate(fields):
        c = 1 + 3 * i
        prev_same, cur_same = same.totals.get(fid, (0, 0))
        deltas = _rng(None, first, c + 2, last, c + 2)
        for k, v in ((0, prev_same), (1, cur_same)):
            col = _rng(None, first, c + k, last, c + k)
            sh.put(r, c + k, v, formula=f'=SUMIFS({col},{deltas},"<>")', style="total_count")
        sh.put(
            r,
            c + 2,
            cur_same - prev_same,
            style="total_delta",
            formula=f"={xl_rowcol_to_cell(r, c + 1)}-{xl_rowcol_to_cell(r, c)}",
        )
    r += 1
    answered_prev = sum(1 for ch in rows if ch.answered_previous)
    answered_cur = sum(1 for ch in confronto.enti if ch.answered_current)
    sh.put(
        r,
        0,
        f"Totale di tutti gli enti che hanno risposto ({answered_prev} nel {prev_anno}, "
        f"{answered_cur} nel {cons.anno})",
        style="total_label_wrap",
    )
    sh.row_heights[r] = 28.0
    for i, fid in enumerate(fields):
        c = 1 + 3 * i
        prev_total, cur_total = confronto.totals.get(fid, (0, 0))
        sh.put(
            r, c, prev_total, formula=f"=SUM({_rng(None, first, c, last, c)})", style="total_count"
        )
        sh.put(r, c + 1, cur_total, formula=f"={total_name(fid)}", style="total_count")
        sh.put(r, c + 2, None, style="total_label")
    r += 1
    sh.put(r, 0, confronto_waiting_note(same.waiting, same.new, prev_anno, cons.anno), style="note")
    for i in range(len(fields)):
        c = 3 + 3 * i
        cell = xl_rowcol_to_cell(first, c)
        r = total_row
        sh.highlights.append(Highlight(first, c, r, c, f"AND(ISNUMBER({cell}),{cell}<0)", "bad"))
        sh.highlights.append(Highlight(first, c, r, c, f"AND(ISNUMBER({cell}),{cell}>0)", "good"))
    _fit_widths(sh, {0: 40}, header_cap=12)
    sh.repeat_cols = (0, 0)
    sh.print_titles_from = top
    sh.row_heights[top] = 17.0  # its labels span three columns: one line
    return sh
