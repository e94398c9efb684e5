"""Outlook ``.msg`` files (MS-OXMSG, read with olefile) turned back into MIME.

The transport headers Outlook saved (``PR_TRANSPORT_MESSAGE_HEADERS``) are kept, so a PEC saved
as ``.msg`` is classified like the original; a signed message Outlook stored as an attachment
(``multipart/signed``) is rebuilt from its original bytes; without transport headers the
headers are made from the message's properties.
"""

from __future__ import annotations

import base64
import email.header
import io
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import olefile

from piano_abitativo.mail.mime import MAX_DEPTH, OLE_MAGIC


@dataclass
class _OleNode:
    streams: dict[str, bytes] = field(default_factory=dict)
    storages: dict[str, _OleNode] = field(default_factory=dict)


def msg_to_mime(data: bytes) -> tuple[bytes, bool]:
    """Rebuild a MIME message from a .msg; the flag tells whether transport headers were there."""
    if not data.startswith(OLE_MAGIC):
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
