"""Rendering validation reports for people: terminal tables and plain text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .problems import Report, Severity


def _value(v: Any) -> str:
    if v is None:
        return ""
    s = str(v)
    return s if len(s) <= 30 else s[:29] + "…"


def print_reports(reports: Sequence[Report], console: Console | None = None) -> None:
    """One Italian table per file, then a one-line summary."""
    con = console or Console()
    for rep in reports:
        ente = f" — {rep.ente_denominazione or ''} ({rep.ente})" if rep.ente else ""
        if rep.valid:
            status = Text("VALIDO", style="bold green")
        else:
            status = Text("NON VALIDO", style="bold red")
        head = Text.assemble(Text(rep.file, style="bold"), ente, "  ", status,
                             f"  {len(rep.errors)} errori, {len(rep.warnings)} avvisi")
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
            table.add_row(Text(p.severity.value, style=style), p.code, p.sheet or "",
                          p.cell or "", _value(p.value), p.message, p.hint)
        con.print(table)
        con.print()
    n_err = sum(1 for r in reports if not r.valid)
    con.print(f"File esaminati: {len(reports)}; validi: {len(reports) - n_err}; "
              f"con errori: {n_err}.")


def report_text(rep: Report) -> str:
    """Plain text, one problem per line, as in a reply to the ente."""
    lines = []
    for p in rep.problems:
        lines.append(f"[{p.severity.value}] {p.where()}: {p.message}. {p.hint}")
    return "\n".join(lines)
