"""Unwrap signed files (``.p7m``, CMS/CAdES SignedData) and describe their signers.

A comune often signs the workbook before sending it: ``Crema.xlsx.p7m`` is a CMS SignedData
with the workbook inside. This module takes such bytes in any of the encodings seen in
practice (DER, BER with indefinite lengths, bare base64 with or without line breaks, PEM) and
with nested signatures (``.xlsx.p7m.p7m``), and returns the inner file plus one
:class:`Signature` per signer.

The signature is checked *mathematically* only: the digest of the content against the signed
``messageDigest`` attribute, and the signature over the signed attributes against the public key
of the signer's certificate. Legal validity would also need the EU/AgID trusted list and the
revocation status at signing time; that is not done here and the detail says so.

Parsing uses asn1crypto; verification uses cryptography.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import cms, core, x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from piano_abitativo.core.errors import P7mError

__all__ = [
    "MAX_LEVELS",
    "VALID_DETAIL",
    "P7mError",
    "Signature",
    "codice_fiscale_from_cn",
    "codice_fiscale_from_serial",
    "is_p7m",
    "strip_p7m_suffix",
    "unwrap",
]

#: how many nested signature layers :func:`unwrap` opens (``.p7m.p7m...``)
MAX_LEVELS = 5

#: detail of a signature that verified
VALID_DETAIL = "firma matematicamente valida — verifica legale non eseguita"

_PEM_RE = re.compile(
    rb"-----BEGIN (?:PKCS7|CMS|PKCS #7 SIGNED DATA)-----(.*?)-----END [A-Z0-9 #]+-----",
    re.DOTALL,
)
_B64_RE = re.compile(rb"[A-Za-z0-9+/=\s]+")
_CF_RE = re.compile(r"[A-Z0-9]{16}|[0-9]{11}")
#: a personal codice fiscale (omocodia letters allowed) at the start of a CN, then ``/`` or end
_CN_CF_RE = re.compile(
    r"([A-Z]{6}[0-9LMNPQRSTUV]{2}[A-EHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z])(?:/|$)"
)
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_224": hashes.SHA3_224,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
    "md5": hashes.MD5,
}


@dataclass(frozen=True)
class Signature:
    """One signer of one layer of a ``.p7m``."""

    signer_cn: str | None
    #: from the certificate subject ``serialNumber`` (``TINIT-<CF>`` or ``IT:<CF>``), else from
    #: the start of the CN (Regione Lombardia CRS-SISS cards: ``<CF>/<card number>``)
    codice_fiscale: str | None
    #: the signed ``signingTime`` attribute, when present (aware, UTC)
    signing_time: datetime | None
    #: True: mathematically valid; False: does not verify; None: could not be checked
    valid: bool | None
    #: Italian, for the clerk: see :data:`VALID_DETAIL`
    detail: str


def strip_p7m_suffix(filename: str) -> str:
    """``Crema.xlsx.p7m.p7m`` → ``Crema.xlsx`` (case-insensitive); other names unchanged."""
    name = filename
    while name.lower().endswith(".p7m") and len(name) > 4:
        name = name[:-4]
    return name


def is_p7m(data: bytes, filename: str = "") -> bool:
    """True when ``filename`` ends with ``.p7m`` or ``data`` is a CMS SignedData with content."""
    if filename.lower().endswith(".p7m"):
        return True
    try:
        _load_signed_data(data)
    except P7mError:
        return False
    return True


def unwrap(data: bytes) -> tuple[bytes, list[Signature]]:
    """Return the innermost content of a ``.p7m`` and its signatures, outermost layer first.

    Opens up to :data:`MAX_LEVELS` nested layers; a layer with several signers contributes one
    :class:`Signature` each. Raises :class:`P7mError` only when ``data`` itself is not a
    SignedData with embedded content.
    """
    content, signatures = _unwrap_layer(data)
    for _ in range(MAX_LEVELS - 1):
        try:
            inner, more = _unwrap_layer(content)
        except P7mError:
            break
        content = inner
        signatures.extend(more)
    return content, signatures


# --------------------------------------------------------------------------------------------
# decoding


def _to_der(data: bytes) -> bytes:
    """DER/BER as is; PEM and bare base64 decoded. Raises P7mError when none fits."""
    if data[:1] == b"\x30":  # DER or BER: never strip, the last bytes belong to the signature
        return data
    stripped = data.strip()
    if not stripped:
        raise P7mError("file vuoto: non è un file firmato .p7m")
    pem = _PEM_RE.search(stripped)
    if pem is not None:
        return _b64(pem.group(1))
    if _B64_RE.fullmatch(stripped):
        return _b64(stripped)
    raise P7mError("il file non è una busta firmata CAdES/PKCS#7 (.p7m)")


def _b64(text: bytes) -> bytes:
    compact = b"".join(text.split())
    try:
        decoded = base64.b64decode(compact + b"=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise P7mError("il file .p7m in base64 è danneggiato") from exc
    if decoded[:1] != b"\x30":
        raise P7mError("il file non è una busta firmata CAdES/PKCS#7 (.p7m)")
    return decoded


def _load_signed_data(data: bytes) -> tuple[Any, bytes]:
    """Return the asn1crypto SignedData and its embedded content."""
    der = _to_der(data)
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise P7mError("il file non contiene dati firmati (SignedData)")
        signed = info["content"]
        content = signed["encap_content_info"]["content"]
        if content.native is None:
            raise P7mError("firma separata (detached): il documento firmato non è incluso nel file")
        inner = content.native
        if not isinstance(inner, bytes):
            raise P7mError("il contenuto firmato non è leggibile")
        # force parsing of the parts used later, so that damage shows up here
        len(signed["signer_infos"])
    except P7mError:
        raise
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError...
        raise P7mError("il file .p7m è danneggiato o non è una busta CAdES/PKCS#7") from exc
    return signed, bytes(inner)


def _unwrap_layer(data: bytes) -> tuple[bytes, list[Signature]]:
    signed, content = _load_signed_data(data)
    certificates = _certificates(signed)
    signatures = []
    for info in signed["signer_infos"]:
        try:
            signatures.append(_signature(info, certificates, content))
        except Exception:  # asn1crypto parses lazily: damage may surface only here
            signatures.append(
                Signature(
                    None,
                    None,
                    None,
                    None,
                    "firma non verificabile: dati del firmatario danneggiati",
                )
            )
    return content, signatures


# --------------------------------------------------------------------------------------------
# signers


def _certificates(signed: Any) -> list[Any]:
    found = []
    try:
        for choice in signed["certificates"] or []:
            if choice.name == "certificate":
                found.append(choice.chosen)
    except Exception:  # noqa: S110 - a damaged certificate set leaves signers unverifiable
        pass
    return found


def _find_certificate(info: Any, certificates: list[Any]) -> Any | None:
    sid = info["sid"]
    for cert in certificates:
        try:
            if sid.name == "issuer_and_serial_number":
                wanted = sid.chosen
                if (
                    cert.serial_number == wanted["serial_number"].native
                    and cert.issuer == wanted["issuer"]
                ):
                    return cert
            elif cert.key_identifier == sid.chosen.native:
                return cert
        except Exception:  # noqa: S112 - skip a certificate asn1crypto cannot read
            continue
    return None


def _subject_value(cert: Any, key: str) -> str | None:
    try:
        value = cert.subject.native.get(key)
    except Exception:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value).strip() if value else None


def codice_fiscale_from_serial(value: str | None) -> str | None:
    """``TINIT-RSSMRA80A01H501U`` or ``IT:RSSMRA80A01H501U`` → ``RSSMRA80A01H501U``."""
    if not value:
        return None
    text = value.strip().upper()
    for prefix in ("TINIT-", "IT:"):
        if text.startswith(prefix):
            candidate = text[len(prefix) :].strip()
            return candidate if _CF_RE.fullmatch(candidate) else None
    return None


def codice_fiscale_from_cn(value: str | None) -> str | None:
    """CRS-SISS cards of Regione Lombardia: ``RSSMRA80A01H501U/6030...=`` → ``RSSMRA80A01H501U``."""
    if not value:
        return None
    match = _CN_CF_RE.match(value.strip().upper())
    return match.group(1) if match else None


def _signature(info: Any, certificates: list[Any], content: bytes) -> Signature:
    cert = _find_certificate(info, certificates)
    attrs = _signed_attributes(info)
    signing_time = _signing_time(attrs)
    if cert is None:
        return Signature(
            None,
            None,
            signing_time,
            None,
            "firma non verificabile: certificato del firmatario assente nel file",
        )
    cn = _subject_value(cert, "common_name")
    cf = codice_fiscale_from_serial(_subject_value(cert, "serial_number"))
    if cf is None:
        cf = codice_fiscale_from_cn(cn)
    valid, detail = _verify(info, attrs, cert, content)
    return Signature(cn, cf, signing_time, valid, detail)


def signer_certificates(signed: Any) -> list[Any]:
    """The certificates carried by a SignedData (asn1crypto), for `verify_signer`."""
    return _certificates(signed)


def verify_signer(
    info: Any, certificates: list[Any], content: bytes
) -> tuple[Any | None, bool | None, str, datetime | None]:
    """Check one SignerInfo over `content` (e.g. the signed part of a detached S/MIME
    signature): (its certificate or None, valid, Italian detail, signing time). Never
    raises: what cannot be checked is ``valid=None``."""
    try:
        cert = _find_certificate(info, certificates)
        attrs = _signed_attributes(info)
        when = _signing_time(attrs)
    except Exception:  # asn1crypto parses lazily: damage surfaces here
        return None, None, "firma non verificabile: dati di firma non leggibili", None
    if cert is None:
        return None, None, "firma non verificabile: certificato del firmatario assente", when
    valid, detail = _verify(info, attrs, cert, content)
    return cert, valid, detail, when


# --------------------------------------------------------------------------------------------
# signed attributes, from their raw bytes
#
# asn1crypto decodes an attribute it knows only when asked for ``.native``, and fails on one it
# cannot read (a German card stores a userCertificate attribute it does not parse). Only the
# bytes of the SET and two attributes are needed, so they are taken apart here at the TLV level.


@dataclass(frozen=True)
class _SignedAttributes:
    #: the encoding of each attribute, in the order stored in the file
    elements: list[bytes]
    #: attribute OID (dotted) → the encodings of its values
    values: dict[str, list[bytes]]


def _tlv_end(data: bytes, start: int) -> int:
    """End offset of the BER TLV at ``start`` (definite or indefinite length)."""
    pos = start + 1
    if data[start] & 0x1F == 0x1F:  # high tag number
        while data[pos] & 0x80:
            pos += 1
        pos += 1
    first = data[pos]
    pos += 1
    if first == 0x80:  # indefinite: children up to the end-of-contents octets
        if not data[start] & 0x20:
            raise ValueError("indefinite length on a primitive value")
        while data[pos : pos + 2] != b"\x00\x00":
            pos = _tlv_end(data, pos)
        return pos + 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 8 or pos + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    else:
        length = first
    end = pos + length
    if end > len(data):
        raise ValueError("truncated value")
    return end


def _tlv_split(data: bytes) -> list[bytes]:
    """The TLVs one after the other in ``data`` (trailing end-of-contents octets ignored)."""
    out = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 2] == b"\x00\x00" and pos + 2 == len(data):
            break
        end = _tlv_end(data, pos)
        out.append(data[pos:end])
        pos = end
    return out


def _tlv_contents(tlv: bytes) -> bytes:
    """The contents octets of one TLV (end-of-contents octets dropped)."""
    pos = 1
    if tlv[0] & 0x1F == 0x1F:
        while tlv[pos] & 0x80:
            pos += 1
        pos += 1
    first = tlv[pos]
    pos += 1
    if first == 0x80:
        return tlv[pos:-2]
    if first & 0x80:
        pos += first & 0x7F
    return tlv[pos:]


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _signed_attributes(info: Any) -> _SignedAttributes | None:
    """The signed attributes of a SignerInfo, or None when it has none (or they are damaged)."""
    try:
        raw = info["signed_attrs"]
        if isinstance(raw, core.Void):
            return None
        elements = _tlv_split(raw.contents or b"")
        values: dict[str, list[bytes]] = {}
        for element in elements:
            if element[0] != 0x30:
                raise ValueError("attribute is not a SEQUENCE")
            oid_tlv, set_tlv = _tlv_split(_tlv_contents(element))[:2]
            oid = core.ObjectIdentifier.load(oid_tlv).dotted
            values.setdefault(oid, []).extend(_tlv_split(_tlv_contents(set_tlv)))
    except (ValueError, TypeError, IndexError):
        return None
    return _SignedAttributes(elements, values) if elements else None


def _signed_sets(attrs: _SignedAttributes) -> list[bytes]:
    """What the signature may cover: the DER SET OF (RFC 5652 §5.4), then the stored order.

    DER sorts the elements of a SET OF by their encodings (X.690 §11.6). Some signers sign the
    attributes in the order they wrote them; that order is accepted as a fallback.
    """
    width = max(len(e) for e in attrs.elements)
    ordered = sorted(attrs.elements, key=lambda e: e.ljust(width, b"\x00"))
    candidates = []
    for elements in (ordered, attrs.elements):
        body = b"".join(elements)
        candidate = b"\x31" + _der_length(len(body)) + body
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def _signing_time(attrs: _SignedAttributes | None) -> datetime | None:
    if attrs is None:
        return None
    for value in attrs.values.get(_SIGNING_TIME, [])[:1]:
        try:
            when = x509.Time.load(value).native
        except (ValueError, TypeError):
            return None
        return when if isinstance(when, datetime) else None
    return None


def _message_digest(attrs: _SignedAttributes) -> bytes | None:
    for value in attrs.values.get(_MESSAGE_DIGEST, [])[:1]:
        try:
            digest = core.OctetString.load(value).native
        except (ValueError, TypeError):
            return None
        return bytes(digest) if isinstance(digest, bytes) else None
    return None


# --------------------------------------------------------------------------------------------
# verification


def _verify(
    info: Any, attrs: _SignedAttributes | None, cert: Any, content: bytes
) -> tuple[bool | None, str]:
    try:
        digest_name = info["digest_algorithm"]["algorithm"].native
        hash_cls = _HASHES.get(digest_name)
        if hash_cls is None:
            return None, f"firma non verificabile: algoritmo di impronta {digest_name} non gestito"
        if attrs is None and not isinstance(info["signed_attrs"], core.Void):
            return None, "firma non verificabile: attributi firmati non leggibili"
        if attrs is not None:
            digest = _message_digest(attrs)
            if digest is None:
                return False, "firma non valida: manca l'impronta del documento (messageDigest)"
            hasher = hashes.Hash(hash_cls())
            hasher.update(content)
            if hasher.finalize() != digest:
                return False, (
                    "firma non valida: il documento è stato modificato dopo la firma "
                    "(l'impronta non corrisponde)"
                )
            candidates = _signed_sets(attrs)
        else:
            candidates = [content]
        key = serialization.load_der_public_key(cert.public_key.dump())
        signature = bytes(info["signature"].native)
        for index, signed_bytes in enumerate(candidates):
            try:
                _check(key, info, signature, signed_bytes, hash_cls)
                break
            except InvalidSignature:
                if index == len(candidates) - 1:
                    raise
    except InvalidSignature:
        return False, (
            "firma non valida: la firma non corrisponde alla chiave del certificato del firmatario"
        )
    except _Unsupported as exc:
        return None, f"firma non verificabile: {exc}"
    except (UnsupportedAlgorithm, ValueError, TypeError, KeyError) as exc:
        return None, f"firma non verificabile: dati di firma non leggibili ({type(exc).__name__})"
    return True, VALID_DETAIL


class _Unsupported(Exception):
    """An algorithm this module does not check."""


def _check(
    key: Any, info: Any, signature: bytes, data: bytes, hash_cls: type[hashes.HashAlgorithm]
) -> None:
    algo = info["signature_algorithm"]
    name = algo["algorithm"].native
    if isinstance(key, rsa.RSAPublicKey):
        if name == "rsassa_pss":
            params = algo["parameters"]
            pss_hash = _HASHES.get(params["hash_algorithm"]["algorithm"].native)
            mgf_hash = _HASHES.get(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
            if pss_hash is None or mgf_hash is None:
                raise _Unsupported("parametri RSA-PSS non gestiti")
            pad: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(mgf_hash()), salt_length=params["salt_length"].native
            )
            key.verify(signature, data, pad, pss_hash())
        else:
            key.verify(signature, data, padding.PKCS1v15(), hash_cls())
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hash_cls()))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    elif isinstance(key, dsa.DSAPublicKey):
        key.verify(signature, data, hash_cls())
    else:
        raise _Unsupported(f"algoritmo di firma {name} non gestito")
