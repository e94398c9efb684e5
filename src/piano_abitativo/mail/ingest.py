"""Incoming mail: messages from the IMAP mailbox or from .eml/.msg files, and signed files.

For each message, in this order, with the raccolta's lock held:

1. the raw bytes, exactly as fetched, are archived under ``archivio/originali/`` by sha256
   (flushed to disk; the file's time is the arrival time);
2. the message is classified by :func:`piano_abitativo.mailparse.parse_message` (PEC,
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

The mailbox is opened **read-only** (EXAMINE, ``BODY.PEEK``): nothing is flagged, moved or
deleted, unless ``sposta=True``, which moves the recorded messages to the configured folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import hashlib
import imaplib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.context import context_fingerprint, validation_context
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente
from piano_abitativo.mail import outbox as mail
from piano_abitativo.mail import p7m
from piano_abitativo.mail.p7m import Signature
from piano_abitativo.mail.parse import MessageKind, ParsedMessage, parse_message
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

#: a message larger than this is not downloaded (PEC providers cap messages at 100 MB)
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
#: messages fetched per IMAP command, and their total size at most
FETCH_BATCH = 25
FETCH_BATCH_BYTES = 16 * 1024 * 1024

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_INTERNALDATE = re.compile(
    rb'INTERNALDATE "\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"'
)
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


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


@dataclass
class IngestResult:
    """The outcome of reading a mailbox folder."""

    cartella: str = ""
    #: messages in the folder
    totale: int = 0
    #: messages skipped because already recorded by an earlier run
    gia_visti: int = 0
    messages: list[MessageOutcome] = field(default_factory=list)
    #: messages archived by an interrupted run and recorded now
    recuperati: list[MessageOutcome] = field(default_factory=list)
    spostati: int = 0
    note: list[str] = field(default_factory=list)

    @property
    def receipts(self) -> list[archive.Receipt]:
        return [rc for m in [*self.messages, *self.recuperati] for rc in m.receipts]

    def to_json(self) -> dict[str, Any]:
        return {
            "cartella": self.cartella,
            "totale": self.totale,
            "gia_visti": self.gia_visti,
            "messaggi": [m.to_json() for m in self.messages],
            "recuperati": [m.to_json() for m in self.recuperati],
            "spostati": self.spostati,
            "note": self.note,
        }


# --------------------------------------------------------------------------- state


class _State:
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
        self.addresses = mail.known_addresses(r.registry)
        self.locations = locations if locations is not None else set()

    @classmethod
    def from_ledger(cls, r: Raccolta) -> _State:
        records = archive.read_ledger(r.path).records
        known = {rec.get("sha256") for rec in records}
        locations = set()
        for rec in records:
            loc = _loc_key(rec.get("imap")) if rec.get("tipo") == "messaggio" else None
            if loc is not None:
                locations.add(loc)
        return cls(r, known, locations=locations)


def _loc_key(imap: Any) -> tuple[Any, ...] | None:
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


# --------------------------------------------------------------------------- one message


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


def _signature_json(sig: Signature) -> dict[str, Any]:
    return {
        "cn": sig.signer_cn,
        "codice_fiscale": sig.codice_fiscale,
        "valida": sig.valid,
        "dettaglio": sig.detail,
        "firmato_il": sig.signing_time.isoformat() if sig.signing_time else None,
    }


def _timing(parsed: ParsedMessage, prov: Provenance) -> tuple[dt.datetime, str, bool]:
    if parsed.kind is MessageKind.PEC and parsed.certified_at is not None:
        return parsed.certified_at, FONTE_PEC, True
    if prov.arrival is not None:
        return prov.arrival, prov.arrival_fonte, False
    if parsed.date_header is not None:
        return parsed.date_header, FONTE_DATE, False
    if prov.file_mtime is not None:
        return prov.file_mtime, archive.FONTE_FILE, False
    return archive.now(), FONTE_IMPORT, False


def _ente_label(r: Raccolta, codice: str | None) -> str:
    ente = r.registry.get(codice) if codice else None
    return ente.nome_completo if ente else str(codice)


def ingest_message(state: _State, raw: bytes, prov: Provenance) -> MessageOutcome:
    """Archive, classify and record one message. Call with the raccolta's lock held."""
    r = state.r
    is_msg = raw.startswith(_OLE_MAGIC)
    mtime = prov.arrival or prov.file_mtime
    sha, rel = store_original(r.path, raw, suffix=".msg" if is_msg else ".eml", mtime=mtime)
    loc = _loc_key(prov.imap)
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
    parsed = parse_message(raw)
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
        note=list(parsed.notes),
    )
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
                entry["firma"] = [_signature_json(s) for s in att.signatures]
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
                    "firma": _signature_json(att.signatures[0]) if att.signatures else None,
                    "firme": [_signature_json(s) for s in att.signatures]
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
        "data_certificata": parsed.certified_at.isoformat() if parsed.certified_at else None,
        "identificativo_pec": parsed.pec_identificativo,
        "gestore": parsed.pec_gestore,
        "ricevuta_tipo": parsed.ricevuta_tipo,
        "data_intestazione": parsed.date_header.isoformat() if parsed.date_header else None,
        "inoltrata": parsed.forwarded,
        "ricevuto_il": when.isoformat(),
        "fonte_data": fonte,
        "allegati": allegati,
        "altri_allegati": list(parsed.other_attachments),
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


def recover_originals(state: _State) -> list[MessageOutcome]:
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


# --------------------------------------------------------------------------- files


def import_mail_file(
    r: Raccolta,
    src: Path,
    data: bytes,
    st: os.stat_result,
    *,
    known: set[Any],
    ctx: ValidationContext,
    fingerprint: str,
) -> list[archive.ImportOutcome]:
    """An .eml/.msg/.p7m file given to `importa --da`. Called by `archive.import_files`
    with the lock held; ``known`` is its set of recorded sha256 and is kept up to date."""
    state = _State(r, known, ctx=ctx, fingerprint=fingerprint)
    origine = str(src.resolve())
    mtime = dt.datetime.fromtimestamp(st.st_mtime, archive.TZ)
    if src.suffix.lower() == ".p7m":
        return [_import_signed_file(state, src, data, mtime)]
    msg = ingest_message(state, data, Provenance(origine, file_mtime=mtime))
    return import_outcomes(msg)


def import_outcomes(msg: MessageOutcome) -> list[archive.ImportOutcome]:
    """A message as rows of the file import's result."""
    notes = "; ".join(msg.note)
    if msg.esito == GIA_IMPORTATO:
        return [archive.ImportOutcome(msg.origine, "già importato")]
    if msg.esito == RICEVUTA:
        return [
            archive.ImportOutcome(
                msg.origine,
                "ricevuta PEC",
                messaggio=(
                    f"{Path(msg.origine).name}: ricevuta PEC, non è una risposta di un ente"
                ),
            )
        ]
    if msg.esito == SENZA_ALLEGATI:
        return [
            archive.ImportOutcome(
                msg.origine,
                "senza allegati",
                messaggio=(
                    f"{Path(msg.origine).name}: messaggio senza il modello compilato"
                    + (f" ({notes})" if notes else "")
                ),
            )
        ]
    rows = [
        archive.ImportOutcome(f"{msg.origine} › {rc.nome}", "importato", rc, messaggio=notes)
        for rc in msg.receipts
    ]
    rows += [
        archive.ImportOutcome(f"{msg.origine} › {name}", "già importato")
        for name in msg.gia_ricevuti
    ]
    return rows


def _import_signed_file(
    state: _State, src: Path, data: bytes, mtime: dt.datetime
) -> archive.ImportOutcome:
    r = state.r
    origine = str(src.resolve())
    p7m_sha, p7m_rel = store_original(r.path, data, suffix=".p7m", mtime=mtime)
    try:
        content, signatures = p7m.unwrap(data)
    except p7m.P7mError as exc:
        return archive.ImportOutcome(
            origine, "illeggibile", messaggio=f"{src.name}: file firmato non leggibile: {exc}"
        )
    name = p7m.strip_p7m_suffix(src.name)
    sha = hashlib.sha256(content).hexdigest()
    if sha in state.known:
        return archive.ImportOutcome(origine, "già importato")
    suffix = Path(name).suffix
    extra: dict[str, Any] = {"originale": {"sha256": p7m_sha, "blob": p7m_rel, "nome": src.name}}
    if signatures:
        extra["firma"] = _signature_json(signatures[0])
    if len(signatures) > 1:
        extra["firme"] = [_signature_json(s) for s in signatures]
    rc = archive.make_receipt(
        r,
        content,
        nome=name,
        blob=archive.blob_relpath(sha, suffix),
        sha=sha,
        ricevuto_il=mtime,
        fonte_data=archive.FONTE_FILE,
        canale=archive.CANALE_CARTELLA,
        origine=origine,
        extra=extra,
        ctx=state.ctx,
        fingerprint=state.fp,
    )
    archive.store_blob(r.path, content, suffix=suffix, mtime=mtime.timestamp())
    archive.append_records(r.path, [rc.to_record()])
    state.known.add(sha)
    notes = [s.detail for s in signatures if s.valid is not True]
    return archive.ImportOutcome(origine, "importato", rc, messaggio="; ".join(notes))


# --------------------------------------------------------------------------- IMAP


def _parse_internaldate(meta: bytes) -> dt.datetime | None:
    m = _INTERNALDATE.search(meta)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTHS.get(mon.decode().lower())
    if month is None:
        return None
    offset = dt.timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == b"+" else -1)
    try:
        return dt.datetime(
            int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=dt.timezone(offset)
        )
    except ValueError:
        return None


def _fetch_items(data: Sequence[Any]) -> Iterator[tuple[bytes, bytes | None]]:
    """(metadata, literal) of each message of an imaplib FETCH response."""
    meta: bytes | None = None
    literal: bytes | None = None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            if meta is not None:
                yield meta, literal
            meta, literal = bytes(item[0]), bytes(item[1])
        elif isinstance(item, bytes):
            if meta is not None:  # the rest of the item after its literal
                yield meta + b" " + item, literal
                meta, literal = None, None
            elif item[:1].isdigit():
                yield item, None
    if meta is not None:
        yield meta, literal


def _uid_set(uids: Sequence[int]) -> str:
    """``1:5,7,9:10`` — consecutive UIDs as ranges (short commands for big folders)."""
    parts: list[str] = []
    start = prev = None
    for uid in sorted(uids):
        if start is None:
            start = prev = uid
        elif prev is not None and uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if start != prev else f"{start}")
            start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else f"{start}")
    return ",".join(parts)


def _batches(items: Sequence[tuple[int, int]], count: int, size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    total = 0
    for uid, length in items:
        if batch and (len(batch) >= count or total + length > size):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += length
    if batch:
        yield batch


def _check(typ: str, data: Sequence[Any], what: str) -> None:
    if typ != "OK":
        detail = data[0].decode("utf-8", "replace") if data and isinstance(data[0], bytes) else ""
        raise mail.MailError(f"La casella ha risposto con un errore a {what}: {detail}")


def import_imap(
    r: Raccolta,
    *,
    sposta: bool = False,
    env: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    waiting: Callable[[str], None] | None = None,
    batch: int = FETCH_BATCH,
) -> IngestResult:
    """Read the configured IMAP folder and record every new message (read-only by default).

    With ``sposta`` the messages recorded (now or before) are moved to the folder
    ``cartella_importati`` of the settings; nothing is ever deleted.
    """
    s = mail.load_settings(r, env)
    if sposta and not s.cartella_importati:
        raise mail.MailError(
            f"Per spostare i messaggi importati indicare cartella_importati "
            f"nella sezione [posta] di {r.config_path}."
        )
    result = IngestResult(cartella=s.cartella)
    conn = mail.connect_imap(s, env)
    try:
        typ, data = conn.select(mail.imap_mailbox(s.cartella), readonly=not sposta)
        _check(typ, data, f"apertura della cartella «{s.cartella}»")
        _, uv = conn.response("UIDVALIDITY")
        uidvalidity = int(uv[0]) if uv and uv[0] else 0
        typ, data = conn.uid("SEARCH", "ALL")
        _check(typ, data, "ricerca dei messaggi")
        uids = [int(x) for x in b" ".join(d for d in data if isinstance(d, bytes)).split()]
        result.totale = len(uids)
        where = {
            "server": f"{s.imap_host}:{s.imap_port}",
            "utente": s.utente,
            "cartella": s.cartella,
            "uidvalidity": uidvalidity,
        }
        with archive.locked(r.path, waiting=waiting):
            state = _State.from_ledger(r)

            def key(uid: int) -> tuple[Any, ...] | None:
                return _loc_key({**where, "uid": uid})

            new = [u for u in uids if key(u) not in state.locations]
            result.gia_visti = len(uids) - len(new)
            sizes = _sizes(conn, new)
            wanted: list[tuple[int, int]] = []
            for uid in new:
                size = sizes.get(uid, 0)
                if size > MAX_MESSAGE_BYTES:
                    result.note.append(
                        f"messaggio UID {uid}: {size // 2**20} MB, oltre il "
                        f"limite di {MAX_MESSAGE_BYTES // 2**20} MB: non "
                        "scaricato, da esaminare a mano"
                    )
                    continue
                wanted.append((uid, size))
            done = 0
            for chunk in _batches(wanted, batch, FETCH_BATCH_BYTES):
                typ, data = conn.uid("FETCH", _uid_set(chunk), "(UID INTERNALDATE BODY.PEEK[])")
                _check(typ, data, "lettura dei messaggi")
                for meta, raw in _fetch_items(data):
                    uid_m = _UID.search(meta)
                    if uid_m is None or raw is None:
                        continue
                    uid = int(uid_m.group(1))
                    idate = _parse_internaldate(meta)
                    loc = {**where, "uid": uid}
                    prov = Provenance(
                        f"imap://{s.utente}@{s.imap_host}/{s.cartella};"
                        f"UIDVALIDITY={uidvalidity};UID={uid}",
                        imap=loc,
                        internaldate=idate,
                        arrival=idate,
                        arrival_fonte=FONTE_IMAP,
                    )
                    result.messages.append(ingest_message(state, raw, prov))
                    done += 1
                    if progress is not None:
                        progress(done, len(wanted))
                del data
            result.recuperati = recover_originals(state)
            if sposta:
                recorded = [u for u in uids if key(u) in state.locations]
                result.spostati = _move(conn, recorded, s.cartella_importati, result.note)
    finally:
        with contextlib.suppress(Exception):
            conn.logout()
    return result


def _sizes(conn: imaplib.IMAP4, uids: Sequence[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for start in range(0, len(uids), 500):
        part = uids[start : start + 500]
        typ, data = conn.uid("FETCH", _uid_set(part), "(UID RFC822.SIZE)")
        _check(typ, data, "lettura delle dimensioni dei messaggi")
        for meta, _ in _fetch_items(data):
            uid_m, size_m = _UID.search(meta), _SIZE.search(meta)
            if uid_m and size_m:
                out[int(uid_m.group(1))] = int(size_m.group(1))
    return out


def _move(conn: imaplib.IMAP4, uids: Iterable[int], folder: str, notes: list[str]) -> int:
    """Move messages (UID MOVE; else copy, flag and expunge only those, with UIDPLUS)."""
    todo = sorted(uids)
    if not todo:
        return 0
    target = mail.imap_mailbox(folder)
    caps = {c.upper() for c in conn.capabilities}
    moved = 0
    for start in range(0, len(todo), 200):
        uid_set = _uid_set(todo[start : start + 200])
        if "MOVE" in caps:
            typ, data = conn.uid("MOVE", uid_set, target)
            if (
                typ != "OK"
                and b"TRYCREATE" in b" ".join(d for d in data if isinstance(d, bytes)).upper()
            ):
                conn.create(target)
                typ, data = conn.uid("MOVE", uid_set, target)
            _check(typ, data, f"spostamento nella cartella «{folder}»")
        else:
            typ, data = conn.uid("COPY", uid_set, target)
            if typ != "OK":
                conn.create(target)
                typ, data = conn.uid("COPY", uid_set, target)
            _check(typ, data, f"copia nella cartella «{folder}»")
            conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
            if "UIDPLUS" in caps:
                conn.uid("EXPUNGE", uid_set)
            else:
                notes.append(
                    "il server non permette di togliere solo i messaggi importati: "
                    "sono stati copiati e segnati come da cancellare, non rimossi"
                )
        moved += len(todo[start : start + 200])
    return moved
