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

Nothing here raises for bad input: a message that cannot be read becomes ORDINARIA with an
Italian note saying why.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import email.header
import email.policy
import email.utils
import io
import re
import unicodedata
import uuid
import zipfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, Message
from enum import StrEnum
from urllib.parse import quote
from xml.etree import ElementTree

import olefile

from piano_abitativo.mail import p7m
from piano_abitativo.mail.p7m import Signature

__all__ = [
    "MAX_ZIP_MEMBER",
    "MAX_ZIP_TOTAL",
    "RICEVUTA_TIPI",
    "WORKBOOK_EXTENSIONS",
    "Attachment",
    "MessageKind",
    "ParsedMessage",
    "parse_message",
    "parse_msg_file",
]

#: extensions (lower case) of the files we extract
WORKBOOK_EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods")
#: a zip member larger than this (uncompressed) is skipped
MAX_ZIP_MEMBER = 20 * 1024 * 1024
#: members of one zip are read until their total passes this
MAX_ZIP_TOTAL = 50 * 1024 * 1024
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
#: how deep attached messages are followed (message in message in message...)
MAX_DEPTH = 5

_POLICY = email.policy.default
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SUBJECT_PREFIX = re.compile(r"^\s*(POSTA CERTIFICATA|ANOMALIA MESSAGGIO)\s*:\s*", re.IGNORECASE)
_PER_CONTO_DI = re.compile(r"per conto di:?\s*(\S+@\S+)", re.IGNORECASE)
_ZONA = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_WORKBOOK_MIME = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": ".xlsm",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
}


class MessageKind(StrEnum):
    """What a message is, by its headers."""

    PEC = "pec"
    ANOMALIA = "anomalia"
    RICEVUTA = "ricevuta"
    ORDINARIA = "ordinaria"


@dataclass(frozen=True)
class Attachment:
    """A workbook found in a message.

    ``signatures`` holds one :class:`~piano_abitativo.p7m.Signature` per signer when the file
    came as a ``.p7m``, outermost layer first (a ``.p7m.p7m`` gives two); ``signature`` is the
    outermost one, for the common single-signature case.
    """

    #: as declared (RFC 2231/2047 decoded), without directories, ``.p7m`` removed
    filename: str
    #: the workbook bytes (the content inside a ``.p7m``)
    data: bytes
    #: where it came from, e.g. ``("postacert.eml", "risposta.zip", "Crema.xlsx.p7m")``
    path: tuple[str, ...]
    signatures: tuple[Signature, ...] = ()

    @property
    def signature(self) -> Signature | None:
        """The outermost signature, or None when the file was not signed."""
        return self.signatures[0] if self.signatures else None


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


def parse_message(raw: bytes) -> ParsedMessage:
    """Classify the raw bytes of one message and extract its workbooks; never raises."""
    if raw.startswith(_OLE_MAGIC):
        return parse_msg_file(raw)
    try:
        return _parse_raw(raw)
    except Exception as exc:  # the promise is: bad mail never stops an import
        return _unreadable(f"messaggio non leggibile ({type(exc).__name__})")


def parse_msg_file(data: bytes) -> ParsedMessage:
    """Classify an Outlook ``.msg`` file; never raises.

    The ``.msg`` is turned back into MIME and classified like any message: the transport headers
    saved by Outlook (``X-Trasporto``, ``X-Ricevuta``...) decide the kind. A PEC that Outlook kept
    as a signed message (``multipart/signed`` stored as an attachment) is rebuilt from its
    original bytes. Without transport headers there is no PEC evidence: ORDINARIA.
    """
    try:
        raw, had_headers = _msg_to_mime(data)
    except Exception:
        return _unreadable("il file non è un messaggio Outlook (.msg) leggibile")
    try:
        parsed = _parse_raw(raw)
    except Exception as exc:
        return _unreadable(f"messaggio Outlook (.msg) non leggibile ({type(exc).__name__})")
    if not had_headers:
        parsed = _with_notes(
            parsed, "messaggio Outlook (.msg) senza intestazioni di trasporto: nessuna prova di PEC"
        )
    return parsed


# --------------------------------------------------------------------------------------------
# classification


def _parse_raw(raw: bytes) -> ParsedMessage:
    if not raw.strip():
        return _unreadable("messaggio vuoto")
    msg = email.message_from_bytes(raw, policy=_POLICY)
    notes: list[str] = []
    if not any(True for _ in msg.raw_items()):
        notes.append("messaggio malformato: nessuna intestazione (non sembra un'e-mail)")
    notes.extend(_defect_notes(msg))
    trasporto = (_h(msg, "X-Trasporto") or "").lower()
    if trasporto == "posta-certificata":
        return _parse_busta(msg, notes=notes)
    if trasporto == "errore":
        return _parse_anomalia(msg, notes=notes)
    if trasporto:
        notes.append(
            f"intestazione X-Trasporto sconosciuta ({trasporto}): trattato come e-mail ordinaria"
        )
    ricevuta = (_h(msg, "X-Ricevuta") or "").lower()
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
    collector = _Collector(notes)
    collector.list_names(msg, skip=inner_part)
    if inner is None:
        notes.append("busta PEC senza postacert.eml: nessun allegato originale")
    else:
        collector.walk(inner, ("postacert.eml",), depth=1)
    original = inner if inner is not None else msg
    return ParsedMessage(
        kind=MessageKind.PEC,
        sender=dati.mittente
        or _address(msg, "Reply-To")
        or _address(original, "From")
        or _per_conto_di(msg),
        subject=dati.oggetto
        or (_h(inner, "Subject") if inner is not None else None)
        or _strip_prefix(_h(msg, "Subject")),
        message_id=_h(msg, "X-Riferimento-Message-ID")
        or dati.msgid
        or (_h(inner, "Message-ID") if inner is not None else None),
        certified_at=dati.data,
        pec_identificativo=dati.identificativo or _strip_brackets(_h(msg, "Message-ID")),
        pec_gestore=dati.gestore,
        ricevuta_tipo=None,
        date_header=_date(inner) if inner is not None else None,
        attachments=tuple(collector.attachments),
        other_attachments=tuple(collector.others),
        notes=tuple(notes),
    )


def _parse_anomalia(msg: EmailMessage, *, notes: list[str]) -> ParsedMessage:
    """A busta di anomalia (X-Trasporto: errore): not certified."""
    notes.append("messaggio di anomalia (X-Trasporto: errore): data e ora non certificate")
    inner_part, inner = _find_inner_message(msg)
    collector = _Collector(notes)
    if inner is None:
        collector.walk(msg, (), depth=0)
    else:
        collector.list_names(msg, skip=inner_part)
        collector.walk(inner, (_part_name(inner_part, "postacert.eml"),), depth=1)
    original = inner if inner is not None else msg
    return ParsedMessage(
        kind=MessageKind.ANOMALIA,
        sender=_address(msg, "Reply-To")
        or (_address(inner, "From") if inner is not None else None)
        or _per_conto_di(msg)
        or _address(msg, "From"),
        subject=(_h(inner, "Subject") if inner is not None else None)
        or _strip_prefix(_h(msg, "Subject")),
        message_id=_h(msg, "X-Riferimento-Message-ID") or _h(original, "Message-ID"),
        certified_at=None,
        pec_identificativo=None,
        pec_gestore=None,
        ricevuta_tipo=None,
        date_header=_date(original),
        attachments=tuple(collector.attachments),
        other_attachments=tuple(collector.others),
        notes=tuple(notes),
    )


def _parse_ricevuta(msg: EmailMessage, tipo: str, *, notes: list[str]) -> ParsedMessage:
    """A receipt (X-Ricevuta, or a daticert whose tipo is a receipt): nothing is extracted."""
    daticert = _find_daticert(msg)
    dati = _parse_daticert(daticert, notes) if daticert is not None else _Daticert()
    collector = _Collector(notes)
    collector.list_names(msg, skip=None)
    return ParsedMessage(
        kind=MessageKind.RICEVUTA,
        sender=_address(msg, "From"),
        subject=_h(msg, "Subject"),
        message_id=_h(msg, "X-Riferimento-Message-ID") or dati.msgid or _h(msg, "Message-ID"),
        certified_at=None,
        pec_identificativo=dati.identificativo,
        pec_gestore=dati.gestore,
        ricevuta_tipo=tipo,
        date_header=_date(msg),
        attachments=(),
        other_attachments=tuple(collector.others),
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
    collector = _Collector(notes)
    collector.walk(msg, (), depth=0)
    return ParsedMessage(
        kind=MessageKind.ORDINARIA,
        sender=_address(msg, "From"),
        subject=_h(msg, "Subject"),
        message_id=_h(msg, "Message-ID"),
        certified_at=None,
        pec_identificativo=None,
        pec_gestore=None,
        ricevuta_tipo=None,
        date_header=_date(msg),
        attachments=tuple(collector.attachments),
        other_attachments=tuple(collector.others),
        notes=tuple(notes),
    )


def _parse_forwarded(
    outer: EmailMessage, part: Message, busta: EmailMessage, *, notes: list[str]
) -> ParsedMessage:
    """An ordinary message carrying a PEC envelope: the PEC is what counts."""
    inner = _parse_busta(busta, notes=[])
    forwarder = _address(outer, "From") or "mittente sconosciuto"
    outer_names = _Collector([])
    outer_names.list_names(outer, skip=part)
    extra = [n for n in outer_names.others if _is_workbook_name(p7m.strip_p7m_suffix(n))]
    more_notes = [f"PEC inoltrata come allegato da {forwarder}"]
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
                a.filename, a.data, (_part_name(part, "inoltrato.eml"), *a.path), a.signatures
            )
            for a in inner.attachments
        ),
        other_attachments=(*outer_names.others, *inner.other_attachments),
        notes=(*notes, *more_notes, *inner.notes),
        forwarded=True,
    )


def _find_forwarded_busta(msg: Message, depth: int) -> tuple[Message, EmailMessage] | None:
    """The first attached message (at any depth) that is a PEC envelope."""
    if depth >= MAX_DEPTH:
        return None
    for part in _iter_children(msg):
        nested = _as_message(part)
        if nested is not None:
            if (_h(nested, "X-Trasporto") or "").lower() == "posta-certificata":
                return part, nested
            found = _find_forwarded_busta(nested, depth + 1)
            if found is not None:
                return found
        elif part.is_multipart():
            found = _find_forwarded_busta(part, depth)
            if found is not None:
                return found
    return None


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
    for part in _iter_leaves(msg):
        if (_part_name(part, "") or "").lower() == "daticert.xml":
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
# attachments


class _Collector:
    """Walks a message and sorts its files into workbooks and others."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.attachments: list[Attachment] = []
        self.others: list[str] = []

    def list_names(self, msg: Message, *, skip: Message | None) -> None:
        """Record the names of the files of an envelope without opening anything."""
        for part in _iter_leaves(msg, include_messages=True):
            if part is skip:
                continue
            name = _part_name(part, "")
            if name:
                self.others.append(name)

    def walk(self, msg: Message, path: tuple[str, ...], *, depth: int) -> None:
        for part in _iter_leaves(msg, include_messages=True):
            nested = _as_message(part)
            if nested is not None:
                name = _part_name(part, "messaggio.eml")
                if depth + 1 > MAX_DEPTH:
                    self.notes.append(f"{name}: troppi messaggi annidati, non aperto")
                    self.others.append(name)
                else:
                    self.walk(nested, (*path, name), depth=depth + 1)
                continue
            name = _part_name(part, "")
            if not name:
                continue  # the text of the message
            try:
                payload = part.get_payload(decode=True)
            except Exception:
                payload = None
            if not isinstance(payload, bytes):
                self.notes.append(f"{name}: allegato non leggibile")
                self.others.append(name)
                continue
            self.add_file(name, payload, path, in_zip=False)

    def add_file(self, name: str, data: bytes, path: tuple[str, ...], *, in_zip: bool) -> None:
        where = (*path, name)
        lower = name.lower()
        signatures: tuple[Signature, ...] = ()
        if lower.endswith(".p7m"):
            try:
                data, found = p7m.unwrap(data)
            except p7m.P7mError as exc:
                self.notes.append(f"{name}: file firmato non leggibile: {exc}")
                self.others.append(name)
                return
            signatures = tuple(found)
            for sig in signatures:
                if sig.valid is not True:
                    self.notes.append(f"{name}: {sig.detail}")
            signed_name, name = name, p7m.strip_p7m_suffix(name)
            if not _is_workbook_name(name) and (ext := _sniff_workbook(data)):
                self.notes.append(
                    f"{signed_name}: il contenuto firmato è un foglio di calcolo "
                    f"({ext}) anche se il nome non lo dice"
                )
                name += ext
            lower = name.lower()
        if _is_workbook_name(name):
            self.attachments.append(Attachment(name, data, where, signatures))
        elif lower.endswith(".zip") and not in_zip:
            self.add_zip(name, data, where)
        else:
            if lower == "winmail.dat":
                self.notes.append(
                    "winmail.dat (formato Outlook TNEF) non supportato: chiedere "
                    "di reinviare gli allegati come file normali"
                )
            self.others.append(where[-1])

    def add_zip(self, name: str, data: bytes, path: tuple[str, ...]) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
            self.notes.append(f"{name}: archivio zip non leggibile")
            self.others.append(name)
            return
        if any(m.flag_bits & 0x1 for m in members):
            self.notes.append(f"{name}: zip protetto da password ignorato")
            self.others.append(name)
            return
        total = 0
        for member in members:
            if member.is_dir():
                continue
            member_name = _sanitise(_zip_member_name(member))
            if member.filename.startswith("__MACOSX/") or member_name.startswith(("._", "~$")):
                continue  # macOS resource forks, Office lock files
            if member.file_size > MAX_ZIP_MEMBER:
                self.notes.append(
                    f"{name}/{member_name}: file troppo grande (oltre "
                    f"{MAX_ZIP_MEMBER // 2**20} MB), ignorato"
                )
                self.others.append(member_name)
                continue
            if total + member.file_size > MAX_ZIP_TOTAL:
                self.notes.append(
                    f"{name}: contenuto oltre {MAX_ZIP_TOTAL // 2**20} MB, "
                    f"{member_name} e i file successivi ignorati"
                )
                break
            try:
                with archive.open(member) as stream:
                    content = stream.read(MAX_ZIP_MEMBER + 1)
            except (
                zipfile.BadZipFile,
                NotImplementedError,
                RuntimeError,
                ValueError,
                EOFError,
                OSError,
                RecursionError,
                MemoryError,
            ) as exc:
                self.notes.append(f"{name}/{member_name}: non estraibile ({type(exc).__name__})")
                self.others.append(member_name)
                continue
            if len(content) > MAX_ZIP_MEMBER:
                self.notes.append(f"{name}/{member_name}: file troppo grande, ignorato")
                self.others.append(member_name)
                continue
            total += len(content)
            self.add_file(member_name, content, path, in_zip=True)


def _zip_member_name(member: zipfile.ZipInfo) -> str:
    """Names not flagged UTF-8 come from Windows in the OEM code page (cp850 in Italy)."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("cp850")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return member.filename


def _sniff_workbook(data: bytes) -> str | None:
    """The extension of a workbook recognised by its content (for names like ``scheda.p7m``)."""
    head = data[:4096]
    if data.startswith(b"PK\x03\x04"):
        if b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet" in head:
            return ".ods"
        if b"xl/workbook.xml" in data or b"xl/_rels/workbook.xml.rels" in data:
            return ".xlsm" if b"xl/vbaProject.bin" in data else ".xlsx"
    if data.startswith(_OLE_MAGIC) and "Workbook".encode("utf-16-le") in data:
        return ".xls"
    return None


def _is_workbook_name(name: str) -> bool:
    return name.lower().endswith(WORKBOOK_EXTENSIONS)


def _part_name(part: Message | None, default: str) -> str:
    """Declared filename of a part, decoded and sanitised; ``default`` when none is declared."""
    if part is None:
        return default
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        return _sanitise(str(name))
    try:
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
    except Exception:
        return default
    if ctype in _WORKBOOK_MIME:
        return "allegato" + _WORKBOOK_MIME[ctype]
    if disposition == "attachment" and not part.is_multipart() and default == "":
        return "allegato"
    return default


def _sanitise(name: str) -> str:
    """Keep the last path component, printable characters, NFC accents."""
    name = name.encode("utf-8", "replace").decode("utf-8")
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name if name not in {"", ".", ".."} else "allegato"


# --------------------------------------------------------------------------------------------
# MIME tree helpers


def _iter_children(msg: Message) -> list[Message]:
    if not msg.is_multipart() or _is_message_part(msg):
        return []
    payload = msg.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _iter_leaves(msg: Message, *, include_messages: bool = True) -> list[Message]:
    """Leaf parts of a message in order, not descending into attached messages.

    An attached message (message/rfc822 or a ``.eml`` file) counts as a leaf.
    """
    found: list[Message] = []

    def visit(part: Message, level: int) -> None:
        if level > 50:
            return
        if _is_message_part(part):
            if include_messages:
                found.append(part)
            return
        if part.is_multipart():
            for child in _iter_children(part):
                visit(child, level + 1)
        else:
            found.append(part)

    if _is_message_part(msg) or not msg.is_multipart():
        found.append(msg)
    else:
        for child in _iter_children(msg):
            visit(child, 0)
    return found


def _is_message_part(part: Message) -> bool:
    try:
        return part.get_content_type() in {"message/rfc822", "message/global"}
    except Exception:
        return False


def _as_message(part: Message) -> EmailMessage | None:
    """The message carried by a message/rfc822 part or a ``.eml`` attachment, else None."""
    if _is_message_part(part):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
            nested: EmailMessage = payload[0]
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte == "base64":  # not allowed by MIME, sent anyway by some clients
                return _reparse_base64(nested)
            return nested
        return None
    name = (_part_name(part, "") or "").lower()
    if name.endswith(".eml"):
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and data.strip():
            return email.message_from_bytes(data, policy=_POLICY)
    return None


def _reparse_base64(nested: EmailMessage) -> EmailMessage | None:
    text = nested.get_payload()
    if not isinstance(text, str):
        return nested
    try:
        data = base64.b64decode("".join(text.split()), validate=False)
    except (binascii.Error, ValueError):
        return nested
    return email.message_from_bytes(data, policy=_POLICY)


def _find_inner_message(msg: Message) -> tuple[Message | None, EmailMessage | None]:
    """The original message inside an envelope: postacert.eml, else the first attached one."""
    first: tuple[Message | None, EmailMessage | None] = (None, None)
    for part in _iter_leaves(msg):
        nested = _as_message(part)
        if nested is None:
            continue
        if _part_name(part, "").lower() == "postacert.eml":
            return part, nested
        if first[1] is None:
            first = (part, nested)
    return first


# --------------------------------------------------------------------------------------------
# headers


def _h(msg: Message | None, name: str) -> str | None:
    """A header value as one unfolded line, decoded; None when absent or empty."""
    if msg is None:
        return None
    try:
        value = msg.get(name)
        text = None if value is None else str(value)
    except Exception:
        text = None
        for key, raw in msg.raw_items():
            if key.lower() == name.lower():
                text = str(raw)
                break
    if text is None:
        return None
    text = " ".join(text.split())
    return text or None


def _address(msg: Message | None, name: str) -> str | None:
    value = _h(msg, name)
    if not value:
        return None
    for _, addr in email.utils.getaddresses([value]):
        if "@" in addr:
            return addr.strip().lower()
    return None


def _per_conto_di(msg: Message) -> str | None:
    found = _PER_CONTO_DI.search(_h(msg, "From") or "")
    return found.group(1).strip("<>\"'").lower() if found else None


def _strip_prefix(subject: str | None) -> str | None:
    if subject is None:
        return None
    return _SUBJECT_PREFIX.sub("", subject, count=1) or None


def _strip_brackets(value: str | None) -> str | None:
    return value.strip().strip("<>") or None if value else None


def _date(msg: Message) -> datetime | None:
    value = _h(msg, "Date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_DEFECT_NOTES = {
    "NoBoundaryInMultipartDefect": "messaggio malformato: struttura MIME non valida",
    "StartBoundaryNotFoundDefect": "messaggio malformato: struttura MIME non valida",
    "MultipartInvariantViolationDefect": "messaggio malformato: struttura MIME non valida",
    "CloseBoundaryNotFoundDefect": "messaggio malformato o troncato: una parte MIME non è chiusa",
    "MissingHeaderBodySeparatorDefect": "messaggio malformato: intestazioni non separate dal testo",
    "InvalidBase64PaddingDefect": "un allegato ha la codifica base64 danneggiata",
    "InvalidBase64CharactersDefect": "un allegato ha la codifica base64 danneggiata",
    "InvalidBase64LengthDefect": "un allegato ha la codifica base64 danneggiata",
}


def _defect_notes(msg: Message) -> list[str]:
    """Italian notes for the structural defects the parser recorded (harmless ones skipped)."""
    found: list[str] = []

    def visit(part: Message, level: int) -> None:
        for defect in part.defects:
            note = _DEFECT_NOTES.get(type(defect).__name__)
            if note and note not in found:
                found.append(note)
        if level >= 50:
            return
        if _is_message_part(part):
            nested = _as_message(part)  # re-parsed when sent in base64
            if nested is not None:
                visit(nested, level + 1)
        else:
            for child in _iter_children(part):
                visit(child, level + 1)

    with contextlib.suppress(Exception):  # defects only add notes
        visit(msg, 0)
    return found


def _unreadable(note: str) -> ParsedMessage:
    return ParsedMessage(
        MessageKind.ORDINARIA, None, None, None, None, None, None, None, None, (), (), (note,)
    )


def _with_notes(parsed: ParsedMessage, *notes: str) -> ParsedMessage:
    return replace(parsed, notes=(*parsed.notes, *notes))


# --------------------------------------------------------------------------------------------
# Outlook .msg (MS-OXMSG) → MIME


@dataclass
class _OleNode:
    streams: dict[str, bytes] = field(default_factory=dict)
    storages: dict[str, _OleNode] = field(default_factory=dict)


def _msg_to_mime(data: bytes) -> tuple[bytes, bool]:
    """Rebuild a MIME message from a .msg; the flag tells whether transport headers were there."""
    if not data.startswith(_OLE_MAGIC):
        raise ValueError("not an OLE file")
    root = _OleNode()
    with olefile.OleFileIO(io.BytesIO(data)) as ole:
        for entry in ole.listdir(streams=True, storages=False):
            node = root
            for part in entry[:-1]:
                node = node.storages.setdefault(part, _OleNode())
            node.streams[entry[-1]] = ole.openstream(entry).read()
    if "__properties_version1.0" not in root.streams and not any(
        name.startswith("__substg1.0_") for name in root.streams
    ):
        raise ValueError("not a .msg")
    raw = _msg_node_to_mime(root, depth=0)
    return raw, _msg_str(root, "007D") is not None


def _msg_str(node: _OleNode, prop: str) -> str | None:
    """A string property (PT_UNICODE 001F, else PT_STRING8 001E) of a .msg node."""
    value = node.streams.get(f"__substg1.0_{prop}001F")
    if value is not None:
        text = value.decode("utf-16-le", "replace")
    else:
        value = node.streams.get(f"__substg1.0_{prop}001E")
        if value is None:
            return None
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("cp1252", "replace")
    text = text.rstrip("\x00")
    return text or None


def _msg_node_to_mime(node: _OleNode, *, depth: int) -> bytes:
    headers = _msg_str(node, "007D")
    attachments = [
        node.storages[k] for k in sorted(node.storages) if k.startswith("__attach_version1.0_#")
    ]
    header_lines = _filter_headers(headers) if headers else _synth_headers(node)
    # a signed message (every PEC) is kept by Outlook as its original MIME entity, in one
    # attachment "smime.p7m" of type multipart/signed (message class IPM.Note.SMIME...)
    smime_class = (_msg_str(node, "001A") or "").lower().startswith("ipm.note.smime")
    for att in attachments:
        mime = (_msg_str(att, "370E") or "").lower()
        name = (_msg_str(att, "3707") or _msg_str(att, "3704") or "").lower()
        content = att.streams.get("__substg1.0_37010102")
        if (
            headers
            and content is not None
            and (
                mime.startswith("multipart/signed")
                or (smime_class and name == "smime.p7m" and content[:1] not in {b"0", b"M"})
            )
        ):
            if re.match(rb"\s*(content-|mime-version)", content[:200], re.IGNORECASE):
                return header_lines + b"MIME-Version: 1.0\r\n" + content.lstrip()
            return header_lines + _header_only(headers, "content-type") + b"\r\n" + content
    boundary = f"=_piano_abitativo_{depth}_{uuid.uuid4().hex}"
    out = [
        header_lines,
        b"MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode(),
    ]
    body = _msg_str(node, "1000") or ""
    out.append(_mime_part(boundary, "text/plain; charset=utf-8", None, body.encode()))
    for index, att in enumerate(attachments):
        name = (
            _msg_str(att, "3707")
            or _msg_str(att, "3704")
            or _msg_str(att, "3001")
            or f"allegato_{index + 1}"
        )
        embedded = att.storages.get("__substg1.0_3701000D")
        if embedded is not None and depth < MAX_DEPTH:
            if not name.lower().endswith((".eml", ".msg")):
                name += ".eml"
            inner = _msg_node_to_mime(embedded, depth=depth + 1)
            out.append(
                f"--{boundary}\r\nContent-Type: message/rfc822\r\n"
                f"Content-Disposition: attachment; filename*=utf-8''{quote(name)}"
                f"\r\n\r\n".encode()
                + inner
                + b"\r\n"
            )
            continue
        content = att.streams.get("__substg1.0_37010102")
        if content is None:
            continue
        mime = _msg_str(att, "370E") or "application/octet-stream"
        if not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime):
            mime = "application/octet-stream"
        out.append(_mime_part(boundary, mime, name, content))
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _mime_part(boundary: str, ctype: str, filename: str | None, content: bytes) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {ctype}", "Content-Transfer-Encoding: base64"]
    if filename is not None:
        lines.append(f"Content-Disposition: attachment; filename*=utf-8''{quote(filename)}")
    encoded = base64.encodebytes(content).decode("ascii").replace("\n", "\r\n")
    return ("\r\n".join(lines) + "\r\n\r\n" + encoded + "\r\n").encode("ascii")


def _header_fields(headers: str) -> list[tuple[str, str]]:
    """(name, full text with folding) of each field of a header block."""
    fields: list[tuple[str, str]] = []
    for line in headers.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if fields:
                break  # end of the header block
            continue
        if line[:1] in {" ", "\t"} and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + "\r\n" + line)
        elif ":" in line:
            fields.append((line.split(":", 1)[0].strip().lower(), line))
    return fields


def _filter_headers(headers: str) -> bytes:
    kept = [
        text
        for name, text in _header_fields(headers)
        if not name.startswith("content-") and name != "mime-version"
    ]
    return "".join(t + "\r\n" for t in kept).encode("utf-8", "replace")


def _header_only(headers: str, wanted: str) -> bytes:
    return "".join(
        t + "\r\n" for name, text in _header_fields(headers) if name == wanted for t in [text]
    ).encode("utf-8", "replace")


def _synth_headers(node: _OleNode) -> bytes:
    """Headers rebuilt from .msg properties when Outlook kept no transport headers."""
    lines: list[str] = []
    sender = _msg_str(node, "5D01") or _msg_str(node, "0C1F") or _msg_str(node, "0065")
    if sender and "@" in sender:
        lines.append(f"From: {sender}")
    subject = _msg_str(node, "0037")
    if subject:
        lines.append(f"Subject: {email.header.Header(subject, 'utf-8').encode()}")
    message_id = _msg_str(node, "1035")
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    return "".join(line.replace("\r", " ").replace("\n", " ") + "\r\n" for line in lines).encode(
        "ascii", "replace"
    )
