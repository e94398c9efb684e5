"""Rendering validation reports for people: terminal tables and plain text."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from piano_abitativo.cli.safe import console as plain_console
from piano_abitativo.cli.safe import plain, quanti, safe
from piano_abitativo.cli.skipped import MAX_SKIPPED_SHOWN
from piano_abitativo.cli.skipped import skipped_files as skipped_files
from piano_abitativo.core.formatting import it_number
from piano_abitativo.core.problems import Report, Severity

# what `valida` does not use (the archive, the consolidation, rich's progress bars) is
# imported by the functions that use it: ``valida`` imports only what it needs
# (tests/test_imports.py)
if TYPE_CHECKING:
    from rich.console import Console

    from piano_abitativo.archive.store import ImportResult, Receipt
    from piano_abitativo.consolidation.consolidate import Consolidation
    from piano_abitativo.core.raccolta import Raccolta
    from piano_abitativo.core.schema import Schema
    from piano_abitativo.simulation.demo import DemoResult


def number_text(v: int | float) -> str:
    """A number of a report as the plan prints it: 19025.0 → "19.025", 1.0 → "1",
    12.75 → "12,75" (a value that is not whole keeps its decimals: the report shows
    what the file holds, not a rounding of it)."""
    if isinstance(v, float) and not v.is_integer():
        if not math.isfinite(v) or abs(v) < 1e-6:
            return str(v).replace(".", ",")
        whole, _, decimals = f"{abs(v):.10f}".rstrip("0").partition(".")
        return ("-" if v < 0 else "") + it_number(int(whole)) + "," + decimals
    return it_number(v)


def _value(v: Any) -> Text:
    if v is None:
        return Text("")
    if isinstance(v, int | float) and not isinstance(v, bool):
        return Text(number_text(v))
    s = safe(v, newlines=False)
    return Text(s if len(s) <= 30 else s[:29] + "…")


def print_reports(
    reports: Sequence[Report],
    console: Console | None = None,
    *,
    skipped: Sequence[tuple[Path, str]] = (),
    summary: bool = True,
) -> None:
    """One Italian table per file, then the files `skipped` with the reason, then a
    one-line summary whose counts add up (found = examined + skipped)."""
    con = console or plain_console()
    for rep in reports:
        ente = (
            plain(f" — {rep.ente_denominazione or ''} ({rep.ente})", newlines=False)
            if rep.ente
            else ""
        )
        if rep.valid:
            status = Text("VALIDO", style="bold green")
        else:
            status = Text("NON VALIDO", style="bold red")
        head = Text.assemble(
            plain(rep.file, "bold", newlines=False),
            ente,
            "  ",
            status,
            f"  {quanti(len(rep.errors), 'errore', 'errori')}, "
            f"{quanti(len(rep.warnings), 'avviso', 'avvisi')}",
        )
        con.print(head)
        if not rep.problems:
            con.print()
            continue
        table = Table(show_header=True, header_style="bold", expand=False, show_lines=False)
        table.add_column("Gravità")
        table.add_column("Codice")
        table.add_column("Foglio")
        table.add_column("Cella")
        table.add_column("Valore", overflow="fold")
        table.add_column("Problema", overflow="fold", ratio=3)
        table.add_column("Cosa fare", overflow="fold", ratio=3)
        for p in sorted(rep.problems, key=lambda p: (p.severity is not Severity.ERRORE,)):
            style = "red" if p.severity is Severity.ERRORE else "yellow"
            table.add_row(
                Text(p.severity.value, style=style),
                plain(p.code),
                plain(p.sheet, newlines=False),
                plain(p.cell, newlines=False),
                _value(p.value),
                plain(p.message),
                plain(p.hint),
            )
        con.print(table)
        con.print()
    if skipped:
        con.print(
            f"File non esaminati ({len(skipped)}; si validano solo i file .xlsx, .xlsm, .xls "
            "e .ods):",
            style="bold",
        )
        for f, why in skipped[:MAX_SKIPPED_SHOWN]:
            con.print(plain(f"  {f} — {why}", newlines=False))
        if len(skipped) > MAX_SKIPPED_SHOWN:
            con.print(f"  … e altri {len(skipped) - MAX_SKIPPED_SHOWN}.")
    if not summary:
        return
    n_err = sum(1 for r in reports if not r.valid)
    line = f"File esaminati: {len(reports)}; validi: {len(reports) - n_err}; con errori: {n_err}"
    if skipped:
        line = (
            f"File trovati: {len(reports) + len(skipped)}; esaminati: {len(reports)} "
            f"(validi: {len(reports) - n_err}; con errori: {n_err}); "
            f"non esaminati: {len(skipped)}"
        )
    con.print(line + ".")


def report_text(rep: Report) -> str:
    """Plain text, one problem per line, as in a reply to the ente."""
    lines = []
    for p in rep.problems:
        lines.append(f"[{p.severity.value}] {p.where()}: {p.message}. {p.hint}")
    return "\n".join(lines)


def print_import(res: ImportResult, r: Raccolta, console: Console | None = None) -> None:
    """What `importa` did, one row per file, then the problems of the files with errors."""
    from piano_abitativo.archive.decisions import short_id

    con = console or plain_console()
    if not res.outcomes and not res.recovered:
        con.print(
            "Nessun file da importare trovato (.xlsx, .xlsm, .xls, .ods, messaggi .eml e "
            ".msg, file firmati .p7m)."
        )
        _print_not_examined(res, con)
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("ID", "File", "Ente", "Ricevuto il", "Esito"):
        table.add_column(col, overflow="fold")
    for o in res.outcomes:
        name = Path(o.origine).name
        rc = o.receipt
        if rc is None:
            style = "dim" if o.esito == "già importato" else "red"
            if o.esito == "generato":  # an own output of the raccolta: a note
                style = "cyan"
            table.add_row(
                "", plain(name, newlines=False), "", "", plain(o.messaggio or o.esito, style)
            )
            continue
        table.add_row(
            short_id(rc.sha256),
            plain(name, newlines=False),
            _ente_label(rc, r),
            f"{rc.ricevuto_il:%d/%m/%Y %H:%M:%S}",
            _esito(rc),
        )
    for rc in res.recovered:
        table.add_row(
            short_id(rc.sha256),
            plain(rc.nome, newlines=False),
            _ente_label(rc, r),
            f"{rc.ricevuto_il:%d/%m/%Y %H:%M:%S}",
            Text.assemble(_esito(rc), " (recuperato dall'archivio)"),
        )
    con.print(table)
    bad = [rc.report for rc in [*res.imported, *res.recovered] if rc.report.problems]
    if bad:
        con.print()
        print_reports(bad, con, summary=False)
    new = res.imported + res.recovered
    n_err = sum(1 for rc in new if not rc.report.valid)
    dup = sum(1 for o in res.outcomes if o.esito == "già importato")
    unreadable = sum(1 for o in res.outcomes if o.esito == "illeggibile")
    own = sum(1 for o in res.outcomes if o.esito == "generato")
    con.print(
        f"Nuovi file archiviati: {len(new)} (validi {len(new) - n_err}, con errori "
        f"{n_err}); già presenti nell'archivio: {dup}"
        + (f"; non leggibili: {unreadable}" if unreadable else "")
        + "."
    )
    if own:
        con.print(
            f"Nota: {own} {'file generato' if own == 1 else 'file generati'} da "
            "piano-abitativo (modelli non compilati, cartella di lavoro riepilogativa, "
            "documento): non sono risposte degli enti, non importati."
        )
    _print_not_examined(res, con)
    if new:
        con.print(plain(f"Passo successivo: piano-abitativo consolida {r.path}"))


def _print_not_examined(res: ImportResult, con: Console) -> None:
    """The files found in the folders and left alone, with why, and counts that add up
    (found = examined + not examined)."""
    if not res.non_esaminati:
        return
    con.print(
        f"File non esaminati ({len(res.non_esaminati)}; si importano solo i file .xlsx, "
        ".xlsm, .xls, .ods, i messaggi .eml e .msg e i file firmati .p7m):"
    )
    for f, why in res.non_esaminati[:MAX_SKIPPED_SHOWN]:
        con.print(plain(f"  {Path(f).name}: {why}"), soft_wrap=True)
    if len(res.non_esaminati) > MAX_SKIPPED_SHOWN:
        con.print(f"  … e altri {len(res.non_esaminati) - MAX_SKIPPED_SHOWN}.")
    examined = len(res.outcomes)
    con.print(
        f"File trovati: {examined + len(res.non_esaminati)}; esaminati: {examined}; "
        f"non esaminati: {len(res.non_esaminati)}."
    )


def _ente_label(rc: Receipt, r: Raccolta) -> Text:
    ente = r.registry.get(rc.report.ente) if rc.report.ente else None
    if ente is not None:
        return plain(ente.nome_completo, newlines=False)
    return plain(
        f"non riconosciuto ({rc.report.ente})" if rc.report.ente else "non riconosciuto",
        newlines=False,
    )


def _esito(rc: Receipt) -> Text:
    rep = rc.report
    if not rep.valid:
        n = len(rep.errors)
        return Text(f"da correggere: {n} {'errore' if n == 1 else 'errori'}", style="bold red")
    if rep.warnings:
        n = len(rep.warnings)
        return Text(f"valido, {n} {'avviso' if n == 1 else 'avvisi'}", style="yellow")
    return Text("valido", style="green")


#: the word after a total in the totals line ("a) 1.008 unità, 950 SAP, 58 SAS")
_TOTAL_WORDS = {"a_totale": "unità", "a_sap": "SAP", "a_sas": "SAS"}


def totals_line(schema: Schema, totals: Mapping[str, str]) -> str:
    """The plan's totals by section: the first count of a section bare (or with its word),
    the others with their word or their header."""
    parts = []
    for letter in schema.table_letters:
        counts = [f for f in schema.total_fields if f.section == letter]
        shown = []
        for i, f in enumerate(counts):
            word = _TOTAL_WORDS.get(f.id) or (f.header if i else "")
            shown.append(f"{totals[f.id]} {word}".strip())
        if shown:
            parts.append(f"{letter}) " + ", ".join(shown))
    return "; ".join(parts)


def print_consolidation(
    cons: Consolidation, master: Path | None, console: Console | None = None
) -> None:
    """The outcome of `consolida`: who answered, the plan's totals, where the file is."""
    from piano_abitativo.cli.terminal_decisioni import print_attention
    from piano_abitativo.consolidation.consolidate import STATO_CON_ERRORI, STATO_IN_VERIFICA

    con = console or plain_console()
    t = {k: it_number(v) for k, v in cons.totals.items()}
    n = len(cons.enti)
    answered = sum(1 for s in cons.enti if s.received)
    con.print(
        f"Enti che hanno risposto: {answered} di {n}; da correggere: "
        f"{cons.count(STATO_CON_ERRORI)}; "
        + (f"in verifica: {held}; " if (held := cons.count(STATO_IN_VERIFICA)) else "")
        + f"non ricevuti: {n - answered}"
        + (f"; ritorni non attribuiti: {len(cons.non_attribuiti)}" if cons.non_attribuiti else "")
        + "."
    )
    con.print(f"Totali del Piano {cons.anno}: {totals_line(cons.schema, t)}.")
    for letter, label in (("g", "g) soglia indigenti"), ("i", "i) Forze di Polizia")):
        rows = cons.table(letter)
        fid = "g_soglia_indigenti" if letter == "g" else "i_forze_polizia"
        names = ", ".join(f"{s.ente.denominazione} {it_number(s.values[fid])}%" for s in rows)
        con.print(plain(f"{label}: {names or 'nessun Comune'}."))
    h = ", ".join(s.ente.denominazione for s in cons.table("h"))
    con.print(plain(f"h) categorie aggiuntive: {h or 'nessun Comune'}."))
    print_attention(cons, con)
    if master is not None:
        con.print(plain(f"Cartella di lavoro riepilogativa: {master}"))


@contextlib.contextmanager
def step_progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars for the long steps: yields ``update(step, done, total)``, one bar per
    step. Shown only on a terminal (nothing when the output goes to a file or a program)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(step, total=total)
        bar.update(tasks[step], completed=done, total=total)

    with bar:
        yield update


def print_demo(res: DemoResult, console: Console | None = None) -> None:
    """The end of the demo: errors found, how the returns arrived, the plan's totals and
    where each file is."""
    from piano_abitativo.mail.ingest import CANALE_PEC

    con = console or plain_console()
    con.print()
    got = [rc for rc in res.importazione.imported if rc.report.ente]
    wrong = [rc for rc in got if rc.report.errors]
    if wrong:
        con.print("Errori trovati dalla validazione (poi corretti dall'ente con un nuovo invio):")
    for rc in wrong:
        for p in rc.report.errors:
            con.print(
                plain(
                    f"  {rc.report.ente_denominazione or rc.report.ente}, ricevuto il "
                    f"{rc.ricevuto_il:%d/%m/%Y %H:%M:%S}: {p.where()}: {p.message}. {p.hint}"
                )
            )
    pec = [rc for rc in got if rc.canale == CANALE_PEC and rc.certificato]
    signed = sum(1 for rc in got if rc.extra.get("firma"))
    others = len(got) - len(pec)
    con.print(
        f"File ricevuti: {len(got)} — {len(pec)} per PEC con data e ora certificate"
        + (f" (di cui {signed} firmato digitalmente, .p7m)" if signed else "")
        + f", {others} per e-mail ordinaria (vale la data del messaggio)."
    )
    print_consolidation(res.consolidation, None, con)  # the paths follow
    con.print()
    con.print("Dove sono i file:")
    rows: list[tuple[str, Path | str]] = [
        ("Raccolta (configurazione, elenco enti)", res.raccolta.path),
        (f"Modelli per gli enti ({len(res.modelli)})", res.raccolta.modelli_dir),
        (
            f"Posta in arrivo ({quanti(len(res.messaggi), 'messaggio', 'messaggi')} .eml)",
            res.posta_dir,
        ),
        ("Archivio (file e messaggi ricevuti, registro)", res.archivio),
        ("Cartella di lavoro riepilogativa", res.master),
    ]
    doc = res.documento
    if doc is not None:
        rows.append(("Documento del Piano (.docx)", doc.docx))
        rows.append(("Documento del Piano (.pdf)", doc.pdf or "non scritto (vedi la nota)"))
    for label, where in rows:
        con.print(plain(f"  {label}: {where}"), soft_wrap=True, highlight=False)
    for note in doc.note if doc is not None else ():
        con.print(plain(f"  Nota sul documento: {note}"), soft_wrap=True)
    con.print(
        plain(
            f"Nessun messaggio è stato inviato: la casella PEC del capofila "
            f"({res.capofila_pec}) e gli indirizzi degli enti sono dimostrativi (.example)."
        ),
        soft_wrap=True,
    )
