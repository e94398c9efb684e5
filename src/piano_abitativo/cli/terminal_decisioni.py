"""What the decisions, the rettifiche and the things that need the capofila's attention
(files in verifica, damaged ledger lines, rettifiche no longer applied) look like on the
terminal. Untrusted text (file names, senders, values) is printed as plain text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

from piano_abitativo.archive.decisions import ACCETTA, SCARTA, short_id
from piano_abitativo.cli.safe import console as plain_console
from piano_abitativo.cli.safe import plain, quanti
from piano_abitativo.core.formatting import it_number

if TYPE_CHECKING:
    from piano_abitativo.app.decisioni import DecisionResult, RettificaResult
    from piano_abitativo.consolidation.consolidate import Consolidation


def _show(v: Any) -> str:
    if v is None:
        return "vuoto"
    return it_number(v) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def _plain(con: Console, text: str, style: str = "") -> None:
    con.print(plain(text, style), soft_wrap=True)


def print_decision(res: DecisionResult, console: Console | None = None) -> None:
    con = console or plain_console()
    for d in res.decisions:
        name = res.file.get(short_id(d.sha256), "")
        if d.azione == ACCETTA:
            ente = next(
                (s.ente.nome_completo for s in res.consolidation.enti if s.ente.codice == d.ente),
                d.ente,
            )
            text = f"Accettato il file {short_id(d.sha256)} ({name}) per {ente}"
        elif d.azione == SCARTA:
            text = (
                f"Scartato il file {short_id(d.sha256)} ({name}): resta nell'archivio, "
                "fuori dal Piano"
            )
        else:
            text = f"Ripristinato il file {short_id(d.sha256)} ({name})"
        _plain(
            con, f"{text}. Motivo: {d.motivo}. Registrato da {d.utente} il {d.il:%d/%m/%Y %H:%M}."
        )
    print_attention(res.consolidation, con)


def print_rettifica(res: RettificaResult, console: Console | None = None) -> None:
    con = console or plain_console()
    names = {s.ente.codice: s.ente.nome_completo for s in res.consolidation.enti}
    for rt in res.rettifiche:
        _plain(
            con,
            f"Rettifica registrata: {names.get(rt.ente, rt.ente)}, {rt.campo}: "
            f"{_show(rt.valore_precedente)} → {_show(rt.valore)} "
            f"(versione {short_id(rt.versione)}). "
            f"Motivo: {rt.motivo}.",
        )
    for rep in res.reports:
        if rep.errors:
            _plain(con, "Con il valore corretto il file ha ancora errori:", "bold red")
            for p in rep.errors:
                _plain(con, f"- {p.message}")
        elif rep.warnings:
            _plain(
                con,
                "Con il valore corretto il file è valido "
                f"({quanti(len(rep.warnings), 'avviso', 'avvisi')}).",
            )
        else:
            _plain(con, "Con il valore corretto il file è valido.")


def attention_lines(cons: Consolidation) -> list[str]:
    """Italian lines for what the capofila must look at (also used by stato)."""
    lines: list[str] = []
    names = {s.ente.codice: s.ente.nome_completo for s in cons.enti}
    for h in cons.in_verifica:
        lines.append(
            f"In verifica: {h.receipt.nome} (ID {short_id(h.receipt.sha256)}) per "
            f"{names.get(h.ente or '', h.ente)}: {h.motivo}. Decidere con "
            f"«piano-abitativo accetta RACCOLTA {short_id(h.receipt.sha256)} --motivo …» "
            "o «piano-abitativo scarta …»."
        )
    for rt in cons.rettifiche_superate:
        lines.append(
            f"Rettifica non più applicata: {names.get(rt.ente, rt.ente)}, {rt.campo} = "
            f"{_show(rt.valore)} (motivo: {rt.motivo}) correggeva la versione "
            f"{short_id(rt.versione)}, che non è più quella usata."
        )
    for d in cons.registro_danneggiato:
        lines.append(f"Registro dell'archivio danneggiato, {d}.")
    for x in cons.letture_non_riuscite:
        lines.append(
            f"File non letto: {x.get('nome')} (ID {short_id(str(x.get('sha256')))}, da "
            f"{x.get('origine')}): lettura non riuscita (il programma si è interrotto "
            "leggendo questo file). Non viene riletto: esaminarlo a mano."
        )
    return lines


def print_attention(cons: Consolidation, console: Console | None = None) -> None:
    con = console or plain_console()
    for line in attention_lines(cons):
        _plain(con, line, "yellow")
