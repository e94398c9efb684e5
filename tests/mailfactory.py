"""Builders of test mail: plain messages, PEC envelopes, receipts, anomalie, .p7m and .msg files.

Everything is made here, in memory, with real cryptography: the PEC envelope is a
``multipart/signed`` whose ``smime.p7s`` is a CMS signature over the exact bytes of the signed
part, and ``.p7m`` files are CMS SignedData with the content embedded (made by ``cryptography``,
or by the ``openssl`` command for BER indefinite-length encoding). Certificates are self-signed
test certificates with a CN and a ``serialNumber`` holding the codice fiscale.

The layout of a PEC follows ``shared/reference/posta.md``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.header
import email.policy
import email.utils
import functools
import io
import math
import struct
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

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

KeyKind = Literal["rsa", "rsa-pss", "ec"]
Signer = tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
Files = Sequence[tuple[str, bytes]]

_SMTP = email.policy.SMTP


def workbook(tag: str = "Crema") -> bytes:
    """Bytes standing for a workbook (the parser never opens them): unique per tag."""
    return b"PK\x03\x04" + f"workbook {tag} ".encode() * 8 + bytes(range(256))


# --------------------------------------------------------------------------------------------
# certificates and .p7m


@functools.cache
def make_signer(cn: str = "Mario Rossi", codice_fiscale: str = CF, *,
                cf_prefix: str = "TINIT-", key: KeyKind = "rsa") -> Signer:
    """A self-signed certificate (CN, serialNumber "<prefix><CF>") and its private key."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key == "ec":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, f"{cf_prefix}{codice_fiscale}"),
    ])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(private, hashes.SHA256()))
    return cert, private


def _cms_sign(data: bytes, signers: Sequence[Signer], *, key: KeyKind = "rsa",
              detached: bool = False) -> bytes:
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data)
    for cert, private in signers:
        if key == "rsa-pss":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                              salt_length=padding.PSS.DIGEST_LENGTH)
            builder = builder.add_signer(cert, private, hashes.SHA256(), rsa_padding=pss)
        else:
            builder = builder.add_signer(cert, private, hashes.SHA256())
    options = [pkcs7.PKCS7Options.Binary]
    if detached:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    return builder.sign(serialization.Encoding.DER, options)


def _openssl_sign_ber(data: bytes, signer: Signer) -> bytes:
    """A CMS SignedData in BER with indefinite lengths (openssl cms -sign -stream)."""
    cert, private = signer
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / "k.pem").write_bytes(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (folder / "in.bin").write_bytes(data)
        done = subprocess.run(
            ["openssl", "cms", "-sign", "-binary", "-nodetach", "-stream", "-outform", "DER",
             "-md", "sha256", "-signer", str(folder / "c.pem"), "-inkey", str(folder / "k.pem"),
             "-in", str(folder / "in.bin")],
            capture_output=True, check=True)
    return done.stdout


P7mForm = Literal["der", "ber", "base64", "base64-lines", "pem"]


def make_p7m(data: bytes, *, form: P7mForm = "der", nested: int = 1,
             cn: str = "Mario Rossi", codice_fiscale: str = CF, cf_prefix: str = "TINIT-",
             key: KeyKind = "rsa", cosigners: Sequence[Signer] = ()) -> bytes:
    """``data`` signed ``nested`` times (``.p7m.p7m`` for 2), in the given encoding.

    ``cosigners`` add more signers to each layer. "ber" uses openssl's streaming
    (indefinite-length) encoding; "base64" is one line, "base64-lines" has 64-char lines.
    """
    signer = make_signer(cn, codice_fiscale, cf_prefix=cf_prefix,
                         key="ec" if key == "ec" else "rsa")
    out = data
    for _ in range(nested):
        if form == "ber":
            out = _openssl_sign_ber(out, signer)
        else:
            out = _cms_sign(out, [signer, *cosigners], key=key)
    if form == "base64":
        return base64.b64encode(out)
    if form == "base64-lines":
        return base64.encodebytes(out).replace(b"\n", b"\r\n")
    if form == "pem":
        return b"-----BEGIN PKCS7-----\n" + base64.encodebytes(out) + b"-----END PKCS7-----\n"
    return out


# --------------------------------------------------------------------------------------------
# plain mail


def make_plain(*, sender: str = SENDER, to: str = CAPOFILA,
               subject: str = "Piano abitativo 2026 - Comune di Crema",
               body: str = "Buongiorno, si trasmette in allegato la scheda compilata.",
               attachments: Files = (), date: dt.datetime = WHEN,
               message_id: str = "<scheda.crema.2026@comune.crema.example>",
               headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """An ordinary e-mail (CRLF line ends) with the given attachments."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(date)
    msg["Message-ID"] = message_id
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    for filename, data in attachments:
        maintype, subtype = _mime_type(filename).split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=_SMTP)


def _mime_type(filename: str) -> str:
    lower = filename.lower()
    for ext, mime in ((".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml"
                                ".sheet"),
                      (".pdf", "application/pdf"), (".zip", "application/zip"),
                      (".p7m", "application/pkcs7-mime"), (".ods",
                       "application/vnd.oasis.opendocument.spreadsheet")):
        if lower.endswith(ext):
            return mime
    return "application/octet-stream"


# --------------------------------------------------------------------------------------------
# PEC envelopes


def daticert(*, tipo: str = "posta-certificata", mittente: str = SENDER,
             destinatario: str = CAPOFILA, oggetto: str = "Piano abitativo",
             gestore: str = GESTORE, when: dt.datetime = WHEN,
             identificativo: str = IDENTIFICATIVO, msgid: str = "<x@example>",
             zona: str | None = None) -> bytes:
    """A daticert.xml as the gestori write it (zona from ``when`` unless given)."""
    offset = when.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    zona = zona if zona is not None else f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE postacert SYSTEM "Postacert.dtd">
<postacert tipo="{tipo}" errore="nessuno">
  <intestazione>
    <mittente>{escape(mittente)}</mittente>
    <destinatari tipo="certificato">{escape(destinatario)}</destinatari>
    <risposte>{escape(mittente)}</risposte>
    <oggetto>{escape(oggetto)}</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>{escape(gestore)}</gestore-emittente>
    <data zona="{zona}">
      <giorno>{when:%d/%m/%Y}</giorno>
      <ora>{when:%H:%M:%S}</ora>
    </data>
    <identificativo>{escape(identificativo)}</identificativo>
    <msgid>{escape(msgid)}</msgid>
    <ricevuta tipo="completa" />
  </dati>
</postacert>
"""
    return xml.replace("\n", "\r\n").encode("utf-8")


def _b64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _leaf(ctype: str, data: bytes, *, filename: str | None = None,
          disposition: str = "attachment") -> bytes:
    head = f"Content-Type: {ctype}"
    if filename:
        head += f'; name="{filename}"'
    head += "\r\nContent-Transfer-Encoding: base64\r\n"
    if filename:
        head += f'Content-Disposition: {disposition}; filename="{filename}"\r\n'
    return head.encode() + b"\r\n" + _b64_lines(data)


def _message_part(raw: bytes, filename: str = "postacert.eml") -> bytes:
    return (f'Content-Type: message/rfc822; name="{filename}"\r\n'
            f'Content-Disposition: inline; filename="{filename}"\r\n\r\n').encode() + raw


def _multipart(subtype: str, parts: Sequence[bytes], boundary: str,
               extra: str = "") -> bytes:
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"{extra}\r\n\r\n'.encode()]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode() + part.rstrip(b"\r\n") + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _text_parts(text: str) -> bytes:
    html = f"<html><body><p>{escape(text)}</p></body></html>"
    return _multipart("alternative", [
        _leaf("text/plain; charset=UTF-8", text.encode()),
        _leaf("text/html; charset=UTF-8", html.encode()),
    ], "----alt-boundary-7f3a")


def _signed(headers: Sequence[tuple[str, str]], inner: bytes, signer: Signer | None) -> bytes:
    """A multipart/signed message: ``inner`` (exact bytes) and a detached CMS over them."""
    signer = signer or make_signer("Gestore PEC di prova", "00000000000", cf_prefix="VATIT-")
    inner = inner.rstrip(b"\r\n")
    p7s = _cms_sign(inner, [signer], detached=True)
    boundary = "----signed-boundary-1c9e"
    sig_part = (b'Content-Type: application/x-pkcs7-signature; name="smime.p7s"\r\n'
                b"Content-Transfer-Encoding: base64\r\n"
                b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
                + _b64_lines(p7s))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    body = (f"--{boundary}\r\n".encode() + inner + f"\r\n--{boundary}\r\n".encode()
            + sig_part + f"--{boundary}--\r\n".encode())
    return (head.encode("utf-8") + b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; '
              f'micalg=sha-256; boundary="{boundary}"\r\n\r\n'.encode()
            + b"This is an S/MIME signed message\r\n\r\n" + body)


def _original_fields(original: bytes) -> tuple[str, str, str]:
    parsed = email.message_from_bytes(original, policy=email.policy.default)
    _, sender = email.utils.parseaddr(str(parsed.get("From", "")))
    return (sender or SENDER, str(parsed.get("Subject", "")),
            str(parsed.get("Message-ID", "")))


def make_pec_envelope(original: bytes, *, tipo: str = "posta-certificata",
                      when: dt.datetime = WHEN, identificativo: str = IDENTIFICATIVO,
                      gestore: str = GESTORE, gestore_domain: str = GESTORE_DOMAIN,
                      to: str = CAPOFILA, reply_to: str | None = None,
                      with_daticert: bool = True, zona: str | None = None,
                      signer: Signer | None = None) -> bytes:
    """A busta di trasporto carrying ``original`` as postacert.eml (posta.md layout).

    ``tipo`` is written in daticert.xml only; the header stays X-Trasporto: posta-certificata.
    """
    sender, subject, message_id = _original_fields(original)
    text = (f"Il giorno {when:%d/%m/%Y} alle ore {when:%H:%M:%S} ({when:%z}) il messaggio "
            f'"{subject}" è stato inviato da "{sender}" indirizzato a: {to}')
    parts = [_text_parts(text)]
    if with_daticert:
        parts.append(_leaf("application/xml", daticert(
            tipo=tipo, mittente=sender, destinatario=to, oggetto=subject, gestore=gestore,
            when=when, identificativo=identificativo, msgid=message_id, zona=zona),
            filename="daticert.xml", disposition="inline"))
    parts.append(_message_part(original))
    inner = _multipart("mixed", parts, "----mixed-boundary-42b1")
    headers = [
        ("Return-Path", f"<posta-certificata@{gestore_domain}>"),
        ("Date", email.utils.format_datetime(when)),
        ("From", f'"Per conto di: {sender}" <posta-certificata@{gestore_domain}>'),
        ("Reply-To", reply_to or sender),
        ("To", to),
        ("Subject", str(email.header.Header(f"POSTA CERTIFICATA: {subject}", "utf-8").encode())),
        ("Message-ID", f"<{identificativo}>"),
        ("X-Riferimento-Message-ID", message_id),
        ("X-Trasporto", "posta-certificata"),
    ]
    return _signed(headers, inner, signer)


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


def make_ricevuta(tipo: str = "accettazione", *, original: bytes | None = None,
                  oggetto: str = "Piano abitativo 2026 - richiesta dati",
                  riferimento: str = "<richiesta.2026@capofila.example>",
                  when: dt.datetime = WHEN, gestore_domain: str = GESTORE_DOMAIN,
                  signer: Signer | None = None) -> bytes:
    """A PEC receipt (X-Ricevuta: ``tipo``); ``original`` is embedded as in a ricevuta completa."""
    text = f"Il giorno {when:%d/%m/%Y} alle ore {when:%H:%M:%S} ({when:%z}): {tipo}"
    parts = [_text_parts(text),
             _leaf("application/xml", daticert(tipo=tipo, mittente=CAPOFILA,
                                               destinatario=SENDER, oggetto=oggetto, when=when,
                                               msgid=riferimento),
                   filename="daticert.xml", disposition="inline")]
    if original is not None:
        parts.append(_message_part(original))
    inner = _multipart("mixed", parts, "----mixed-boundary-r77")
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


def make_anomalia(original: bytes | None = None, *, attachments: Files = (),
                  sender: str = "ufficio@comune.crema.example",
                  subject: str = "Piano abitativo 2026", when: dt.datetime = WHEN,
                  gestore_domain: str = GESTORE_DOMAIN, signer: Signer | None = None) -> bytes:
    """A busta di anomalia (X-Trasporto: errore): ``original`` inside, or ``attachments`` flat."""
    message_id = "<anomalo@comune.crema.example>"
    if original is not None:
        sender, subject, message_id = _original_fields(original)
    text = (f"Il giorno {when:%d/%m/%Y} alle ore {when:%H:%M:%S} ({when:%z}) è stato ricevuto "
            f'il messaggio "{subject}" inviato da "{sender}". Il messaggio non è certificato.')
    parts = [_text_parts(text)]
    if original is not None:
        parts.append(_message_part(original))
    parts += [_leaf(_mime_type(name), data, filename=name) for name, data in attachments]
    inner = _multipart("mixed", parts, "----mixed-boundary-an1")
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


def make_forwarded(pec: bytes, *, forwarder: str = "segreteria@comune.crema.example",
                   as_file: bool = False, filename: str = "POSTA CERTIFICATA Piano.eml",
                   attachments: Files = ()) -> bytes:
    """An ordinary message forwarding ``pec`` as an attachment.

    As a message/rfc822 part by default; ``as_file`` attaches it as an .eml file in base64.
    """
    body = _leaf("text/plain; charset=UTF-8", b"Inoltro la PEC ricevuta.")
    if as_file:
        carried = _leaf("application/octet-stream", pec, filename=filename)
    else:
        carried = (f'Content-Type: message/rfc822\r\n'
                   f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n'
                   ).encode() + pec
    parts = [body, carried, *(_leaf(_mime_type(n), d, filename=n) for n, d in attachments)]
    head = (f"From: {forwarder}\r\nTo: {CAPOFILA}\r\nSubject: I: POSTA CERTIFICATA: inoltro\r\n"
            f"Date: {email.utils.format_datetime(WHEN)}\r\n"
            f"Message-ID: <inoltro.1@comune.crema.example>\r\nMIME-Version: 1.0\r\n")
    return head.encode() + _multipart("mixed", parts, "----fwd-boundary-5d")


# --------------------------------------------------------------------------------------------
# zip


def make_zip(members: Files, *, encrypted: Iterable[str] = ()) -> bytes:
    """A zip archive; members named in ``encrypted`` get the "encrypted" flag bit set.

    The stdlib cannot encrypt: the flag is patched in the local and central headers, which is
    what a reader looks at before it could even ask for a password.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    raw = bytearray(buffer.getvalue())
    wanted = {name.encode() for name in encrypted}
    for signature, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30),
                                                     (b"PK\x01\x02", 8, 28, 46)):
        start = 0
        while (pos := raw.find(signature, start)) >= 0:
            (name_len,) = struct.unpack_from("<H", raw, pos + name_len_at)
            if bytes(raw[pos + name_at:pos + name_at + name_len]) in wanted:
                (flags,) = struct.unpack_from("<H", raw, pos + flag_at)
                struct.pack_into("<H", raw, pos + flag_at, flags | 0x1)
            start = pos + 4
    return bytes(raw)


# --------------------------------------------------------------------------------------------
# Outlook .msg (MS-OXMSG in a Compound File Binary container)

MsgAttachment = tuple[str, bytes, str]  # filename, data, MIME type


def make_msg(*, transport_headers: str | None = None, subject: str = "Piano abitativo",
             body: str = "In allegato la scheda.", sender: str | None = None,
             attachments: Sequence[MsgAttachment] = (),
             embedded: Sequence[tuple[str, dict[str, object]]] = (),
             message_class: str = "IPM.Note") -> bytes:
    """A minimal valid .msg: properties, transport headers, attachments by value.

    ``embedded`` are (display name, storage) pairs, the storage made by :func:`msg_storage`:
    each is attached as an embedded message (attach method 5), as Outlook keeps a forwarded
    or attached e-mail.
    """
    root = msg_storage(transport_headers=transport_headers, subject=subject, body=body,
                       sender=sender, attachments=attachments, embedded=embedded,
                       message_class=message_class, top=True)
    return make_cfb(root)


def msg_storage(*, transport_headers: str | None = None, subject: str = "",
                body: str = "", sender: str | None = None,
                attachments: Sequence[MsgAttachment] = (),
                embedded: Sequence[tuple[str, dict[str, object]]] = (),
                message_class: str = "IPM.Note", top: bool = False) -> dict[str, object]:
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
        att_entries = [_prop_string(att, 0x3707, filename), _prop_string(att, 0x370E, mime),
                       _prop_binary(att, 0x3701, data), _prop_int(0x3705, 1)]
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
        tree["__nameid_version1.0"] = {"__substg1.0_00020102": b"",
                                       "__substg1.0_00030102": b"",
                                       "__substg1.0_00040102": b""}
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
        entry: dict[str, object] = {"name": name, "kind": kind, "left": _NOSTREAM,
                                    "right": _NOSTREAM, "child": _NOSTREAM, "data": b""}
        entries.append(entry)
        if isinstance(node, dict):
            kids = [add(k, v, 1 if isinstance(v, dict) else 2) for k, v in node.items()]
            kids.sort(key=lambda i: (len(str(entries[i]["name"])),
                                     str(entries[i]["name"]).upper()))
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
            sectors.append(data[i * 512:(i + 1) * 512].ljust(512, b"\0"))
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
        sectors[i] = directory[i * 512:(i + 1) * 512]
    # unused directory slots must say "no siblings, no child"
    fat += [_FREE] * (fat_sectors * 128 - len(fat))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    difat = [i for i in range(fat_sectors)] + [_FREE] * (109 - fat_sectors)
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
                         b"\0" * 16, 0x3E, 3, 0xFFFE, 9, 6, b"\0" * 6, 0, fat_sectors,
                         dir_start, 0, 4096, minifat_start, minifat_sectors, _END, 0)
    header += b"".join(struct.pack("<I", v) for v in difat)
    return header + fat_bytes + b"".join(sectors)


def _balanced(entries: list[dict[str, object]], kids: list[int]) -> int:
    if not kids:
        return _NOSTREAM
    mid = len(kids) // 2
    entries[kids[mid]]["left"] = _balanced(entries, kids[:mid])
    entries[kids[mid]]["right"] = _balanced(entries, kids[mid + 1:])
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
    return struct.pack("<64sHBBIII16sIQQIQ", name.ljust(64, b"\0"), len(name) + 2, kind, 1,
                       entry["left"], entry["right"], entry["child"], b"\0" * 16, 0, 0, 0,
                       start, size)
