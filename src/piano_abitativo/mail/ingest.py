"""Incoming mail: one message (from the IMAP mailbox or an .eml/.msg file) → archive + records.

For each message, in this order, with the raccolta's lock held:

1. the raw bytes, exactly as fetched, are archived under ``archivio/originali/`` by sha256
   (flushed to disk; the file's time is the arrival time);
2. the message is classified by :func:`piano_abitativo.mail.parse.parse_message` (PEC,
   anomalia, ricevuta, ordinary mail; PEC forwarded as an attachment; ``.p7m``, ``.zip``);
3. each workbook found is validated and becomes a ``"ricezione"`` record (see
   :mod:`piano_abitativo.archive`) with the certified time of the PEC when there is one, else
   the arrival time in the mailbox (IMAP INTERNALDATE), else the Date header; a workbook
   whose bytes are already recorded is not recorded again;
4. one ``"messaggio"`` record describes the message (where it came from, kind, original
   sender, certified time, PEC identificativo, gestore, attachments, notes) and is appended
   to the ledger *in the same write* as the receipts of its workbooks.

So the same message fetched twice is recorded once (its sha256 is in the ledger), and a
crash half-way loses nothing: a message archived but not recorded is processed again by
the next run (from the mailbox, or from the archive when it is no longer there).

Reading the mailbox is :mod:`.imap`; files given to ``importa --da`` are :mod:`.folder`.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piano_abitativo.archive import quarantine
from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.checking import validation_context
from piano_abitativo.consolidation.context import context_fingerprint
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente, addresses_of
from piano_abitativo.mail.p7m import Signature
from piano_abitativo.mail.parse import MessageKind, ParsedMessage, parse_message
from piano_abitativo.mail.pec_signature import CERTIFYING, trust_for
from piano_abitativo.validation.validate import ValidationContext

ORIGINALS_DIR = "originali"
#: files that `importa --da` reads as messages
MAIL_SUFFIXES = (".eml", ".msg")

FONTE_PEC = "data e ora certificate PEC"
FONTE_IMAP = "data di arrivo nella casella (IMAP)"
FONTE_DATE = "data del messaggio indicata dal mittente"
FONTE_RECUPERO = "data di arrivo del messaggio (recuperato dall'archivio)"
FONTE_IMPORT = "data di importazione"

CANALE_PEC = "PEC"
CANALE_EMAIL = "e-mail"

#: what happened to a message
IMPORTATO = "importato"
GIA_IMPORTATO = "già importato"
GIA_RICEVUTO = "allegati già ricevuti"
RICEVUTA = "ricevuta"
SENZA_ALLEGATI = "senza allegati"
TROPPO_GRANDE = "troppo grande"
#: past a cap per message (:mod:`.attachments`): archived, not expanded, to check by hand
NON_APERTO = "non aperto (oltre i limiti)"

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Provenance:
    """Where a message came from."""

    #: readable: ``imap://utente@server/INBOX;UIDVALIDITY=…;UID=…`` or a file path
    origine: str
    #: server, utente, cartella, uidvalidity, uid — for a message read from IMAP
    imap: dict[str, Any] | None = None
    #: IMAP INTERNALDATE: when the message reached the mailbox
    internaldate: dt.datetime | None = None
    #: the time of arrival to use when there is no certified time, and what it is
    arrival: dt.datetime | None = None
    arrival_fonte: str = FONTE_IMAP
    #: the modification time of an .eml/.msg file (used after the Date header)
    file_mtime: dt.datetime | None = None


@dataclass
class MessageOutcome:
    """One message and what it gave."""

    origine: str
    sha256: str
    esito: str
    kind: str | None = None
    mittente: str | None = None
    #: codice of the ente whose address sent it (None: mittente sconosciuto)
    ente_mittente: str | None = None
    oggetto: str | None = None
    certificato: bool = False
    ricevuto_il: dt.datetime | None = None
    fonte_data: str = ""
    identificativo_pec: str | None = None
    #: level of the gestore's signature (see :mod:`.pec_signature`), None for ordinary mail
    verifica_pec: str | None = None
    #: new ``ricezione`` records made from its workbooks
    receipts: list[archive.Receipt] = field(default_factory=list)
    #: workbooks already recorded before (by name)
    gia_ricevuti: list[str] = field(default_factory=list)
    note: list[str] = field(default_factory=list)

    @property
    def mittente_sconosciuto(self) -> bool:
        return self.ente_mittente is None and self.kind != MessageKind.RICEVUTA.value

    def to_json(self) -> dict[str, Any]:
        return {
            "origine": self.origine,
            "sha256": self.sha256,
            "esito": self.esito,
            "genere": self.kind,
            "mittente": self.mittente,
            "ente_mittente": self.ente_mittente,
            "oggetto": self.oggetto,
            "certificato": self.certificato,
            "ricevuto_il": self.ricevuto_il.isoformat() if self.ricevuto_il else None,
            "fonte_data": self.fonte_data,
            "identificativo_pec": self.identificativo_pec,
            "verifica_pec": self.verifica_pec,
            "file": [
                {
                    "nome": rc.nome,
                    "sha256": rc.sha256,
                    "ente": rc.report.ente,
                    "valido": rc.report.valid,
                    "errori": len(rc.report.errors),
                    "avvisi": len(rc.report.warnings),
                }
                for rc in self.receipts
            ],
            "gia_ricevuti": self.gia_ricevuti,
            "note": self.note,
        }


# --------------------------------------------------------------------------- state


class IngestState:
    """What one run knows, read once from the ledger and kept up to date."""

    def __init__(
        self,
        r: Raccolta,
        known: set[Any],
        *,
        ctx: ValidationContext | None = None,
        fingerprint: str | None = None,
        locations: set[tuple[Any, ...]] | None = None,
    ) -> None:
        self.r = r
        self.known = known
        self.ctx = ctx or validation_context(r)
        self.fp = fingerprint or context_fingerprint(r)
        self.addresses = addresses_of(r.registry)
        self.locations = locations if locations is not None else set()
        #: the trusted gestori PEC of ``[posta] gestori_pec`` (None: not configured)
        self.trusted = trust_for(r)

    @classmethod
    def from_ledger(cls, r: Raccolta) -> IngestState:
        records = archive.read_ledger(r.path).records
        known = quarantine.known_shas(records)
        locations = set()
        for rec in records:
            loc = location_key(rec.get("imap")) if rec.get("tipo") == "messaggio" else None
            if loc is not None:
                locations.add(loc)
        return cls(r, known, locations=locations)


def location_key(imap: Any) -> tuple[Any, ...] | None:
    """Server, utente, cartella, UIDVALIDITY and UID of a message read from IMAP, or None."""
    if not isinstance(imap, dict):
        return None
    try:
        return (
            str(imap["server"]).lower(),
            str(imap["utente"]).lower(),
            str(imap["cartella"]),
            int(imap["uidvalidity"]),
            int(imap["uid"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def originals_dir(raccolta_path: Path) -> Path:
    return archive.archive_dir(raccolta_path) / ORIGINALS_DIR


def store_original(
    raccolta_path: Path, data: bytes, *, suffix: str, mtime: dt.datetime | None = None
) -> tuple[str, str]:
    """Archive a message (or signed file) as received; returns (sha256, relative path).

    Same guarantees as :func:`archive.store_blob`, in ``archivio/originali/`` so that the
    archive's recovery of unrecorded workbooks never mistakes a message for one.
    """
    when = mtime.timestamp() if mtime is not None else None
    return archive.store_blob(raccolta_path, data, suffix=suffix, mtime=when, folder=ORIGINALS_DIR)


def _auto_submitted(raw: bytes) -> bool:
    """An automatic message (out-of-office, bounce…): never answered automatically."""
    if raw.startswith(_OLE_MAGIC):
        return False
    try:
        head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:65536])
    except Exception:
        return False
    auto = str(head.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(head.get("Precedence", "")).strip().lower()
    return (
        auto not in ("", "no")
        or precedence in ("bulk", "junk", "auto_reply")
        or head.get("X-Piano-Abitativo") is not None
    )


def signature_json(sig: Signature) -> dict[str, Any]:
    """A signature as the ledger records it."""
    return {
        "cn": sig.signer_cn,
        "codice_fiscale": sig.codice_fiscale,
        "valida": sig.valid,
        "dettaglio": sig.detail,
        "firmato_il": sig.signing_time.isoformat() if sig.signing_time else None,
    }


def certifies(parsed: ParsedMessage) -> bool:
    """A PEC received directly whose gestore's signature is valid and whose daticert has a time."""
    return (
        parsed.kind is MessageKind.PEC
        and parsed.certified_at is not None
        and not parsed.forwarded
        and parsed.verifica_pec in CERTIFYING
    )


def _timing(parsed: ParsedMessage, prov: Provenance) -> tuple[dt.datetime, str, bool]:
    if certifies(parsed):
        assert parsed.certified_at is not None  # noqa: S101 - checked by certifies()
        return parsed.certified_at, FONTE_PEC, True
    if prov.arrival is not None:
        return prov.arrival, prov.arrival_fonte, False
    if parsed.kind is MessageKind.PEC and prov.file_mtime is not None:
        # a PEC whose time is not certified: its Date header is the sender's word only
        return prov.file_mtime, archive.FONTE_FILE, False
    if parsed.date_header is not None:
        return parsed.date_header, FONTE_DATE, False
    if prov.file_mtime is not None:
        return prov.file_mtime, archive.FONTE_FILE, False
    return archive.now(), FONTE_IMPORT, False


def _ente_label(r: Raccolta, codice: str | None) -> str:
    ente = r.registry.get(codice) if codice else None
    return ente.nome_completo if ente else str(codice)


def ingest_message(state: IngestState, raw: bytes, prov: Provenance) -> MessageOutcome:
    """Archive, classify and record one message. Call with the raccolta's lock held."""
    r = state.r
    is_msg = raw.startswith(_OLE_MAGIC)
    mtime = prov.arrival or prov.file_mtime
    sha, rel = store_original(r.path, raw, suffix=".msg" if is_msg else ".eml", mtime=mtime)
    loc = location_key(prov.imap)
    if sha in state.known:
        if loc is not None and loc not in state.locations:
            # the same message again (another UID): note where, so the next run skips it
            archive.append_records(
                r.path,
                [
                    {
                        "tipo": "messaggio",
                        "versione": 1,
                        "sha256": sha,
                        "duplicato": True,
                        "origine": prov.origine,
                        "imap": prov.imap,
                        "arrivo_casella": prov.internaldate.isoformat()
                        if prov.internaldate
                        else None,
                        "importato_il": archive.now().isoformat(),
                    }
                ],
            )
            state.locations.add(loc)
        return MessageOutcome(prov.origine, sha, GIA_IMPORTATO)
    parsed = parse_message(raw, trusted=state.trusted)
    when, fonte, certificato = _timing(parsed, prov)
    sender = parsed.sender
    ente_mitt: Ente | None = state.addresses.get(sender or "")
    out = MessageOutcome(
        prov.origine,
        sha,
        IMPORTATO,
        kind=parsed.kind.value,
        mittente=sender,
        ente_mittente=ente_mitt.codice if ente_mitt else None,
        oggetto=parsed.subject,
        certificato=certificato,
        ricevuto_il=when,
        fonte_data=fonte,
        identificativo_pec=parsed.pec_identificativo,
        verifica_pec=parsed.verifica_pec,
        note=list(parsed.notes),
    )
    if parsed.kind is MessageKind.PEC and not certificato:
        out.note.append(f"data e ora di ricezione non certificate: usata la {fonte}")
    canale = CANALE_PEC if parsed.kind is MessageKind.PEC else CANALE_EMAIL
    allegati: list[dict[str, Any]] = []
    blobs: list[tuple[bytes, str]] = []
    seen_here: set[str] = set()
    if parsed.kind is not MessageKind.RICEVUTA:
        for att in parsed.attachments:
            a_sha = hashlib.sha256(att.data).hexdigest()
            entry: dict[str, Any] = {
                "nome": att.filename,
                "sha256": a_sha,
                "percorso": list(att.path),
            }
            if att.signatures:
                entry["firma"] = [signature_json(s) for s in att.signatures]
            if a_sha in state.known or a_sha in seen_here:
                entry["nuovo"] = False
                allegati.append(entry)
                out.gia_ricevuti.append(att.filename)
                continue
            seen_here.add(a_sha)
            suffix = Path(att.filename).suffix
            extra = {
                k: v
                for k, v in {
                    "mittente": sender,
                    "ente_mittente": out.ente_mittente,
                    "messaggio": sha,
                    "message_id": parsed.message_id,
                    "oggetto": parsed.subject,
                    "genere_messaggio": parsed.kind.value,
                    "identificativo_pec": parsed.pec_identificativo,
                    "gestore": parsed.pec_gestore,
                    "arrivo_casella": prov.internaldate.isoformat() if prov.internaldate else None,
                    "inoltrata": parsed.forwarded or None,
                    "verifica_pec": parsed.verifica_pec,
                    "firma": signature_json(att.signatures[0]) if att.signatures else None,
                    "firme": [signature_json(s) for s in att.signatures]
                    if len(att.signatures) > 1
                    else None,
                }.items()
                if v is not None
            }
            rc = archive.make_receipt(
                r,
                att.data,
                nome=att.filename,
                blob=archive.blob_relpath(a_sha, suffix),
                sha=a_sha,
                ricevuto_il=when,
                fonte_data=fonte,
                canale=canale,
                origine=" › ".join((prov.origine, *att.path)),
                certificato=certificato,
                extra=extra,
                ctx=state.ctx,
                fingerprint=state.fp,
            )
            entry.update(nuovo=True, ente=rc.report.ente, valido=rc.report.valid)
            allegati.append(entry)
            blobs.append((att.data, suffix))
            out.receipts.append(rc)
            codice = rc.report.ente
            if ente_mitt is not None and codice and codice != ente_mitt.codice:
                out.note.append(
                    f"{att.filename}: il file è di {_ente_label(r, codice)} ma il "
                    f"messaggio viene da {ente_mitt.nome_completo} ({sender})"
                )
            elif ente_mitt is None and codice and codice in r.registry:
                out.note.append(
                    f"mittente sconosciuto ({sender or 'senza indirizzo'}): "
                    f"{att.filename} attribuito a {_ente_label(r, codice)} in "
                    "base al contenuto del file"
                )
    if parsed.kind is MessageKind.RICEVUTA:
        out.esito = RICEVUTA
    elif parsed.limite is not None:
        out.esito = NON_APERTO
    elif not parsed.attachments:
        out.esito = SENZA_ALLEGATI
    elif not out.receipts:
        out.esito = GIA_RICEVUTO
    if out.mittente_sconosciuto and not out.receipts:
        out.note.append(f"mittente sconosciuto ({sender or 'senza indirizzo'})")
    for data, suffix in blobs:
        archive.store_blob(r.path, data, suffix=suffix, mtime=when.timestamp())
    record = {
        "tipo": "messaggio",
        "versione": 1,
        "sha256": sha,
        "blob": rel,
        "dimensione": len(raw),
        "origine": prov.origine,
        "imap": prov.imap,
        "arrivo_casella": prov.internaldate.isoformat() if prov.internaldate else None,
        "genere": parsed.kind.value,
        "esito": out.esito,
        "mittente": sender,
        "ente_mittente": out.ente_mittente,
        "oggetto": parsed.subject,
        "message_id": parsed.message_id,
        "certificato": certificato,
        "data_certificata": parsed.certified_at.isoformat()
        if parsed.certified_at and certificato
        else None,
        "verifica_pec": parsed.verifica_pec,
        "identificativo_pec": parsed.pec_identificativo,
        "gestore": parsed.pec_gestore,
        "ricevuta_tipo": parsed.ricevuta_tipo,
        "data_intestazione": parsed.date_header.isoformat() if parsed.date_header else None,
        "inoltrata": parsed.forwarded,
        "ricevuto_il": when.isoformat(),
        "fonte_data": fonte,
        "allegati": allegati,
        "altri_allegati": list(parsed.other_attachments),
        "limite": parsed.limite,
        "note": out.note,
        "automatico": _auto_submitted(raw),
        "importato_il": archive.now().isoformat(),
        "utente": archive._who(),
    }
    archive.append_records(r.path, [*(rc.to_record() for rc in out.receipts), record])
    state.known.add(sha)
    state.known.update(rc.sha256 for rc in out.receipts)
    if loc is not None:
        state.locations.add(loc)
    return out


def recover_originals(state: IngestState) -> list[MessageOutcome]:
    """Messages archived by a run that stopped before recording them get recorded now."""
    folder = originals_dir(state.r.path)
    out: list[MessageOutcome] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("??/*")):
        sha, _, suffix = path.name.partition(".")
        if (
            path.name.startswith(".")
            or f".{suffix}" not in MAIL_SUFFIXES
            or len(sha) != 64
            or sha in state.known
        ):
            continue
        try:
            raw = path.read_bytes()
            mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, archive.TZ)
        except OSError:
            continue
        if hashlib.sha256(raw).hexdigest() != sha:
            continue
        rel = path.relative_to(state.r.path).as_posix()
        out.append(
            ingest_message(state, raw, Provenance(rel, arrival=mtime, arrival_fonte=FONTE_RECUPERO))
        )
    return out
