"""Builders of test mail: plain messages, PEC envelopes, receipts, anomalie, .p7m and .msg files.

Everything is made here, in memory, with real cryptography. The pieces the demo also needs
(certificates, CMS signatures, plain mail, daticert.xml, the PEC envelope) live in
:mod:`piano_abitativo.demo_posta`; this module gives them the defaults the tests use and adds
what only tests need: receipts, anomalie, forwarded PEC, ``.p7m`` in every encoding (BER
through the ``openssl`` command), zip archives and Outlook ``.msg`` files. Certificates are
self-signed test certificates with a CN and a ``serialNumber`` holding the codice fiscale.

The layout of a PEC follows ``shared/reference/posta.md``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import functools
import io
import math
import struct
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization

from piano_abitativo.simulation import gestore as dp
from piano_abitativo.simulation.gestore import Files, KeyKind, Signer, cms_sign, original_fields

CET = dt.timezone(dt.timedelta(hours=1))
CEST = dt.timezone(dt.timedelta(hours=2))
#: the certified time used when a test does not care
WHEN = dt.datetime(2024, 12, 5, 0, 2, 10, tzinfo=CET)

SENDER = "protocollo@pec.comune.crema.example"
CAPOFILA = "piano.abitativo@pec.comune.capofila.example"
IDENTIFICATIVO = "opec21010.20241205000210.12345.678.1.1@pec.gestore.example"
GESTORE = "Gestore PEC di prova S.p.A."
GESTORE_DOMAIN = "pec.gestore.example"
CF = "RSSMRA80A01H501U"


def workbook(tag: str = "Crema") -> bytes:
    """Bytes standing for a workbook (the parser never opens them): unique per tag."""
    return b"PK\x03\x04" + f"workbook {tag} ".encode() * 8 + bytes(range(256))


# --------------------------------------------------------------------------------------------
# certificates and .p7m


@functools.cache
def make_signer(
    cn: str = "Mario Rossi",
    codice_fiscale: str = CF,
    *,
    cf_prefix: str = "TINIT-",
    key: KeyKind = "rsa",
) -> Signer:
    """A self-signed certificate (CN, serialNumber "<prefix><CF>") and its private key."""
    return dp.make_signer(cn, codice_fiscale, cf_prefix=cf_prefix, key=key)


def _openssl_sign_ber(data: bytes, signer: Signer) -> bytes:
    """A CMS SignedData in BER with indefinite lengths (openssl cms -sign -stream)."""
    cert, private = signer
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / "k.pem").write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (folder / "in.bin").write_bytes(data)
        done = subprocess.run(
            [
                "openssl",
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-stream",
                "-outform",
                "DER",
                "-md",
                "sha256",
                "-signer",
                str(folder / "c.pem"),
                "-inkey",
                str(folder / "k.pem"),
                "-in",
                str(folder / "in.bin"),
            ],
            capture_output=True,
            check=True,
        )
    return done.stdout


P7mForm = Literal["der", "ber", "base64", "base64-lines", "pem"]


def make_p7m(
    data: bytes,
    *,
    form: P7mForm = "der",
    nested: int = 1,
    cn: str = "Mario Rossi",
    codice_fiscale: str = CF,
    cf_prefix: str = "TINIT-",
    key: KeyKind = "rsa",
    cosigners: Sequence[Signer] = (),
) -> bytes:
    """``data`` signed ``nested`` times (``.p7m.p7m`` for 2), in the given encoding.

    ``cosigners`` add more signers to each layer. "ber" uses openssl's streaming
    (indefinite-length) encoding; "base64" is one line, "base64-lines" has 64-char lines.
    """
    signer = make_signer(
        cn, codice_fiscale, cf_prefix=cf_prefix, key="ec" if key == "ec" else "rsa"
    )
    out = data
    for _ in range(nested):
        if form == "ber":
            out = _openssl_sign_ber(out, signer)
        else:
            out = cms_sign(out, [signer, *cosigners], key=key)
    if form == "base64":
        return base64.b64encode(out)
    if form == "base64-lines":
        return base64.encodebytes(out).replace(b"\n", b"\r\n")
    if form == "pem":
        return b"-----BEGIN PKCS7-----\n" + base64.encodebytes(out) + b"-----END PKCS7-----\n"
    return out


# --------------------------------------------------------------------------------------------
# plain mail


def make_plain(
    *,
    sender: str = SENDER,
    to: str = CAPOFILA,
    subject: str = "Piano abitativo 2026 - Comune di Crema",
    body: str = "Buongiorno, si trasmette in allegato la scheda compilata.",
    attachments: Files = (),
    date: dt.datetime = WHEN,
    message_id: str = "<scheda.crema.2026@comune.crema.example>",
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """An ordinary e-mail (CRLF line ends) with the given attachments."""
    return dp.make_plain(
        sender=sender,
        to=to,
        subject=subject,
        body=body,
        date=date,
        message_id=message_id,
        attachments=attachments,
        headers=headers,
    )


# --------------------------------------------------------------------------------------------
# PEC envelopes


def daticert(
    *,
    tipo: str = "posta-certificata",
    mittente: str = SENDER,
    destinatario: str = CAPOFILA,
    oggetto: str = "Piano abitativo",
    gestore: str = GESTORE,
    when: dt.datetime = WHEN,
    identificativo: str = IDENTIFICATIVO,
    msgid: str = "<x@example>",
    zona: str | None = None,
) -> bytes:
    """A daticert.xml as the gestori write it (zona from ``when`` unless given)."""
    return dp.daticert(
        tipo=tipo,
        mittente=mittente,
        destinatario=destinatario,
        oggetto=oggetto,
        gestore=gestore,
        when=when,
        identificativo=identificativo,
        msgid=msgid,
        zona=zona,
    )


def _gestore_signer() -> Signer:
    return make_signer("Gestore PEC di prova", "00000000000", cf_prefix="VATIT-")


def _signed(headers: Sequence[tuple[str, str]], inner: bytes, signer: Signer | None) -> bytes:
    """A multipart/signed message: ``inner`` (exact bytes) and a detached CMS over them."""
    return dp.signed_message(headers, inner, signer or _gestore_signer())


def make_pec_envelope(
    original: bytes,
    *,
    tipo: str = "posta-certificata",
    when: dt.datetime = WHEN,
    identificativo: str = IDENTIFICATIVO,
    gestore: str = GESTORE,
    gestore_domain: str = GESTORE_DOMAIN,
    to: str = CAPOFILA,
    reply_to: str | None = None,
    with_daticert: bool = True,
    zona: str | None = None,
    signer: Signer | None = None,
) -> bytes:
    """A busta di trasporto carrying ``original`` as postacert.eml (posta.md layout).

    ``tipo`` is written in daticert.xml only; the header stays X-Trasporto: posta-certificata.
    """
    return dp.make_pec_envelope(
        original,
        when=when,
        identificativo=identificativo,
        gestore=gestore,
        gestore_domain=gestore_domain,
        to=to,
        signer=signer or _gestore_signer(),
        tipo=tipo,
        reply_to=reply_to,
        with_daticert=with_daticert,
        zona=zona,
    )


RICEVUTA_SUBJECT = {
    "accettazione": "ACCETTAZIONE",
    "non-accettazione": "AVVISO DI NON ACCETTAZIONE",
    "presa-in-carico": "PRESA IN CARICO",
    "avvenuta-consegna": "CONSEGNA",
    "errore-consegna": "AVVISO DI MANCATA CONSEGNA",
    "mancata-consegna": "AVVISO DI MANCATA CONSEGNA",
    "preavviso-errore-consegna": "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
    "rilevazione-virus": "PROBLEMA DI SICUREZZA",
}


def make_ricevuta(
    tipo: str = "accettazione",
    *,
    original: bytes | None = None,
    oggetto: str = "Piano abitativo 2026 - richiesta dati",
    riferimento: str = "<richiesta.2026@capofila.example>",
    when: dt.datetime = WHEN,
    gestore_domain: str = GESTORE_DOMAIN,
    signer: Signer | None = None,
) -> bytes:
    """A PEC receipt (X-Ricevuta: ``tipo``); ``original`` is embedded as in a ricevuta completa."""
    text = f"Il giorno {when:%d/%m/%Y} alle ore {when:%H:%M:%S} ({when:%z}): {tipo}"
    parts = [
        dp.text_parts(text),
        dp.mime_leaf(
            "application/xml",
            daticert(
                tipo=tipo,
                mittente=CAPOFILA,
                destinatario=SENDER,
                oggetto=oggetto,
                when=when,
                msgid=riferimento,
            ),
            filename="daticert.xml",
            disposition="inline",
        ),
    ]
    if original is not None:
        parts.append(dp.message_part(original))
    inner = dp.multipart("mixed", parts, "----mixed-boundary-r77")
    headers = [
        ("Date", email.utils.format_datetime(when)),
        ("From", f"posta-certificata@{gestore_domain}"),
        ("To", CAPOFILA),
        ("Subject", f"{RICEVUTA_SUBJECT.get(tipo, tipo.upper())}: {oggetto}"),
        ("Message-ID", f"<ricevuta-{tipo}.{when:%Y%m%d%H%M%S}@{gestore_domain}>"),
        ("X-Ricevuta", tipo),
        ("X-Riferimento-Message-ID", riferimento),
        ("X-Verifica-Sicurezza", "OK"),
    ]
    return _signed(headers, inner, signer)


def make_anomalia(
    original: bytes | None = None,
    *,
    attachments: Files = (),
    sender: str = "ufficio@comune.crema.example",
    subject: str = "Piano abitativo 2026",
    when: dt.datetime = WHEN,
    gestore_domain: str = GESTORE_DOMAIN,
    signer: Signer | None = None,
) -> bytes:
    """A busta di anomalia (X-Trasporto: errore): ``original`` inside, or ``attachments`` flat."""
    message_id = "<anomalo@comune.crema.example>"
    if original is not None:
        sender, subject, message_id = original_fields(original)
    text = (
        f"Il giorno {when:%d/%m/%Y} alle ore {when:%H:%M:%S} ({when:%z}) è stato ricevuto "
        f'il messaggio "{subject}" inviato da "{sender}". Il messaggio non è certificato.'
    )
    parts = [dp.text_parts(text)]
    if original is not None:
        parts.append(dp.message_part(original))
    parts += [dp.mime_leaf(dp.mime_type(name), data, filename=name) for name, data in attachments]
    inner = dp.multipart("mixed", parts, "----mixed-boundary-an1")
    headers = [
        ("Date", email.utils.format_datetime(when)),
        ("From", f'"Per conto di: {sender}" <posta-certificata@{gestore_domain}>'),
        ("Reply-To", sender),
        ("To", CAPOFILA),
        ("Subject", f"ANOMALIA MESSAGGIO: {subject}"),
        ("Message-ID", f"<anomalia.{when:%Y%m%d%H%M%S}@{gestore_domain}>"),
        ("X-Riferimento-Message-ID", message_id),
        ("X-Trasporto", "errore"),
    ]
    return _signed(headers, inner, signer)


def make_forwarded(
    pec: bytes,
    *,
    forwarder: str = "segreteria@comune.crema.example",
    as_file: bool = False,
    filename: str = "POSTA CERTIFICATA Piano.eml",
    attachments: Files = (),
) -> bytes:
    """An ordinary message forwarding ``pec`` as an attachment.

    As a message/rfc822 part by default; ``as_file`` attaches it as an .eml file in base64.
    """
    body = dp.mime_leaf("text/plain; charset=UTF-8", b"Inoltro la PEC ricevuta.")
    if as_file:
        carried = dp.mime_leaf("application/octet-stream", pec, filename=filename)
    else:
        carried = (
            f"Content-Type: message/rfc822\r\n"
            f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n'
        ).encode() + pec
    parts = [body, carried, *(dp.mime_leaf(dp.mime_type(n), d, filename=n) for n, d in attachments)]
    head = (
        f"From: {forwarder}\r\nTo: {CAPOFILA}\r\nSubject: I: POSTA CERTIFICATA: inoltro\r\n"
        f"Date: {email.utils.format_datetime(WHEN)}\r\n"
        f"Message-ID: <inoltro.1@comune.crema.example>\r\nMIME-Version: 1.0\r\n"
    )
    return head.encode() + dp.multipart("mixed", parts, "----fwd-boundary-5d")


# --------------------------------------------------------------------------------------------
# zip


def make_zip(
    members: Files, *, encrypted: Iterable[str] = (), compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    """A zip archive; members named in ``encrypted`` get the "encrypted" flag bit set.
    (``compression=zipfile.ZIP_STORED`` for big incompressible members: deflating them
    only costs time.)

    The stdlib cannot encrypt: the flag is patched in the local and central headers, which is
    what a reader looks at before it could even ask for a password.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    wanted = {name.encode() for name in encrypted}
    if not wanted:
        return buffer.getvalue()
    raw = bytearray(buffer.getvalue())
    for signature, flag_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 26, 30),
        (b"PK\x01\x02", 8, 28, 46),
    ):
        start = 0
        while (pos := raw.find(signature, start)) >= 0:
            (name_len,) = struct.unpack_from("<H", raw, pos + name_len_at)
            if bytes(raw[pos + name_at : pos + name_at + name_len]) in wanted:
                (flags,) = struct.unpack_from("<H", raw, pos + flag_at)
                struct.pack_into("<H", raw, pos + flag_at, flags | 0x1)
            start = pos + 4
    return bytes(raw)


# --------------------------------------------------------------------------------------------
# Outlook .msg (MS-OXMSG in a Compound File Binary container)

MsgAttachment = tuple[str, bytes, str]  # filename, data, MIME type


def make_msg(
    *,
    transport_headers: str | None = None,
    subject: str = "Piano abitativo",
    body: str = "In allegato la scheda.",
    sender: str | None = None,
    attachments: Sequence[MsgAttachment] = (),
    embedded: Sequence[tuple[str, dict[str, object]]] = (),
    message_class: str = "IPM.Note",
) -> bytes:
    """A minimal valid .msg: properties, transport headers, attachments by value.

    ``embedded`` are (display name, storage) pairs, the storage made by :func:`msg_storage`:
    each is attached as an embedded message (attach method 5), as Outlook keeps a forwarded
    or attached e-mail.
    """
    root = msg_storage(
        transport_headers=transport_headers,
        subject=subject,
        body=body,
        sender=sender,
        attachments=attachments,
        embedded=embedded,
        message_class=message_class,
        top=True,
    )
    return make_cfb(root)


def msg_storage(
    *,
    transport_headers: str | None = None,
    subject: str = "",
    body: str = "",
    sender: str | None = None,
    attachments: Sequence[MsgAttachment] = (),
    embedded: Sequence[tuple[str, dict[str, object]]] = (),
    message_class: str = "IPM.Note",
    top: bool = False,
) -> dict[str, object]:
    """The storage tree of one message (root or embedded), for :func:`_cfb`."""
    tree: dict[str, object] = {}
    strings = {0x001A: message_class, 0x0037: subject, 0x1000: body}
    if transport_headers is not None:
        strings[0x007D] = transport_headers
    if sender is not None:
        strings[0x5D01] = sender
    entries = [_prop_string(tree, pid, value) for pid, value in strings.items()]
    count = 0
    for filename, data, mime in attachments:
        att: dict[str, object] = {}
        att_entries = [
            _prop_string(att, 0x3707, filename),
            _prop_string(att, 0x370E, mime),
            _prop_binary(att, 0x3701, data),
            _prop_int(0x3705, 1),
        ]
        att["__properties_version1.0"] = b"\0" * 8 + b"".join(att_entries)
        tree[f"__attach_version1.0_#{count:08X}"] = att
        count += 1
    for display, inner in embedded:
        att = {"__substg1.0_3701000D": inner}
        att_entries = [_prop_string(att, 0x3001, display), _prop_int(0x3705, 5)]
        att["__properties_version1.0"] = b"\0" * 8 + b"".join(att_entries)
        tree[f"__attach_version1.0_#{count:08X}"] = att
        count += 1
    header = struct.pack("<8xIIII", 0, count, 0, count)
    if top:
        header += b"\0" * 8
        tree["__nameid_version1.0"] = {
            "__substg1.0_00020102": b"",
            "__substg1.0_00030102": b"",
            "__substg1.0_00040102": b"",
        }
    tree["__properties_version1.0"] = header + b"".join(entries)
    return tree


def _prop_string(tree: dict[str, object], pid: int, value: str) -> bytes:
    data = value.encode("utf-16-le")
    tree[f"__substg1.0_{pid:04X}001F"] = data
    return struct.pack("<IIII", (pid << 16) | 0x001F, 6, len(data) + 2, 0)


def _prop_binary(tree: dict[str, object], pid: int, data: bytes) -> bytes:
    tree[f"__substg1.0_{pid:04X}0102"] = data
    return struct.pack("<IIII", (pid << 16) | 0x0102, 6, len(data), 0)


def _prop_int(pid: int, value: int) -> bytes:
    return struct.pack("<IIQ", (pid << 16) | 0x0003, 6, value)


_FREE, _END, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def make_cfb(tree: dict[str, object]) -> bytes:
    """Write a Compound File Binary (version 3, 512-byte sectors) holding ``tree``.

    ``tree`` maps names to bytes (streams) or dicts (storages). Streams under 4096 bytes live
    in the mini stream, as the format requires.
    """
    entries: list[dict[str, object]] = []

    def add(name: str, node: object, kind: int) -> int:
        index = len(entries)
        entry: dict[str, object] = {
            "name": name,
            "kind": kind,
            "left": _NOSTREAM,
            "right": _NOSTREAM,
            "child": _NOSTREAM,
            "data": b"",
        }
        entries.append(entry)
        if isinstance(node, dict):
            kids = [add(k, v, 1 if isinstance(v, dict) else 2) for k, v in node.items()]
            kids.sort(key=lambda i: (len(str(entries[i]["name"])), str(entries[i]["name"]).upper()))
            entry["child"] = _balanced(entries, kids)
        else:
            assert isinstance(node, bytes)
            entry["data"] = node
        return index

    add("Root Entry", tree, 5)

    mini = bytearray()
    minifat: list[int] = []
    big: list[tuple[int, bytes]] = []
    for index, entry in enumerate(entries):
        data = entry["data"]
        assert isinstance(data, bytes)
        if entry["kind"] != 2 or not data:
            entry["start"] = _END if entry["kind"] == 2 else 0
            continue
        if len(data) < 4096:
            first = len(minifat)
            count = math.ceil(len(data) / 64)
            minifat += [first + i + 1 for i in range(count - 1)] + [_END]
            mini += data + b"\0" * (count * 64 - len(data))
            entry["start"] = first
        else:
            big.append((index, data))

    dir_sectors = math.ceil(len(entries) * 128 / 512)
    minifat_sectors = math.ceil(len(minifat) * 4 / 512)
    mini_sectors = math.ceil(len(mini) / 512)
    big_sectors = sum(math.ceil(len(d) / 512) for _, d in big)
    others = dir_sectors + minifat_sectors + mini_sectors + big_sectors
    fat_sectors = 1
    while fat_sectors * 128 < others + fat_sectors:
        fat_sectors += 1
    assert fat_sectors <= 109, "test .msg too large for a header-only DIFAT"

    fat: list[int] = [_FATSECT] * fat_sectors
    sectors: list[bytes] = []

    def chain(data: bytes) -> int:
        start = fat_sectors + len(sectors)
        count = math.ceil(len(data) / 512)
        for i in range(count):
            sectors.append(data[i * 512 : (i + 1) * 512].ljust(512, b"\0"))
            fat.append(start + i + 1 if i < count - 1 else _END)
        return start

    dir_start = fat_sectors  # directory written first, its bytes filled in below
    sectors += [b""] * dir_sectors
    fat += [dir_start + i + 1 for i in range(dir_sectors - 1)] + [_END]
    minifat_start = chain(b"".join(struct.pack("<I", v) for v in minifat)) if minifat else _END
    entries[0]["start"] = chain(bytes(mini)) if mini else _END
    entries[0]["data"] = bytes(mini)
    for index, data in big:
        entries[index]["start"] = chain(data)

    directory = b"".join(_dir_entry(e) for e in entries)
    directory = directory.ljust(dir_sectors * 512, b"\0")
    for i in range(dir_sectors):
        sectors[i] = directory[i * 512 : (i + 1) * 512]
    # unused directory slots must say "no siblings, no child"
    fat += [_FREE] * (fat_sectors * 128 - len(fat))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    difat = [i for i in range(fat_sectors)] + [_FREE] * (109 - fat_sectors)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"\0" * 16,
        0x3E,
        3,
        0xFFFE,
        9,
        6,
        b"\0" * 6,
        0,
        fat_sectors,
        dir_start,
        0,
        4096,
        minifat_start,
        minifat_sectors,
        _END,
        0,
    )
    header += b"".join(struct.pack("<I", v) for v in difat)
    return header + fat_bytes + b"".join(sectors)


def _balanced(entries: list[dict[str, object]], kids: list[int]) -> int:
    if not kids:
        return _NOSTREAM
    mid = len(kids) // 2
    entries[kids[mid]]["left"] = _balanced(entries, kids[:mid])
    entries[kids[mid]]["right"] = _balanced(entries, kids[mid + 1 :])
    return kids[mid]


def _dir_entry(entry: dict[str, object]) -> bytes:
    name = str(entry["name"]).encode("utf-16-le")
    assert len(name) <= 62
    data = entry["data"]
    assert isinstance(data, bytes)
    kind = entry["kind"]
    assert isinstance(kind, int)
    size = len(data) if kind in (2, 5) else 0
    start = entry.get("start", 0)
    return struct.pack(
        "<64sHBBIII16sIQQIQ",
        name.ljust(64, b"\0"),
        len(name) + 2,
        kind,
        1,
        entry["left"],
        entry["right"],
        entry["child"],
        b"\0" * 16,
        0,
        0,
        0,
        start,
        size,
    )
