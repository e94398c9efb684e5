"""The per-ente Excel template: macro-free .xlsx, native data validation, locked layout,
live self-checks that work in Excel 2010+ and LibreOffice 7.4, hidden metadata.

The workbook is written once per variant (COMUNE, ALER, blank) with XlsxWriter; each
ente's copy is then made by replacing a few placeholder strings inside the zip, which
keeps generation of thousands of templates fast and the files byte-for-byte predictable.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import xlsxwriter
from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.layout import (
    BAD,
    CHECKS,
    COL_HELP,
    COL_KEY,
    COL_LABEL,
    COL_LETTER,
    COL_VALUE,
    KEY_HEADER,
    LAYOUT,
    NA,
    NOT_APPLICABLE,
    OK,
    VALUE_HEADER,
    WARN,
    Check,
)
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente
from piano_abitativo.core.schema import (
    FIELD_BY_ID,
    FIELDS,
    META_KEYS,
    SCHEMA,
    SECTIONS,
    SHEET_ISTRUZIONI,
    SHEET_META,
    SHEET_SCHEDA,
    TEMPLATE_MARK,
    TEMPLATE_VERSION,
    Field,
    Kind,
    Role,
    Schema,
    Settings,
)

_PH_CODE = "{{ENTE_CODICE}}"
_PH_NAME = "{{ENTE_DENOMINAZIONE}}"
_PH_FULLNAME = "{{ENTE_NOME}}"
Variant = str  # "COMUNE" | "ALER" | "VUOTO"


# --- formulas of the live checks (only functions safe in Excel 2010+ and LO 7.4) ------


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _count_check(x: str) -> str:
    ok = f"AND({x}>=0,{x}=INT({x}))"
    vt = f"VALUE(TRIM({x}))"
    return (
        f'=IF(ISBLANK({x}),"{WARN}",IF(ISNUMBER({x}),IF({ok},"{OK}","{BAD}"),'
        f'IF(ISERROR({vt}),"{BAD}",IF(AND({vt}>=0,{vt}=INT({vt})),"{WARN}","{BAD}"))))'
    )


def _percent_check(
    x: str, lo_excl: float | None, lo_incl: float | None, hi: float, zero_ok: bool
) -> str:
    """✔/!/✖ for a percentage typed as points (10), as a fraction (0,1) or as text."""

    def in_range(v: str) -> str:
        conds = [f"{v}<={hi}"]
        if lo_excl is not None:
            conds.append(f"{v}>{lo_excl}")
        if lo_incl is not None:
            conds.append(f"{v}>={lo_incl}")
        base = f"AND({','.join(conds)})"
        return f"OR({v}=0,{base})" if zero_ok else base

    frac = f"AND({x}>0,{x}<1)"
    numeric = (
        f'IF({frac},IF({in_range(f"{x}*100")},"{WARN}","{BAD}"),IF({in_range(x)},"{OK}","{BAD}"))'
    )
    text = f'IF(ISERROR(VALUE(SUBSTITUTE(TRIM({x}),"%",""))),"{BAD}","{WARN}")'
    return f'=IF(ISBLANK({x}),"{OK}",IF(ISNUMBER({x}),{numeric},{text}))'


def _yes_no(x: str) -> tuple[str, str]:
    u = f"UPPER(TRIM({x}))"
    yes = f'OR({u}="SI",{u}="SÌ",{u}="S")'
    no = f'OR({u}="NO",{u}="N")'
    return yes, no


def _check_formula(chk: Check, aler: bool, settings: Settings) -> tuple[str, str]:
    """(symbol formula, message formula) of a check row."""
    ref = LAYOUT.abs_ref
    if chk.comuni_only and aler:
        return f'="{NA}"', _q(f"{chk.description}: non applicabile all'ALER")
    label = chk.description
    if chk.id.startswith("num_"):
        x = ref(chk.field)
        sym = _count_check(x)
        name = FIELD_BY_ID[chk.field].header
        return sym, "=" + (
            f"IF(ISBLANK({x}),{_q(name + ': cella vuota, scrivere 0 se non ci sono unità')},"
            f"IF(ISNUMBER({x}),IF(AND({x}>=0,{x}=INT({x})),{_q(name + ': corretto')},"
            f"{_q(name + ': scrivere un numero intero maggiore o uguale a 0')}),"
            f"IF(ISERROR(VALUE(TRIM({x}))),{_q(name + ': non è un numero, scrivere solo cifre')},"
            f"{_q(name + ': numero scritto come testo, verrà letto come numero')})))"
        )
    n = {k: f"N({ref(k)})" for k in FIELD_BY_ID if FIELD_BY_ID[k].kind is Kind.COUNT}
    if chk.id == "R1":
        cond = f"{n['a_totale']}={n['a_sap']}+{n['a_sas']}"
        return (
            f'=IF({cond},"{OK}","{BAD}")',
            f"=IF({cond},{_q(label + ': corretto')},"
            f"{_q('a) il totale è stato modificato: deve essere SAP + SAS')})",
        )
    if chk.id == "R2":
        parts = "+".join(n[k] for k in FIELD_BY_ID["f_totale_assegnabili"].sum_of)
        cond = f"{n['f_totale_assegnabili']}={parts}"
        return (
            f'=IF({cond},"{OK}","{BAD}")',
            f"=IF({cond},{_q(label + ': corretto')},"
            f"{_q('f) il totale è stato modificato: deve essere b + c + d + e')})",
        )
    if chk.id == "R3":
        x = ref("g_soglia_indigenti")
        sym = _percent_check(x, 20, None, 100, zero_ok=True)
        return sym, _msg_from_symbol(
            chk,
            label,
            "g) la soglia va indicata solo se superiore "
            "al 20% (massimo 100); altrimenti lasciare vuoto",
            "g) valore scritto come testo o in frazione: verrà interpretato, verificare",
        )
    if chk.id == "R4":
        x = ref("i_forze_polizia")
        sym = _percent_check(x, None, 0, 10, zero_ok=True)
        return sym, _msg_from_symbol(
            chk,
            label,
            "i) la quota deve essere tra 0 e 10 (per cento)",
            "i) valore scritto come testo o in frazione: verrà interpretato, verificare",
        )
    if chk.id == "h_valore":
        x = ref("h_categoria_aggiuntiva")
        yes, no = _yes_no(x)
        exact = f'OR(EXACT(TRIM({x}),"SI"),EXACT(TRIM({x}),"NO"))'
        sym = f'=IF(ISBLANK({x}),"{OK}",IF({exact},"{OK}",IF(OR({yes},{no}),"{WARN}","{BAD}")))'
        return sym, _msg_from_symbol(
            chk,
            label,
            "h) scegliere SI oppure NO dall'elenco",
            "h) risposta scritta a mano: scegliere SI o NO dall'elenco",
        )
    if chk.id == "R6":
        x = ref("h_categoria_aggiuntiva")
        m = ref("h_motivazione")
        yes, _ = _yes_no(x)
        sym = f'=IF(AND(NOT(ISBLANK({x})),{yes},LEN(TRIM({m}))=0),"{BAD}","{OK}")'
        return sym, _msg_from_symbol(chk, label, "h) con SI descrivere categoria e motivazione", "")
    sap = n["a_sap"]
    if chk.id == "R5":
        j = n["j_sat"]
        base = n[settings.sat_base]
        rnd = "ROUNDUP" if settings.sat_arrotondamento == "eccesso" else "ROUNDDOWN"
        sym = f'=IF({j}>{rnd}(MAX(0,{base})*{settings.sat_percentuale:g}/100,0),"{WARN}","{OK}")'
        return sym, _msg_from_symbol(
            chk, label, "", "j) unità SAT oltre il 10% degli alloggi SAP: verificare"
        )
    if chk.id in ("R7", "R8", "R12"):
        v = n[chk.field]
        sym = f'=IF({v}>{sap},"{WARN}","{OK}")'
        return sym, _msg_from_symbol(
            chk,
            label,
            "",
            f"{chk.field[0]}) valore superiore agli alloggi SAP indicati in a): verificare",
        )
    if chk.id == "R11":
        bde = "+".join(n[k] for k in ("b_carenza_manutentiva", "d_turnover", "e_conferite_privati"))
        sym = f'=IF(AND({sap}=0,{n["a_sas"]}>0,{bde}>0),"{WARN}","{OK}")'
        return sym, _msg_from_symbol(
            chk,
            label,
            "",
            "Solo alloggi SAS: le lettere b)–f) contano solo alloggi SAP, verificare",
        )
    if chk.id == "V01":
        nome, mail, tel = (
            ref(k) for k in ("referente_nome", "referente_email", "referente_telefono")
        )
        sym = (
            f"=IF(OR(LEN(TRIM({nome}))=0,AND(LEN(TRIM({mail}))=0,LEN(TRIM({tel}))=0)),"
            f'"{WARN}","{OK}")'
        )
        return sym, _msg_from_symbol(chk, label, "", "Indicare il referente con e-mail o telefono")
    if chk.id == "V02":
        x = ref("referente_email")
        t = f"TRIM({x})"
        good = (
            f'AND(ISERROR(FIND(" ",{t})),ISNUMBER(FIND("@",{t})),'
            f'ISNUMBER(FIND(".",{t},FIND("@",{t})+2)),RIGHT({t},1)<>".")'
        )
        sym = f'=IF(LEN({t})=0,"{OK}",IF({good},"{OK}","{WARN}"))'
        return sym, _msg_from_symbol(chk, label, "", "E-mail del referente non valida")
    raise ValueError(chk.id)  # pragma: no cover - every check is handled above


def _msg_from_symbol(chk: Check, label: str, bad: str, warn: str) -> str:
    s = xl_rowcol_to_cell(LAYOUT.check_rows[chk.id], COL_LETTER, True, True)
    return (
        f'=IF({s}="{BAD}",{_q(bad or label)},IF({s}="{WARN}",{_q(warn or label)},'
        f"{_q(label + ': corretto')}))"
    )


# --- the workbook ------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateContext:
    """What personalises a template beyond the ente: the collection it belongs to."""

    anno: int | None = None
    raccolta_id: str = ""
    ambito: str = ""
    scadenza: dt.date | None = None
    capofila: str = ""
    contatto: str = ""
    settings: Settings = field(default_factory=Settings)
    schema: Schema = SCHEMA


def _ita_date(d: dt.date | None) -> str:
    return d.strftime("%d/%m/%Y") if d else "indicata nella lettera di richiesta"


def build_variant(variant: Variant, ctx: TemplateContext) -> bytes:
    """The template workbook for a variant, with placeholders for the ente."""
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(
        buf,
        {
            "in_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    created = dt.datetime(ctx.anno - 1 if ctx.anno else 2026, 1, 1, tzinfo=dt.UTC)
    blank = variant == "VUOTO"
    wb.set_properties(
        {
            "title": f"Piano annuale offerta abitativa {ctx.anno or ''} - "
            f"{'' if blank else _PH_FULLNAME}".strip(" -"),
            "subject": "Scheda di rilevazione dei dati dell'ente",
            "author": ctx.capofila or "Comune capofila",
            "company": ctx.ambito,
            "keywords": TEMPLATE_MARK,
            "created": created.replace(tzinfo=None),
            "comments": "Modello senza macro. Compilare solo le celle gialle del foglio Scheda.",
        }
    )
    for key, value in _meta_values(variant, ctx).items():
        wb.set_custom_property(f"piano_abitativo_{key}", value or "-")
    fmt = _Formats(wb)
    _write_istruzioni(wb, fmt, variant, ctx)
    _write_scheda(wb, fmt, variant, ctx)
    _write_meta(wb, variant, ctx)
    wb.close()
    return _without_cached_results(buf.getvalue())


_CACHED_RESULT = re.compile(rb"(</f>)<v>[^<]*</v>")


def _without_cached_results(data: bytes) -> bytes:
    """Drop the cached results XlsxWriter writes for formulas (all 0).

    LibreOffice trusts cached results of files that claim to come from Excel, so the
    self-checks would show 0 until edited; a formula without a cached result is
    computed on load by LibreOffice, and Excel recalculates everything on load anyway
    (fullCalcOnLoad)."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            body = zin.read(info)
            if info.filename.startswith("xl/worksheets/"):
                body = _CACHED_RESULT.sub(rb"\1", body)
            zout.writestr(info, body)
    return out.getvalue()


def _meta_values(variant: Variant, ctx: TemplateContext) -> dict[str, str]:
    return {
        "modello": TEMPLATE_MARK,
        "versione_modello": TEMPLATE_VERSION,
        "raccolta_id": ctx.raccolta_id,
        "anno": str(ctx.anno or ""),
        "ente_codice": "" if variant == "VUOTO" else _PH_CODE,
        "ente_tipo": "" if variant == "VUOTO" else variant,
        "ambito": ctx.ambito,
    }


class _Formats:
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
        self.ident = f(bold=True, border=1, bg_color="#F2F2F2", num_format="@")
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


def _setup_print(ws: Any, last_row: int, last_col: int, *, first_col: int = 0) -> None:
    ws.set_paper(9)  # A4
    ws.set_portrait()
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)
    ws.print_area(0, first_col, last_row, last_col)
    ws.set_footer("&L&8Piano annuale offerta abitativa&R&8Pagina &P di &N")


def _write_istruzioni(wb: Any, fmt: _Formats, variant: Variant, ctx: TemplateContext) -> None:
    ws = wb.add_worksheet(SHEET_ISTRUZIONI)
    ws.set_column(0, 0, 72)
    ente = "l'ente indicato nel foglio Scheda" if variant == "VUOTO" else _PH_FULLNAME
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
            "in rosso) e i dati da verificare (!, in giallo). Correggere gli errori prima "
            "dell'invio.",
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
        (f"Termine per la risposta: {_ita_date(ctx.scadenza)}", fmt.para_bold),
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


def _write_scheda(wb: Any, fmt: _Formats, variant: Variant, ctx: TemplateContext) -> None:
    ws = wb.add_worksheet(SHEET_SCHEDA)
    lay = LAYOUT
    aler = variant == "ALER"
    blank = variant == "VUOTO"
    ws.set_column(COL_KEY, COL_KEY, 14, fmt.key, {"hidden": True})
    ws.set_column(COL_LETTER, COL_LETTER, 5)
    ws.set_column(COL_LABEL, COL_LABEL, 58)
    ws.set_column(COL_VALUE, COL_VALUE, 18)
    ws.set_column(COL_HELP, COL_HELP, 46)
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
        f"Compilare solo le celle gialle. Termine per la risposta: {_ita_date(ctx.scadenza)}.",
        fmt.subtitle,
    )
    h = lay.header_row
    ws.write_string(h, COL_KEY, KEY_HEADER)
    ws.write_string(h, COL_LETTER, "Lett.", fmt.header)
    ws.write_string(h, COL_LABEL, "Voce", fmt.header)
    ws.write_string(h, COL_VALUE, VALUE_HEADER, fmt.header)
    ws.write_string(h, COL_HELP, "Indicazioni", fmt.header)

    for letter, row in lay.section_rows.items():
        if letter in SECTIONS:
            ws.write_string(row, COL_LETTER, f"{letter})", fmt.letter)
            title = SECTIONS[letter]
            members = [f for f in FIELDS if f.section == letter]
            if len(members) == 1:
                ws.write_string(row, COL_LABEL, title, fmt.section)
            else:
                ws.merge_range(row, COL_LABEL, row, COL_HELP, title, fmt.section)
                ws.set_row(row, 15 * (len(title) // 110 + 1))
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

    for f in FIELDS:
        row = lay.field_rows[f.id]
        ws.write_string(row, COL_KEY, f.id)
        single = len([g for g in FIELDS if g.section == f.section]) == 1 if f.section else False
        if not single:
            if not f.section:
                ws.write_blank(row, COL_LETTER, None, fmt.label)
            else:
                ws.write_blank(row, COL_LETTER, None, fmt.letter)
            ws.write_string(row, COL_LABEL, f.label, fmt.label)
        _write_value_cell(ws, fmt, f, row, variant, ctx)
        help_text = f.help
        if f.role is Role.FORMULA:
            help_text = "Calcolato automaticamente."
        elif f.role is Role.IDENT and not blank:
            help_text = "Indicato dal Comune capofila."
        elif f.comuni_only and aler:
            help_text = "Non applicabile all'ALER."
        ws.write_string(row, COL_HELP, help_text, fmt.help)
        wb.define_name(f.id, f"={SHEET_SCHEDA}!{lay.abs_ref(f.id)}")
        if f.id in ("h_motivazione", "note"):
            ws.set_row(row, 45)
        else:
            label = SECTIONS[f.section] if single and f.section else f.label
            lines = max(-(-len(help_text) // 52), -(-len(label) // 55), 1)
            ws.set_row(row, max(15, 12.5 * lines))

    # live checks
    first = min(lay.check_rows.values())
    last = max(lay.check_rows.values())
    sym_range = (
        f"{xl_rowcol_to_cell(first, COL_LETTER, True, True)}:"
        f"{xl_rowcol_to_cell(last, COL_LETTER, True, True)}"
    )
    s = lay.summary_row
    ws.write_string(s, COL_KEY, "check:riepilogo")
    ws.write_formula(
        s,
        COL_LETTER,
        f'=IF(COUNTIF({sym_range},"{BAD}")>0,"{BAD}",'
        f'IF(COUNTIF({sym_range},"{WARN}")>0,"{WARN}","{OK}"))',
        fmt.symbol,
    )
    ws.merge_range(s, COL_LABEL, s, COL_HELP, "", fmt.summary)
    ws.write_formula(
        s,
        COL_LABEL,
        f'=IF(COUNTIF({sym_range},"{BAD}")>0,COUNTIF({sym_range},"{BAD}")&'
        f'" errori da correggere prima dell\'invio",IF(COUNTIF({sym_range},'
        f'"{WARN}")>0,"Nessun errore; "&COUNTIF({sym_range},"{WARN}")&'
        f'" dati da verificare","Tutti i controlli sono superati: la scheda '
        f'può essere inviata"))',
        fmt.summary,
    )
    wb.define_name(
        "controllo_riepilogo", f"={SHEET_SCHEDA}!{xl_rowcol_to_cell(s, COL_LETTER, True, True)}"
    )
    for chk in CHECKS:
        row = lay.check_rows[chk.id]
        sym, msg = _check_formula(chk, aler, ctx.settings)
        ws.write_string(row, COL_KEY, f"check:{chk.id}")
        ws.write_formula(row, COL_LETTER, sym, fmt.symbol)
        ws.merge_range(row, COL_LABEL, row, COL_HELP, "", fmt.check_msg)
        ws.write_formula(row, COL_LABEL, msg, fmt.check_msg)
        wb.define_name(
            f"controllo_{chk.id}",
            f"={SHEET_SCHEDA}!{xl_rowcol_to_cell(row, COL_LETTER, True, True)}",
        )
        # colour the offending input cell
        sym_cell = xl_rowcol_to_cell(row, COL_LETTER, True, True)
        target = lay.cell(chk.field)
        ws.conditional_format(
            target, {"type": "formula", "criteria": f'={sym_cell}="{BAD}"', "format": fmt.bad}
        )
        ws.conditional_format(
            target, {"type": "formula", "criteria": f'={sym_cell}="{WARN}"', "format": fmt.warn}
        )
    for style, symbol in ((fmt.bad, BAD), (fmt.warn, WARN), (fmt.good, OK)):
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
    _setup_print(ws, lay.last_row, COL_HELP, first_col=COL_LETTER)
    ws.repeat_rows(h)
    ws.activate()
    ws.set_first_sheet()


def _write_value_cell(
    ws: Any, fmt: _Formats, f: Field, row: int, variant: Variant, ctx: TemplateContext
) -> None:
    col = COL_VALUE
    aler = variant == "ALER"
    blank = variant == "VUOTO"
    if f.role is Role.IDENT:
        if blank:
            style = fmt.input_ident
            ws.write_blank(row, col, None, style)
            if f.kind is Kind.YEAR:
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
            ws.write_string(row, col, _PH_CODE, fmt.ident)
        elif f.id == "ente_denominazione":
            ws.write_string(row, col, _PH_NAME, fmt.ident)
        elif f.id == "anno":
            if ctx.anno:
                ws.write_number(row, col, ctx.anno, fmt.ident_year)
            else:
                ws.write_blank(row, col, None, fmt.ident_year)
        return
    if f.role is Role.FORMULA:
        # SUM ignores numbers typed as text in Excel and LibreOffice alike
        refs = ",".join(LAYOUT.cell(k) for k in f.sum_of)
        ws.write_formula(row, col, f"=SUM({refs})", fmt.formula, 0)
        return
    if f.comuni_only and aler:
        ws.write_string(row, col, NOT_APPLICABLE, fmt.na)
        return
    opts: dict[str, Any] = {"input_title": _trim(f.header, 32), "input_message": _trim(f.help, 255)}
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


def _trim(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _write_meta(wb: Any, variant: Variant, ctx: TemplateContext) -> None:
    ws = wb.add_worksheet(SHEET_META)
    ws.write_string(0, 0, "chiave")
    ws.write_string(0, 1, "valore")
    ws.write_string(0, 2, "significato")
    for i, (key, value) in enumerate(_meta_values(variant, ctx).items(), start=1):
        ws.write_string(i, 0, key)
        ws.write_string(i, 1, value)
        ws.write_string(i, 2, META_KEYS[key])
    ws.very_hidden()
    ws.protect("")


# --- personalisation -----------------------------------------------------------------

_PERSONAL_MEMBERS = ("xl/sharedStrings.xml", "docProps/core.xml", "docProps/custom.xml")


class TemplateFactory:
    """Makes personalised templates fast: each variant is built once, then each ente's
    copy only replaces the placeholder strings."""

    def __init__(self, ctx: TemplateContext) -> None:
        self.ctx = ctx
        self._variants: dict[str, list[tuple[zipfile.ZipInfo, bytes]]] = {}

    def _members(self, variant: Variant) -> list[tuple[zipfile.ZipInfo, bytes]]:
        if variant not in self._variants:
            data = build_variant(variant, self.ctx)
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                self._variants[variant] = [(i, zf.read(i)) for i in zf.infolist()]
        return self._variants[variant]

    def render(self, ente: Ente) -> bytes:
        subs = {
            _PH_CODE: escape(ente.codice),
            _PH_NAME: escape(ente.denominazione),
            _PH_FULLNAME: escape(ente.nome_completo),
        }
        pattern = re.compile("|".join(re.escape(k) for k in subs))

        def replace(m: re.Match[str]) -> str:
            return subs[m.group(0)]

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in self._members("ALER" if ente.tipo == "ALER" else "COMUNE"):
                if info.filename in _PERSONAL_MEMBERS:
                    data = pattern.sub(replace, data.decode("utf-8")).encode("utf-8")
                zi = zipfile.ZipInfo(info.filename, info.date_time)
                zi.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(zi, data, compresslevel=6)
        return out.getvalue()


def template_filename(ente: Ente, anno: int | None) -> str:
    """A name a clerk can read: 'Piano_abitativo_2026_Comune_di_Rivolta_d_Adda.xlsx'."""
    text = unicodedata.normalize("NFKD", ente.nome_completo)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    prefix = f"Piano_abitativo_{anno}_" if anno else "Piano_abitativo_"
    return f"{prefix}{text}.xlsx"


def write_templates(
    enti: Iterable[Ente],
    outdir: Path,
    ctx: TemplateContext,
    *,
    progress: Callable[[Ente], None] | None = None,
) -> list[Path]:
    """Write one personalised template per ente into `outdir` (atomically, each file)."""
    outdir.mkdir(parents=True, exist_ok=True)
    factory = TemplateFactory(ctx)
    paths: list[Path] = []
    for ente in enti:
        path = outdir / template_filename(ente, ctx.anno)
        atomic_write_bytes(path, factory.render(ente))
        paths.append(path)
        if progress:
            progress(ente)
    return paths


STANDARD_TEMPLATE_NAME = "modello_piano_abitativo.xlsx"


def build_standard_template() -> bytes:
    """The blank standard template committed under templates/ (no ente, no year)."""
    return build_variant("VUOTO", TemplateContext())


def write_standard_template(path: Path) -> Path:
    atomic_write_bytes(path, build_standard_template())
    return path


def context_for(r: Raccolta) -> TemplateContext:
    """The template context of a raccolta (its year, id, ambito, deadline, rules)."""
    return TemplateContext(
        anno=r.anno,
        raccolta_id=r.id,
        ambito=r.ambito,
        scadenza=r.scadenza,
        capofila=r.capofila,
        contatto=r.contatto,
        settings=r.settings,
        schema=r.schema,
    )


def generate_templates(
    r: Raccolta, *, progress: Callable[[Ente], None] | None = None
) -> list[Path]:
    """One personalised template per ente of the registry into RACCOLTA/modelli/."""
    return write_templates(r.registry, r.modelli_dir, context_for(r), progress=progress)
