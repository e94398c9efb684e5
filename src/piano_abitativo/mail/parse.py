"""Classify one incoming message and extract its workbooks (pure: no network, no archive).

The input is the raw bytes of one message exactly as fetched (IMAP ``BODY.PEEK[]``, a saved
``.eml``) or an Outlook ``.msg`` file. The output is a :class:`ParsedMessage`: what kind of
message it is, the original sender, subject and Message-ID, the certified time of a PEC, and
the workbook attachments (``.xlsx .xlsm .xls .ods``) after opening ``.p7m`` signatures and
``.zip`` archives.

Classification follows the PEC technical rules (DM 2 Nov 2005) and looks at **headers only,
never at the subject**:

* ``X-Trasporto: posta-certificata`` → :attr:`MessageKind.PEC`: the attachments come from the
  ``postacert.eml`` part, the certified time from ``daticert.xml``;
* ``X-Trasporto: errore`` → :attr:`MessageKind.ANOMALIA`: not certified; attachments from the
  inner message when there is one, else from the message itself;
* ``X-Ricevuta`` at top level (no ``X-Trasporto``) → :attr:`MessageKind.RICEVUTA`, and so is a
  ``daticert.xml`` whose ``tipo`` is a receipt: nothing is extracted;
* anything else → :attr:`MessageKind.ORDINARIA`, unless it carries a PEC envelope as an attached
  message (a PEC forwarded from an ordinary box): then it is a PEC with ``forwarded=True``.

The gestore's S/MIME signature of the envelope is checked by :mod:`.pec_signature`
(:attr:`ParsedMessage.verifica_pec`); only an envelope received directly (not forwarded inside
ordinary mail) is checked, and only a valid signature lets its daticert time count.

Nothing here raises for bad input: a message that cannot be read becomes ORDINARIA with an
Italian note saying why.

The attachments are collected by :mod:`.attachments`, an Outlook ``.msg`` is turned into
MIME by :mod:`.msg`, the MIME tree is walked with :mod:`.mime`.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage, Message
from enum import StrEnum
from xml.etree import ElementTree

from piano_abitativo.mail import p7m
from piano_abitativo.mail import pec_signature as pec_sig
from piano_abitativo.mail.attachments import Attachment, Collector, is_workbook_name
from piano_abitativo.mail.mime import (
    MAX_DEPTH,
    OLE_MAGIC,
    POLICY,
    address,
    as_message,
    defect_notes,
    header,
    header_date,
    iter_children,
    iter_leaves,
    part_name,
)
from piano_abitativo.mail.msg import msg_to_mime

__all__ = [
    "RICEVUTA_TIPI",
    "MessageKind",
    "ParsedMessage",
    "parse_message",
    "parse_msg_file",
]

#: daticert ``tipo`` values that are receipts, not submissions (``mancata-consegna`` is lenient)
RICEVUTA_TIPI = frozenset(
    {
        "accettazione",
        "non-accettazione",
        "presa-in-carico",
        "avvenuta-consegna",
        "errore-consegna",
        "preavviso-errore-consegna",
        "rilevazione-virus",
        "mancata-consegna",
    }
)
_SUBJECT_PREFIX = re.compile(r"^\s*(POSTA CERTIFICATA|ANOMALIA MESSAGGIO)\s*:\s*", re.IGNORECASE)
_PER_CONTO_DI = re.compile(r"per conto di:?\s*(\S+@\S+)", re.IGNORECASE)
_ZONA = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


class MessageKind(StrEnum):
    """What a message is, by its headers."""

    PEC = "pec"
    ANOMALIA = "anomalia"
    RICEVUTA = "ricevuta"
    ORDINARIA = "ordinaria"


@dataclass(frozen=True)
class ParsedMessage:
    """The classification of one message and its workbooks."""

    kind: MessageKind
    #: the original sender, lower case (daticert mittente / Reply-To for a PEC; From otherwise)
    sender: str | None
    #: the original subject (without "POSTA CERTIFICATA: ")
    subject: str | None
    #: the original Message-ID (X-Riferimento-Message-ID for a PEC), angle brackets kept
    message_id: str | None
    #: certified time of sending from daticert.xml, aware; only for kind PEC
    certified_at: datetime | None
    pec_identificativo: str | None
    pec_gestore: str | None
    #: for RICEVUTA: accettazione, avvenuta-consegna, mancata-consegna...
    ricevuta_tipo: str | None
    #: the Date header of the original message, aware
    date_header: datetime | None
    attachments: tuple[Attachment, ...]
    #: names of the attachments that are not workbooks (pdf, smime.p7s, daticert.xml...)
    other_attachments: tuple[str, ...]
    #: Italian remarks for the clerk
    notes: tuple[str, ...]
    #: a PEC envelope found inside an ordinary message
    forwarded: bool = False
    #: the gestore's signature of the envelope (:mod:`.pec_signature` level: verificata,
    #: gestore_non_verificato, non_valida, assente) for a PEC, receipt or anomalia received
    #: directly; None for ordinary mail and for a PEC forwarded inside ordinary mail
    verifica_pec: str | None = None
    #: the Italian note of the cap (:mod:`.attachments`) that kept the message closed: too
    #: many workbooks, too much to extract, zips or messages nested too deep. Then
    #: ``attachments`` is empty and the message is to be looked at by hand.
    limite: str | None = None


def parse_message(raw: bytes, *, trusted: pec_sig.Trust | None = None) -> ParsedMessage:
    """Classify the raw bytes of one message and extract its workbooks; never raises.

    ``trusted``: the certificates of the gestori PEC (``[posta] gestori_pec``), None when not
    configured; they decide :attr:`ParsedMessage.verifica_pec`."""
    if raw.startswith(OLE_MAGIC):
        return parse_msg_file(raw, trusted=trusted)
    try:
        return _parse_raw(raw, trusted)
    except Exception as exc:  # the promise is: bad mail never stops an import
        return _unreadable(f"messaggio non leggibile ({type(exc).__name__})")


def parse_msg_file(data: bytes, *, trusted: pec_sig.Trust | None = None) -> ParsedMessage:
    """Classify an Outlook ``.msg`` file; never raises.

    The ``.msg`` is turned back into MIME and classified like any message: the transport headers
    saved by Outlook (``X-Trasporto``, ``X-Ricevuta``...) decide the kind. A PEC that Outlook kept
    as a signed message (``multipart/signed`` stored as an attachment) is rebuilt from its
    original bytes. Without transport headers there is no PEC evidence: ORDINARIA.
    """
    try:
        raw, had_headers = msg_to_mime(data)
    except Exception:
        return _unreadable("il file non è un messaggio Outlook (.msg) leggibile")
    try:
        parsed = _parse_raw(raw, trusted)
    except Exception as exc:
        return _unreadable(f"messaggio Outlook (.msg) non leggibile ({type(exc).__name__})")
    if not had_headers:
        parsed = _with_notes(
            parsed, "messaggio Outlook (.msg) senza intestazioni di trasporto: nessuna prova di PEC"
        )
    return parsed


# --------------------------------------------------------------------------------------------
# classification


def _parse_raw(raw: bytes, trusted: pec_sig.Trust | None) -> ParsedMessage:
    if not raw.strip():
        return _unreadable("messaggio vuoto")
    msg = email.message_from_bytes(raw, policy=POLICY)
    parsed = _classify(msg)
    if parsed.kind is MessageKind.ORDINARIA or parsed.forwarded:
        return parsed
    # only the envelope received directly can certify: check the gestore's signature
    daticert = _find_daticert(msg)
    check = pec_sig.verify_envelope(raw, trusted, daticert=daticert, when=parsed.certified_at)
    notes = parsed.notes
    if not check.certifies:
        notes = (*notes, check.detail)
        if parsed.certified_at is not None:
            notes = (
                *notes,
                f"data e ora indicate in daticert.xml ({parsed.certified_at:%d/%m/%Y %H:%M:%S}) "
                "non certificate: la firma del gestore PEC manca o non è valida",
            )
    return replace(parsed, verifica_pec=check.level, notes=notes)


def _classify(msg: EmailMessage) -> ParsedMessage:
    notes: list[str] = []
    if not any(True for _ in msg.raw_items()):
        notes.append("messaggio malformato: nessuna intestazione (non sembra un'e-mail)")
    notes.extend(defect_notes(msg))
    trasporto = (header(msg, "X-Trasporto") or "").lower()
    if trasporto == "posta-certificata":
        return _parse_busta(msg, notes=notes)
    if trasporto == "errore":
        return _parse_anomalia(msg, notes=notes)
    if trasporto:
        notes.append(
            f"intestazione X-Trasporto sconosciuta ({trasporto}): trattato come e-mail ordinaria"
        )
    ricevuta = (header(msg, "X-Ricevuta") or "").lower()
    if ricevuta and not trasporto:
        return _parse_ricevuta(msg, ricevuta, notes=notes)
    return _parse_ordinaria(msg, notes=notes)


def _parse_busta(msg: EmailMessage, *, notes: list[str]) -> ParsedMessage:
    """A PEC envelope (X-Trasporto: posta-certificata)."""
    daticert = _find_daticert(msg)
    dati = _parse_daticert(daticert, notes) if daticert is not None else _Daticert()
    if daticert is None:
        notes.append("busta PEC senza daticert.xml: data e ora di invio non certificate")
    if dati.tipo and dati.tipo != "posta-certificata":
        return _parse_ricevuta(msg, dati.tipo, notes=notes)
    inner_part, inner = _find_inner_message(msg)
    collector = Collector(notes)
    collector.list_names(msg, skip=inner_part)
    if inner is None:
        notes.append("busta PEC senza postacert.eml: nessun allegato originale")
    else:
        collector.walk(inner, ("postacert.eml",), depth=1)
    original = inner if inner is not None else msg
    return ParsedMessage(
        kind=MessageKind.PEC,
        sender=dati.mittente
        or address(msg, "Reply-To")
        or address(original, "From")
        or _per_conto_di(msg),
        subject=dati.oggetto
        or (header(inner, "Subject") if inner is not None else None)
        or _strip_prefix(header(msg, "Subject")),
        message_id=header(msg, "X-Riferimento-Message-ID")
        or dati.msgid
        or (header(inner, "Message-ID") if inner is not None else None),
        certified_at=dati.data,
        pec_identificativo=dati.identificativo or _strip_brackets(header(msg, "Message-ID")),
        pec_gestore=dati.gestore,
        ricevuta_tipo=None,
        date_header=header_date(inner) if inner is not None else None,
        attachments=tuple(collector.attachments),
        other_attachments=collector.other_names(),
        limite=collector.limit,
        notes=tuple(notes),
    )


def _parse_anomalia(msg: EmailMessage, *, notes: list[str]) -> ParsedMessage:
    """A busta di anomalia (X-Trasporto: errore): not certified."""
    notes.append("messaggio di anomalia (X-Trasporto: errore): data e ora non certificate")
    inner_part, inner = _find_inner_message(msg)
    collector = Collector(notes)
    if inner is None:
        collector.walk(msg, (), depth=0)
    else:
        collector.list_names(msg, skip=inner_part)
        collector.walk(inner, (part_name(inner_part, "postacert.eml"),), depth=1)
    original = inner if inner is not None else msg
    return ParsedMessage(
        kind=MessageKind.ANOMALIA,
        sender=address(msg, "Reply-To")
        or (address(inner, "From") if inner is not None else None)
        or _per_conto_di(msg)
        or address(msg, "From"),
        subject=(header(inner, "Subject") if inner is not None else None)
        or _strip_prefix(header(msg, "Subject")),
        message_id=header(msg, "X-Riferimento-Message-ID") or header(original, "Message-ID"),
        certified_at=None,
        pec_identificativo=None,
        pec_gestore=None,
        ricevuta_tipo=None,
        date_header=header_date(original),
        attachments=tuple(collector.attachments),
        other_attachments=collector.other_names(),
        limite=collector.limit,
        notes=tuple(notes),
    )


def _parse_ricevuta(msg: EmailMessage, tipo: str, *, notes: list[str]) -> ParsedMessage:
    """A receipt (X-Ricevuta, or a daticert whose tipo is a receipt): nothing is extracted."""
    daticert = _find_daticert(msg)
    dati = _parse_daticert(daticert, notes) if daticert is not None else _Daticert()
    collector = Collector(notes)
    collector.list_names(msg, skip=None)
    return ParsedMessage(
        kind=MessageKind.RICEVUTA,
        sender=address(msg, "From"),
        subject=header(msg, "Subject"),
        message_id=header(msg, "X-Riferimento-Message-ID")
        or dati.msgid
        or header(msg, "Message-ID"),
        certified_at=None,
        pec_identificativo=dati.identificativo,
        pec_gestore=dati.gestore,
        ricevuta_tipo=tipo,
        date_header=header_date(msg),
        attachments=(),
        other_attachments=collector.other_names(),
        limite=collector.limit,
        notes=tuple(notes),
    )


def _parse_ordinaria(msg: EmailMessage, *, notes: list[str]) -> ParsedMessage:
    daticert = _find_daticert(msg)
    if daticert is not None:
        dati = _parse_daticert(daticert, [])
        if dati.tipo in RICEVUTA_TIPI:
            return _parse_ricevuta(msg, dati.tipo, notes=notes)
    forwarded = _find_forwarded_busta(msg, depth=0)
    if forwarded is not None:
        return _parse_forwarded(msg, *forwarded, notes=notes)
    collector = Collector(notes)
    collector.walk(msg, (), depth=0)
    return ParsedMessage(
        kind=MessageKind.ORDINARIA,
        sender=address(msg, "From"),
        subject=header(msg, "Subject"),
        message_id=header(msg, "Message-ID"),
        certified_at=None,
        pec_identificativo=None,
        pec_gestore=None,
        ricevuta_tipo=None,
        date_header=header_date(msg),
        attachments=tuple(collector.attachments),
        other_attachments=collector.other_names(),
        limite=collector.limit,
        notes=tuple(notes),
    )


def _parse_forwarded(
    outer: EmailMessage, part: Message, busta: EmailMessage, *, notes: list[str]
) -> ParsedMessage:
    """An ordinary message carrying a PEC envelope: the PEC is what counts."""
    inner = _parse_busta(busta, notes=[])
    forwarder = address(outer, "From") or "mittente sconosciuto"
    outer_names = Collector([])
    outer_names.list_names(outer, skip=part)
    extra = [n for n in outer_names.others if is_workbook_name(p7m.strip_p7m_suffix(n))]
    more_notes = [
        f"PEC inoltrata come allegato da {forwarder}",
        "PEC inoltrata: data e ora di invio non certificate (certifica solo la busta PEC "
        "ricevuta direttamente)",
    ]
    more_notes += [
        f"{n}: allegato fuori dalla PEC inoltrata, ignorato (non certificato)" for n in extra
    ]
    return ParsedMessage(
        kind=inner.kind,
        sender=inner.sender,
        subject=inner.subject,
        message_id=inner.message_id,
        certified_at=inner.certified_at,
        pec_identificativo=inner.pec_identificativo,
        pec_gestore=inner.pec_gestore,
        ricevuta_tipo=inner.ricevuta_tipo,
        date_header=inner.date_header,
        attachments=tuple(
            Attachment(
                a.filename, a.data, (part_name(part, "inoltrato.eml"), *a.path), a.signatures
            )
            for a in inner.attachments
        ),
        other_attachments=(*outer_names.other_names(), *inner.other_attachments),
        notes=(*notes, *more_notes, *inner.notes),
        forwarded=True,
        limite=inner.limite,
    )


def _find_forwarded_busta(msg: Message, depth: int) -> tuple[Message, EmailMessage] | None:
    """The first attached message (at any depth) that is a PEC envelope."""
    if depth >= MAX_DEPTH:
        return None
    for part in iter_children(msg):
        nested = as_message(part)
        if nested is not None:
            if (header(nested, "X-Trasporto") or "").lower() == "posta-certificata":
                return part, nested
            found = _find_forwarded_busta(nested, depth + 1)
            if found is not None:
                return found
        elif part.is_multipart():
            found = _find_forwarded_busta(part, depth)
            if found is not None:
                return found
    return None


def _find_inner_message(msg: Message) -> tuple[Message | None, EmailMessage | None]:
    """The original message inside an envelope: postacert.eml, else the first attached one."""
    first: tuple[Message | None, EmailMessage | None] = (None, None)
    for part in iter_leaves(msg):
        nested = as_message(part)
        if nested is None:
            continue
        if part_name(part, "").lower() == "postacert.eml":
            return part, nested
        if first[1] is None:
            first = (part, nested)
    return first


# --------------------------------------------------------------------------------------------
# daticert.xml


@dataclass
class _Daticert:
    tipo: str | None = None
    mittente: str | None = None
    oggetto: str | None = None
    gestore: str | None = None
    data: datetime | None = None
    identificativo: str | None = None
    msgid: str | None = None


def _find_daticert(msg: Message) -> bytes | None:
    """Bytes of the daticert.xml of this envelope (not of attached messages)."""
    for part in iter_leaves(msg):
        if (part_name(part, "") or "").lower() == "daticert.xml":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


def _parse_daticert(data: bytes, notes: list[str]) -> _Daticert:
    if b"<!ENTITY" in data.upper():
        notes.append("daticert.xml con entità XML: ignorato")
        return _Daticert()
    try:
        # DTD-free after the check above; ElementTree never fetches the external DTD
        root = ElementTree.fromstring(data)  # noqa: S314
    except ElementTree.ParseError:
        notes.append("daticert.xml non leggibile: data e ora non certificate")
        return _Daticert()
    dati = _Daticert(
        tipo=(root.get("tipo") or "").strip().lower() or None,
        mittente=_xml_text(root, "intestazione/mittente"),
        oggetto=_xml_text(root, "intestazione/oggetto"),
        gestore=_xml_text(root, "dati/gestore-emittente"),
        identificativo=_xml_text(root, "dati/identificativo"),
        msgid=_xml_text(root, "dati/msgid"),
    )
    if dati.mittente:
        dati.mittente = dati.mittente.lower()
    data_el = root.find("dati/data")
    if data_el is not None:
        dati.data = _daticert_time(data_el, notes)
    return dati


def _xml_text(root: ElementTree.Element, path: str) -> str | None:
    el = root.find(path)
    text = " ".join((el.text or "").split()) if el is not None else ""
    return text or None


def _daticert_time(el: ElementTree.Element, notes: list[str]) -> datetime | None:
    giorno = (el.findtext("giorno") or "").strip()
    ora = (el.findtext("ora") or "").strip()
    zona = _ZONA.match((el.get("zona") or "").strip())
    try:
        naive = datetime.strptime(f"{giorno} {ora}", "%d/%m/%Y %H:%M:%S")  # noqa: DTZ007
    except ValueError:
        notes.append(f"daticert.xml: data non leggibile ({giorno} {ora})")
        return None
    if zona is None:
        notes.append("daticert.xml: data senza fuso orario (zona): ora certificata non usata")
        return None
    sign = 1 if zona.group(1) == "+" else -1
    offset = timedelta(hours=int(zona.group(2)), minutes=int(zona.group(3)))
    try:
        return naive.replace(tzinfo=timezone(sign * offset))
    except ValueError:
        notes.append(f"daticert.xml: fuso orario non valido ({zona.group(0)})")
        return None


# --------------------------------------------------------------------------------------------
# headers of an envelope


def _per_conto_di(msg: Message) -> str | None:
    found = _PER_CONTO_DI.search(header(msg, "From") or "")
    return found.group(1).strip("<>\"'").lower() if found else None


def _strip_prefix(subject: str | None) -> str | None:
    if subject is None:
        return None
    return _SUBJECT_PREFIX.sub("", subject, count=1) or None


def _strip_brackets(value: str | None) -> str | None:
    return value.strip().strip("<>") or None if value else None


def _unreadable(note: str) -> ParsedMessage:
    return ParsedMessage(
        MessageKind.ORDINARIA, None, None, None, None, None, None, None, None, (), (), (note,)
    )


def _with_notes(parsed: ParsedMessage, *notes: str) -> ParsedMessage:
    return replace(parsed, notes=(*parsed.notes, *notes))
