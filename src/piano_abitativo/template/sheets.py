"""The sheets of the template: instructions, the Scheda with its live checks, and the
hidden metadata, all laid out from the schema the context carries."""

from __future__ import annotations

import textwrap
from typing import Any

from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.core.layout import (
    BAD,
    COL_HELP,
    COL_KEY,
    COL_LABEL,
    COL_LETTER,
    COL_VALUE,
    KEY_HEADER,
    OK,
    VALUE_HEADER,
    WARN,
    Layout,
    layout_for,
)
from piano_abitativo.core.rules.book import UNKNOWN
from piano_abitativo.core.schema import (
    META_KEYS,
    SHEET_ISTRUZIONI,
    SHEET_META,
    SHEET_SCHEDA,
    Field,
    Kind,
    Role,
)
from piano_abitativo.template.context import (
    PH_CODE,
    PH_FULLNAME,
    PH_NAME,
    TemplateContext,
    Variant,
    ita_date,
    meta_values,
)
from piano_abitativo.template.formulas import check_formulas, summary_formulas


class Formats:
    def __init__(self, wb: Any) -> None:
        base = {"font_name": "Calibri", "font_size": 11, "valign": "vcenter"}

        def f(**kw: Any) -> Any:
            return wb.add_format({**base, **kw})

        self.title = f(bold=True, font_size=14, font_color="#1F3864")
        self.subtitle = f(italic=True, font_color="#404040")
        self.header = f(
            bold=True, bg_color="#1F3864", font_color="#FFFFFF", border=1, text_wrap=True
        )
        self.section = f(bold=True, bg_color="#D9E1F2", border=1, text_wrap=True)
        self.letter = f(bold=True, align="center", border=1, bg_color="#D9E1F2")
        self.label = f(text_wrap=True, border=1)
        self.help = f(text_wrap=True, font_size=9, font_color="#595959", border=1)
        self.ident = f(bold=True, border=1, bg_color="#F2F2F2", num_format="@", text_wrap=True)
        self.ident_label = f(bold=True, border=1, bg_color="#D9E1F2", align="right")
        self.ident_year = f(bold=True, border=1, bg_color="#F2F2F2", num_format="0", align="left")
        self.input_count = f(border=1, bg_color="#FFF2CC", locked=False, num_format="#,##0")
        self.input_pct = f(border=1, bg_color="#FFF2CC", locked=False, num_format='#,##0.0" %"')
        self.input_text = f(
            border=1, bg_color="#FFF2CC", locked=False, num_format="@", text_wrap=True
        )
        self.input_yesno = f(border=1, bg_color="#FFF2CC", locked=False, align="center")
        self.input_ident = f(bold=True, border=1, bg_color="#FFF2CC", locked=False, num_format="@")
        self.formula = f(bold=True, border=1, bg_color="#E2EFDA", num_format="#,##0")
        self.na = f(italic=True, border=1, bg_color="#EDEDED", font_color="#7F7F7F", align="center")
        self.symbol = f(bold=True, align="center", border=1, font_size=12)
        self.check_msg = f(border=1, text_wrap=True)
        self.summary = f(bold=True, border=1, bg_color="#FFFFFF", text_wrap=True)
        self.para = f(text_wrap=True, valign="top")
        self.note = f(text_wrap=True, valign="top", italic=True, font_color="#404040")
        self.para_bold = f(text_wrap=True, valign="top", bold=True)
        self.bad = wb.add_format({"bg_color": "#FFC7CE", "font_color": "#9C0006"})
        self.warn = wb.add_format({"bg_color": "#FFEB9C", "font_color": "#9C5700"})
        self.good = wb.add_format({"font_color": "#006100"})
        self.key = f(font_size=8, font_color="#A6A6A6")


#: the widths (in Excel's character units) of the Scheda's columns
_WIDTH_LETTER, _WIDTH_LABEL, _WIDTH_VALUE, _WIDTH_HELP = 5, 58, 18, 46
#: characters per line of wrapped text, measured on the rendered template (Carlito,
#: metric-compatible with Calibri): a bold 11 pt label line holds ~66 characters in the
#: 58-wide column, a 9 pt help line ~75 in the 46-wide one; a little under, to be safe
_LABEL_CHARS = int(_WIDTH_LABEL * 1.07)
_HELP_CHARS = int(_WIDTH_HELP * 1.48)
_SECTION_CHARS = int((_WIDTH_LABEL + _WIDTH_VALUE + _WIDTH_HELP) * 1.05)
_LINE_PT, _HELP_LINE_PT, _PAD_PT = 15.0, 12.0, 3.0


def _wrapped_lines(text: str, width: int) -> int:
    """How many lines `text` takes when word-wrapped at `width` characters.

    Excel and LibreOffice do not grow the rows of merged or pre-sized cells, so the
    template sizes them itself."""
    return max(1, len(textwrap.wrap(text, width, break_long_words=True)))


def _row_height(label: str, help_text: str) -> float:
    """The height (points) of a field row: enough for its wrapped label and help."""
    return max(
        _LINE_PT,
        _LINE_PT * _wrapped_lines(label, _LABEL_CHARS) + _PAD_PT,
        _HELP_LINE_PT * _wrapped_lines(help_text, _HELP_CHARS) + _PAD_PT,
    )


def _setup_print(
    ws: Any, last_row: int, last_col: int, *, first_col: int = 0, landscape: bool = False
) -> None:
    ws.set_paper(9)  # A4
    if landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)
    ws.print_area(0, first_col, last_row, last_col)
    ws.set_footer("&L&8Piano annuale offerta abitativa&R&8Pagina &P di &N")


def write_istruzioni(wb: Any, fmt: Formats, variant: Variant, ctx: TemplateContext) -> None:
    ws = wb.add_worksheet(SHEET_ISTRUZIONI)
    ws.set_column(0, 0, 72)
    ente = "l'ente indicato nel foglio Scheda" if variant == "VUOTO" else PH_FULLNAME
    anno = str(ctx.anno) if ctx.anno else "del Piano"
    contact = ctx.contatto or "l'ufficio del Comune capofila che ha inviato il modello"
    lines: list[tuple[str, Any]] = [
        (
            f"Piano annuale dell'offerta abitativa pubblica e sociale {anno}".replace(
                " del Piano", ""
            ),
            fmt.title,
        ),
        (f"Scheda di rilevazione per: {ente}", fmt.para_bold),
        (f"Ambito territoriale: {ctx.ambito}" if ctx.ambito else "", fmt.para),
        ("", fmt.para),
        ("Perché questa scheda", fmt.para_bold),
        (
            "Il Comune capofila dell'ambito predispone ogni anno il Piano annuale dell'offerta "
            "abitativa pubblica e sociale (L.R. 16/2016, R.R. 4/2017 art. 4). Per farlo chiede a "
            "ogni Comune dell'ambito e all'ALER i dati del proprio patrimonio abitativo e delle "
            "unità che si prevede di assegnare nell'anno.",
            fmt.para,
        ),
        ("", fmt.para),
        ("Come compilare", fmt.para_bold),
        (
            "1. Aprire il foglio «Scheda» (in basso). Compilare solo le celle gialle: le altre "
            "sono protette. Ente, codice e anno sono già indicati.",
            fmt.para,
        ),
        (
            "2. Scrivere numeri interi senza punti né spazi (es. 12). Se un dato è zero scrivere "
            "0: una cella vuota viene letta come 0 ma segnalata.",
            fmt.para,
        ),
        (
            "3. Percentuali (lettere g e i): scrivere i punti percentuali, es. 10 per indicare "
            "10%. La soglia g) va indicata solo se il Comune la fissa oltre il 20%.",
            fmt.para,
        ),
        (
            "4. Lettera h): scegliere SI o NO dall'elenco; con SI descrivere la categoria e la "
            "motivazione nella cella sottostante.",
            fmt.para,
        ),
        ("5. Le lettere a) Totale e f) Totale si calcolano da sole.", fmt.para),
        (
            "6. In fondo alla scheda i «Controlli automatici» segnalano subito gli errori (✖, "
            "in rosso) e i dati da verificare (!, in giallo); ? indica un controllo non "
            "verificabile perché una cella da cui dipende non contiene un numero. Correggere "
            "gli errori prima dell'invio.",
            fmt.para,
        ),
        ("7. Indicare il referente da contattare per chiarimenti.", fmt.para),
        (
            "8. Salvare il file (va bene anche in formato .ods con LibreOffice) senza "
            "rinominare i fogli né inserire righe o colonne, e inviarlo in risposta alla "
            "richiesta ricevuta, anche via PEC.",
            fmt.para,
        ),
        ("", fmt.para),
        (f"Termine per la risposta: {ita_date(ctx.scadenza)}", fmt.para_bold),
        (f"Per informazioni: {contact}", fmt.para),
        ("", fmt.para),
        (
            "Il file non contiene macro. I dati sono trattati dal Comune capofila per la "
            "redazione del Piano annuale e pubblicati nel Piano stesso.",
            fmt.note,
        ),
    ]
    for i, (text, style) in enumerate(lines):
        ws.write_string(i, 0, text, style)
        if style in (fmt.para, fmt.note) and len(text) > 68:
            ws.set_row(i, 15 * (len(text) // 68 + 1))
    ws.protect("", {"select_locked_cells": True, "select_unlocked_cells": True})
    _setup_print(ws, len(lines) - 1, 0)
    ws.hide_gridlines(2)


def write_scheda(wb: Any, fmt: Formats, variant: Variant, ctx: TemplateContext) -> None:
    ws = wb.add_worksheet(SHEET_SCHEDA)
    lay = layout_for(ctx.schema)
    schema = ctx.schema
    aler = variant == "ALER"
    blank = variant == "VUOTO"
    ws.set_column(COL_KEY, COL_KEY, 14, fmt.key, {"hidden": True})
    ws.set_column(COL_LETTER, COL_LETTER, _WIDTH_LETTER)
    ws.set_column(COL_LABEL, COL_LABEL, _WIDTH_LABEL)
    ws.set_column(COL_VALUE, COL_VALUE, _WIDTH_VALUE)
    ws.set_column(COL_HELP, COL_HELP, _WIDTH_HELP)
    anno = f" {ctx.anno}" if ctx.anno else ""
    ws.write_string(
        0, COL_LETTER, f"Piano annuale dell'offerta abitativa pubblica e sociale{anno}", fmt.title
    )
    sub = "Scheda di rilevazione dei dati dell'ente"
    if ctx.ambito:
        sub += f" · Ambito territoriale {ctx.ambito}"
    ws.write_string(1, COL_LETTER, sub, fmt.subtitle)
    ws.write_string(
        2,
        COL_LETTER,
        f"Compilare solo le celle gialle. Termine per la risposta: {ita_date(ctx.scadenza)}.",
        fmt.subtitle,
    )
    h = lay.header_row
    ws.write_string(h, COL_KEY, KEY_HEADER)
    ws.write_string(h, COL_LETTER, "Lett.", fmt.header)
    ws.write_string(h, COL_LABEL, "Voce", fmt.header)
    ws.write_string(h, COL_VALUE, VALUE_HEADER, fmt.header)
    ws.write_string(h, COL_HELP, "Indicazioni", fmt.header)

    for letter, row in lay.section_rows.items():
        if letter in schema.sections:
            ws.write_string(row, COL_LETTER, f"{letter})", fmt.letter)
            title = schema.sections[letter]
            members = schema.fields_of_section(letter)
            if len(members) == 1:
                ws.write_string(row, COL_LABEL, title, fmt.section)
            else:
                ws.merge_range(row, COL_LABEL, row, COL_HELP, title, fmt.section)
                ws.set_row(row, _LINE_PT * _wrapped_lines(title, _SECTION_CHARS) + _PAD_PT)
        elif letter == "referente":
            ws.merge_range(
                row, COL_LETTER, row, COL_HELP, "Referente per la compilazione", fmt.section
            )
        elif letter == "controlli":
            ws.merge_range(
                row,
                COL_LETTER,
                row,
                COL_HELP,
                "Controlli automatici (si aggiornano mentre si compila)",
                fmt.section,
            )

    for f in schema.fields:
        row = lay.field_rows[f.id]
        ws.write_string(row, COL_KEY, f.id)
        if f.role is Role.IDENT:
            # the identification box above the table: label over C:D, value in E
            label = f.label
            if f.id == "ente_codice" and aler:
                label = "Codice ente"  # the ISTAT code is the comuni's only
            ws.merge_range(row, COL_LABEL, row, COL_VALUE, label, fmt.ident_label)
            _write_value_cell(ws, fmt, f, row, variant, lay, ctx.anno)
            wb.define_name(f.id, f"={SHEET_SCHEDA}!{lay.abs_ref(f.id)}")
            # the ente's name wraps in its cell rather than being cut: room for two lines
            ws.set_row(row, 30 if f.id == "ente_denominazione" and not blank else 18)
            continue
        single = len(schema.fields_of_section(f.section)) == 1 if f.section else False
        if not single:
            if not f.section:
                ws.write_blank(row, COL_LETTER, None, fmt.label)
            else:
                ws.write_blank(row, COL_LETTER, None, fmt.letter)
            ws.write_string(row, COL_LABEL, f.label, fmt.label)
        _write_value_cell(ws, fmt, f, row, variant, lay, ctx.anno)
        help_text = f.help
        if f.role is Role.FORMULA:
            help_text = "Calcolato automaticamente."
        elif f.comuni_only and aler:
            help_text = "Non applicabile all'ALER."
        ws.write_string(row, COL_HELP, help_text, fmt.help)
        wb.define_name(f.id, f"={SHEET_SCHEDA}!{lay.abs_ref(f.id)}")
        if f.id in ("h_motivazione", "note"):
            ws.set_row(row, 45)
        else:
            label = schema.sections[f.section] if single and f.section else f.label
            ws.set_row(row, _row_height(label, help_text))

    # live checks, rendered from the rule book
    first = min(lay.check_rows.values())
    last = max(lay.check_rows.values())
    s = lay.summary_row
    sum_sym, sum_msg = summary_formulas(lay)
    ws.write_string(s, COL_KEY, "check:riepilogo")
    ws.write_formula(s, COL_LETTER, sum_sym, fmt.symbol)
    ws.merge_range(s, COL_LABEL, s, COL_HELP, "", fmt.summary)
    ws.write_formula(s, COL_LABEL, sum_msg, fmt.summary)
    wb.define_name(
        "controllo_riepilogo", f"={SHEET_SCHEDA}!{xl_rowcol_to_cell(s, COL_LETTER, True, True)}"
    )
    for chk in lay.checks:
        row = lay.check_rows[chk.id]
        sym, msg = check_formulas(chk, lay, aler, ctx.settings)
        ws.write_string(row, COL_KEY, f"check:{chk.id}")
        ws.write_formula(row, COL_LETTER, sym, fmt.symbol)
        ws.merge_range(row, COL_LABEL, row, COL_HELP, "", fmt.check_msg)
        ws.write_formula(row, COL_LABEL, msg, fmt.check_msg)
        sym_cell = lay.symbol_ref(chk.id)
        wb.define_name(f"controllo_{chk.id}", f"={SHEET_SCHEDA}!{sym_cell}")
        # colour the offending input cell
        target = lay.cell(chk.field)
        ws.conditional_format(
            target, {"type": "formula", "criteria": f'={sym_cell}="{BAD}"', "format": fmt.bad}
        )
        ws.conditional_format(
            target, {"type": "formula", "criteria": f'={sym_cell}="{WARN}"', "format": fmt.warn}
        )
    for style, symbol in ((fmt.bad, BAD), (fmt.warn, WARN), (fmt.warn, UNKNOWN), (fmt.good, OK)):
        ws.conditional_format(
            first,
            COL_LETTER,
            last,
            COL_LETTER,
            {"type": "cell", "criteria": "==", "value": f'"{symbol}"', "format": style},
        )
        ws.conditional_format(
            s,
            COL_LETTER,
            s,
            COL_LETTER,
            {"type": "cell", "criteria": "==", "value": f'"{symbol}"', "format": style},
        )

    ws.freeze_panes(h + 1, 0)
    ws.protect(
        "",
        {
            "select_locked_cells": True,
            "select_unlocked_cells": True,
            "format_columns": True,
            "format_rows": True,
        },
    )
    # landscape: the four columns (127 characters) fit an A4 at 100%, so the 9 pt
    # Indicazioni print at 9 pt (portrait fitted to width shrank them to ~7 pt)
    _setup_print(ws, lay.last_row, COL_HELP, first_col=COL_LETTER, landscape=True)
    ws.repeat_rows(h)
    # open on the Scheda with the cursor on its first input cell, so the first keystroke
    # never hits a protected cell; no firstSheet, so the Istruzioni tab stays in view
    row, col = _first_input(lay, variant)
    ws.set_selection(row, col, row, col)
    ws.activate()


def _first_input(lay: Layout, variant: Variant) -> tuple[int, int]:
    """(row, col) of the first cell the ente types into in this variant."""
    aler = variant == "ALER"
    cells = [
        (lay.field_rows[f.id], lay.col(f.id))
        for f in lay.schema.fields
        if f.role is not Role.FORMULA
        and (f.role is not Role.IDENT or variant == "VUOTO")
        and not (f.comuni_only and aler)
    ]
    return min(cells)


def _write_value_cell(
    ws: Any, fmt: Formats, f: Field, row: int, variant: Variant, lay: Layout, anno: int | None
) -> None:
    col = lay.col(f.id)
    aler = variant == "ALER"
    blank = variant == "VUOTO"
    if f.role is Role.IDENT:
        if blank:
            style = fmt.input_ident
            ws.write_blank(row, col, None, style)
            if f.kind is not Kind.YEAR:
                ws.data_validation(
                    row,
                    col,
                    row,
                    col,
                    {"validate": "any", "input_title": f.label, "input_message": _IDENT_HELP[f.id]},
                )
            else:
                ws.data_validation(
                    row,
                    col,
                    row,
                    col,
                    {
                        "validate": "integer",
                        "criteria": "between",
                        "minimum": 2000,
                        "maximum": 2100,
                        "input_title": "Anno del Piano",
                        "input_message": "Anno a cui si riferisce il Piano, es. 2026.",
                        "error_title": "Anno non valido",
                        "error_message": "Scrivere l'anno con quattro cifre, es. 2026.",
                    },
                )
            return
        if f.id == "ente_codice":
            ws.write_string(row, col, PH_CODE, fmt.ident)
        elif f.id == "ente_denominazione":
            ws.write_string(row, col, PH_NAME, fmt.ident)
        elif f.id == "anno":
            if anno:
                ws.write_number(row, col, anno, fmt.ident_year)
            else:
                ws.write_blank(row, col, None, fmt.ident_year)
        return
    if f.role is Role.FORMULA:
        # SUM ignores numbers typed as text in Excel and LibreOffice alike
        refs = ",".join(lay.cell(k) for k in f.sum_of)
        ws.write_formula(row, col, f"=SUM({refs})", fmt.formula, 0)
        return
    if f.comuni_only and aler:
        # blank, not the words "non applicabile": no text in the column of the numbers
        # (the help beside it says "Non applicabile all'ALER.")
        ws.write_blank(row, col, None, fmt.na)
        return
    opts: dict[str, Any] = {"input_title": _trim(f.header, 32), "input_message": _prompt(f)}
    if f.kind is Kind.COUNT:
        ws.write_blank(row, col, None, fmt.input_count)
        opts.update(
            {
                "validate": "integer",
                "criteria": "between",
                "minimum": 0,
                "maximum": int(f.maximum or 100000),
                "error_title": "Numero non valido",
                "error_message": "Scrivere un numero intero maggiore o uguale a 0, "
                "senza punti né spazi (es. 12). Se non ci sono unità "
                "scrivere 0.",
            }
        )
    elif f.kind is Kind.PERCENT:
        ws.write_blank(row, col, None, fmt.input_pct)
        lo, hi = f.minimum or 0, f.maximum or 100
        msg = (
            "Scrivere i punti percentuali tra 20 e 100 (es. 25), oppure lasciare vuoto."
            if f.id == "g_soglia_indigenti"
            else f"Scrivere i punti percentuali tra {lo:g} e {hi:g} (es. 10 per 10%)."
        )
        opts.update(
            {
                "validate": "decimal",
                "criteria": "between",
                "minimum": lo,
                "maximum": hi,
                "error_title": "Percentuale non valida",
                "error_message": msg,
            }
        )
    elif f.kind is Kind.YESNO:
        ws.write_blank(row, col, None, fmt.input_yesno)
        opts.update(
            {
                "validate": "list",
                "source": ["SI", "NO"],
                "error_title": "Risposta non valida",
                "error_message": "Scegliere SI oppure NO dall'elenco.",
            }
        )
    else:
        ws.write_blank(row, col, None, fmt.input_text)
        opts.update(
            {
                "validate": "length",
                "criteria": "<=",
                "value": f.max_length or 255,
                "error_title": "Testo troppo lungo",
                "error_message": f"Al massimo {f.max_length or 255} caratteri.",
                "error_type": "warning",
            }
        )
    ws.data_validation(row, col, row, col, opts)


_IDENT_HELP = {
    "ente_codice": "Codice ISTAT del Comune (6 cifre, es. 019035) o codice dell'ALER.",
    "ente_denominazione": "Nome del Comune o dell'ALER che compila la scheda.",
}


#: the longest input message (the yellow prompt beside a selected cell): about two lines
PROMPT_MAX = 100


def _prompt(f: Field) -> str:
    """The short prompt of an input cell; the full help is in the Indicazioni column."""
    if f.kind is Kind.COUNT:
        return "Numero intero, es. 12. Se non ci sono unità scrivere 0."
    if f.id == "g_soglia_indigenti":
        return "Solo se oltre il 20%: punti percentuali, es. 25. Altrimenti lasciare vuoto."
    return _trim(f.help, PROMPT_MAX)


def _trim(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def write_meta(wb: Any, variant: Variant, ctx: TemplateContext) -> None:
    ws = wb.add_worksheet(SHEET_META)
    ws.write_string(0, 0, "chiave")
    ws.write_string(0, 1, "valore")
    ws.write_string(0, 2, "significato")
    for i, (key, value) in enumerate(meta_values(variant, ctx).items(), start=1):
        ws.write_string(i, 0, key)
        ws.write_string(i, 1, value)
        ws.write_string(i, 2, META_KEYS[key])
    ws.very_hidden()
    ws.protect("")


# --- personalisation -----------------------------------------------------------------
