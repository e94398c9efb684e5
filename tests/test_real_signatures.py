"""Every real signed file and Outlook message of ``../shared/real_mail`` gives the known outcome.

The expected outcome of each ``.p7m`` comes from the folder's README and from openssl
(``openssl cms -verify -noverify -inform DER``, base64 files decoded first). Two files are
verified here although openssl reports a bad signature: ``dss_*_reordered`` (the attributes are
stored out of DER order; the signer signed the DER-sorted SET that RFC 5652 §5.4 requires) and
``dss_SHA3_256withRSAandMGF1`` (openssl 3 rejects PSS with SHA3-256 in CMS; ``openssl dgst``
verifies it, says the README).
"""

from __future__ import annotations

import codecs
import email
import email.policy
from dataclasses import dataclass
from typing import Literal

import pytest

from piano_abitativo.mail import p7m
from piano_abitativo.mail.msg import codec_for_codepage, msg_to_mime
from piano_abitativo.mail.parse import MessageKind, parse_msg_file
from tests.real_mail import real_file, real_mail_dir

Outcome = Literal["valid", "invalid", "not verifiable", "unreadable"]
Kind = Literal["xml", "pdf", "text"]


@dataclass(frozen=True)
class Expected:
    outcome: Outcome
    #: (CN, codice fiscale) per signer; for "unreadable" the Italian P7mError text instead
    signers: tuple[tuple[str | None, str | None], ...] = ()
    kind: Kind | None = None
    size: int | None = None
    error: str | None = None


def _unreadable(error: str) -> Expected:
    return Expected("unreadable", error=error)


INVOICE_SIGNER = (("CORATO SERGIO", "CRTSRG74M18A459G"),)
GARDINI = (("GARDINI STEFANO", "GRDSFN66D17H199K"),)
ARUBA_TEST = (("Cognometest1 Nometest1", "AAAAAA11A11A111A"),)
DELIGIOS_CRS = "DLGMRC65L15A794Y/6030613539139007.V4IocVkdWCuN2eflrdnrK7Ej6Q0="

P7M: dict[str, Expected] = {
    "IT00484960588_ERKHK.xml.p7m": Expected(
        "valid", (("MARIO DE NICTOLIS", "DNCMRA59C21H501Q"),), "xml", 232972
    ),
    "IT01234567890_FPR03.base64.xml.p7m": Expected("valid", INVOICE_SIGNER, "xml", 6564),
    "IT01234567890_FPR03.xml.p7m": Expected("valid", INVOICE_SIGNER, "xml", 6564),
    "IT01234567890_FPR04.base64.xml.p7m": Expected("valid", INVOICE_SIGNER, "xml", 6564),
    "IT02182030391_31.Base64.CRLF.xml.p7m": Expected("valid", GARDINI, "xml", 3225),
    "IT02182030391_31.Base64.xml.p7m": Expected("valid", GARDINI, "xml", 3225),
    "IT02182030391_31.xml.p7m": Expected("valid", GARDINI, "xml", 3225),
    "IT02182030391_31_tampered.Base64.xml.p7m": _unreadable("danneggiato"),
    "IT02182030391_31_tampered.xml.p7m": _unreadable("danneggiato"),
    "IT05979361218_002.xml.p7m": Expected(
        "valid", (("GERACE ALESSIO", "GRCLSS80E25B111T"),), "xml", 4563
    ),
    "IT05979361218_fake.xml.p7m": _unreadable("non è un file firmato"),
    "a38_test.txt.p7m": Expected("valid", (("Zini Enrico", "ZNINRC76E03A785Z"),), "text", 65),
    "dss_BER_reordered_prova.txt.p7m": Expected("valid", ARUBA_TEST, "text", 5),
    "dss_C-E-ERS-basic-invalid-sig.p7m": Expected(
        "valid", (("Interoperabilitätstester TR-ESOR:PN", None),), "text", 84
    ),
    "dss_DER_reordered_prova.txt.p7m": Expected("valid", ARUBA_TEST, "text", 5),
    "dss_FD1_FD2_FEA.pdf.p7m": Expected(
        "valid",
        (
            ("Rinaldi Alessandro", "RNLLSN92T28H910T"),
            ("Marco Deligios", "DLGMRC65L15A794Y"),
            (DELIGIOS_CRS, "DLGMRC65L15A794Y"),
        ),
        "pdf",
        103488,
    ),
    "dss_SHA3_256withRSAandMGF1.p7m": Expected(
        "valid", (("CIUDADANO FICTICIO ACTIVO", None),), "text", 20
    ),
    "dss_Signature-C-DE_CRY-3.p7m": Expected("valid", (("Matthias Schlede", None),), "text", 6),
    "dss_Signature-C-HU_MIC-1.p7m": Expected("valid", (("Géczi Zoltán Csaba", None),), "text", 8),
    "dss_cades-duplicated-signed-attrs.p7m": _unreadable("non è incluso nel file"),
    "dss_cms-no-sign-cert.p7m": Expected("not verifiable", ((None, None),), "text", 12),
    "dss_counterSig.p7m": Expected("valid", (("EST-COUNTER-SIGNATURE1-OK-EE", None),), "text", 3),
    "dss_malformed-cades.p7m": _unreadable("non è una busta firmata"),
    "fephp_invalid.xml.p7m": _unreadable("danneggiato"),
}

_VERDICT: dict[bool | None, Outcome] = {True: "valid", False: "invalid", None: "not verifiable"}


def _kind(content: bytes) -> Kind:
    if content.lstrip(b"\xef\xbb\xbf").startswith(b"<?xml"):
        return "xml"
    if content.startswith(b"%PDF"):
        return "pdf"
    return "text"


def test_the_table_covers_every_real_signed_file() -> None:
    """A file added to real_mail/p7m without an expected outcome fails here."""
    assert sorted(p.name for p in (real_mail_dir() / "p7m").iterdir()) == sorted(P7M)


@pytest.mark.parametrize("name", sorted(P7M))
def test_real_p7m_gives_its_known_outcome(name: str) -> None:
    """Outcome, signers (CN and codice fiscale), inner file kind and size; errors in Italian."""
    expected = P7M[name]
    data = real_file(f"p7m/{name}").read_bytes()
    if expected.outcome == "unreadable":
        assert expected.error is not None
        with pytest.raises(p7m.P7mError, match=expected.error):
            p7m.unwrap(data)
        return
    content, signatures = p7m.unwrap(data)
    assert (_kind(content), len(content)) == (expected.kind, expected.size)
    assert [(s.signer_cn, s.codice_fiscale) for s in signatures] == list(expected.signers)
    assert {_VERDICT[s.valid] for s in signatures} == {expected.outcome}
    for signature in signatures:
        if signature.valid:
            assert signature.detail == p7m.VALID_DETAIL
        else:
            assert signature.detail.startswith(("firma non valida", "firma non verificabile"))


def test_reordered_signed_attributes_verify_over_the_der_sorted_set() -> None:
    """The ArubaPEC test files sign the DER SET OF (sorted), not the order stored in the file."""
    for name in ("dss_DER_reordered_prova.txt.p7m", "dss_BER_reordered_prova.txt.p7m"):
        content, (signature,) = p7m.unwrap(real_file(f"p7m/{name}").read_bytes())
        assert (content, signature.valid) == (b"PROVA", True)
        assert signature.signing_time is not None
        assert signature.signing_time.isoformat() == "2015-03-16T12:58:04+00:00"


def test_an_attribute_asn1crypto_cannot_decode_does_not_stop_the_check() -> None:
    """The German card's userCertificate attribute is not decodable: the signature still checks."""
    _, (signature,) = p7m.unwrap(real_file("p7m/dss_Signature-C-DE_CRY-3.p7m").read_bytes())
    assert (signature.valid, signature.detail) == (True, p7m.VALID_DETAIL)
    assert signature.signing_time is not None
    assert signature.signing_time.isoformat() == "2014-11-13T10:34:20+00:00"


def test_a_file_without_the_signer_certificate_is_not_verifiable_but_opens() -> None:
    """cms-no-sign-cert: the content comes out, the signature is 'non verificabile'."""
    content, (signature,) = p7m.unwrap(real_file("p7m/dss_cms-no-sign-cert.p7m").read_bytes())
    assert content == b"Hello Signer"
    assert signature.valid is None
    assert signature.detail == "firma non verificabile: certificato del firmatario assente nel file"


@pytest.mark.parametrize(
    ("cn", "cf"),
    [
        (DELIGIOS_CRS, "DLGMRC65L15A794Y"),
        ("DLGMRC65L15A794Y", "DLGMRC65L15A794Y"),
        ("Marco Deligios", None),
        ("DLGMRC65L15A794YX/123", None),
        ("12345678901/abc", None),
        (None, None),
    ],
)
def test_codice_fiscale_is_read_only_from_a_cn_that_starts_with_one(
    cn: str | None, cf: str | None
) -> None:
    """Only a personal codice fiscale followed by '/' or the end of the CN counts."""
    assert p7m.codice_fiscale_from_cn(cn) == cf


# --------------------------------------------------------------------------------------------
# Outlook .msg

MsgRow = tuple[str | None, str | None, tuple[str, ...], tuple[str, ...]]

#: subject, sender, workbooks, other attachments (each must be listed)
MSG: dict[str, MsgRow] = {
    "hiraoka_A_memo.msg": ("A memo.", None, (), ()),
    "hiraoka_attach_sample_eml_received.msg": (
        "Attach sample.eml",
        "hmailuser@hmailserver.test",
        (),
        (),
    ),
    "hiraoka_attachmentFiles.msg": (
        "attachmentFiles",
        "hmailuser@hmailserver.test",
        (),
        ("jpg.jpg", "png.png", "tif.tif"),
    ),
    "hiraoka_longerFat.msg": ("Has Has 64KB bin.msg", None, (), ("64KB.bin",)),
    "hiraoka_msgInMsgInMsg.msg": ("I have sub attachments!", None, (), ("green.png", "blue.png")),
    "hiraoka_nonUnicodeCP932.msg": ("日本語 Non Unicode タイトル", None, (), ()),
    "mailparser_mail_outlook_1.msg": (
        "Newsletter Prüfung Personalwesen / Prüfung Eröffnungsbilanz",
        "nueblingv@w-vwa.de",
        (),
        ("newsletter.png", "spacer.gif", "image004.jpg", "image006.jpg", "image008.jpg"),
    ),
    "msgextractor_strangeDate.msg": ("MSG Test File", None, (), ()),
    "msgextractor_unicode.msg": (
        "Test for TIF files",
        "brizhou@gmail.com",
        (),
        ("import OleFileIO.tif", "raised value error.tif"),
    ),
    "msgreader_EmailWith2Attachments.msg": (
        "E-mail with 2 attachments",
        "kees.van.spelde@achmea.nl",
        ("Installatiehandleiding S&I Agro.xlsx",),
        ("Installatie handleiding.docx",),
    ),
    "msgreader_EmailWithAttachments.msg": (
        "This is the subject",
        "peterpan@neverland.com",
        (),
        ("peterpan.jpg", "tinkerbell.jpg"),
    ),
    "msgreader_EmailWithInnerMailAndAttachments.msg": (
        "Outer mail",
        None,
        (),
        ("OUTER 1.pdf", "OUTER 2.pdf", "INNER 1.pdf", "INNER 2.pdf"),
    ),
    "msgreader_EmailWithMsgAttachment.msg": (
        "FW: Msg Attachment Test",
        "d.triendl@cp-solutions.at",
        (),
        (),
    ),
    "msgreader_EmailWithSpecialCharsInSubject.msg": (
        "Un sujet bien défini Àéroport mañana être ouïe électricité così próxima à Ô",
        "julie.clarebots@qbere.com",
        (),
        (),
    ),
    "msgreader_RtfSampleEmailWithAttachment.msg": (
        "RtfSampleEmailWithAttachment",
        "chris.wilson@leeds.gov.uk",
        (),
        ("SampleAttachment.pdf",),
    ),
    "msgreader_sender_not_found_from_exchange.msg": ("TR: CHANTIER ST CHEF", None, (), ()),
    "oxmsg_message.msg": ("Re: test internal", "bedfortest@tutanota.de", (), ("serveimage.jpg",)),
    "oxmsg_no-attachments.msg": ("This is the subject", "peterpan@neverland.com", (), ()),
}
NOT_A_MSG = "oxmsg_not-a-MSG-file.msg"


def test_the_table_covers_every_real_msg_file() -> None:
    """A file added to real_mail/msg without an expected outcome fails here."""
    assert sorted(p.name for p in (real_mail_dir() / "msg").iterdir()) == sorted([*MSG, NOT_A_MSG])


@pytest.mark.parametrize("name", sorted(MSG))
def test_real_msg_parses_to_its_subject_sender_and_files(name: str) -> None:
    """Every real .msg goes through .msg → MIME → classification without an error note."""
    subject, sender, workbooks, others = MSG[name]
    parsed = parse_msg_file(real_file(f"msg/{name}").read_bytes())
    assert (parsed.kind, parsed.subject, parsed.sender) == (MessageKind.ORDINARIA, subject, sender)
    assert tuple(a.filename for a in parsed.attachments) == workbooks
    assert set(others) <= set(parsed.other_attachments)
    assert not any("non leggibile" in note for note in parsed.notes)


def test_a_png_named_msg_gives_the_italian_not_a_msg_note() -> None:
    """python-oxmsg's not-a-MSG-file.msg is a PNG: no exception, the project's Italian note."""
    parsed = parse_msg_file(real_file(f"msg/{NOT_A_MSG}").read_bytes())
    assert (parsed.kind, parsed.attachments) == (MessageKind.ORDINARIA, ())
    assert parsed.notes == ("il file non è un messaggio Outlook (.msg) leggibile",)


def test_code_page_932_strings_come_out_in_japanese() -> None:
    """PT_STRING8 subject and body in Shift-JIS (PR_INTERNET_CPID 50220): decoded as cp932."""
    raw, had_headers = msg_to_mime(real_file("msg/hiraoka_nonUnicodeCP932.msg").read_bytes())
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    assert (had_headers, message["Subject"]) == (False, "日本語 Non Unicode タイトル")
    assert body.get_content() == "日本語 Non Unicode 本文\r\n"


@pytest.mark.parametrize(
    ("codepage", "codec"),
    [
        (932, "cp932"),
        (50220, "cp932"),
        (1252, "cp1252"),
        (1251, "cp1251"),
        (65001, "utf-8"),
        (28591, "latin-1"),
        (28605, "iso8859_15"),
        (4242, "cp1252"),
    ],
)
def test_windows_code_pages_map_to_python_codecs(codepage: int, codec: str) -> None:
    """Known code pages get their codec, ISO-2022-JP its Windows form, an unknown one cp1252."""
    assert codec_for_codepage(codepage) == codec
    assert codecs.lookup(codec)
