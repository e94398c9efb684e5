"""The gestore's S/MIME signature of a PEC envelope: is the certified time really certified?

A busta di trasporto is a ``multipart/signed`` message (RFC 1847, RFC 5751): its first part
holds the text, ``daticert.xml`` and ``postacert.eml``; its second part, ``smime.p7s``, is a
detached CMS signature of the gestore over the **exact bytes** of the first part, as they stand
in the raw message between the boundary lines (CRLF line ends are canonical: the bytes are
tried as they are and with LF turned into CRLF, since a saved ``.eml`` often lost its CRs).
Re-serialising the parsed message would change those bytes, so they are cut out of the raw
message here.

The result is one of four levels (:class:`PecVerification`):

* :data:`VERIFICATA` — the signature is valid, ``daticert.xml`` is inside the signed part and
  the signer's certificate is one of the trusted gestori's (``[posta] gestori_pec``), or was
  issued by one of them (issuer name and signature of the certificate checked; no full path
  validation, no revocation), valid at the signing time;
* :data:`GESTORE_NON_VERIFICATO` — the signature is valid but no trust file is configured;
* :data:`NON_VALIDA` — a signature is there but does not verify, ``daticert.xml`` is outside
  the signed part, or the signer does not chain to a trusted certificate;
* :data:`ASSENTE` — no signature at all (a hand-made "PEC").

Only the first two let the certified time of daticert.xml count. Nothing here raises on bad
input. The signature maths (digest, signed attributes, RSA/PSS/ECDSA) are those of
:mod:`.p7m`.
"""

from __future__ import annotations

import datetime as dt
import email
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from piano_abitativo.core.errors import MailError
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail.mime import POLICY, iter_leaves, part_name

# the signature maths of the .p7m module, for a detached signature (its public ``unwrap``
# wants the content inside the CMS)
from piano_abitativo.mail.p7m import signer_certificates, verify_signer
from piano_abitativo.mail.settings import gestori_pec_path

__all__ = [
    "ASSENTE",
    "CERTIFYING",
    "GESTORE_NON_VERIFICATO",
    "NON_VALIDA",
    "VERIFICATA",
    "PecVerification",
    "Trust",
    "load_trusted",
    "trust_for",
    "verify_envelope",
]

VERIFICATA = "verificata"
GESTORE_NON_VERIFICATO = "gestore_non_verificato"
NON_VALIDA = "non_valida"
ASSENTE = "assente"
#: the levels whose certified time counts
CERTIFYING = frozenset({VERIFICATA, GESTORE_NON_VERIFICATO})
#: margin on the validity dates of a certificate (clocks, time zones)
VALIDITY_TOLERANCE = dt.timedelta(days=1)
#: the trusted certificates of the gestori PEC
Trust = tuple[x509.Certificate, ...]

_PROTOCOLS = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_CERT_SUFFIXES = frozenset({".pem", ".crt", ".cer"})
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_LONE_LF = re.compile(rb"(?<!\r)\n")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class PecVerification:
    """The outcome of checking the gestore's signature of one envelope."""

    #: :data:`VERIFICATA`, :data:`GESTORE_NON_VERIFICATO`, :data:`NON_VALIDA`, :data:`ASSENTE`
    level: str
    #: Italian, for the clerk
    detail: str
    signer_cn: str | None = None
    #: the signed ``signingTime`` of the gestore, when there is one
    signing_time: dt.datetime | None = None

    @property
    def certifies(self) -> bool:
        return self.level in CERTIFYING


# --------------------------------------------------------------------------------------------
# trust


_CACHE: dict[tuple[Any, ...], Trust] = {}


def trust_for(r: Raccolta) -> Trust | None:
    """The certificates of ``[posta] gestori_pec`` of the raccolta, None when not configured.

    Raises :class:`MailError` (Italian, naming the file) when the key is wrong or the file
    cannot be read."""
    path = gestori_pec_path(r)
    return None if path is None else load_trusted(path)


def load_trusted(path: Path) -> Trust:
    """The certificates in a PEM bundle, or in the ``.pem .crt .cer`` files (PEM or DER) of a
    folder. Raises :class:`MailError` when nothing can be read."""
    try:
        files = (
            sorted(p for p in path.iterdir() if p.suffix.lower() in _CERT_SUFFIXES)
            if path.is_dir()
            else [path]
        )
        key = (str(path), *((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    except OSError as exc:
        raise MailError(
            f"certificati dei gestori PEC ([posta] gestori_pec): impossibile leggere {path} "
            f"({exc.strerror or exc})"
        ) from exc
    if key in _CACHE:
        return _CACHE[key]
    if not files:
        raise MailError(
            f"certificati dei gestori PEC ([posta] gestori_pec): nella cartella {path} non c'è "
            "nessun file .pem, .crt o .cer"
        )
    found: list[x509.Certificate] = []
    for file in files:
        found.extend(_read_certificates(file))
    _CACHE[key] = tuple(found)
    return _CACHE[key]


def _read_certificates(file: Path) -> list[x509.Certificate]:
    where = f"certificati dei gestori PEC ([posta] gestori_pec): {file}"
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise MailError(f"{where}: file non leggibile ({exc.strerror or exc})") from exc
    try:
        if _PEM_CERT in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise MailError(
            f"{where}: non contiene certificati leggibili (attesi certificati X.509 in formato "
            "PEM o DER)"
        ) from exc


# --------------------------------------------------------------------------------------------
# the envelope


def verify_envelope(
    raw: bytes,
    trusted: Sequence[x509.Certificate] | None,
    *,
    daticert: bytes | None = None,
    when: dt.datetime | None = None,
) -> PecVerification:
    """Check the gestore's signature of the envelope ``raw`` (the message's bytes as fetched).

    ``daticert`` is the daticert.xml the parser uses: it must be inside the signed part.
    ``when`` (the certified time) checks the certificate's validity when the signature has no
    signing time. ``trusted`` None: no trust file configured. Never raises."""
    try:
        return _verify_envelope(raw, trusted, daticert, when)
    except Exception as exc:  # hostile input must never stop an import
        return PecVerification(
            NON_VALIDA, f"firma del gestore PEC non verificabile ({type(exc).__name__})"
        )


def _verify_envelope(
    raw: bytes,
    trusted: Sequence[x509.Certificate] | None,
    daticert: bytes | None,
    when: dt.datetime | None,
) -> PecVerification:
    head_end = _HEADER_END.search(raw)
    if head_end is None:
        return PecVerification(ASSENTE, "busta PEC senza firma del gestore")
    top = email.message_from_bytes(raw[: head_end.end()], policy=POLICY)
    if top.get_content_type() != "multipart/signed":
        if _has_signature_part(email.message_from_bytes(raw, policy=POLICY)):
            return PecVerification(
                NON_VALIDA, "firma del gestore PEC non al livello della busta (multipart/signed)"
            )
        return PecVerification(ASSENTE, "busta PEC senza firma del gestore (smime.p7s)")
    protocol = str(top.get_param("protocol", "", header="content-type") or "").lower()
    boundary = top.get_boundary()
    if protocol not in _PROTOCOLS or not boundary:
        return PecVerification(
            NON_VALIDA, f"firma del gestore PEC in formato non gestito ({protocol or '?'})"
        )
    parts = _split_parts(raw[head_end.end() :], boundary)
    if len(parts) < 2:
        return PecVerification(
            NON_VALIDA,
            "busta PEC dichiarata firmata (multipart/signed) ma senza la firma del gestore",
        )
    signed_part, sig_part = parts[0], parts[1]
    sig_msg = email.message_from_bytes(sig_part, policy=POLICY)
    p7s = sig_msg.get_payload(decode=True)
    if not isinstance(p7s, bytes) or not p7s:
        return PecVerification(NON_VALIDA, "firma del gestore PEC (smime.p7s) vuota")
    check = _check_signature(p7s, signed_part)
    if check.level != GESTORE_NON_VERIFICATO:
        return check
    if daticert is not None and not _daticert_inside(signed_part, daticert):
        return PecVerification(
            NON_VALIDA,
            "daticert.xml fuori dalla parte firmata dal gestore: data e ora non certificate",
            check.signer_cn,
            check.signing_time,
        )
    if trusted is None:
        return PecVerification(check.level, check.detail, check.signer_cn, check.signing_time)
    return _check_trust(check, trusted, when)


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    """The raw bytes of each body part of a multipart, as they stand between the delimiter
    lines (the line break before a delimiter belongs to the delimiter, RFC 2046)."""
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--"
        + re.escape(boundary.encode("ascii", "replace"))
        + rb"(--)?[ \t]*(\r?\n|\Z)"
    )
    parts: list[bytes] = []
    start: int | None = None
    for found in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : found.start()])
        if found.group(1):  # the close delimiter
            break
        start = found.end()
    return parts


def _has_signature_part(msg: Message) -> bool:
    return any(
        leaf.get_content_type() in _PROTOCOLS or part_name(leaf, "").lower() == "smime.p7s"
        for leaf in iter_leaves(msg, include_messages=False)
    )


def _daticert_inside(signed_part: bytes, daticert: bytes) -> bool:
    inner = email.message_from_bytes(signed_part, policy=POLICY)
    for leaf in iter_leaves(inner, include_messages=False):
        if part_name(leaf, "").lower() == "daticert.xml":
            return leaf.get_payload(decode=True) == daticert
    return False


def _candidates(signed_part: bytes) -> list[bytes]:
    out = [signed_part]
    canonical = _LONE_LF.sub(b"\r\n", signed_part)
    if canonical != signed_part:
        out.append(canonical)
    return out


def _check_signature(p7s: bytes, signed_part: bytes) -> PecVerification:
    """GESTORE_NON_VERIFICATO when every signer of ``p7s`` verifies over the signed part."""
    try:
        info = cms.ContentInfo.load(p7s)
        if info["content_type"].native != "signed_data":
            return PecVerification(NON_VALIDA, "smime.p7s non è una firma CMS (SignedData)")
        signed = info["content"]
        signers = list(signed["signer_infos"])
    except Exception:
        return PecVerification(NON_VALIDA, "firma del gestore PEC (smime.p7s) danneggiata")
    if not signers:
        return PecVerification(NON_VALIDA, "firma del gestore PEC senza firmatari")
    certificates = signer_certificates(signed)
    cert_der: bytes | None = None
    signing_time: dt.datetime | None = None
    for signer in signers:
        results = [verify_signer(signer, certificates, c) for c in _candidates(signed_part)]
        cert, _, _, when = results[0]
        if cert is None:
            return PecVerification(
                NON_VALIDA, "firma del gestore PEC: certificato del gestore assente nella firma"
            )
        if not any(valid is True for _, valid, _, _ in results):
            detail = results[0][2].partition(": ")[2] or results[0][2]
            return PecVerification(NON_VALIDA, f"firma del gestore PEC non valida: {detail}")
        if cert_der is None:
            cert_der = cert.dump()
            signing_time = when
    assert cert_der is not None  # noqa: S101 - at least one signer, checked above
    gestore = x509.load_der_x509_certificate(cert_der)
    return _Checked(
        GESTORE_NON_VERIFICATO,
        "firma del gestore PEC valida (certificato del gestore non verificato: nessun elenco "
        "dei gestori in [posta] gestori_pec)",
        _cn(gestore),
        signing_time,
        gestore,
    )


@dataclass(frozen=True)
class _Checked(PecVerification):
    """A valid signature, with the signer's certificate for the trust check."""

    certificate: x509.Certificate | None = None


def _check_trust(
    check: PecVerification, trusted: Sequence[x509.Certificate], when: dt.datetime | None
) -> PecVerification:
    gestore = check.certificate if isinstance(check, _Checked) else None
    name = check.signer_cn or "?"
    if gestore is None:
        return PecVerification(NON_VALIDA, "firma del gestore PEC: certificato non leggibile")
    at = check.signing_time or when
    anchor = _anchor(gestore, trusted)
    if anchor is None:
        return PecVerification(
            NON_VALIDA,
            f"firma del gestore PEC valida ma il certificato ({name}) non è fra quelli dei "
            "gestori indicati in [posta] gestori_pec",
            check.signer_cn,
            check.signing_time,
        )
    for cert in {id(c): c for c in (gestore, anchor)}.values():
        if at is not None and not _valid_at(cert, at):
            return PecVerification(
                NON_VALIDA,
                f"firma del gestore PEC: certificato {_cn(cert) or '?'} non valido alla data "
                f"della firma ({at:%d/%m/%Y})",
                check.signer_cn,
                check.signing_time,
            )
    return PecVerification(
        VERIFICATA,
        f"firma del gestore PEC valida, certificato del gestore riconosciuto ({name})",
        check.signer_cn,
        check.signing_time,
    )


def _anchor(
    gestore: x509.Certificate, trusted: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The trusted certificate that is the signer's own, or that issued it."""
    for cert in trusted:
        if cert == gestore:
            return cert
    for cert in trusted:
        if cert.subject == gestore.issuer and _issued_by(gestore, cert):
            return cert
    return None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """The signature of ``cert`` verifies with the key of ``ca`` (SHA-1 included: the older
    gestori's certificates use it; ``verify_directly_issued_by`` refuses it)."""
    key = ca.public_key()
    try:
        params = cert.signature_algorithm_parameters
        hash_alg = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and isinstance(params, padding.AsymmetricPadding):
            if hash_alg is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, params, hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(params, ec.ECDSA):
            key.verify(cert.signature, cert.tbs_certificate_bytes, params)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except Exception:  # a wrong signature, an algorithm not handled
        return False
    return True


def _valid_at(cert: x509.Certificate, at: dt.datetime) -> bool:
    moment = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    return (
        cert.not_valid_before_utc - VALIDITY_TOLERANCE
        <= moment
        <= cert.not_valid_after_utc + VALIDITY_TOLERANCE
    )


def _cn(cert: x509.Certificate) -> str | None:
    try:
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    except Exception:
        return None
    return str(names[0].value) if names else None
