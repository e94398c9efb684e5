"""Outlook ``.msg`` files (MS-OXMSG, read with olefile) turned back into MIME.

The transport headers Outlook saved (``PR_TRANSPORT_MESSAGE_HEADERS``) are kept, so a PEC saved
as ``.msg`` is classified like the original; a signed message Outlook stored as an attachment
(``multipart/signed``) is rebuilt from its original bytes; without transport headers the
headers are made from the message's properties.

8-bit string properties (PT_STRING8) are decoded with the message's code page
(``PR_MESSAGE_CODEPAGE``, else ``PR_INTERNET_CPID``); an attachment or recipient uses the code
page of its message, an embedded message its own (else its parent's).
"""

from __future__ import annotations

import base64
import email.header
import io
import re
import struct
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import olefile

from piano_abitativo.mail.mime import MAX_DEPTH, OLE_MAGIC

#: PR_MESSAGE_CODEPAGE and PR_INTERNET_CPID, PT_LONG (MS-OXPROPS)
_MESSAGE_CODEPAGE = 0x3FFD0003
_INTERNET_CPID = 0x3FDE0003
#: size of the header of ``__properties_version1.0`` before its 16-byte entries (MS-OXMSG 2.4)
_TOP_HEADER = 32
_EMBEDDED_HEADER = 24

#: Windows code page → Python codec. The ISO-2022 and HZ code pages are 7-bit wire forms only:
#: Outlook keeps the 8-bit properties of such a message in the Windows code page of the same
#: script (a Japanese message with PR_INTERNET_CPID 50220 stores Shift-JIS, i.e. cp932).
_CODECS: dict[int, str] = {
    437: "cp437",
    850: "cp850",
    852: "cp852",
    866: "cp866",
    874: "cp874",
    932: "cp932",
    936: "gbk",
    949: "cp949",
    950: "cp950",
    1250: "cp1250",
    1251: "cp1251",
    1252: "cp1252",
    1253: "cp1253",
    1254: "cp1254",
    1255: "cp1255",
    1256: "cp1256",
    1257: "cp1257",
    1258: "cp1258",
    10000: "mac_roman",
    20127: "cp1252",  # US-ASCII: cp1252 is a superset
    20866: "koi8_r",
    20932: "euc_jp",
    21866: "koi8_u",
    28591: "latin-1",
    28592: "iso8859_2",
    28593: "iso8859_3",
    28594: "iso8859_4",
    28595: "iso8859_5",
    28596: "iso8859_6",
    28597: "iso8859_7",
    28598: "iso8859_8",
    28599: "iso8859_9",
    28603: "iso8859_13",
    28605: "iso8859_15",
    38598: "iso8859_8",
    50220: "cp932",
    50221: "cp932",
    50222: "cp932",
    50225: "cp949",
    50227: "gbk",
    51932: "euc_jp",
    51936: "gbk",
    51949: "euc_kr",
    52936: "gbk",
    54936: "gb18030",
    65001: "utf-8",
}
_DEFAULT_CODEC = "cp1252"


@dataclass
class _OleNode:
    streams: dict[str, bytes] = field(default_factory=dict)
    storages: dict[str, _OleNode] = field(default_factory=dict)
    #: codec of the PT_STRING8 properties; None: no code page known (UTF-8 if valid, else cp1252)
    codec: str | None = None


def codec_for_codepage(codepage: int) -> str:
    """The Python codec of a Windows code page number; an unknown one gives cp1252."""
    return _CODECS.get(codepage, _DEFAULT_CODEC)


def _declared_codec(node: _OleNode, header: int) -> str | None:
    """The codec named by the message's code page properties, if any."""
    props = node.streams.get("__properties_version1.0", b"")
    found: dict[int, int] = {}
    for offset in range(header, len(props) - 15, 16):
        tag, _flags, value = struct.unpack_from("<IIi", props, offset)
        if tag in {_MESSAGE_CODEPAGE, _INTERNET_CPID}:
            found[tag] = value
    for tag in (_MESSAGE_CODEPAGE, _INTERNET_CPID):
        if tag in found:
            return codec_for_codepage(found[tag])
    return None


def _assign_codecs(node: _OleNode, *, header: int, inherited: str | None, depth: int) -> None:
    """Give a message node, its attachments and recipients the codec of its strings."""
    node.codec = _declared_codec(node, header) or inherited
    for name, child in node.storages.items():
        if name.startswith(("__attach_version1.0_#", "__recip_version1.0_#")):
            child.codec = node.codec
            embedded = child.storages.get("__substg1.0_3701000D")
            if embedded is not None and depth < MAX_DEPTH:
                _assign_codecs(
                    embedded, header=_EMBEDDED_HEADER, inherited=node.codec, depth=depth + 1
                )


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
    _assign_codecs(root, header=_TOP_HEADER, inherited=None, depth=0)
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
        text = _decode_string8(value, node.codec)
    text = text.rstrip("\x00")
    return text or None


def _decode_string8(value: bytes, codec: str | None) -> str:
    """A PT_STRING8 value in the message's code page; without one UTF-8 if valid, else cp1252."""
    for candidate in [codec] if codec else ["utf-8", _DEFAULT_CODEC]:
        try:
            return value.decode(candidate)
        except UnicodeDecodeError:
            continue
    return value.decode(codec or _DEFAULT_CODEC, "replace")


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
