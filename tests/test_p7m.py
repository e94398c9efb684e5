"""Signed files (.p7m): every encoding seen opens, signers are named, tampering shows."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import given, settings
from hypothesis import strategies as st

from piano_abitativo.mail import p7m
from tests.mailfactory import CF, KeyKind, P7mForm, make_p7m, make_signer, workbook

DATA = workbook("Crema")
SIGNED = make_p7m(DATA)


@pytest.mark.parametrize("form", ["der", "ber", "base64", "base64-lines", "pem"])
def test_every_encoding_gives_the_exact_inner_file_and_a_valid_signature(form: P7mForm) -> None:
    """DER, BER indefinite length, base64 (one line or wrapped) and PEM unwrap to the same bytes."""
    inner, signatures = p7m.unwrap(make_p7m(DATA, form=form))
    assert inner == DATA
    assert [(s.signer_cn, s.codice_fiscale, s.valid) for s in signatures] == [
        ("Mario Rossi", CF, True)
    ]
    assert signatures[0].detail == "firma matematicamente valida — verifica legale non eseguita"


def test_ber_input_really_uses_indefinite_lengths() -> None:
    """The BER case above is meaningful: openssl's streaming output starts with 30 80."""
    assert make_p7m(DATA, form="ber")[:2] == b"\x30\x80"


def test_signing_time_is_read_as_an_aware_datetime() -> None:
    """The signed signingTime attribute comes back aware and close to now."""
    (signature,) = p7m.unwrap(make_p7m(DATA))[1]
    assert signature.signing_time is not None
    assert abs(signature.signing_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


@pytest.mark.parametrize("form", ["der", "ber"])
def test_double_signature_is_opened_to_the_workbook(form: P7mForm) -> None:
    """A .p7m.p7m gives the workbook and one signature per layer, outermost first."""
    inner, signatures = p7m.unwrap(make_p7m(DATA, form=form, nested=2))
    assert inner == DATA
    assert [s.valid for s in signatures] == [True, True]


def test_two_signers_in_one_layer_give_two_signatures() -> None:
    """A co-signed file names both signers."""
    other = make_signer("Anna Bianchi", "BNCNNA85C41F205X")
    signatures = p7m.unwrap(make_p7m(DATA, cosigners=[other]))[1]
    assert [(s.signer_cn, s.codice_fiscale, s.valid) for s in signatures] == [
        ("Mario Rossi", CF, True),
        ("Anna Bianchi", "BNCNNA85C41F205X", True),
    ]


def test_old_it_prefix_of_the_codice_fiscale_is_read() -> None:
    """Older certificates write the codice fiscale as IT:<CF> in serialNumber."""
    (signature,) = p7m.unwrap(make_p7m(DATA, cn="Luigi Verdi", cf_prefix="IT:"))[1]
    assert (signature.signer_cn, signature.codice_fiscale) == ("Luigi Verdi", CF)


@pytest.mark.parametrize("key", ["rsa-pss", "ec"])
def test_pss_and_ecdsa_signatures_verify(key: KeyKind) -> None:
    """RSA-PSS and ECDSA signatures are checked, not just PKCS#1 v1.5."""
    (signature,) = p7m.unwrap(make_p7m(DATA, key=key))[1]
    assert signature.valid is True


def test_changed_content_is_reported_invalid_in_italian() -> None:
    """A workbook altered after signing fails the messageDigest check."""
    signed = make_p7m(DATA)
    tampered = signed.replace(b"workbook Crema", b"workbook Crem4", 1)
    inner, (signature,) = p7m.unwrap(tampered)
    assert inner != DATA
    assert signature.valid is False
    assert signature.detail.startswith("firma non valida: il documento è stato modificato")


def test_changed_signature_value_is_reported_invalid() -> None:
    """Flipping the last byte (inside the RSA signature) breaks the signature check."""
    signed = bytearray(make_p7m(DATA))
    signed[-1] ^= 0x01
    (signature,) = p7m.unwrap(bytes(signed))[1]
    assert signature.valid is False
    assert "non corrisponde alla chiave del certificato" in signature.detail


def test_signature_without_certificate_is_not_verifiable() -> None:
    """Without the signer's certificate the result is 'unknown', not 'invalid'."""
    cert, key = make_signer()
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(DATA)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCerts])
    )
    inner, (signature,) = p7m.unwrap(signed)
    assert inner == DATA
    assert (signature.valid, signature.signer_cn) == (None, None)
    assert signature.detail.startswith("firma non verificabile")


def test_detached_signature_is_refused_with_an_italian_message() -> None:
    """A signature without the document inside cannot give a workbook."""
    cert, key = make_signer()
    detached = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(DATA)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature])
    )
    with pytest.raises(p7m.P7mError, match="non è incluso nel file"):
        p7m.unwrap(detached)


@pytest.mark.parametrize("data", [b"", b"   ", DATA, b"0\x03\x02\x01\x05", b"bm90IGEgcDdt"])
def test_non_signed_data_raises_p7m_error(data: bytes) -> None:
    """Empty, plain workbook, other DER and base64 of text are refused, never crash."""
    with pytest.raises(p7m.P7mError):
        p7m.unwrap(data)


def test_is_p7m_by_name_or_by_content() -> None:
    """The extension is enough; without it the content is recognised."""
    assert p7m.is_p7m(b"", "Crema.XLSX.P7M")
    assert p7m.is_p7m(make_p7m(DATA, form="base64"))
    assert not p7m.is_p7m(DATA, "Crema.xlsx")


def test_strip_p7m_suffix_removes_every_layer() -> None:
    """Crema.xlsx.p7m.P7M becomes Crema.xlsx; other names stay."""
    assert p7m.strip_p7m_suffix("Crema.xlsx.p7m.P7M") == "Crema.xlsx"
    assert p7m.strip_p7m_suffix("Crema.xlsx") == "Crema.xlsx"


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_p7m_error(data: bytes) -> None:
    """Garbage gives P7mError or a result, never another exception."""
    with contextlib.suppress(p7m.P7mError):
        p7m.unwrap(data)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_p7m_raises_only_p7m_error(data: st.DataObject) -> None:
    """A truncated or byte-flipped real .p7m never raises anything but P7mError."""
    signed = bytearray(SIGNED)
    cut = data.draw(st.integers(0, len(signed)))
    flip = data.draw(st.integers(0, len(signed) - 1))
    signed[flip] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(p7m.P7mError):
        p7m.unwrap(bytes(signed[:cut]))


def _signed_with_attrs_reversed(*, resign: bool) -> bytes:
    """A real CMS whose signed attributes are stored in reverse (non-DER) order.

    With ``resign`` the signature is recomputed over the stored order (a non-conformant
    signer); without, it stays over the DER-sorted SET, as RFC 5652 §5.4 requires.
    """
    cert, key = make_signer()
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(DATA)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    info = cms.ContentInfo.load(signed)["content"]["signer_infos"][0]
    attrs = info["signed_attrs"]
    elements = [attr.dump() for attr in attrs]
    assert len(elements) >= 3 and elements == sorted(elements)  # the builder writes DER order
    stored = b"".join(reversed(elements))
    header = attrs.dump()[: len(attrs.dump()) - len(attrs.contents)]
    out = signed.replace(attrs.dump(), header + stored, 1)
    if resign:
        assert isinstance(key, rsa.RSAPrivateKey)
        old = bytes(info["signature"].native)
        new = key.sign(b"\x31" + header[1:] + stored, padding.PKCS1v15(), hashes.SHA256())
        out = out.replace(old, new, 1)
    return out


def test_attributes_stored_out_of_der_order_verify_over_the_sorted_set() -> None:
    """The signature covers the DER SET OF (sorted), whatever order the file stores."""
    inner, (signature,) = p7m.unwrap(_signed_with_attrs_reversed(resign=False))
    assert (inner, signature.valid) == (DATA, True)


def test_a_signature_over_the_stored_order_is_accepted_as_a_fallback() -> None:
    """Some signers sign the attributes as they wrote them: still mathematically valid."""
    inner, (signature,) = p7m.unwrap(_signed_with_attrs_reversed(resign=True))
    assert (inner, signature.valid) == (DATA, True)


def test_reordered_attributes_with_a_changed_signature_are_still_invalid() -> None:
    """Trying two encodings does not make a wrong signature pass."""
    signed = bytearray(_signed_with_attrs_reversed(resign=False))
    signed[-1] ^= 0x01
    (signature,) = p7m.unwrap(bytes(signed))[1]
    assert signature.valid is False
