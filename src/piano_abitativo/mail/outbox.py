"""Outgoing mail of a raccolta: settings, messages, outbox, sending, per-recipient log.

Four kinds of message (``genere``) go to the enti:

* ``invio`` — the personalised template, with deadline and instructions;
* ``sollecito`` — a reminder to the enti that have not answered or whose last return has
  errors (listed in plain Italian);
* ``esito`` — after an import: the file was accepted, or what to fix;
* ``manca-file`` — a message arrived without the workbook: please send the file.

Subjects and bodies come from editable text files in ``RACCOLTA/messaggi/`` (written by
``crea``; built-in defaults when missing).

Safety, honoured here and not only in the CLI:

* **Dry run by default.** :func:`deliver` writes every message as an ``.eml`` file in the
  outbox (``RACCOLTA/posta/uscita/``) and sends nothing unless ``davvero=True``.
* **Nothing sent twice by accident.** Each message has a key (``invio:019035``,
  ``esito:<sha256 of the file>``, …). Before sending, a ``tentativo`` record is appended to
  the ledger (``archivio/registro.jsonl``, under the raccolta's lock), after it ``inviato``
  or ``fallito``. A key already ``inviato`` is skipped; a ``tentativo`` without outcome (the
  program stopped while sending) is *incerto* and skipped too, until the user checks the Sent
  folder and asks again with ``ripeti=True``.
* A pause between messages, retries with growing waits for temporary server errors, a copy
  in the IMAP Sent folder when IMAP is configured.

The password is never read from a file: environment variable ``PIANO_ABITATIVO_PASSWORD``,
else the system keyring (service ``piano-abitativo``, user = ``utente``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import hashlib
import imaplib
import mimetypes
import os
import re
import smtplib
import socket
import ssl
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.consolidate import consolidate
from piano_abitativo.consolidation.context import receipts as validated_receipts
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.errors import MailError as MailError
from piano_abitativo.core.problems import Problem, Report
from piano_abitativo.core.raccolta import CONFIG_NAME, Raccolta
from piano_abitativo.core.registry import Ente
from piano_abitativo.template.workbook import context_for, template_filename, write_templates

ENV_PREFIX = "PIANO_ABITATIVO_"
PASSWORD_ENV = ENV_PREFIX + "PASSWORD"
KEYRING_SERVICE = "piano-abitativo"
SICUREZZE = ("ssl", "starttls", "nessuna")
#: settings that an environment variable PIANO_ABITATIVO_<KEY> overrides
ENV_KEYS = (
    "smtp_host",
    "smtp_port",
    "smtp_sicurezza",
    "imap_host",
    "imap_port",
    "imap_sicurezza",
    "utente",
    "mittente",
)
_SMTP_PORTS = {"ssl": 465, "starttls": 587, "nessuna": 25}
_IMAP_PORTS = {"ssl": 993, "starttls": 143, "nessuna": 143}

POSTA_DIR = "posta"
OUTBOX_DIR = "uscita"
MESSAGES_DIR = "messaggi"

GENERI = ("invio", "sollecito", "esito", "manca-file")
MESSAGE_FILES = {
    "invio": "invio.txt",
    "sollecito": "sollecito.txt",
    "esito": "esito.txt",
    "manca-file": "manca_file.txt",
}

#: send-log record outcomes (``esito`` of a ``{"tipo": "invio"}`` ledger record)
TENTATIVO, INVIATO, FALLITO = "tentativo", "inviato", "fallito"

#: outcomes of one message in a run of :func:`deliver`
PROVA = "prova"  # dry run: written to the outbox only
GIA_INVIATO = "già inviato"
INCERTO = "invio incerto"
NON_INVIATO = "non inviato"  # past the limit, or the server could not be reached


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class MailSettings:
    """The [posta] section of raccolta.toml, with the environment's overrides."""

    smtp_host: str = ""
    smtp_port: int = 465
    smtp_sicurezza: str = "ssl"
    imap_host: str = ""
    imap_port: int = 993
    imap_sicurezza: str = "ssl"
    utente: str = ""
    mittente: str = ""
    cartella: str = "INBOX"
    cartella_inviati: str = ""
    cartella_importati: str = ""
    #: seconds between two messages sent
    pausa: float = 2.0
    #: attempts per message when the server has a temporary problem
    tentativi: int = 3
    #: seconds before the second attempt; doubled for each further one
    attesa_tentativi: float = 5.0

    # mittente, when not given, is `utente` if it is an address, else the capofila's
    # address from the registry

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def imap_configured(self) -> bool:
        return bool(self.imap_host)


_TEXT_KEYS = (
    "smtp_host",
    "imap_host",
    "utente",
    "mittente",
    "cartella",
    "cartella_inviati",
    "cartella_importati",
)
_ALL_KEYS = (
    *ENV_KEYS,
    "cartella",
    "cartella_inviati",
    "cartella_importati",
    "pausa",
    "tentativi",
    "attesa_tentativi",
)


def load_settings(r: Raccolta, env: Mapping[str, str] | None = None) -> MailSettings:
    """Defaults ← [posta] of raccolta.toml ← PIANO_ABITATIVO_* environment variables."""
    env = os.environ if env is None else env
    cfg = r.config_path
    unknown = sorted(k for k in r.posta if k not in _ALL_KEYS)
    if unknown:
        raise MailError(
            f"{cfg}: nella sezione [posta] chiavi sconosciute: "
            f"{', '.join(unknown)} (ammesse: {', '.join(_ALL_KEYS)})"
        )
    raw: dict[str, tuple[Any, str]] = {k: (v, f"{cfg}, [posta] {k}") for k, v in r.posta.items()}
    for key in ENV_KEYS:
        name = ENV_PREFIX + key.upper()
        if env.get(name, "").strip():
            raw[key] = (env[name].strip(), f"variabile d'ambiente {name}")
    values: dict[str, Any] = {}
    for key in _TEXT_KEYS:
        if key in raw:
            values[key] = str(raw[key][0]).strip()
    for key in ("smtp_sicurezza", "imap_sicurezza"):
        if key in raw:
            val = str(raw[key][0]).strip().lower()
            if val not in SICUREZZE:
                raise MailError(
                    f"{raw[key][1]}: «{raw[key][0]}» non valido (ammessi: {', '.join(SICUREZZE)})"
                )
            values[key] = val
    smtp_sec = values.get("smtp_sicurezza", "ssl")
    imap_sec = values.get("imap_sicurezza", "ssl")
    values["smtp_port"] = _int(raw, "smtp_port", _SMTP_PORTS[smtp_sec], 1, 65535)
    values["imap_port"] = _int(raw, "imap_port", _IMAP_PORTS[imap_sec], 1, 65535)
    values["tentativi"] = _int(raw, "tentativi", 3, 1, 10)
    values["pausa"] = _float(raw, "pausa", 2.0)
    values["attesa_tentativi"] = _float(raw, "attesa_tentativi", 5.0)
    if values.get("mittente") and not _looks_like_address(values["mittente"]):
        raise MailError(f"{raw['mittente'][1]}: «{values['mittente']}» non è un indirizzo di posta")
    if not values.get("cartella"):
        values.pop("cartella", None)
    if not values.get("mittente"):  # the mailbox's own address, else the capofila's
        capo = r.registry.capofila
        for candidate in (values.get("utente", ""), capo.indirizzo if capo else ""):
            if _looks_like_address(candidate):
                values["mittente"] = candidate
                break
    return MailSettings(**values)


def _int(raw: dict[str, tuple[Any, str]], key: str, default: int, lo: int, hi: int) -> int:
    if key not in raw:
        return default
    value, where = raw[key]
    try:
        number = int(str(value).strip())
    except ValueError:
        number = lo - 1
    if not lo <= number <= hi:
        raise MailError(f"{where}: «{value}» non valido (numero intero fra {lo} e {hi})")
    return number


def _float(raw: dict[str, tuple[Any, str]], key: str, default: float) -> float:
    if key not in raw:
        return default
    value, where = raw[key]
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        number = -1.0
    if not 0 <= number <= 3600:
        raise MailError(f"{where}: «{value}» non valido (secondi, fra 0 e 3600)")
    return number


def _looks_like_address(text: str) -> bool:
    return re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", text) is not None


def password(settings: MailSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The mailbox password: PIANO_ABITATIVO_PASSWORD, else the system keyring, else None."""
    env = os.environ if env is None else env
    if env.get(PASSWORD_ENV):
        return env[PASSWORD_ENV]
    if not settings.utente:
        return None
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, settings.utente)
    except Exception:  # no keyring backend on this PC (e.g. a server without a desktop)
        return None


def _require_password(settings: MailSettings, env: Mapping[str, str] | None) -> str:
    pwd = password(settings, env)
    if not pwd:
        raise MailError(
            f"Manca la password della casella {settings.utente}: impostare la variabile "
            f"d'ambiente {PASSWORD_ENV} oppure salvarla nel portachiavi di sistema con il "
            f"comando «keyring set {KEYRING_SERVICE} {settings.utente}». La password non va "
            f"mai scritta in {CONFIG_NAME}."
        )
    return pwd


# --------------------------------------------------------------------------- message texts

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


def _common_values(r: Raccolta, ente: Ente | None) -> dict[str, str]:
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


def _problems_text(report: Report, *, errors: bool) -> str:
    items = report.errors if errors else report.warnings
    return "\n".join(problem_line(p) for p in items)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Outgoing:
    """One message to send (or to write to the outbox, in a dry run)."""

    genere: str
    #: what makes it unique in the send log: never sent twice by accident
    chiave: str
    destinatario: str
    oggetto: str
    corpo: str
    ente: Ente | None = None
    allegati: tuple[tuple[str, bytes], ...] = ()
    #: Message-ID of the message this one answers (esiti)
    in_risposta_a: str | None = None
    #: why it is sent, for the summary (e.g. "3 errori da correggere")
    motivo: str = ""

    @property
    def etichetta(self) -> str:
        return self.ente.nome_completo if self.ente else self.destinatario


@dataclass
class Plan:
    """The messages of one command, and the enti left out with the reason."""

    genere: str
    messages: list[Outgoing] = field(default_factory=list)
    #: (who, why) — e.g. an ente without an address in enti.csv
    esclusi: list[tuple[str, str]] = field(default_factory=list)


def _select(r: Raccolta, enti: Sequence[str] | None) -> list[Ente]:
    if not enti:
        return list(r.registry)
    out = []
    for codice in enti:
        found = r.registry.find(codice=codice)
        if found is None:
            raise MailError(
                f"Ente «{codice}» non presente nell'elenco degli enti ({r.registry.source})"
            )
        out.append(found)
    return out


def _template_bytes(r: Raccolta, ente: Ente) -> tuple[str, bytes]:
    """The ente's personalised template from RACCOLTA/modelli/ (written when missing)."""
    name = template_filename(ente, r.anno)
    path = r.modelli_dir / name
    if not path.is_file():
        write_templates([ente], r.modelli_dir, context_for(r))
    return name, path.read_bytes()


def _no_address(e: Ente) -> tuple[str, str]:
    return (e.nome_completo, "manca l'indirizzo (colonne pec o email dell'elenco enti)")


def plan_invio(r: Raccolta, *, enti: Sequence[str] | None = None) -> Plan:
    """One message per ente with its personalised template attached."""
    plan = Plan("invio")
    for e in _select(r, enti):
        if not e.indirizzo:
            plan.esclusi.append(_no_address(e))
            continue
        name, data = _template_bytes(r, e)
        subject, body = render_message(r, "invio", _common_values(r, e))
        plan.messages.append(
            Outgoing(
                "invio",
                f"invio:{e.codice}",
                e.indirizzo,
                subject,
                body,
                e,
                ((name, data),),
                motivo="modello da compilare",
            )
        )
    return plan


def plan_solleciti(
    r: Raccolta, *, enti: Sequence[str] | None = None, oggi: dt.date | None = None
) -> Plan:
    """A reminder to each ente that has not answered or whose latest return has errors.

    At most one reminder per ente and day for the same situation.
    """
    plan = Plan("sollecito")
    oggi = oggi or archive.now().date()
    wanted = {e.codice for e in _select(r, enti)}
    cons = consolidate(r, validated_receipts(r))
    for s in cons.enti:
        e = s.ente
        if e.codice not in wanted:
            continue
        last = s.latest
        if last is not None and not last.report.errors:
            continue
        if not e.indirizzo:
            plan.esclusi.append(_no_address(e))
            continue
        values = _common_values(r, e)
        allegati: tuple[tuple[str, bytes], ...] = ()
        if last is None:
            values["situazione"] = (
                f"non risulta ancora pervenuto il modello del Piano "
                f"{r.anno} compilato da {e.nome_completo}. Lo si allega "
                "di nuovo per comodità."
            )
            values["errori"] = ""
            allegati = (_template_bytes(r, e),)
            stato, motivo = "nessuna-risposta", "nessuna risposta"
        else:
            n = len(last.report.errors)
            values["situazione"] = (
                f"il file «{last.nome}» ricevuto il {_when(last.ricevuto_il)} contiene "
                f"{_errori(n)} da correggere prima che i dati possano entrare nel Piano:"
            )
            values["errori"] = _problems_text(last.report, errors=True)
            stato, motivo = last.sha256[:16], f"{_errori(n)} da correggere"
        subject, body = render_message(r, "sollecito", values)
        plan.messages.append(
            Outgoing(
                "sollecito",
                f"sollecito:{e.codice}:{stato}:{oggi.isoformat()}",
                e.indirizzo,
                subject,
                body,
                e,
                allegati,
                motivo=motivo,
            )
        )
    return plan


def plan_esiti(r: Raccolta) -> Plan:
    """The esito of each ente's latest file, and "manca il file" to messages without one."""
    plan = Plan("esito")
    receipts = validated_receipts(r)
    cons = consolidate(r, receipts)
    latest_by_ente: dict[str, dt.datetime] = {}
    for s in cons.enti:
        last = s.latest
        if last is None:
            continue
        latest_by_ente[s.ente.codice] = last.ricevuto_il
        to = str(last.extra.get("mittente") or "") or s.ente.indirizzo
        if not to:
            plan.esclusi.append(_no_address(s.ente))
            continue
        plan.messages.append(_esito_message(r, last, s.ente, to))
    for rc in cons.non_attribuiti:
        to = str(rc.extra.get("mittente") or "")
        if to:  # came by mail: tell the sender the file was not recognised
            plan.messages.append(_esito_message(r, rc, None, to))
    for rec in _messages_without_file(r):
        codice = rec.get("ente_mittente")
        ente = r.registry.get(codice) if codice else None
        when = dt.datetime.fromisoformat(rec["ricevuto_il"])
        if (
            ente is not None
            and ente.codice in latest_by_ente
            and latest_by_ente[ente.codice] >= when
        ):
            continue  # the file came later
        values = _common_values(r, ente)
        values["oggetto_ricevuto"] = str(rec.get("oggetto") or "(senza oggetto)")
        values["ricevuto_il"] = _when(when)
        subject, body = render_message(r, "manca-file", values)
        plan.messages.append(
            Outgoing(
                "manca-file",
                f"manca-file:{rec['sha256']}",
                str(rec["mittente"]),
                subject,
                body,
                ente,
                in_risposta_a=rec.get("message_id"),
                motivo="messaggio senza il file",
            )
        )
    return plan


def _esito_message(r: Raccolta, rc: archive.Receipt, ente: Ente | None, to: str) -> Outgoing:
    values = _common_values(r, ente)
    rep = rc.report
    values["file"] = rc.nome
    values["ricevuto_il"] = _when(rc.ricevuto_il)
    values["avvisi"] = ""
    if ente is None:
        values["esito"] = (
            f"il file «{rc.nome}» ricevuto il {_when(rc.ricevuto_il)} non è "
            f"stato riconosciuto come un modello del Piano {r.anno} di un ente "
            "dell'ambito:"
        )
        values["errori"] = _problems_text(rep, errors=True)
        motivo = "file non riconosciuto"
    elif rep.errors:
        values["esito"] = (
            f"il file «{rc.nome}» ricevuto il {_when(rc.ricevuto_il)} contiene "
            f"{_errori(len(rep.errors))} e non può essere accettato. "
            "Correggere i punti seguenti e inviare di nuovo il file:"
        )
        values["errori"] = _problems_text(rep, errors=True)
        motivo = f"{_errori(len(rep.errors))} da correggere"
    else:
        values["esito"] = (
            f"il file «{rc.nome}» ricevuto il {_when(rc.ricevuto_il)} è stato "
            f"accettato: i dati entrano nel Piano {r.anno}."
        )
        values["errori"] = ""
        if rep.warnings:
            values["avvisi"] = (
                "Si segnalano questi punti da verificare (non impediscono "
                "l'accettazione):\n" + _problems_text(rep, errors=False)
            )
        motivo = "accettato"
    subject, body = render_message(r, "esito", values)
    reply_to = rc.extra.get("message_id")
    return Outgoing(
        "esito",
        f"esito:{rc.sha256}",
        to,
        subject,
        body,
        ente,
        in_risposta_a=str(reply_to) if reply_to else None,
        motivo=motivo,
    )


def _messages_without_file(r: Raccolta) -> list[dict[str, Any]]:
    """Ledger records of messages with no workbook that deserve a reply."""
    out = []
    for rec in archive.read_ledger(r.path).records:
        if (
            rec.get("tipo") == "messaggio"
            and rec.get("esito") == "senza allegati"
            and rec.get("mittente")
            and not rec.get("automatico")
            and (rec.get("ente_mittente") or rec.get("certificato"))
            and rec.get("ricevuto_il")
        ):
            out.append(rec)
    return out


def _when(moment: dt.datetime) -> str:
    return f"{moment.astimezone(archive.TZ):%d/%m/%Y alle %H:%M}"


def _errori(n: int) -> str:
    return "1 errore" if n == 1 else f"{n} errori"


# --------------------------------------------------------------------------- composing


def compose(
    r: Raccolta, out: Outgoing, settings: MailSettings, *, when: dt.datetime | None = None
) -> bytes:
    """The message as bytes (CRLF), ready for SMTP and for an .eml file."""
    msg = EmailMessage()
    sender = settings.mittente or "mittente-da-configurare@invalid"
    msg["From"] = email.utils.formataddr((r.capofila or "", sender))
    msg["To"] = out.destinatario
    msg["Subject"] = out.oggetto
    msg["Date"] = email.utils.format_datetime(when or archive.now())
    domain = sender.rsplit("@", 1)[-1]
    msg["Message-ID"] = email.utils.make_msgid(
        idstring=hashlib.sha256(out.chiave.encode()).hexdigest()[:12], domain=domain
    )
    if out.in_risposta_a:
        msg["In-Reply-To"] = out.in_risposta_a
        msg["References"] = out.in_risposta_a
    if out.genere in ("esito", "manca-file"):
        msg["Auto-Submitted"] = "auto-replied"
    msg["X-Piano-Abitativo"] = f"{out.genere}; raccolta={r.id}"
    msg.set_content(out.corpo)
    for name, data in out.allegati:
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if name.lower().endswith(".xlsx"):
            ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)


def outbox_dir(raccolta_path: Path) -> Path:
    return Path(raccolta_path) / POSTA_DIR / OUTBOX_DIR


def _outbox_name(out: Outgoing) -> str:
    who = out.ente.codice if out.ente else out.destinatario.split("@", 1)[0]
    who = re.sub(r"[^A-Za-z0-9_-]+", "_", who)[:40]
    return f"{out.genere}_{who}_{hashlib.sha256(out.chiave.encode()).hexdigest()[:8]}.eml"


# --------------------------------------------------------------------------- send log


@dataclass(frozen=True)
class SentState:
    """What the send log says about one key."""

    esito: str  # TENTATIVO | INVIATO | FALLITO
    quando: dt.datetime


def send_log(r: Raccolta) -> dict[str, SentState]:
    """The last known state of every key, from the ledger.

    A key once ``inviato`` stays ``inviato`` (a later failed resend does not undo it).
    """
    out: dict[str, SentState] = {}
    for rec in archive.read_ledger(r.path).records:
        if rec.get("tipo") != "invio":
            continue
        try:
            state = SentState(str(rec["esito"]), dt.datetime.fromisoformat(rec["quando"]))
            key = str(rec["chiave"])
        except (KeyError, TypeError, ValueError):
            continue
        prev = out.get(key)
        if prev is not None and prev.esito == INVIATO and state.esito == FALLITO:
            continue
        out[key] = state
    return out


def sent_records(r: Raccolta) -> list[dict[str, Any]]:
    """The ``inviato`` records of the send log, in order."""
    return [
        rec
        for rec in archive.read_ledger(r.path).records
        if rec.get("tipo") == "invio" and rec.get("esito") == INVIATO
    ]


def _log_record(
    out: Outgoing,
    esito: str,
    *,
    message_id: str,
    eml: str,
    sha: str,
    tentativi: int = 0,
    errore: str = "",
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "tipo": "invio",
        "versione": 1,
        "genere": out.genere,
        "chiave": out.chiave,
        "esito": esito,
        "quando": archive.now().isoformat(),
        "ente": out.ente.codice if out.ente else None,
        "destinatario": out.destinatario,
        "oggetto": out.oggetto,
        "message_id": message_id,
        "eml": eml,
        "sha256_eml": sha,
        "allegati": [name for name, _ in out.allegati],
        "utente": archive._who(),
    }
    if tentativi:
        rec["tentativi"] = tentativi
    if errore:
        rec["errore"] = errore
    return rec


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one planned message."""

    message: Outgoing
    esito: str  # PROVA | INVIATO | FALLITO | GIA_INVIATO | INCERTO | NON_INVIATO
    eml: Path | None = None
    nota: str = ""
    tentativi: int = 0

    def to_json(self) -> dict[str, Any]:
        m = self.message
        return {
            "genere": m.genere,
            "ente": m.ente.codice if m.ente else None,
            "destinatario": m.destinatario,
            "oggetto": m.oggetto,
            "motivo": m.motivo,
            "allegati": [n for n, _ in m.allegati],
            "esito": self.esito,
            "eml": str(self.eml) if self.eml else None,
            "nota": self.nota,
            "tentativi": self.tentativi,
        }


@dataclass
class SendResult:
    """The outcome of :func:`deliver`."""

    genere: str
    davvero: bool
    outcomes: list[SendOutcome] = field(default_factory=list)
    esclusi: list[tuple[str, str]] = field(default_factory=list)
    #: remarks for the whole run (e.g. no Sent folder found)
    note: list[str] = field(default_factory=list)

    def count(self, esito: str) -> int:
        return sum(1 for o in self.outcomes if o.esito == esito)

    def to_json(self) -> dict[str, Any]:
        return {
            "genere": self.genere,
            "davvero": self.davvero,
            "messaggi": [o.to_json() for o in self.outcomes],
            "esclusi": [{"ente": who, "motivo": why} for who, why in self.esclusi],
            "note": self.note,
        }


class _Permanent(Exception):
    """The server refused this message for good (5xx): no retry."""


class _Unreachable(Exception):
    """The server could not be reached or dropped the connection every time."""


class _SmtpSession:
    """One SMTP connection, opened on first use and reopened after a failure."""

    def __init__(self, settings: MailSettings, pwd: str | None, timeout: float) -> None:
        self.s = settings
        self.pwd = pwd
        self.timeout = timeout
        self.conn: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        s = self.s
        conn: smtplib.SMTP
        if s.smtp_sicurezza == "ssl":
            conn = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
            if s.smtp_sicurezza == "starttls":
                conn.starttls(context=ssl.create_default_context())
        conn.ehlo_or_helo_if_needed()
        if s.utente and self.pwd and conn.has_extn("auth"):
            try:
                conn.login(s.utente, self.pwd)
            except smtplib.SMTPAuthenticationError as exc:
                with contextlib.suppress(Exception):
                    conn.quit()
                raise MailError(
                    f"Il server di invio {s.smtp_host} ha rifiutato utente o "
                    f"password ({s.utente}): controllare {PASSWORD_ENV} o il "
                    "portachiavi di sistema."
                ) from exc
        return conn

    def send(self, sender: str, to: str, raw: bytes) -> None:
        if self.conn is None:
            self.conn = self._open()
        try:
            refused = self.conn.sendmail(sender, [to], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b""))
            if code >= 500:
                raise _Permanent(
                    f"destinatario rifiutato dal server ({code} {_decode(text)})"
                ) from exc
            raise
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            if exc.smtp_code >= 500:
                raise _Permanent(
                    f"messaggio rifiutato dal server ({exc.smtp_code} {_decode(exc.smtp_error)})"
                ) from exc
            raise
        if refused:
            raise _Permanent(f"destinatario rifiutato dal server ({refused})")

    def reset(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.quit()
        self.conn = None


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _send_with_retries(
    session: _SmtpSession,
    sender: str,
    to: str,
    raw: bytes,
    settings: MailSettings,
    sleep: Callable[[float], None],
) -> int:
    """Send one message; returns the attempts used. Raises _Permanent or _Unreachable."""
    last = ""
    for attempt in range(1, settings.tentativi + 1):
        try:
            session.send(sender, to, raw)
            return attempt
        except _Permanent:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            session.reset()
            last = _describe(exc)
            if attempt < settings.tentativi:
                sleep(settings.attesa_tentativi * 2 ** (attempt - 1))
    raise _Unreachable(last)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"errore temporaneo del server ({exc.smtp_code} {_decode(exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "il server ha chiuso la connessione"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "il server non risponde (tempo scaduto)"
    if isinstance(exc, ConnectionRefusedError):
        return "connessione rifiutata (server o porta errati?)"
    if isinstance(exc, socket.gaierror):
        return "nome del server sconosciuto"
    return f"{type(exc).__name__}: {exc}"


def deliver(
    r: Raccolta,
    plan: Plan,
    *,
    davvero: bool = False,
    limite: int | None = None,
    ripeti: bool = False,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[SendOutcome], None] | None = None,
    waiting: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> SendResult:
    """Write each planned message to the outbox and, only when ``davvero``, send it.

    ``limite`` caps the messages sent (or, in a dry run, that would be sent). A key already
    sent, or whose sending was interrupted (*incerto*), is skipped unless ``ripeti``.
    """
    if limite is not None and limite < 0:
        raise MailError("--limite deve essere un numero positivo")
    settings = load_settings(r, env)
    result = SendResult(plan.genere, davvero, esclusi=list(plan.esclusi))
    pwd: str | None = None
    if davvero:
        if not settings.smtp_configured:
            raise MailError(
                f"Server di invio non configurato: indicare smtp_host nella "
                f"sezione [posta] di {r.config_path} oppure la variabile "
                f"{ENV_PREFIX}SMTP_HOST."
            )
        if not settings.mittente:
            raise MailError(
                f"Mittente non configurato: indicare mittente nella sezione "
                f"[posta] di {r.config_path} oppure la variabile "
                f"{ENV_PREFIX}MITTENTE."
            )
        if settings.utente:
            pwd = _require_password(settings, env)
    elif not settings.mittente:
        result.note.append(
            "mittente non configurato: i messaggi di prova hanno un mittente provvisorio"
        )
    outbox = outbox_dir(r.path)
    session = _SmtpSession(settings, pwd, timeout)
    sent_copy = _SentCopy(settings, env, result.note) if davvero else None
    budget = limite
    unreachable = ""
    try:
        with archive.locked(r.path, waiting=waiting):
            log = send_log(r)
            first = True
            for out in plan.messages:
                state = log.get(out.chiave)
                if state is not None and not ripeti and state.esito in (INVIATO, TENTATIVO):
                    esito = GIA_INVIATO if state.esito == INVIATO else INCERTO
                    nota = (
                        f"inviato il {_when(state.quando)}"
                        if state.esito == INVIATO
                        else f"invio interrotto il {_when(state.quando)}: controllare la posta "
                        "inviata, poi ripetere con --ripeti se non è partito"
                    )
                    _emit(result, SendOutcome(out, esito, nota=nota), progress)
                    continue
                if budget is not None and budget <= 0:
                    _emit(result, SendOutcome(out, NON_INVIATO, nota="oltre il limite"), progress)
                    continue
                if unreachable:
                    _emit(result, SendOutcome(out, NON_INVIATO, nota=unreachable), progress)
                    continue
                if budget is not None:
                    budget -= 1
                raw = compose(r, out, settings)
                eml = outbox / _outbox_name(out)
                atomic_write_bytes(eml, raw)
                if not davvero:
                    _emit(result, SendOutcome(out, PROVA, eml), progress)
                    continue
                if not first and settings.pausa:
                    sleep(settings.pausa)
                first = False
                sha = hashlib.sha256(raw).hexdigest()
                msgid = str(email.message_from_bytes(raw).get("Message-ID", ""))
                rel = eml.relative_to(r.path).as_posix()
                archive.append_records(
                    r.path, [_log_record(out, TENTATIVO, message_id=msgid, eml=rel, sha=sha)]
                )
                try:
                    used = _send_with_retries(
                        session, settings.mittente, out.destinatario, raw, settings, sleep
                    )
                except (_Permanent, _Unreachable) as exc:
                    archive.append_records(
                        r.path,
                        [
                            _log_record(
                                out,
                                FALLITO,
                                message_id=msgid,
                                eml=rel,
                                sha=sha,
                                tentativi=settings.tentativi,
                                errore=str(exc),
                            )
                        ],
                    )
                    _emit(
                        result,
                        SendOutcome(out, FALLITO, eml, str(exc), settings.tentativi),
                        progress,
                    )
                    if isinstance(exc, _Unreachable):
                        unreachable = f"server di invio non raggiungibile: {exc}"
                    continue
                archive.append_records(
                    r.path,
                    [_log_record(out, INVIATO, message_id=msgid, eml=rel, sha=sha, tentativi=used)],
                )
                if sent_copy is not None:
                    sent_copy.append(raw)
                _emit(result, SendOutcome(out, INVIATO, eml, tentativi=used), progress)
    finally:
        session.close()
        if sent_copy is not None:
            sent_copy.close()
    return result


def _emit(
    result: SendResult, outcome: SendOutcome, progress: Callable[[SendOutcome], None] | None
) -> None:
    result.outcomes.append(outcome)
    if progress is not None:
        progress(outcome)


def invia(r: Raccolta, *, enti: Sequence[str] | None = None, **kw: Any) -> SendResult:
    """Send each ente its personalised template (dry run unless ``davvero=True``)."""
    return deliver(r, plan_invio(r, enti=enti), **kw)


def solleciti(
    r: Raccolta, *, enti: Sequence[str] | None = None, oggi: dt.date | None = None, **kw: Any
) -> SendResult:
    """Remind the enti that have not answered or must fix their file (dry run by default)."""
    return deliver(r, plan_solleciti(r, enti=enti, oggi=oggi), **kw)


def esiti(r: Raccolta, **kw: Any) -> SendResult:
    """Tell each ente the outcome of its latest file; ask for the file when it was missing."""
    return deliver(r, plan_esiti(r), **kw)


# --------------------------------------------------------------------------- IMAP


def connect_imap(
    settings: MailSettings, env: Mapping[str, str] | None = None, *, timeout: float = 60.0
) -> imaplib.IMAP4:
    """A logged-in IMAP connection (capabilities refreshed after login)."""
    s = settings
    if not s.imap_configured:
        raise MailError(
            f"Casella IMAP non configurata: indicare imap_host nella sezione "
            f"[posta] della raccolta oppure la variabile {ENV_PREFIX}IMAP_HOST."
        )
    if not s.utente:
        raise MailError(
            f"Utente della casella non configurato: indicare utente nella sezione "
            f"[posta] della raccolta oppure la variabile {ENV_PREFIX}UTENTE."
        )
    pwd = _require_password(s, env)
    try:
        conn: imaplib.IMAP4
        if s.imap_sicurezza == "ssl":
            conn = imaplib.IMAP4_SSL(
                s.imap_host, s.imap_port, ssl_context=ssl.create_default_context(), timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(s.imap_host, s.imap_port, timeout=timeout)
            if s.imap_sicurezza == "starttls":
                conn.starttls(ssl_context=ssl.create_default_context())
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailError(
            f"Impossibile collegarsi alla casella {s.imap_host}:{s.imap_port} ({_describe(exc)})"
        ) from exc
    try:
        conn.login(s.utente, pwd)
    except imaplib.IMAP4.error as exc:
        with contextlib.suppress(Exception):
            conn.logout()
        raise MailError(
            f"La casella {s.imap_host} ha rifiutato utente o password ({s.utente})."
        ) from exc
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        # imaplib keeps the pre-login list; servers announce MOVE, UIDPLUS… after login
        typ, data = conn.capability()
        if typ == "OK" and data and isinstance(data[-1], bytes):
            conn.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())
    return conn


def imap_mailbox(name: str) -> str:
    """A mailbox name as an IMAP argument: modified UTF-7 (RFC 3501), quoted."""
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            data = "".join(buf).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    text = "".join(out)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LIST_RE = re.compile(rb'^\((?P<flags>[^)]*)\)\s+(?:"[^"]*"|NIL)\s+(?P<name>.+)$')


def find_sent_folder(conn: imaplib.IMAP4) -> str | None:
    """The folder the server marks \\Sent (RFC 6154), as an IMAP argument, or None."""
    typ, data = conn.list()
    if typ != "OK":
        return None
    for item in data:
        if not isinstance(item, bytes):
            continue
        m = _LIST_RE.match(item)
        if m and b"\\sent" in m.group("flags").lower():
            name = m.group("name").decode("ascii", "replace").strip()
            return name if name.startswith('"') else '"' + name + '"'
    return None


class _SentCopy:
    """Appends each message sent to the IMAP Sent folder, when IMAP is configured."""

    def __init__(
        self, settings: MailSettings, env: Mapping[str, str] | None, notes: list[str]
    ) -> None:
        self.settings = settings
        self.env = env
        self.notes = notes
        self.conn: imaplib.IMAP4 | None = None
        self.folder: str | None = None
        self.failed = not settings.imap_configured

    def append(self, raw: bytes) -> None:
        if self.failed:
            return
        try:
            if self.conn is None:
                self.conn = connect_imap(self.settings, self.env)
                self.folder = (
                    imap_mailbox(self.settings.cartella_inviati)
                    if self.settings.cartella_inviati
                    else find_sent_folder(self.conn)
                )
                if self.folder is None:
                    self.notes.append(
                        "nessuna cartella di posta inviata trovata nella casella: "
                        "indicare cartella_inviati nella sezione [posta]"
                    )
                    self.failed = True
                    return
            typ, data = self.conn.append(
                self.folder, r"(\Seen)", imaplib.Time2Internaldate(time.time()), raw
            )
            if typ != "OK":
                raise imaplib.IMAP4.error(_decode(data[0] if data else b""))
        except (MailError, imaplib.IMAP4.error, OSError) as exc:
            self.notes.append(f"copia nella posta inviata non riuscita: {exc}")
            self.failed = True

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.logout()
        self.conn = None


def known_addresses(enti: Iterable[Ente]) -> dict[str, Ente]:
    """Every ente's pec and email, lower case → the ente."""
    out: dict[str, Ente] = {}
    for e in enti:
        for addr in (e.pec, e.email):
            if addr:
                out.setdefault(addr.strip().lower(), e)
    return out
