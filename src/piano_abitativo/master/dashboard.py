"""The master's sheets for the capofila: *Cruscotto* (state of the raccolta),
*Anomalie* (open problems) and *Grafici*."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.archive.decisions import short_id
from piano_abitativo.archive.store import Receipt
from piano_abitativo.consolidation.consolidate import (
    STATO_CON_AVVISI,
    STATO_CON_ERRORI,
    STATO_IN_VERIFICA,
    STATO_NON_RICEVUTO,
    STATO_VALIDO,
    Consolidation,
    EnteStatus,
)
from piano_abitativo.core.problems import Problem, Severity
from piano_abitativo.master.model import (
    BUTTON_COL,
    BUTTON_FIRST_ROW,
    BUTTON_INSTRUCTION_COL,
    BUTTON_MIN_WIDTH,
    PEC_LEVELS,
    SHEET_ANOMALIE,
    SHEET_CRUSCOTTO,
    SHEET_GRAFICI,
    TABLE_ANOMALIE,
    CellSink,
    ChartSpec,
    Highlight,
    MasterButton,
    NameTarget,
    RangeRef,
    Series,
    SheetLayout,
    TableSpec,
    Value,
    _fit_widths,
    _local,
    _q,
    _rng,
    _si_no,
    cell_value,
    chart_ref,
    start_list_sheet,
)
from piano_abitativo.master.review import review_rows
from piano_abitativo.master.tables import (
    TableDef,
)

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
    "Note",
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


#: how many rows below its header the Anomalie's severity colours cover
ANOMALIE_HIGHLIGHT_ROWS = 5000


def _declared(rc: Receipt) -> str:
    rep = rc.report
    if rep.ente_denominazione and rep.ente:
        return f"{rep.ente_denominazione} ({rep.ente})"
    return rep.ente_denominazione or rep.ente or "non indicato"


def _stray_message(rc: Receipt) -> str:
    rep = rc.report
    first = rep.errors[0] if rep.errors else (rep.problems[0] if rep.problems else None)
    return first.message if first else "Ente non riconosciuto"


def _note(s: EnteStatus) -> str | None:
    """What needs the capofila's eye on an ente's row, short (the reasons are in the
    Anomalie): files in verifica, a sender not in the registry, rettifiche, a PEC envelope
    whose gestore signature does not certify its time."""
    notes = []
    if s.in_verifica:
        ids = ", ".join(short_id(h.receipt.sha256) for h in s.in_verifica)
        notes.append(f"In verifica: file {ids} (motivo nelle Anomalie)")
    if s.mittente_sconosciuto:
        notes.append("Mittente non registrato")
    if s.rettifiche:
        notes.append("Rettificato: " + ", ".join(sorted(s.rettificati)))
    last = s.latest
    level = last.extra.get("verifica_pec") if last is not None else None
    if level and level != "verificata":
        notes.append(f"PEC: {PEC_LEVELS.get(str(level), str(level))}")
    return "; ".join(notes) or None


def _cruscotto_sheet(
    cons: Consolidation, sink: CellSink | None = None, buttons: Sequence[MasterButton] = ()
) -> SheetLayout:
    """The state of the raccolta; with `buttons`, the label "Comandi" and each button's
    instruction beside the place of the buttons (F:G, rows 2-7: the first screen)."""
    sh = SheetLayout(SHEET_CRUSCOTTO, header_row=CRUSCOTTO_HEADER_ROW, landscape=True, sink=sink)
    last_col = len(CRUSCOTTO_HEADERS) - 1
    # with buttons the title leaves F on free for the label "Comandi"
    sh.merges.append((0, 0, 0, BUTTON_COL - 1 if buttons else last_col))
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
                row,
                BUTTON_INSTRUCTION_COL,
                buttons[row - BUTTON_FIRST_ROW].istruzione,
                style="instruction",
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
        sh.put(r, 6, len(s.versions), style="count_center")
        sh.put(r, 7, last_rc.canale if last_rc else None)
        sh.put(r, 8, s.errori, style="count_center")
        sh.put(r, 9, s.avvisi, style="count_center")
        sh.put(r, 10, last_rc.nome if last_rc else None)
        sh.put(r, 11, _note(s), style="wrap")
    if not cons.enti:
        sh.put(first, 1, "nessun ente nell'elenco", style="empty")
    for criteria, style in (
        (f'$D{first + 1}="{STATO_CON_ERRORI}"', "bad"),
        (f'$D{first + 1}="{STATO_NON_RICEVUTO}"', "warn"),
        (f'$D{first + 1}="{STATO_IN_VERIFICA}"', "warn"),
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
                (None, "count_center"),
                (rc.canale, "text"),
                (len(rep.errors), "count_center"),
                (len(rep.warnings), "count_center"),
                (rc.nome, "text"),
                (_stray_message(rc), "wrap"),
            )
            for c, (v, style) in enumerate(stray):
                sh.put(r, c, v, style=style)
    # at most one page across in print (see `writer.pages_across`): the file names
    # run over an empty Note
    _fit_widths(sh, {0: 14, 1: 40, 3: 22, 4: 19, 5: 11, 10: 48, 11: 60}, header_cap=12)
    sh.print_last_col = len(STRAY_HEADERS) - 1 if cons.non_attribuiti else last_col
    if buttons:
        for c in (BUTTON_COL, BUTTON_COL + 1):
            sh.widths[c] = max(sh.widths.get(c, 0), BUTTON_MIN_WIDTH)
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
    return review_rows(cons) + rows


def _anomalie_sheet(cons: Consolidation, sink: CellSink | None = None) -> SheetLayout:
    sh = start_list_sheet(
        SHEET_ANOMALIE,
        ANOMALIE_HEADER_ROW,
        "Anomalie aperte",
        "Errori e avvisi dell'ultima versione ricevuta da ogni ente, enti che non "
        "hanno risposto e ritorni non attribuiti.",
        ANOMALIE_HEADERS,
        sink,
    )
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
            cell_value(p.value),
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
    # the severity colours reach well below the table: the Consolida button may write more
    # rows than the master was built with, and nothing else lies below it on this sheet
    end = max(r, ANOMALIE_HEADER_ROW + ANOMALIE_HIGHLIGHT_ROWS)
    for severity, style in ((Severity.ERRORE, "bad"), (Severity.AVVISO, "warn")):
        sh.highlights.append(
            Highlight(ANOMALIE_HEADER_ROW + 1, 3, end, 3, f'{top}="{severity.value}"', style)
        )
    _fit_widths(sh, {0: 34, 1: 36, 2: 19, 9: 60, 10: 60}, header_cap=12)
    sh.repeat_cols = (0, 0)
    return sh


# --------------------------------------------------------------------------- Grafici


#: a cell of the Grafici sheet that stays empty: what the names of a chart with no
#: entries point at (a chart of nothing rather than of the "nessuna" row)
GRAFICI_EMPTY = (0, 25)
#: the rows a chart takes per entry, and at most (one chart per landscape page)
_BAR_PX, _CHART_MIN_PX, _CHART_MAX_PX = 24, 240, 560
#: the charts' width: one landscape A4 page at 100%, with room for a font wider than
#: Calibri (LibreOffice without Carlito widens the columns a chart is anchored to)
GRAFICI_WIDTH_PX = 860


def grafico_name(chart: str, part: str) -> str:
    """The workbook name a chart's series read: ``grafico_a_comuni_sap``."""
    return f"grafico_{chart}_{part}"


def _bar_height(n: int) -> int:
    return min(_CHART_MAX_PX, max(_CHART_MIN_PX, 70 + _BAR_PX * n))


def _grafici_sheet(
    cons: Consolidation,
    spans: dict[str, tuple[int, int]],
    tds: dict[str, TableDef],
    names: dict[str, NameTarget],
    sink: CellSink | None = None,
) -> SheetLayout:
    """Charts of tables f) and a), each on its own printed page; the ALER (and any other
    ente that is not a Comune) apart from the Comuni in a), whose hundreds of alloggi
    would flatten the Comuni's bars. The series read workbook names (``grafico_*``) that
    point at the tables' rows, so that a refresh of the open workbook (Consolida), which
    rewrites the names, moves the charts with the rows."""
    sh = SheetLayout(SHEET_GRAFICI, landscape=True, sink=sink)
    sh.put(0, 0, "Grafici (si aggiornano con le tabelle)", style="title")
    empty = RangeRef(SHEET_GRAFICI, *GRAFICI_EMPTY, *GRAFICI_EMPTY)

    def block(letter: str, first: int, last: int, col: int) -> RangeRef:
        if last < first:
            return empty
        return RangeRef(tds[letter].sheet, first, col, last, col)

    def name(chart: str, part: str, target: RangeRef) -> str:
        key = grafico_name(chart, part)
        names[key] = target
        return chart_ref(key)

    f1 = spans["f"][0]
    nf = len(cons.table("f"))
    f_last = f1 + nf - 1
    row = 2
    f_height = _bar_height(nf)
    sh.charts.append(
        ChartSpec(
            "bar",
            None,
            "f) Unità abitative SAP assegnabili nell'anno, per ente",
            (
                Series(
                    "Unità assegnabili",
                    name("f", "enti", block("f", f1, f_last, 0)),
                    name("f", "assegnabili", block("f", f1, f_last, 1)),
                ),
            ),
            anchor_row=row,
            anchor_col=0,
            y_title="Numero unità immobiliari",
            height=f_height,
            width=GRAFICI_WIDTH_PX,
        )
    )
    a1, _ = spans["a"]
    rows_a = cons.table("a")
    others = sum(1 for s in rows_a if not s.ente.is_comune)  # listed first (plan order)
    comuni = len(rows_a) - others
    sap = 1 + tds["a"].fields.index("a_sap")
    sas = 1 + tds["a"].fields.index("a_sas")
    groups = (
        ("a_comuni", "a) Alloggi SAP e SAS dei Comuni", a1 + others, a1 + others + comuni - 1),
        (
            "a_altri",
            "a) Alloggi SAP e SAS degli altri enti proprietari (ALER)",
            a1,
            a1 + others - 1,
        ),
    )
    for chart, title, first, last in groups:
        row += (sh.charts[-1].height + 19) // 20 + 2
        sh.page_breaks.append(row)
        n = last - first + 1
        sh.charts.append(
            ChartSpec(
                "bar",
                "stacked",
                title,
                (
                    Series(
                        "N. alloggi SAP",
                        name(chart, "enti", block("a", first, last, 0)),
                        name(chart, "sap", block("a", first, last, sap)),
                    ),
                    Series(
                        "N. alloggi SAS",
                        name(chart, "enti", block("a", first, last, 0)),
                        name(chart, "sas", block("a", first, last, sas)),
                    ),
                ),
                anchor_row=row,
                anchor_col=0,
                y_title="Numero alloggi",
                height=_bar_height(n),
                width=GRAFICI_WIDTH_PX,
            )
        )
    # every column the charts cover has its width, so that every program measures the
    # printed page alike (the default width differs between Excel and LibreOffice)
    last_col = max(ch.anchor_col + ch.width // 64 for ch in sh.charts)
    for c in range(last_col + 1):
        sh.widths[c] = 8.57  # not 8.43: XlsxWriter leaves the default unmarked
    sh.widths[0] = 12
    sh.print_last_col = last_col
    return sh
