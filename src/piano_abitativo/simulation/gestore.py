"""Mail as it reaches the capofila, built in memory: ordinary e-mail, PEC envelopes of a
simulated gestore, and signed ``.p7m`` files. Used by the demo and by the tests.

Everything is real, nothing goes on a network:

* a PEC is a *busta di trasporto* (``X-Trasporto: posta-certificata``) as described in
  ``shared/reference/posta.md``: a ``multipart/signed`` whose ``smime.p7s`` is a CMS signature
  of the gestore over the exact bytes of the signed part, holding the text, ``daticert.xml``
  (certified date and time of sending) and the clerk's original message as
  ``postacert.eml``;
* a ``.p7m`` is a CMS SignedData (DER) with the file embedded, as signing software makes it;
* certificates are self-signed, made on the fly with ``cryptography``: a CN and a
  ``serialNumber`` with the codice fiscale (``TINIT-<CF>``) or the partita IVA
  (``VATIT-<PIVA>``).

Addresses must be under a reserved domain (``.example``) so that nothing built here could
ever reach a real office.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.header
import email.policy
import email.utils
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from typing import Literal
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

__all__ = [
    "Files",
    "KeyKind",
    "Signer",
    "b64_lines",
    "cms_sign",
    "daticert",
    "make_pec_envelope",
    "make_plain",
    "make_signer",
    "message_part",
    "mime_leaf",
    "mime_type",
    "multipart",
    "original_fields",
    "sign_p7m",
    "signed_message",
    "text_parts",
]

KeyKind = Literal["rsa", "rsa-pss", "ec"]
Signer = tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
#: (file name, bytes) of the attachments of a message
Files = Sequence[tuple[str, bytes]]

_SMTP = email.policy.SMTP


# --------------------------------------------------------------------------------------------
# certificates and signatures


def make_signer(
    cn: str,
    codice_fiscale: str,
    *,
    cf_prefix: str = "TINIT-",
    key: KeyKind = "rsa",
    organization: str | None = None,
    valid_from: dt.datetime | None = None,
    valid_days: int = 365,
    issuer: Signer | None = None,
) -> Signer:
    """A certificate (CN, serialNumber "<prefix><CF>") and its private key: self-signed, or
    issued by ``issuer`` (a CA, e.g. the gestore's) when given.

    Valid from ``valid_from`` (default: yesterday) for ``valid_days`` days."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key == "ec":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "IT")]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs += [
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, f"{cf_prefix}{codice_fiscale}"),
    ]
    name = x509.Name(attrs)
    start = valid_from or dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .sign(issuer[1] if issuer else private, hashes.SHA256())
    )
    return cert, private


def cms_sign(
    data: bytes, signers: Sequence[Signer], *, key: KeyKind = "rsa", detached: bool = False
) -> bytes:
    """A CMS SignedData (DER) over ``data``: embedded, or ``detached`` (an S/MIME p7s)."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data)
    for cert, private in signers:
        if key == "rsa-pss":
            pss = padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH
            )
            builder = builder.add_signer(cert, private, hashes.SHA256(), rsa_padding=pss)
        else:
            builder = builder.add_signer(cert, private, hashes.SHA256())
    options = [pkcs7.PKCS7Options.Binary]
    if detached:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    return builder.sign(serialization.Encoding.DER, options)


def sign_p7m(data: bytes, signer: Signer) -> bytes:
    """``data`` signed as a ``.p7m`` (CAdES-like CMS SignedData, DER, content embedded)."""
    return cms_sign(data, [signer])


# --------------------------------------------------------------------------------------------
# MIME pieces


def mime_type(filename: str) -> str:
    """The MIME type mail clients give to a file of this name."""
    lower = filename.lower()
    for ext, mime in (
        (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (".pdf", "application/pdf"),
        (".zip", "application/zip"),
        (".p7m", "application/pkcs7-mime"),
        (".ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ):
        if lower.endswith(ext):
            return mime
    return "application/octet-stream"


def b64_lines(data: bytes) -> bytes:
    """Base64 in 76-character lines ending in CRLF, as in a MIME body."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def mime_leaf(
    ctype: str, data: bytes, *, filename: str | None = None, disposition: str = "attachment"
) -> bytes:
    """One base64 MIME part (headers and body)."""
    head = f"Content-Type: {ctype}"
    if filename:
        head += f'; name="{filename}"'
    head += "\r\nContent-Transfer-Encoding: base64\r\n"
    if filename:
        head += f'Content-Disposition: {disposition}; filename="{filename}"\r\n'
    return head.encode() + b"\r\n" + b64_lines(data)


def message_part(raw: bytes, filename: str = "postacert.eml") -> bytes:
    """A ``message/rfc822`` part carrying ``raw`` byte for byte."""
    return (
        f'Content-Type: message/rfc822; name="{filename}"\r\n'
        f'Content-Disposition: inline; filename="{filename}"\r\n\r\n'
    ).encode() + raw


def multipart(subtype: str, parts: Sequence[bytes], boundary: str, extra: str = "") -> bytes:
    """A ``multipart/<subtype>`` part made of ``parts``."""
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"{extra}\r\n\r\n'.encode()]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode() + part.rstrip(b"\r\n") + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def text_parts(text: str) -> bytes:
    """The ``multipart/alternative`` (plain text and HTML) of a gestore's message."""
    html = f"<html><body><p>{escape(text)}</p></body></html>"
    return multipart(
        "alternative",
        [
            mime_leaf("text/plain; charset=UTF-8", text.encode()),
            mime_leaf("text/html; charset=UTF-8", html.encode()),
        ],
        "----alt-boundary-7f3a",
    )


def signed_message(headers: Sequence[tuple[str, str]], inner: bytes, signer: Signer) -> bytes:
    """A ``multipart/signed`` message: ``inner`` (exact bytes) and a detached CMS over them."""
    inner = inner.rstrip(b"\r\n")
    p7s = cms_sign(inner, [signer], detached=True)
    boundary = "----signed-boundary-1c9e"
    sig_part = (
        b'Content-Type: application/x-pkcs7-signature; name="smime.p7s"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n' + b64_lines(p7s)
    )
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    body = (
        f"--{boundary}\r\n".encode()
        + inner
        + f"\r\n--{boundary}\r\n".encode()
        + sig_part
        + f"--{boundary}--\r\n".encode()
    )
    return (
        head.encode("utf-8")
        + b"MIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; '
        f'micalg=sha-256; boundary="{boundary}"\r\n\r\n'.encode()
        + b"This is an S/MIME signed message\r\n\r\n"
        + body
    )


# --------------------------------------------------------------------------------------------
# messages


def make_plain(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    date: dt.datetime,
    message_id: str,
    attachments: Files = (),
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
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
        maintype, subtype = mime_type(filename).split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=_SMTP)


def _zona(when: dt.datetime) -> str:
    offset = when.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def daticert(
    *,
    mittente: str,
    destinatario: str,
    oggetto: str,
    gestore: str,
    when: dt.datetime,
    identificativo: str,
    msgid: str,
    tipo: str = "posta-certificata",
    zona: str | None = None,
) -> bytes:
    """A daticert.xml as the gestori write it; ``when`` is aware, ``zona`` defaults to its
    offset (``+0100`` in winter in Italy)."""
    zona = zona if zona is not None else _zona(when)
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


def original_fields(original: bytes) -> tuple[str, str, str]:
    """(sender address, subject, Message-ID) of a message; empty strings when missing."""
    parsed = email.message_from_bytes(original, policy=email.policy.default)
    _, sender = email.utils.parseaddr(str(parsed.get("From", "")))
    return sender, str(parsed.get("Subject", "")), str(parsed.get("Message-ID", ""))


def make_pec_envelope(
    original: bytes,
    *,
    when: dt.datetime,
    identificativo: str,
    gestore: str,
    gestore_domain: str,
    to: str,
    signer: Signer,
    tipo: str = "posta-certificata",
    reply_to: str | None = None,
    with_daticert: bool = True,
    zona: str | None = None,
) -> bytes:
    """The busta di trasporto in which the gestore delivers ``original`` (as postacert.eml),
    certified as sent at ``when`` (aware) and signed by the gestore's ``signer``.

    ``tipo`` is written in daticert.xml only; the header stays X-Trasporto: posta-certificata.
    """
    sender, subject, message_id = original_fields(original)
    text = (
        f"Il giorno {when:%d/%m/%Y} alle ore {when:%H:%M:%S} ({when:%z}) il messaggio "
        f'"{subject}" è stato inviato da "{sender}" indirizzato a: {to}'
    )
    parts = [text_parts(text)]
    if with_daticert:
        parts.append(
            mime_leaf(
                "application/xml",
                daticert(
                    tipo=tipo,
                    mittente=sender,
                    destinatario=to,
                    oggetto=subject,
                    gestore=gestore,
                    when=when,
                    identificativo=identificativo,
                    msgid=message_id,
                    zona=zona,
                ),
                filename="daticert.xml",
                disposition="inline",
            )
        )
    parts.append(message_part(original))
    inner = multipart("mixed", parts, "----mixed-boundary-42b1")
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
    return signed_message(headers, inner, signer)
