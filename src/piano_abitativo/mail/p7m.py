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

from asn1crypto import cms
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from piano_abitativo.core.errors import P7mError

__all__ = [
    "MAX_LEVELS",
    "VALID_DETAIL",
    "P7mError",
    "Signature",
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
    #: from the certificate subject ``serialNumber`` (``TINIT-<CF>`` or ``IT:<CF>``)
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


def _signature(info: Any, certificates: list[Any], content: bytes) -> Signature:
    cert = _find_certificate(info, certificates)
    signing_time = _signing_time(info)
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
    valid, detail = _verify(info, cert, content)
    return Signature(cn, cf, signing_time, valid, detail)


def _signing_time(info: Any) -> datetime | None:
    try:
        for attr in info["signed_attrs"] or []:
            if attr["type"].native == "signing_time":
                value = attr["values"][0].native
                return value if isinstance(value, datetime) else None
    except Exception:
        return None
    return None


# --------------------------------------------------------------------------------------------
# verification


def _verify(info: Any, cert: Any, content: bytes) -> tuple[bool | None, str]:
    try:
        digest_name = info["digest_algorithm"]["algorithm"].native
        hash_cls = _HASHES.get(digest_name)
        if hash_cls is None:
            return None, f"firma non verificabile: algoritmo di impronta {digest_name} non gestito"
        signed_attrs = info["signed_attrs"]
        if signed_attrs.native is not None and len(signed_attrs):
            digest = None
            for attr in signed_attrs:
                if attr["type"].native == "message_digest":
                    digest = attr["values"][0].native
            if digest is None:
                return False, "firma non valida: manca l'impronta del documento (messageDigest)"
            hasher = hashes.Hash(hash_cls())
            hasher.update(content)
            actual = hasher.finalize()
            if actual != digest:
                return False, (
                    "firma non valida: il documento è stato modificato dopo la firma "
                    "(l'impronta non corrisponde)"
                )
            # the signature covers the DER SET OF the attributes, not their [0] IMPLICIT tag
            signed_bytes = b"\x31" + signed_attrs.dump()[1:]
        else:
            signed_bytes = content
        key = serialization.load_der_public_key(cert.public_key.dump())
        _check(key, info, bytes(info["signature"].native), signed_bytes, hash_cls)
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
