"""The editable texts of the messages to the enti, and their rendering.

Four kinds of message (``genere``): ``invio``, ``sollecito``, ``esito``, ``manca-file``.
Subjects and bodies come from text files in ``RACCOLTA/messaggi/`` (written by ``crea``,
never overwritten; the built-in :data:`DEFAULT_MESSAGES` when a file is missing): comment
lines start with ``#``, the first other line is ``Oggetto: …``, the rest is the body, with
``{placeholders}`` filled in by :func:`render_message`.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping
from pathlib import Path

from piano_abitativo.archive import store as archive
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.problems import Problem, Report
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente
from piano_abitativo.mail.settings import MailError
from piano_abitativo.template.workbook import template_filename

MESSAGES_DIR = "messaggi"

GENERI = ("invio", "sollecito", "esito", "manca-file")
MESSAGE_FILES = {
    "invio": "invio.txt",
    "sollecito": "sollecito.txt",
    "esito": "esito.txt",
    "manca-file": "manca_file.txt",
}


DEFAULT_MESSAGES: dict[str, str] = {
    "invio": """\
# Messaggio con cui si invia a ogni ente il suo modello (comando «invia»).
# Le righe che iniziano con # sono commenti. La riga «Oggetto:» è l'oggetto,
# il resto è il testo. Segnaposto: {ente} {codice} {anno} {ambito} {capofila}
# {scadenza} {entro} {contatto} {file}. Per scrivere una graffa: {{ o }}.
Oggetto: Piano annuale dell'offerta abitativa {anno} - richiesta dati - {ente}

Gentili colleghi,

per predisporre il Piano annuale dell'offerta abitativa pubblica e sociale {anno}
dell'Ambito {ambito} (L.R. 16/2016, R.R. 4/2017 art. 4) si trasmette in allegato il
modello «{file}», già intestato a {ente}.

Si chiede di:
1. compilare le celle gialle del foglio «Scheda» seguendo il foglio «Istruzioni»;
2. salvare il file in formato Excel (.xlsx) senza modificarne la struttura (il nome
   del file si può cambiare; il file si può firmare digitalmente, .p7m);
3. restituirlo rispondendo a questo messaggio {entro}.

Per informazioni: {contatto}.

Cordiali saluti
{capofila}
""",
    "sollecito": """\
# Sollecito agli enti che non hanno risposto o il cui ultimo file ha errori
# (comando «solleciti»). Segnaposto: {ente} {codice} {anno} {ambito} {capofila}
# {scadenza} {entro} {contatto} {file} {situazione} {errori}.
Oggetto: Sollecito - Piano annuale dell'offerta abitativa {anno} - {ente}

Gentili colleghi,

{situazione}

{errori}

Si prega di inviare il modello compilato {entro}, rispondendo a questo messaggio.
Per informazioni: {contatto}.

Cordiali saluti
{capofila}
""",
    "esito": """\
# Esito dell'esame di un file ricevuto (comando «esiti»). Segnaposto: {ente}
# {codice} {anno} {ambito} {capofila} {scadenza} {entro} {contatto} {file}
# {ricevuto_il} {esito} {errori} {avvisi}.
Oggetto: Piano annuale dell'offerta abitativa {anno} - esito del file ricevuto - {ente}

Gentili colleghi,

{esito}

{errori}

{avvisi}

Per informazioni: {contatto}.

Cordiali saluti
{capofila}
""",
    "manca-file": """\
# Risposta a un messaggio arrivato senza il modello compilato (comando «esiti»).
# Segnaposto: {ente} {codice} {anno} {ambito} {capofila} {scadenza} {entro}
# {contatto} {oggetto_ricevuto} {ricevuto_il}.
Oggetto: Piano annuale dell'offerta abitativa {anno} - manca il file - {ente}

Gentili colleghi,

abbiamo ricevuto il vostro messaggio «{oggetto_ricevuto}» del {ricevuto_il}, ma non
contiene il modello compilato.

Si prega di rispondere a questo messaggio allegando il file Excel (.xlsx) ricevuto
dal capofila e compilato, {entro}.

Per informazioni: {contatto}.

Cordiali saluti
{capofila}
""",
}


def messages_dir(raccolta_path: Path) -> Path:
    return Path(raccolta_path) / MESSAGES_DIR


def write_message_templates(raccolta_path: Path) -> list[Path]:
    """Write the editable message texts that do not exist yet (never overwrites)."""
    written = []
    for genere, name in MESSAGE_FILES.items():
        path = messages_dir(raccolta_path) / name
        if not path.exists():
            atomic_write_bytes(path, DEFAULT_MESSAGES[genere].encode("utf-8"))
            written.append(path)
    return written


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def render_message(r: Raccolta, genere: str, values: Mapping[str, str]) -> tuple[str, str]:
    """(subject, body) of a message from RACCOLTA/messaggi/<genere>.txt (or the default)."""
    path = messages_dir(r.path) / MESSAGE_FILES[genere]
    try:
        text = path.read_text(encoding="utf-8-sig")
        where = str(path)
    except FileNotFoundError:
        text, where = DEFAULT_MESSAGES[genere], f"testo predefinito «{genere}»"
    except (OSError, UnicodeDecodeError) as exc:
        raise MailError(f"{path}: impossibile leggere il testo del messaggio ({exc})") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    if not lines or not lines[0].lower().startswith("oggetto:"):
        raise MailError(f"{where}: la prima riga (dopo i commenti) deve essere «Oggetto: …»")
    subject_t = lines[0].split(":", 1)[1].strip()
    body_t = "\n".join(lines[1:]).strip("\n") + "\n"
    full = _Values(values)
    try:
        subject = string.Formatter().vformat(subject_t, (), full)
        body = string.Formatter().vformat(body_t, (), full)
    except KeyError as exc:
        raise MailError(
            f"{where}: segnaposto {{{exc.args[0]}}} sconosciuto; si possono usare: "
            + " ".join("{" + k + "}" for k in values)
        ) from exc
    except (ValueError, IndexError) as exc:
        raise MailError(
            f"{where}: parentesi graffe non valide ({exc}); per scrivere una "
            "graffa raddoppiarla: {{ o }}"
        ) from exc
    body = re.sub(r"\n{3,}", "\n\n", body)
    return " ".join(subject.split()), body


def common_values(r: Raccolta, ente: Ente | None) -> dict[str, str]:
    """The placeholders every message has: ente, codice, anno, ambito, scadenza…"""
    scad = r.scadenza.strftime("%d/%m/%Y") if r.scadenza else ""
    return {
        "ente": ente.nome_completo if ente else "ente non riconosciuto",
        "codice": ente.codice if ente else "",
        "anno": str(r.anno),
        "ambito": r.ambito,
        "capofila": r.capofila,
        "scadenza": scad or "non indicata",
        "entro": f"entro il {scad}" if scad else "appena possibile",
        "contatto": r.contatto or "l'ufficio del capofila",
        "file": template_filename(ente, r.anno) if ente else "",
    }


def problem_line(p: Problem) -> str:
    """One problem as a clerk reads it: where in the sheet, what, what to do."""
    where = ", ".join(
        x
        for x in (f'foglio "{p.sheet}"' if p.sheet else "", f"cella {p.cell}" if p.cell else "")
        if x
    )
    text = f"{p.message.rstrip('.')}. {p.hint}".strip()
    return f"- {where}: {text}" if where else f"- {text}"


def problems_text(report: Report, *, errors: bool) -> str:
    """The errors (or the warnings) of a report, one :func:`problem_line` each."""
    items = report.errors if errors else report.warnings
    return "\n".join(problem_line(p) for p in items)


def when_text(moment: dt.datetime) -> str:
    """A moment as a clerk reads it, in Italy's time: ``05/12/2025 alle 10:02``."""
    return f"{moment.astimezone(archive.TZ):%d/%m/%Y alle %H:%M}"
