"""The state of the collection (`piano-abitativo stato`): who answered, when, how, reminders.

One row per ente of the registry, from the same consolidation the master workbook uses, so
the times shown here are those of its *Cruscotto* and *Report programmazione*: the certified
PEC time when the file came by PEC, else the arrival time in the mailbox, else the file's.
Pure: reads the ledger, writes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from piano_abitativo.app.loading import RaccoltaLike, load_raccolta
from piano_abitativo.archive import store as archive
from piano_abitativo.archive.decisions import short_id
from piano_abitativo.archive.quarantine import MOTIVO
from piano_abitativo.consolidation.consolidate import Consolidation, EnteStatus
from piano_abitativo.consolidation.context import consolidate_raccolta
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail import send as mail

if TYPE_CHECKING:
    from piano_abitativo.archive.store import Receipt


@dataclass(frozen=True)
class EnteStato:
    """What `stato` says about one ente."""

    codice: str
    denominazione: str
    indirizzo: str
    stato: str
    ricevuto: bool
    #: reception of the latest version: certified time when there is one
    ricevuto_il: dt.datetime | None
    fonte_data: str | None
    certificato: bool
    canale: str | None
    versioni: int
    errori: int
    avvisi: int
    file: str | None
    mittente: str | None
    identificativo_pec: str | None
    #: when the template was sent, the last reminder, the last esito (messages really sent)
    invitato_il: dt.datetime | None
    sollecitato_il: dt.datetime | None
    esito_inviato_il: dt.datetime | None
    #: PEC receipts of our messages to this ente: last "avvenuta consegna", last failure
    consegnato_il: dt.datetime | None = None
    mancata_consegna: str | None = None
    #: short identifier of the used version (`accetta`, `scarta`…), None when none is used
    id: str | None = None
    #: the used version came from an address that is not in the registry
    mittente_non_registrato: bool = False
    #: fields the capofila corrected in the used version
    rettificati: tuple[str, ...] = ()
    #: the gestore's signature of the latest version's PEC (None: not a PEC)
    verifica_pec: str | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(x: dt.datetime | None) -> str | None:
            return x.astimezone(archive.TZ).isoformat() if x else None

        return {
            "codice": self.codice,
            "denominazione": self.denominazione,
            "indirizzo": self.indirizzo,
            "stato": self.stato,
            "ricevuto": self.ricevuto,
            "ricevuto_il": iso(self.ricevuto_il),
            "fonte_data": self.fonte_data,
            "certificato": self.certificato,
            "verifica_pec": self.verifica_pec,
            "canale": self.canale,
            "versioni": self.versioni,
            "errori": self.errori,
            "avvisi": self.avvisi,
            "file": self.file,
            "mittente": self.mittente,
            "identificativo_pec": self.identificativo_pec,
            "invitato_il": iso(self.invitato_il),
            "sollecitato_il": iso(self.sollecitato_il),
            "esito_inviato_il": iso(self.esito_inviato_il),
            "consegnato_il": iso(self.consegnato_il),
            "mancata_consegna": self.mancata_consegna,
            "id": self.id,
            "mittente_non_registrato": self.mittente_non_registrato,
            "rettificati": list(self.rettificati),
        }


@dataclass
class Stato:
    """The whole state: every ente, and what needs a look by hand."""

    anno: int
    enti: list[EnteStato]
    #: files that name no ente of the registry: (name, received, sender)
    non_attribuiti: list[dict[str, Any]] = field(default_factory=list)
    #: messages from addresses that are no ente's (their files may still name an ente)
    mittenti_sconosciuti: list[dict[str, Any]] = field(default_factory=list)
    #: returns held for review (identity conflicts)
    in_verifica: list[dict[str, Any]] = field(default_factory=list)
    #: files the capofila set aside
    scartati: list[dict[str, Any]] = field(default_factory=list)
    #: rettifiche that no longer apply (a newer version arrived)
    rettifiche_superate: list[dict[str, Any]] = field(default_factory=list)
    #: damaged ledger lines, archived files gone
    registro_danneggiato: list[dict[str, Any]] = field(default_factory=list)
    #: files and messages whose reading killed the program: never read again
    letture_non_riuscite: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "enti": [e.to_json() for e in self.enti],
            "non_attribuiti": self.non_attribuiti,
            "mittenti_sconosciuti": self.mittenti_sconosciuti,
            "in_verifica": self.in_verifica,
            "scartati": self.scartati,
            "rettifiche_superate": self.rettifiche_superate,
            "registro_danneggiato": self.registro_danneggiato,
            "letture_non_riuscite": self.letture_non_riuscite,
        }

    @property
    def ricevuti(self) -> int:
        return sum(1 for e in self.enti if e.ricevuto)


def stato(raccolta: RaccoltaLike, cons: Consolidation | None = None) -> Stato:
    """The state of every ente of the raccolta (loaded, or the path of its folder): whether
    and when it answered, with which errors, the reminders sent; `cons`, the raccolta's
    consolidation when the caller has it already. Writes nothing."""
    r = load_raccolta(raccolta)
    cons = cons or consolidate_raccolta(r)
    sent: dict[tuple[str, str], dt.datetime] = {}
    ente_of_message: dict[str, str] = {}
    for rec in mail.sent_records(r):
        try:
            when = dt.datetime.fromisoformat(rec["quando"])
        except (KeyError, TypeError, ValueError):
            continue
        key = (str(rec.get("genere")), str(rec.get("ente")))
        if key not in sent or sent[key] < when:
            sent[key] = when
        if rec.get("message_id") and rec.get("ente"):
            ente_of_message[str(rec["message_id"]).strip()] = str(rec["ente"])
    delivered, failed = _delivery(r, ente_of_message)
    enti = [_with_delivery(_row(s, sent), delivered, failed) for s in cons.enti]
    stray = [
        {
            "id": short_id(rc.sha256),
            "file": rc.nome,
            "sha256": rc.sha256,
            "ricevuto_il": rc.ricevuto_il.astimezone(archive.TZ).isoformat(),
            "mittente": rc.extra.get("mittente"),
            "canale": rc.canale,
            "problemi": [p.message for p in rc.report.errors],
        }
        for rc in cons.non_attribuiti
    ]
    return Stato(
        cons.anno,
        enti,
        stray,
        _unknown_senders(r),
        in_verifica=[
            {
                "id": short_id(h.receipt.sha256),
                "ente": h.ente,
                "mittente": h.mittente,
                "mittente_ente": h.mittente_ente,
                "motivo": h.motivo,
                "ricevuto_il": _iso(h.receipt.ricevuto_il),
                "file": h.receipt.nome,
            }
            for h in cons.in_verifica
        ],
        scartati=[
            {
                "id": short_id(rc.sha256),
                "file": rc.nome,
                "ente": rc.report.ente,
                "ricevuto_il": _iso(rc.ricevuto_il),
                "motivo": d.motivo,
                "utente": d.utente,
                "il": _iso(d.il),
            }
            for rc, d in cons.scartati
        ],
        rettifiche_superate=[
            {
                "ente": rt.ente,
                "campo": rt.campo,
                "valore": rt.valore,
                "versione": short_id(rt.versione),
                "motivo": rt.motivo,
            }
            for rt in cons.rettifiche_superate
        ],
        registro_danneggiato=[d.to_json() for d in cons.registro_danneggiato],
        letture_non_riuscite=[
            {
                "id": short_id(str(x.get("sha256"))),
                "file": x.get("nome"),
                "sha256": x.get("sha256"),
                "origine": x.get("origine"),
                "inizio": x.get("inizio"),
                "motivo": MOTIVO,
            }
            for x in cons.letture_non_riuscite
        ],
    )


def _iso(x: dt.datetime) -> str:
    return x.astimezone(archive.TZ).isoformat()


def _certificato(last: Receipt | None) -> bool:
    """Whether the latest return came by PEC with a certification that holds; the PEC
    verification (cryptography) is imported only for a return that came by PEC."""
    if last is None or not last.certificato:
        return False
    from piano_abitativo.mail.pec_signature import CERTIFYING

    return last.extra.get("verifica_pec") in CERTIFYING


def _row(s: EnteStatus, sent: dict[tuple[str, str], dt.datetime]) -> EnteStato:
    last = s.latest
    e = s.ente
    return EnteStato(
        codice=e.codice,
        denominazione=e.nome_completo,
        indirizzo=e.indirizzo,
        stato=s.stato,
        ricevuto=last is not None,
        ricevuto_il=last.ricevuto_il if last else None,
        fonte_data=last.fonte_data if last else None,
        certificato=_certificato(last),
        verifica_pec=str(last.extra["verifica_pec"])
        if last and last.extra.get("verifica_pec")
        else None,
        canale=last.canale if last else None,
        versioni=len(s.versions),
        errori=s.errori,
        avvisi=s.avvisi,
        file=last.nome if last else None,
        mittente=str(last.extra["mittente"]) if last and last.extra.get("mittente") else None,
        identificativo_pec=(
            str(last.extra["identificativo_pec"])
            if last and last.extra.get("identificativo_pec")
            else None
        ),
        invitato_il=sent.get(("invio", e.codice)),
        sollecitato_il=sent.get(("sollecito", e.codice)),
        esito_inviato_il=sent.get(("esito", e.codice)),
        id=short_id(s.used.sha256) if s.used is not None else None,
        mittente_non_registrato=s.mittente_sconosciuto,
        rettificati=tuple(sorted(s.rettificati)),
    )


def _delivery(
    r: Raccolta, ente_of_message: dict[str, str]
) -> tuple[dict[str, dt.datetime], dict[str, str]]:
    """PEC receipts that refer to messages we sent: delivered (time) or not (why)."""
    delivered: dict[str, dt.datetime] = {}
    failed: dict[str, str] = {}
    for rec in archive.read_ledger(r.path).records:
        if rec.get("tipo") != "messaggio" or rec.get("genere") != "ricevuta":
            continue
        codice = ente_of_message.get(str(rec.get("message_id") or "").strip())
        tipo = str(rec.get("ricevuta_tipo") or "")
        if codice is None or not rec.get("ricevuto_il"):
            continue
        when = dt.datetime.fromisoformat(rec["ricevuto_il"])
        if tipo == "avvenuta-consegna":
            if codice not in delivered or delivered[codice] < when:
                delivered[codice] = when
        elif tipo in (
            "errore-consegna",
            "mancata-consegna",
            "preavviso-errore-consegna",
            "non-accettazione",
            "rilevazione-virus",
        ):
            failed[codice] = f"{tipo.replace('-', ' ')} il {when.astimezone(archive.TZ):%d/%m/%Y}"
    return delivered, failed


def _with_delivery(
    row: EnteStato, delivered: dict[str, dt.datetime], failed: dict[str, str]
) -> EnteStato:
    return replace(
        row, consegnato_il=delivered.get(row.codice), mancata_consegna=failed.get(row.codice)
    )


def _unknown_senders(r: Raccolta) -> list[dict[str, Any]]:
    """Messages (not receipts) from an address that is no ente's, with the enti their new
    files were attributed to by content."""
    out = []
    for rec in archive.read_ledger(r.path).records:
        if (
            rec.get("tipo") != "messaggio"
            or rec.get("duplicato")
            or rec.get("genere") == "ricevuta"
            or rec.get("ente_mittente")
        ):
            continue
        enti = sorted(
            {str(a["ente"]) for a in rec.get("allegati") or [] if a.get("ente") in r.registry}
        )
        out.append(
            {
                "mittente": rec.get("mittente"),
                "oggetto": rec.get("oggetto"),
                "ricevuto_il": rec.get("ricevuto_il"),
                "esito": rec.get("esito"),
                "attribuito_a": enti,
                "origine": rec.get("origine"),
                "note": rec.get("note") or [],
            }
        )
    return out
