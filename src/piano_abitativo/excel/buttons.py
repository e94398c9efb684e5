"""The buttons of the master workbook: one xlwings entry point per button.

Each button of the .xlsm runs a one-line macro,
``RunPython "import piano_abitativo.excel as x; x.consolida()"``. An entry point

1. finds the workbook that called it (`xw.Book.caller()`, inside the function: importing
   this module needs neither Excel nor xlwings),
2. finds the raccolta: the environment variable ``PIANO_ABITATIVO_RACCOLTA``, else the
   folder of the workbook or one of its parents,
3. makes one call into the application layer (`piano_abitativo.app`), the same as the
   command line's,
4. writes the result back into the open workbook: values and formulas only (the formats
   were baked in when the master was built), one 2-D assignment per sheet,
5. tells the clerk what happened in a short Italian message box.

Errors never reach the clerk as a traceback, as on the command line
(`piano_abitativo.core.errors`): a `PianoError` or an error of the operating system
becomes its Italian message; anything else becomes "Errore imprevisto" with the details
appended to ``piano-abitativo.log`` in the raccolta (or in ``~/.piano-abitativo/``, or
the temp folder, when the raccolta is not known). The entry points always return
normally.

`layout_grids` and `sheet_grid` (what goes where, as lists of rows) are pure, so they are
tested without xlwings.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.errors import (
    LOG_NAME,
    expected_message,
    log_unexpected,
    unexpected_message,
)
from piano_abitativo.core.version import __version__
from piano_abitativo.excel.grid import Refresh as Refresh
from piano_abitativo.excel.grid import datetime_format_runs as datetime_format_runs
from piano_abitativo.excel.grid import layout_grids as layout_grids
from piano_abitativo.excel.grid import refresh as refresh
from piano_abitativo.excel.grid import sheet_grid as sheet_grid

# what a button needs (the application layer, the consolidation, the master's layout, the
# mail, the document) is imported by that button, on its first click: importing this
# module costs only the raccolta's loading, and with the UDF server a later click costs
# no import at all (bench/bench_clic.py measures it)
if TYPE_CHECKING:
    import xlwings as xw

    from piano_abitativo.consolidation.consolidate import Consolidation

__all__ = [
    "ARRIVI_DIR",
    "ENV_RACCOLTA",
    "LOG_NAME",
    "TITLE",
    "Refresh",
    "consolida",
    "datetime_format_runs",
    "documento",
    "genera_modelli",
    "importa",
    "layout_grids",
    "refresh",
    "sheet_grid",
    "solleciti",
    "valida",
]

#: the raccolta to use, whatever the workbook's folder (IT can set it on a PC)
ENV_RACCOLTA = "PIANO_ABITATIVO_RACCOLTA"
#: the drop folder of *Importa*, inside the raccolta
ARRIVI_DIR = "arrivi"
TITLE = "Piano abitativo"


# --------------------------------------------------------------------------- the session


@dataclass
class _Session:
    """One click: the calling workbook and, once found, its raccolta."""

    book: xw.Book
    raccolta: rc.Raccolta | None = None
    notes: list[str] = field(default_factory=list)

    def status(self, text: str | None) -> None:
        """Progress in Excel's status bar, where the engine has one (None gives it back)."""
        with contextlib.suppress(Exception):
            self.book.app.status_bar = text if text is not None else False

    def alert(self, text: str, *, critical: bool = False) -> None:
        self.book.app.alert(text, title=TITLE, mode="critical" if critical else "info")

    def ask(self, text: str) -> str:
        """Sì / No / Annulla: "yes", "no" or "cancel"; "" when the engine cannot ask (the
        remote engine only shows messages after the call)."""
        try:
            if self.book.app.engine.name == "remote":
                return ""
            got = self.book.app.alert(text, title=TITLE, buttons="yes_no_cancel", mode="info")
        except Exception:  # an engine that cannot ask
            return ""
        return str(got or "").lower()

    def ask_text(self, prompt: str) -> str | None:
        """A line typed by the user (Excel's InputBox); None if cancelled or impossible."""
        try:
            got = self.book.app.api.InputBox(prompt, TITLE)
        except Exception:  # no desktop Excel behind the engine
            return None
        return None if got is False or got is None else str(got)


def _caller() -> xw.Book:
    import xlwings as xw

    return xw.Book.caller()


def _book_folder(book: xw.Book) -> Path | None:
    """The folder of the workbook, when it is a saved local or network file."""
    try:
        full = Path(str(book.fullname))
    except Exception:  # an unsaved book or a cloud URL that xlwings cannot map
        return None
    return full.parent if full.is_absolute() else None


def _find_raccolta(s: _Session) -> rc.Raccolta:
    env = os.environ.get(ENV_RACCOLTA, "").strip()
    if env:
        try:
            s.raccolta = rc.load(Path(env))
        except rc.RaccoltaError as exc:
            raise rc.RaccoltaError(
                f"La variabile {ENV_RACCOLTA} indica la cartella {env}, ma: {exc}"
            ) from exc
        return s.raccolta
    folder = _book_folder(s.book)
    found = None
    if folder is not None:
        found = folder if (folder / rc.CONFIG_NAME).is_file() else rc.find_raccolta(folder)
    if found is None:
        where = f" ({folder})" if folder else ""
        raise rc.RaccoltaError(
            f"La cartella di lavoro non è dentro una raccolta{where}: salvarla nella cartella "
            f"della raccolta, quella che contiene {rc.CONFIG_NAME}, e riaprirla; oppure "
            f"indicare la cartella della raccolta nella variabile d'ambiente {ENV_RACCOLTA}."
        )
    s.raccolta = rc.load(found)
    return s.raccolta


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "nessun dettaglio"
    if len(text) > 200:
        text = text[:197] + "…"
    return f"{type(exc).__name__}: {text}"


def _log_unexpected(s: _Session, name: str, exc: BaseException) -> Path | None:
    """Append the traceback to the raccolta's log (see `core.errors.log_unexpected` for
    where it goes when the raccolta is not known yet or cannot be written)."""
    book = ""
    with contextlib.suppress(Exception):
        book = str(s.book.fullname)
    return log_unexpected(
        exc,
        what=f"pulsante {name} (cartella di lavoro {book or 'sconosciuta'})",
        folder=s.raccolta.path if s.raccolta is not None else None,
        version=__version__,
    )


def _button(action: Callable[[_Session], str]) -> Callable[[], None]:
    """Make `action` an entry point: caller book, status bar, alert, errors as messages."""
    name = action.__name__.lstrip("_")

    def entry() -> None:
        try:
            s = _Session(_caller())
        except Exception as exc:  # not started by a button: no message box to show
            print(
                f"piano-abitativo: {name} si avvia con il pulsante della cartella di lavoro "
                f"riepilogativa aperta in Excel ({_one_line(exc)})",
                file=sys.stderr,
            )
            return
        try:
            s.status(f"Piano abitativo: {name.replace('_', ' ')} in corso…")
            s.alert(action(s))
        except Exception as exc:
            known = expected_message(exc)
            if known is None:
                known = unexpected_message(exc, _log_unexpected(s, name, exc))
            with contextlib.suppress(Exception):  # an engine that cannot even alert
                s.alert(known, critical=True)
        finally:
            s.status(None)

    # not functools.wraps: its __wrapped__ would show the session parameter to inspect
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = action.__doc__
    return entry


# --------------------------------------------------------------------------- writing back


# --------------------------------------------------------------------------- summaries


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _summary(cons: Consolidation) -> str:
    from piano_abitativo.consolidation.consolidate import (
        STATO_CON_AVVISI,
        STATO_CON_ERRORI,
        STATO_NON_RICEVUTO,
    )

    n = len(cons.enti)
    answered = n - cons.count(STATO_NON_RICEVUTO)
    text = (
        f"Hanno risposto {answered} enti su {n}: {cons.count(STATO_CON_ERRORI)} da "
        f"correggere, {cons.count(STATO_CON_AVVISI)} con avvisi."
    )
    if cons.non_attribuiti:
        stray = _n(len(cons.non_attribuiti), "ritorno non attribuito", "ritorni non attribuiti")
        text += f" {stray} a un ente dell'elenco (vedere il Cruscotto)."
    return text


SAVE_NOTE = (
    "Salvare la cartella di lavoro per conservare i dati aggiornati (non serve "
    "eseguire anche il comando «piano-abitativo consolida», che aggiorna il file "
    "su disco)."
)


def _refresh_all(s: _Session, cons: Consolidation) -> Refresh:
    """Write the whole consolidation into the open workbook and remember its Dati."""
    from piano_abitativo.master.edits import begin_write, write_snapshot
    from piano_abitativo.master.sheets import master_layout
    from piano_abitativo.master.xlsm import master_buttons

    if s.raccolta is not None:
        begin_write(cons, s.raccolta.path)
    done = refresh(s.book, master_layout(cons, buttons=master_buttons()), status=s.status)
    if s.raccolta is not None:
        write_snapshot(cons, s.raccolta.path)
    return done


# --------------------------------------------------------------------------- the buttons


def _importa(s: _Session) -> str:
    """Archive and validate the files dropped in the raccolta's «arrivi» folder, then
    refresh the whole workbook."""
    from piano_abitativo.app import commands as actions

    r = _find_raccolta(s)
    arrivi = r.path / ARRIVI_DIR
    if not arrivi.is_dir():
        arrivi.mkdir(parents=True, exist_ok=True)
        return (
            f"Creata la cartella {arrivi}.\nMettere i file ricevuti dagli enti nella "
            f"cartella {arrivi} e premere di nuovo Importa."
        )
    res = actions.importa(
        r, [arrivi], progress=lambda p: s.status(f"Importazione di {p.name}…"), waiting=s.status
    )
    drafts = res.esiti_preparati
    new = res.imported
    already = sum(1 for o in res.outcomes if o.esito == "già importato")
    unreadable = [o for o in res.outcomes if o.esito == "illeggibile"]
    own = sum(1 for o in res.outcomes if o.esito == "generato")
    lines: list[str] = []
    if not new and not res.recovered:
        text = f"Nessun file nuovo nella cartella {arrivi}"
        text += f" ({_n(already, 'file già importato', 'file già importati')})." if already else "."
        lines.append(text + " Mettere lì i file ricevuti dagli enti e premere di nuovo Importa.")
    else:
        wrong = sum(1 for x in new if not x.report.valid)
        verb = "Importato" if len(new) == 1 else "Importati"
        text = f"{verb} {_n(len(new), 'file nuovo', 'file nuovi')}"
        text += f" ({wrong} con errori)." if wrong else "."
        if res.recovered:
            text += (
                f" {_n(len(res.recovered), 'file recuperato', 'file recuperati')} dall'archivio."
            )
        lines.append(text)
        from piano_abitativo.excel.dati import resolve

        go_on, said = resolve(s.book, r, s.ask, s.ask_text)
        lines += [said] if said else []
        cons = actions.consolidation(r)
        if go_on:
            _refresh_all(s, cons)
        lines.append(
            (
                "Il Cruscotto e le Anomalie sono aggiornati, come le tabelle a)–k), i totali e il "
                "Report. "
                if go_on
                else "La cartella di lavoro non è stata aggiornata. "
            )
            + _summary(cons)
        )
        lines.append(SAVE_NOTE)
    if drafts:
        lines.append(
            f"Risposte agli enti preparate, non inviate: {drafts} nella cartella "
            f"{res.cartella_esiti}. Per inviarle usare il comando «piano-abitativo esiti "
            f"{r.path} --davvero»."
        )
    if own:
        lines.append(
            f"Nota: {_n(own, 'file generato', 'file generati')} da piano-abitativo "
            "(modelli non compilati, cartella di lavoro riepilogativa, documento): non "
            "sono risposte degli enti, non importati."
        )
    if unreadable:
        shown = [o.messaggio or o.origine for o in unreadable[:5]]
        more = f"\n… e altri {len(unreadable) - 5}" if len(unreadable) > 5 else ""
        lines.append("Non importati:\n" + "\n".join(f"- {m}" for m in shown) + more)
    return "\n\n".join(lines)


def _valida(s: _Session) -> str:
    """Validate again every archived return with the current rules of the raccolta and
    refresh the Cruscotto and the Anomalie."""
    from piano_abitativo.app import commands as actions
    from piano_abitativo.master.sheets import SHEET_ANOMALIE, SHEET_CRUSCOTTO, master_layout
    from piano_abitativo.master.xlsm import master_buttons

    r = _find_raccolta(s)
    s.status("Piano abitativo: validazione delle risposte con le regole attuali…")
    cons = actions.consolidation(r)
    refresh(
        s.book,
        master_layout(cons, buttons=master_buttons()),
        only=(SHEET_CRUSCOTTO, SHEET_ANOMALIE),
        status=s.status,
    )
    return (
        f"Risposte validate di nuovo con le regole attuali ({r.config_path.name}). "
        + _summary(cons)
        + "\n\nIl Cruscotto e le Anomalie sono aggiornati; per "
        "aggiornare tabelle, totali e Report premere Consolida."
    )


def _consolida(s: _Session) -> str:
    """Consolidate the latest valid return of each ente into every sheet of this
    workbook."""
    from piano_abitativo.app import commands as actions
    from piano_abitativo.excel.dati import resolve

    r = _find_raccolta(s)
    go_on, said = resolve(s.book, r, s.ask, s.ask_text)
    if not go_on:
        return said
    s.status("Piano abitativo: consolidamento…")
    cons = actions.consolidation(r)
    done = _refresh_all(s, cons)
    f_total = cons.totals.get("f_totale_assegnabili", 0)
    text = (
        f"Consolidato aggiornato ({_n(len(done.sheets), 'foglio', 'fogli')}). "
        + _summary(cons)
        + f" Unità assegnabili nell'anno (tabella f): {f_total}."
    )
    if done.added_sheets:
        text += " Fogli aggiunti: " + ", ".join(done.added_sheets) + "."
    return (f"{said}\n\n" if said else "") + text + "\n\n" + SAVE_NOTE


def _genera_modelli(s: _Session) -> str:
    """Write one personalised template per ente of the registry into «modelli»."""
    from piano_abitativo.app import commands as actions

    r = _find_raccolta(s)
    paths = actions.modelli(r, progress=lambda nome: s.status(f"Modello per {nome}…"))
    return (
        f"Scritti {_n(len(paths), 'modello', 'modelli')} (uno per ente) nella cartella "
        f"{r.modelli_dir}."
    )


def _solleciti(s: _Session) -> str:
    """Prepare the reminders as a dry run (written to the outbox, never sent)."""
    from piano_abitativo.app import posta

    r = _find_raccolta(s)
    s.status("Piano abitativo: preparazione dei solleciti (prova, nessun invio)…")
    result = posta.solleciti(r, davvero=False)
    eml = [o.eml for o in result.outcomes if o.eml is not None]
    folder = eml[0].parent if eml else None
    text = (
        f"Solleciti preparati in prova: nessun messaggio è stato inviato. "
        f"{_n(len(eml), 'messaggio scritto', 'messaggi scritti')}"
        + (f" nella cartella {folder}" if folder else "")
        + "."
    )
    others = len(result.outcomes) - len(eml)
    if others:
        text += (
            f" {_n(others, 'messaggio non preparato', 'messaggi non preparati')} "
            "(già inviati o interrotti)."
        )
    excluded = result.esclusi
    if excluded:
        shown = "; ".join(f"{who}: {why}" for who, why in excluded[:5])
        more = f" e altri {len(excluded) - 5}" if len(excluded) > 5 else ""
        text += f"\n\n{_n(len(excluded), 'ente escluso', 'enti esclusi')}: {shown}{more}."
    return (
        text + "\n\nPer inviarli davvero usare il comando «piano-abitativo solleciti» "
        "(vedere «piano-abitativo solleciti --help»)."
    )


def _documento(s: _Session) -> str:
    """Write the document of the Piano annuale (.docx, and .pdf through LibreOffice) into
    the raccolta's «documento» folder."""
    from piano_abitativo.app import commands as actions
    from piano_abitativo.document.docx import TESTI_DIR

    r = _find_raccolta(s)
    res = actions.documento(r, progress=lambda m: s.status(f"Piano abitativo: {m}"))
    paths = "\n".join(str(p) for p in (res.docx, res.pdf) if p is not None)
    text = f"Documento del Piano annuale {r.anno} scritto:\n{paths}"
    if res.note:
        text += "\n\n" + "\n".join(f"- {n}" for n in res.note)
    return (
        text + f"\n\nI testi delle sezioni descrittive sono nella cartella "
        f"{r.path / TESTI_DIR}: modificarli e premere di nuovo Documento."
    )


importa = _button(_importa)
valida = _button(_valida)
consolida = _button(_consolida)
genera_modelli = _button(_genera_modelli)
solleciti = _button(_solleciti)
documento = _button(_documento)
