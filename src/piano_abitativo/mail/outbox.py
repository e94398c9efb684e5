"""The messages of one command, planned and composed, and the outbox folder.

A :class:`Plan` lists the :class:`Outgoing` messages of one command, each with a key that
makes it unique in the send log (``invio:019035``, ``esito:<sha256 of the file>``, …):

* ``invio`` — the personalised template, with deadline and instructions;
* ``sollecito`` — a reminder to the enti that have not answered or whose last return has
  errors (listed in plain Italian);
* ``esito`` — after an import: the file was accepted, or what to fix;
* ``manca-file`` — a message arrived without the workbook: please send the file.

:func:`compose` turns one into the bytes of an e-mail, written as an ``.eml`` file in the
outbox (``RACCOLTA/posta/uscita/``) whether it is sent or not (see :mod:`.send`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.consolidate import Held
from piano_abitativo.consolidation.context import consolidate_raccolta
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente
from piano_abitativo.mail.settings import MailError, MailSettings
from piano_abitativo.mail.texts import common_values, problems_text, render_message, when_text
from piano_abitativo.template.workbook import context_for, template_filename, write_templates

POSTA_DIR = "posta"
OUTBOX_DIR = "uscita"


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
        subject, body = render_message(r, "invio", common_values(r, e))
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
    cons = consolidate_raccolta(r)
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
        values = common_values(r, e)
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
                f"il file «{last.nome}» ricevuto il {when_text(last.ricevuto_il)} contiene "
                f"{_errori(n)} da correggere prima che i dati possano entrare nel Piano:"
            )
            values["errori"] = problems_text(last.report, errors=True)
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


#: why a reply to an address outside the registry is not drafted
NON_NELL_ELENCO = "non inviata: mittente non nell'elenco"


class _Recipients:
    """Who may get a reply: only the addresses of the registry (pec, email of an ente).

    A sender outside the registry gets nothing (anyone can write any From); it is listed once
    in the plan's ``esclusi`` for the capofila to decide."""

    def __init__(self, r: Raccolta, plan: Plan) -> None:
        self.registry = {
            addr.strip().lower() for e in r.registry for addr in (e.pec, e.email) if addr
        }
        self.plan = plan
        self.refused: set[str] = set()

    def to(self, sender: str | None, ente: Ente | None) -> str | None:
        """The sender when it is a registry address; the ente's address when the file came
        without a sender (a folder); None (and listed) for a sender outside the registry."""
        addr = (sender or "").strip()
        if not addr:
            return ente.indirizzo if ente is not None and ente.indirizzo else None
        if addr.lower() in self.registry:
            return addr
        if addr.lower() not in self.refused:
            self.refused.add(addr.lower())
            self.plan.esclusi.append((addr, NON_NELL_ELENCO))
        return None


def plan_esiti(r: Raccolta) -> Plan:
    """The esito of each ente's latest file, and "manca il file" to messages without one.

    Replies go only to addresses of the registry (see :class:`_Recipients`)."""
    plan = Plan("esito")
    who = _Recipients(r, plan)
    cons = consolidate_raccolta(r)
    latest_by_ente: dict[str, dt.datetime] = {}
    for s in cons.enti:
        for h in s.in_verifica:
            # the sender is told its file is under verification, never that it was accepted
            to = who.to(h.mittente, s.ente)
            if to:
                plan.messages.append(_esito_message(r, h.receipt, s.ente, to, held=h))
            when = h.receipt.ricevuto_il
            latest_by_ente[s.ente.codice] = max(when, latest_by_ente.get(s.ente.codice, when))
        last = s.latest
        if last is None:
            continue
        when = last.ricevuto_il
        latest_by_ente[s.ente.codice] = max(when, latest_by_ente.get(s.ente.codice, when))
        sender = str(last.extra.get("mittente") or "")
        if not sender and not s.ente.indirizzo:
            plan.esclusi.append(_no_address(s.ente))
            continue
        to = who.to(sender, s.ente)
        if to:
            plan.messages.append(_esito_message(r, last, s.ente, to))
    for rc in cons.non_attribuiti:
        sender = str(rc.extra.get("mittente") or "")
        to = who.to(sender, None) if sender else None
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
        to = who.to(str(rec["mittente"]), ente)
        if not to:
            continue
        values = common_values(r, ente)
        values["oggetto_ricevuto"] = str(rec.get("oggetto") or "(senza oggetto)")
        values["ricevuto_il"] = when_text(when)
        subject, body = render_message(r, "manca-file", values)
        plan.messages.append(
            Outgoing(
                "manca-file",
                f"manca-file:{rec['sha256']}",
                to,
                subject,
                body,
                ente,
                in_risposta_a=rec.get("message_id"),
                motivo="messaggio senza il file",
            )
        )
    return plan


def _esito_message(
    r: Raccolta,
    rc: archive.Receipt,
    ente: Ente | None,
    to: str,
    *,
    held: Held | None = None,
) -> Outgoing:
    values = common_values(r, ente)
    rep = rc.report
    values["file"] = rc.nome
    values["ricevuto_il"] = when_text(rc.ricevuto_il)
    values["avvisi"] = ""
    if held is not None:
        values["esito"] = (
            f"il file «{rc.nome}» ricevuto il {when_text(rc.ricevuto_il)} è in verifica "
            f"presso il Comune capofila: {held.motivo}. I dati non entrano nel Piano "
            f"{r.anno} finché il Comune capofila non avrà verificato il file; se "
            "necessario sarete ricontattati."
        )
        values["errori"] = ""
        motivo = "in verifica"
    elif ente is None:
        values["esito"] = (
            f"il file «{rc.nome}» ricevuto il {when_text(rc.ricevuto_il)} non è "
            f"stato riconosciuto come un modello del Piano {r.anno} di un ente "
            "dell'ambito:"
        )
        values["errori"] = problems_text(rep, errors=True)
        motivo = "file non riconosciuto"
    elif rep.errors:
        values["esito"] = (
            f"il file «{rc.nome}» ricevuto il {when_text(rc.ricevuto_il)} contiene "
            f"{_errori(len(rep.errors))} e non può essere accettato. "
            "Correggere i punti seguenti e inviare di nuovo il file:"
        )
        values["errori"] = problems_text(rep, errors=True)
        motivo = f"{_errori(len(rep.errors))} da correggere"
    else:
        values["esito"] = (
            f"il file «{rc.nome}» ricevuto il {when_text(rc.ricevuto_il)} è stato "
            f"accettato: i dati entrano nel Piano {r.anno}."
        )
        values["errori"] = ""
        if rep.warnings:
            values["avvisi"] = (
                "Si segnalano questi punti da verificare (non impediscono "
                "l'accettazione):\n" + problems_text(rep, errors=False)
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
    """Ledger records of messages with no workbook that deserve a reply (when their sender
    is in the registry)."""
    out = []
    for rec in archive.read_ledger(r.path).records:
        if (
            rec.get("tipo") == "messaggio"
            and rec.get("esito") == "senza allegati"
            and rec.get("mittente")
            and not rec.get("automatico")
            and rec.get("ricevuto_il")
        ):
            out.append(rec)
    return out


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
    """``RACCOLTA/posta/uscita/``: every message composed, sent or not."""
    return Path(raccolta_path) / POSTA_DIR / OUTBOX_DIR


def outbox_name(out: Outgoing) -> str:
    """The name of a message's .eml file in the outbox: genere, ente, a hash of its key."""
    who = out.ente.codice if out.ente else out.destinatario.split("@", 1)[0]
    who = re.sub(r"[^A-Za-z0-9_-]+", "_", who)[:40]
    return f"{out.genere}_{who}_{hashlib.sha256(out.chiave.encode()).hexdigest()[:8]}.eml"
