"""Rendering the mail cycle for people: what was sent, what arrived, who answered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from piano_abitativo.app.stato import Stato
from piano_abitativo.archive import store as archive
from piano_abitativo.cli.safe import console as plain_console
from piano_abitativo.cli.safe import plain
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail import send as mail

# the mailbox's side (imap, ingest: the PEC verification, cryptography) is imported by the
# functions of `importa --imap`: ``stato`` does not need it (tests/test_imports.py)
if TYPE_CHECKING:
    from piano_abitativo.mail.imap import IngestResult
    from piano_abitativo.mail.ingest import MessageOutcome

_GENERE = {"invio": "invii del modello", "sollecito": "solleciti", "esito": "esiti"}
_STYLE = {
    mail.PROVA: "cyan",
    mail.INVIATO: "green",
    mail.FALLITO: "bold red",
    mail.GIA_INVIATO: "dim",
    mail.INCERTO: "yellow",
    mail.NON_INVIATO: "yellow",
}


def _when(x: dt.datetime | None) -> str:
    return f"{x.astimezone(archive.TZ):%d/%m/%Y %H:%M:%S}" if x else ""


def print_send(res: mail.SendResult, r: Raccolta, console: Console | None = None) -> None:
    """One row per message, then the totals and what to do next."""
    from piano_abitativo.mail.outbox import outbox_dir

    con = console or plain_console()
    if res.outcomes:
        table = Table(show_header=True, header_style="bold")
        for col in ("Tipo", "Ente", "Destinatario", "Motivo", "Esito"):
            table.add_column(col, overflow="fold")
        for o in res.outcomes:
            m = o.message
            label = o.esito if not o.nota else f"{o.esito}: {o.nota}"
            table.add_row(
                plain(m.genere),
                plain(m.etichetta, newlines=False),
                plain(m.destinatario, newlines=False),
                plain(m.motivo),
                plain(label, _STYLE.get(o.esito, "")),
            )
        con.print(table)
    for who, why in res.esclusi:
        con.print(plain(f"Escluso {who}: {why}.", "yellow"))
    for note in res.note:
        con.print(plain(f"Nota: {note}.", "yellow"))
    what = _GENERE.get(res.genere, "messaggi")
    if not res.outcomes:
        con.print(f"Nessun messaggio da preparare ({what}).")
        return
    if not res.davvero:
        n = res.count(mail.PROVA)
        con.print(
            plain(
                f"PROVA: {n} {'messaggio scritto' if n == 1 else 'messaggi scritti'} in "
                f"{outbox_dir(r.path)}, nessuno inviato"
                + (
                    f"; già inviati prima: {res.count(mail.GIA_INVIATO)}"
                    if res.count(mail.GIA_INVIATO)
                    else ""
                )
                + "."
            )
        )
        if n:
            con.print(
                "Controllare i file .eml (si aprono con il programma di posta), poi "
                "ripetere il comando con --davvero per inviarli."
            )
        return
    con.print(
        f"Inviati: {res.count(mail.INVIATO)}; non riusciti: {res.count(mail.FALLITO)}; "
        f"già inviati prima: {res.count(mail.GIA_INVIATO)}"
        + (f"; incerti: {res.count(mail.INCERTO)}" if res.count(mail.INCERTO) else "")
        + (f"; rimandati: {res.count(mail.NON_INVIATO)}" if res.count(mail.NON_INVIATO) else "")
        + "."
    )
    if res.count(mail.FALLITO) or res.count(mail.NON_INVIATO):
        con.print("Ripetendo il comando si inviano solo i messaggi non ancora partiti.")


def _message_label(m: MessageOutcome) -> Text:
    from piano_abitativo.mail.ingest import GIA_IMPORTATO

    if m.esito == GIA_IMPORTATO:
        return Text("già importato", style="dim")
    if m.receipts:
        bad = sum(1 for rc in m.receipts if not rc.report.valid)
        n = len(m.receipts)
        return Text(
            f"{n} file, {bad} con errori" if bad else f"{n} file valid{'o' if n == 1 else 'i'}",
            style="red" if bad else "green",
        )
    return plain(m.esito, "yellow" if m.esito != "ricevuta" else "dim")


def print_ingest(res: IngestResult, r: Raccolta, console: Console | None = None) -> None:
    """The new messages of the mailbox, then the totals and the messages to look at."""
    from piano_abitativo.mail.ingest import GIA_IMPORTATO

    con = console or plain_console()
    fresh = [m for m in [*res.messages, *res.recuperati] if m.esito != GIA_IMPORTATO]
    if fresh:
        table = Table(show_header=True, header_style="bold")
        for col in ("Mittente", "Ente", "Ricevuto il", "Certificato", "Esito"):
            table.add_column(col, overflow="fold")
        for m in fresh:
            ente = r.registry.get(m.ente_mittente) if m.ente_mittente else None
            who: Text = (
                plain(ente.nome_completo, newlines=False)
                if ente
                else (
                    Text("ricevuta PEC")
                    if m.kind == "ricevuta"
                    else Text("mittente sconosciuto", style="yellow")
                )
            )
            table.add_row(
                plain(m.mittente, newlines=False),
                who,
                _when(m.ricevuto_il),
                "sì (PEC)" if m.certificato else "no",
                _message_label(m),
            )
        con.print(table)
    for m in fresh:
        for note in m.note:
            con.print(plain(f"  {m.mittente or Path(m.origine).name}: {note}"))
    for note in res.note:
        con.print(plain(f"Nota: {note}.", "yellow"))
    receipts = res.receipts
    bad = sum(1 for rc in receipts if not rc.report.valid)
    unknown = sum(1 for m in fresh if m.mittente_sconosciuto)
    no_file = sum(1 for m in fresh if m.esito == "senza allegati")
    con.print(
        plain(
            f"Cartella {res.cartella}: {res.totale} messaggi, già importati prima "
            f"{res.gia_visti}, nuovi {len(fresh)}; file ricevuti {len(receipts)} "
            f"(con errori {bad}); senza allegato {no_file}; mittenti sconosciuti {unknown}"
            + (f"; spostati {res.spostati}" if res.spostati else "")
            + "."
        )
    )
    con.print(
        "La casella non è stata modificata."
        if not res.spostati
        else "I messaggi importati sono stati spostati; nessuno è stato cancellato."
    )
    if receipts or no_file:
        con.print(plain(f"Per vedere chi ha risposto: piano-abitativo stato {r.path}"))


def _day(x: dt.datetime | None) -> str:
    return f"{x.astimezone(archive.TZ):%d/%m/%Y}" if x else ""


def stato_table(st: Stato, *, compact: bool = False) -> Table:
    """The table of `stato`: codes, dates and IDs are never split (no_wrap), a column
    empty for every ente is left out; the `compact` layout (for a narrow terminal) has
    dates without the time, no channel nor version count, and no rules."""
    when = _day if compact else _when
    # (header, cells, never split, always shown)
    columns: list[tuple[str, list[Text | str], bool, bool]] = [
        ("Codice", [plain(e.codice, newlines=False) for e in st.enti], True, True),
        ("Ente", [plain(e.denominazione, newlines=False) for e in st.enti], False, True),
        (
            "Stato",
            [
                plain(e.stato, "red" if e.errori else ("green" if e.ricevuto else "dim"))
                for e in st.enti
            ],
            False,
            True,
        ),
        ("Ricevuto il", [when(e.ricevuto_il) for e in st.enti], True, False),
        (
            "PEC" if compact else "Cert.",
            ["sì" if e.certificato else ("no" if e.ricevuto else "") for e in st.enti],
            True,
            False,
        ),
    ]
    if not compact:
        columns += [
            ("Canale", [plain(e.canale, newlines=False) for e in st.enti], False, False),
            ("Vers.", [str(e.versioni) for e in st.enti], True, False),
        ]
    columns += [
        ("Err.", [str(e.errori) for e in st.enti], True, False),
        ("Avv.", [str(e.avvisi) for e in st.enti], True, False),
        (
            "Sollecito" if compact else "Sollecitato il",
            [when(e.sollecitato_il) for e in st.enti],
            True,
            False,
        ),
        ("ID", [plain(e.id, newlines=False) for e in st.enti], True, False),
    ]
    shown = [c for c in columns if c[3] or any(str(cell).strip() for cell in c[1])]
    table = (
        Table(show_header=True, header_style="bold underline", box=None, padding=(0, 1, 0, 0))
        if compact
        else Table(show_header=True, header_style="bold")
    )
    longest = max((len(w) for e in st.enti for w in e.denominazione.split()), default=0)
    for header, _, keep, _ in shown:
        table.add_column(
            header,
            no_wrap=keep,
            overflow="ellipsis" if keep else "fold",
            # a name is wrapped between words, not inside one (up to 24 characters)
            min_width=min(longest, 24) if header == "Ente" else _min_width(header, keep),
        )
    for i in range(len(st.enti)):
        table.add_row(*(cells[i] for _, cells, _, _ in shown))
    return table


def _least_width(table: Table) -> int:
    """The width `table` needs so that no cell of a never-split column is cut and no word
    of the others is split (rich crops a no_wrap cell silently when the table is too
    wide)."""
    total = 0
    for col in table.columns:
        cells = [str(col.header), *(str(c) for c in col.cells)]
        if col.no_wrap:
            need = max(len(c) for c in cells)
        else:
            need = max((len(w) for c in cells for w in c.split()), default=0)
        total += max(need, col.min_width or 0)
    n = len(table.columns)
    return total + (3 * n + 1 if table.box is not None else n)


def _min_width(header: str, keep: bool) -> int | None:
    """A column that is never split is at least as wide as its header's longest word."""
    return max(len(w) for w in header.split()) if keep else None


def print_stato(st: Stato, console: Console | None = None) -> None:
    """One row per ente, then the files and the senders that need a look."""
    con = console or plain_console()
    table = stato_table(st)
    if _least_width(table) > con.width:
        table = stato_table(st, compact=True)
    con.print(table)
    for h in st.in_verifica:
        con.print(
            plain(
                f"In verifica: {h['file']} (ID {h['id']}), ricevuto il "
                f"{_when(dt.datetime.fromisoformat(h['ricevuto_il']))}: {h['motivo']}. "
                f"Decidere con «piano-abitativo accetta RACCOLTA {h['id']} --motivo …» o "
                "«piano-abitativo scarta …».",
                "yellow",
            )
        )
    for x in st.scartati:
        con.print(plain(f"Scartato: {x['file']} (ID {x['id']}): {x['motivo']}.", "dim"))
    for rt in st.rettifiche_superate:
        con.print(
            plain(
                f"Rettifica non più applicata: ente {rt['ente']}, {rt['campo']} (motivo: "
                f"{rt['motivo']}): l'ente ha inviato una versione più recente.",
                "yellow",
            )
        )
    for d in st.registro_danneggiato:
        where = f"riga {d['riga']}" if d.get("riga") else "archivio"
        con.print(plain(f"Registro dell'archivio danneggiato, {where}: {d['motivo']}.", "red"))
    for q in st.letture_non_riuscite:
        con.print(
            plain(
                f"File non letto: {q['file']} (ID {q['id']}, da {q['origine']}): {q['motivo']}.",
                "red",
            )
        )
    for f in st.non_attribuiti:
        con.print(
            plain(
                f"File non attribuito a un ente: {f['file']} (ricevuto il "
                f"{_when(dt.datetime.fromisoformat(f['ricevuto_il']))}"
                + (f" da {f['mittente']}" if f.get("mittente") else "")
                + ")",
                "yellow",
            )
        )
    for m in st.mittenti_sconosciuti:
        att = (
            f"file attribuito a {', '.join(m['attribuito_a'])}"
            if m["attribuito_a"]
            else str(m.get("esito") or "")
        )
        con.print(
            plain(
                f"Mittente sconosciuto: {m.get('mittente') or '?'} — "
                f"«{m.get('oggetto') or ''}» — {att}",
                "yellow",
            )
        )
    con.print(f"Enti che hanno risposto: {st.ricevuti} di {len(st.enti)}.")
