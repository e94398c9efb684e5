"""The formulas of the template's live check rows, rendered from the rule book.

Each row is a chain of IFs over its cases' conditions (`core.rules.rows.Check`), in
the order the row tests them; the message beside it follows the same chain with the
rules' static texts. Only functions safe in Excel 2010+ and LibreOffice 7.4 appear.
"""

from __future__ import annotations

from piano_abitativo.core.layout import BAD, NA, OK, WARN, Check, Layout
from piano_abitativo.core.rules import Scope
from piano_abitativo.core.rules.book import UNKNOWN, depends_on
from piano_abitativo.core.rules.expr import XlCtx, q
from piano_abitativo.core.settings import Settings


def check_formulas(chk: Check, lay: Layout, aler: bool, settings: Settings) -> tuple[str, str]:
    """(symbol formula, message formula) of a check row."""
    if chk.comuni_only and aler:
        return f"={q(NA)}", f"={q(chk.description + ': non applicabile all' + chr(39) + 'ALER')}"
    ctx = XlCtx(lay.schema, lay.abs_ref, settings, aler)
    scope = Scope(lay.schema, settings)
    sym, msg = q(OK), q(chk.ok_message)
    for case in reversed(chk.cases):
        cond = case.condition(scope).xl(ctx)
        field = lay.schema.field_by_id[case.field]
        sym = f"IF({cond},{q(case.symbol())},{sym})"
        msg = f"IF({cond},{q(case.rule.row_text(field, settings))},{msg})"
        guard = case.unverifiable(scope)
        if guard is not None:
            # a number the case reads cannot be read: "?", not a verdict as if it were 0
            g = guard.xl(ctx)
            deps = depends_on(case.code, case.field, lay.schema, settings)
            cells = ", ".join(lay.cell(d) for d in deps)
            where = f"la cella {cells}" if len(deps) == 1 else f"una delle celle {cells}"
            text = f"{chk.description}: non verificabile, {where} non contiene un numero"
            sym = f"IF({g},{q(UNKNOWN)},{sym})"
            msg = f"IF({g},{q(text)},{msg})"
    return "=" + sym, "=" + msg


def summary_formulas(lay: Layout) -> tuple[str, str]:
    """(symbol, message) of the summary row: the worst symbol of all check rows."""
    first = min(lay.check_rows.values())
    last = max(lay.check_rows.values())
    col = lay.symbol_ref(lay.checks[0].id).split("$")[1]
    rng = f"${col}${first + 1}:${col}${last + 1}"
    sym = f'=IF(COUNTIF({rng},"{BAD}")>0,"{BAD}",IF(COUNTIF({rng},"{WARN}")>0,"{WARN}","{OK}"))'
    msg = (
        f'=IF(COUNTIF({rng},"{BAD}")>0,COUNTIF({rng},"{BAD}")&'
        f'" errori da correggere prima dell\'invio",IF(COUNTIF({rng},'
        f'"{WARN}")>0,"Nessun errore; "&COUNTIF({rng},"{WARN}")&'
        f'" dati da verificare","Tutti i controlli sono superati: la scheda '
        f'può essere inviata"))'
    )
    return sym, msg
