"""The *Consolida* button and the values typed by hand in the open workbook's *Dati*: as
on the command line they are never silently overwritten. The button asks: Sì records
them as rettifiche (asking the motivo), No discards them, Annulla stops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from piano_abitativo.app.commands import consolidation, modifiche_text
from piano_abitativo.app.decisioni import (
    Modifica,
    registra_rettifiche,
)
from piano_abitativo.archive.decisions import ORIGINE_MASTER
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.master.edits import find_edits, grid_values, read_snapshot
from piano_abitativo.master.model import SHEET_DATI, dati_header

#: what the dialog answered
YES, NO, CANCEL = "yes", "no", "cancel"


def _grid(book: Any) -> list[list[Any]] | None:
    """The values of the open workbook's Dati sheet, rows from A1."""
    try:
        ws = book.sheets[SHEET_DATI]
    except Exception:  # the sheet was removed or renamed by hand: nothing to compare
        return None
    ur = ws.used_range
    nrows, ncols = ur.shape
    last_row, last_col = ur.row + nrows - 1, ur.column + ncols - 1
    values = ws.range((1, 1), (last_row, last_col)).value
    if not isinstance(values, list):
        return [[values]]
    if values and not isinstance(values[0], list):
        return [values]
    return values


def book_modifiche(book: Any, r: Raccolta) -> list[Modifica]:
    """The values of the open workbook's *Dati* changed by hand since it was last written."""
    written = read_snapshot(r.path)
    grid = _grid(book)
    if not written or grid is None:
        return []
    cons = consolidation(r)
    names = {s.ente.codice: s.ente.nome_completo for s in cons.enti}
    return [
        Modifica(codice, names[codice], f.id, dati_header(f), old, new)
        for codice, f, old, new in find_edits(written, grid_values(grid, cons.schema), cons)
    ]


def resolve(
    book: Any,
    r: Raccolta,
    ask: Callable[[str], str],
    ask_text: Callable[[str], str | None],
) -> tuple[bool, str]:
    """(go on, what to tell). Asks what to do with the values typed in Dati, if any."""
    modifiche = book_modifiche(book, r)
    if not modifiche:
        return True, ""
    text = modifiche_text(r, modifiche).split("\nPer registrarli")[0]
    answer = ask(
        text + "\n\nSì: registrarli come rettifiche del Comune capofila (con il motivo).\n"
        "No: scartarli e riscrivere i valori degli enti.\nAnnulla: non fare nulla."
    )
    if answer == YES:
        motivo = ask_text("Motivo delle correzioni scritte nel foglio Dati:")
        if not motivo or not motivo.strip():
            return False, "Consolidamento annullato: serve il motivo delle rettifiche."
        res = registra_rettifiche(r, modifiche, motivo=motivo, origine=ORIGINE_MASTER)
        n = len(res.rettifiche)
        return True, f"Registrate {n} rettifiche dal foglio Dati (motivo: {motivo.strip()})."
    if answer == NO:
        return True, f"Scartate {len(modifiche)} modifiche del foglio Dati."
    if answer == CANCEL:
        return False, "Consolidamento annullato: il foglio Dati non è stato toccato."
    return False, "Consolidamento annullato. " + modifiche_text(r, modifiche)
