"""Walking a MIME message safely: its parts, attached messages, headers and defects.

Helpers shared by the classifier (:mod:`.parse`) and the attachment collector
(:mod:`.attachments`). None of them raises for a malformed message: a header that cannot be
decoded is read raw, a part that cannot be typed is not a message, recursion is bounded.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import email.policy
import email.utils
import unicodedata
from datetime import UTC, datetime
from email.message import EmailMessage, Message

#: how deep attached messages are followed (message in message in message...)
MAX_DEPTH = 5

POLICY = email.policy.default
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_WORKBOOK_MIME = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": ".xlsm",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
}


#: where `content_type` keeps a part's content type (in the part's own attributes)
_CONTENT_TYPE = "_piano_abitativo_content_type"


def content_type(part: Message) -> str:
    """``part.get_content_type()``, parsed once per part: the modern policy parses the
    Content-Type header again on every call (a fifth of reading a PEC, where the walk
    over its parts asks ~50 times per message). Raises as that call does."""
    found = part.__dict__.get(_CONTENT_TYPE)
    if found is None:
        found = part.__dict__[_CONTENT_TYPE] = part.get_content_type()
    return str(found)


def part_name(part: Message | None, default: str) -> str:
    """Declared filename of a part, decoded and sanitised; ``default`` when none is declared."""
    if part is None:
        return default
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        return sanitise(str(name))
    try:
        ctype = content_type(part)
        disposition = part.get_content_disposition()
    except Exception:
        return default
    if ctype in _WORKBOOK_MIME:
        return "allegato" + _WORKBOOK_MIME[ctype]
    if disposition == "attachment" and not part.is_multipart() and default == "":
        return "allegato"
    return default


def sanitise(name: str) -> str:
    """Keep the last path component, printable characters, NFC accents."""
    name = name.encode("utf-8", "replace").decode("utf-8")
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name if name not in {"", ".", ".."} else "allegato"


def iter_children(msg: Message) -> list[Message]:
    if not msg.is_multipart() or is_message_part(msg):
        return []
    payload = msg.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def iter_leaves(msg: Message, *, include_messages: bool = True) -> list[Message]:
    """Leaf parts of a message in order, not descending into attached messages.

    An attached message (message/rfc822 or a ``.eml`` file) counts as a leaf.
    """
    found: list[Message] = []

    def visit(part: Message, level: int) -> None:
        if level > 50:
            return
        if is_message_part(part):
            if include_messages:
                found.append(part)
            return
        if part.is_multipart():
            for child in iter_children(part):
                visit(child, level + 1)
        else:
            found.append(part)

    if is_message_part(msg) or not msg.is_multipart():
        found.append(msg)
    else:
        for child in iter_children(msg):
            visit(child, 0)
    return found


def is_message_part(part: Message) -> bool:
    try:
        return content_type(part) in {"message/rfc822", "message/global"}
    except Exception:
        return False


def as_message(part: Message) -> EmailMessage | None:
    """The message carried by a message/rfc822 part or a ``.eml`` attachment, else None."""
    if is_message_part(part):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
            nested: EmailMessage = payload[0]
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte == "base64":  # not allowed by MIME, sent anyway by some clients
                return _reparse_base64(nested)
            return nested
        return None
    name = (part_name(part, "") or "").lower()
    if name.endswith(".eml"):
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and data.strip():
            return email.message_from_bytes(data, policy=POLICY)
    return None


def _reparse_base64(nested: EmailMessage) -> EmailMessage | None:
    text = nested.get_payload()
    if not isinstance(text, str):
        return nested
    try:
        data = base64.b64decode("".join(text.split()), validate=False)
    except (binascii.Error, ValueError):
        return nested
    return email.message_from_bytes(data, policy=POLICY)


def header(msg: Message | None, name: str) -> str | None:
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


def address(msg: Message | None, name: str) -> str | None:
    value = header(msg, name)
    if not value:
        return None
    for _, addr in email.utils.getaddresses([value]):
        if "@" in addr:
            return addr.strip().lower()
    return None


def header_date(msg: Message) -> datetime | None:
    value = header(msg, "Date")
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


def defect_notes(msg: Message) -> list[str]:
    """Italian notes for the structural defects the parser recorded (harmless ones skipped)."""
    found: list[str] = []

    def visit(part: Message, level: int) -> None:
        for defect in part.defects:
            note = _DEFECT_NOTES.get(type(defect).__name__)
            if note and note not in found:
                found.append(note)
        if level >= 50:
            return
        if is_message_part(part):
            nested = as_message(part)  # re-parsed when sent in base64
            if nested is not None:
                visit(nested, level + 1)
        else:
            for child in iter_children(part):
                visit(child, level + 1)

    with contextlib.suppress(Exception):  # defects only add notes
        visit(msg, 0)
    return found
