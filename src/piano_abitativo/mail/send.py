"""Sending the planned messages: the SMTP session, retries, and the send log.

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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import hashlib
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piano_abitativo.archive import store as archive
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail.mailbox import SentCopy, decode_reply, describe_error
from piano_abitativo.mail.outbox import (
    Outgoing,
    Plan,
    compose,
    outbox_dir,
    outbox_name,
    plan_esiti,
    plan_invio,
    plan_solleciti,
)
from piano_abitativo.mail.settings import (
    ENV_PREFIX,
    PASSWORD_ENV,
    MailError,
    MailSettings,
    load_settings,
    require_password,
)
from piano_abitativo.mail.texts import when_text

#: send-log record outcomes (``esito`` of a ``{"tipo": "invio"}`` ledger record)
TENTATIVO, INVIATO, FALLITO = "tentativo", "inviato", "fallito"

#: outcomes of one message in a run of :func:`deliver`
PROVA = "prova"  # dry run: written to the outbox only
GIA_INVIATO = "già inviato"
INCERTO = "invio incerto"
NON_INVIATO = "non inviato"  # past the limit, or the server could not be reached


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
                    f"destinatario rifiutato dal server ({code} {decode_reply(text)})"
                ) from exc
            raise
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            if exc.smtp_code >= 500:
                raise _Permanent(
                    "messaggio rifiutato dal server "
                    f"({exc.smtp_code} {decode_reply(exc.smtp_error)})"
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
            last = describe_error(exc)
            if attempt < settings.tentativi:
                sleep(settings.attesa_tentativi * 2 ** (attempt - 1))
    raise _Unreachable(last)


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
            pwd = require_password(settings, env)
    elif not settings.mittente:
        result.note.append(
            "mittente non configurato: i messaggi di prova hanno un mittente provvisorio"
        )
    outbox = outbox_dir(r.path)
    session = _SmtpSession(settings, pwd, timeout)
    sent_copy = SentCopy(settings, env, result.note) if davvero else None
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
                        f"inviato il {when_text(state.quando)}"
                        if state.esito == INVIATO
                        else f"invio interrotto il {when_text(state.quando)}: controllare la posta "
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
                eml = outbox / outbox_name(out)
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


def invia(
    r: Raccolta,
    *,
    enti: Sequence[str] | None = None,
    davvero: bool = False,
    limite: int | None = None,
    ripeti: bool = False,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[SendOutcome], None] | None = None,
    waiting: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> SendResult:
    """Send each ente its personalised template (dry run unless ``davvero=True``).

    The options are those of :func:`deliver`; ``enti`` limits the run to these codici.
    """
    return deliver(
        r,
        plan_invio(r, enti=enti),
        davvero=davvero,
        limite=limite,
        ripeti=ripeti,
        env=env,
        sleep=sleep,
        progress=progress,
        waiting=waiting,
        timeout=timeout,
    )


def solleciti(
    r: Raccolta,
    *,
    enti: Sequence[str] | None = None,
    oggi: dt.date | None = None,
    davvero: bool = False,
    limite: int | None = None,
    ripeti: bool = False,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[SendOutcome], None] | None = None,
    waiting: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> SendResult:
    """Remind the enti that have not answered or must fix their file (dry run by default).

    The options are those of :func:`deliver`; ``oggi`` is the day the reminders are keyed on.
    """
    return deliver(
        r,
        plan_solleciti(r, enti=enti, oggi=oggi),
        davvero=davvero,
        limite=limite,
        ripeti=ripeti,
        env=env,
        sleep=sleep,
        progress=progress,
        waiting=waiting,
        timeout=timeout,
    )


def esiti(
    r: Raccolta,
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
    """Tell each ente the outcome of its latest file; ask for the file when it was missing.

    Dry run unless ``davvero=True``; the options are those of :func:`deliver`.
    """
    return deliver(
        r,
        plan_esiti(r),
        davvero=davvero,
        limite=limite,
        ripeti=ripeti,
        env=env,
        sleep=sleep,
        progress=progress,
        waiting=waiting,
        timeout=timeout,
    )
