"""Incoming mail: classification by headers, certified data of a PEC, workbooks in any wrapping."""

from __future__ import annotations

import base64
import datetime as dt
import random
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piano_abitativo.mail.parse import MessageKind, parse_message, parse_msg_file
from tests.mailfactory import (
    CEST,
    CET,
    CF,
    GESTORE,
    IDENTIFICATIVO,
    SENDER,
    daticert,
    make_anomalia,
    make_cfb,
    make_forwarded,
    make_msg,
    make_p7m,
    make_pec_envelope,
    make_plain,
    make_ricevuta,
    make_zip,
    msg_storage,
    workbook,
)

CREMA_XLSX = workbook("Crema")
ORIGINAL = make_plain(
    subject="Piano abitativo 2026 - Comune di Crema",
    message_id="<scheda.crema@comune.crema.example>",
    attachments=[("Crema.xlsx", CREMA_XLSX), ("lettera.pdf", b"%PDF-1.4")],
)
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# PEC


def test_pec_gives_certified_data_and_the_original_message() -> None:
    """A busta yields daticert time, identificativo, gestore and the original message's fields."""
    parsed = parse_message(make_pec_envelope(ORIGINAL))
    assert parsed.kind is MessageKind.PEC
    assert parsed.certified_at == dt.datetime(2024, 12, 5, 0, 2, 10, tzinfo=CET)
    assert parsed.certified_at.utcoffset() == dt.timedelta(hours=1)
    assert (parsed.pec_identificativo, parsed.pec_gestore) == (IDENTIFICATIVO, GESTORE)
    assert parsed.sender == SENDER
    assert parsed.subject == "Piano abitativo 2026 - Comune di Crema"
    assert parsed.message_id == "<scheda.crema@comune.crema.example>"
    assert parsed.forwarded is False
    assert [(a.filename, a.data, a.path) for a in parsed.attachments] == [
        ("Crema.xlsx", CREMA_XLSX, ("postacert.eml", "Crema.xlsx"))
    ]
    assert set(parsed.other_attachments) == {"daticert.xml", "smime.p7s", "lettera.pdf"}


def test_pec_sent_in_summer_keeps_the_plus_two_zone() -> None:
    """daticert zona="+0200" gives an aware time two hours ahead of UTC."""
    when = dt.datetime(2025, 6, 30, 23, 59, 58, tzinfo=CEST)
    parsed = parse_message(make_pec_envelope(ORIGINAL, when=when))
    assert parsed.certified_at == when
    assert parsed.certified_at is not None
    assert parsed.certified_at.utcoffset() == dt.timedelta(hours=2)


def test_pec_without_daticert_falls_back_to_reply_to_and_is_not_certified() -> None:
    """Without daticert.xml the sender comes from Reply-To and no time is invented."""
    parsed = parse_message(
        make_pec_envelope(
            ORIGINAL, with_daticert=False, reply_to="Ufficio <Casa@Comune.Crema.Example>"
        )
    )
    assert parsed.kind is MessageKind.PEC
    assert parsed.sender == "casa@comune.crema.example"
    assert parsed.certified_at is None
    assert parsed.subject == "Piano abitativo 2026 - Comune di Crema"
    assert parsed.pec_identificativo == IDENTIFICATIVO
    assert any("senza daticert.xml" in n for n in parsed.notes)


def test_daticert_without_zone_gives_no_certified_time_and_a_note() -> None:
    """A daticert without zona is not guessed into a wrong aware time."""
    parsed = parse_message(make_pec_envelope(ORIGINAL, zona=""))
    assert parsed.certified_at is None
    assert any("fuso orario" in n for n in parsed.notes)


def test_date_header_is_the_one_of_the_original_message() -> None:
    """date_header comes from postacert.eml, not from the gestore's envelope."""
    original = make_plain(date=dt.datetime(2024, 12, 4, 18, 30, tzinfo=CET))
    parsed = parse_message(make_pec_envelope(original))
    assert parsed.date_header == dt.datetime(2024, 12, 4, 18, 30, tzinfo=CET)


def test_signed_workbook_in_a_pec_is_unwrapped_with_its_signer() -> None:
    """Crema.xlsx.p7m inside postacert.eml gives Crema.xlsx, its bytes and the signer."""
    original = make_plain(attachments=[("Crema.xlsx.p7m", make_p7m(CREMA_XLSX))])
    (att,) = parse_message(make_pec_envelope(original)).attachments
    assert (att.filename, att.data, att.path) == (
        "Crema.xlsx",
        CREMA_XLSX,
        ("postacert.eml", "Crema.xlsx.p7m"),
    )
    assert att.signature is not None
    assert (att.signature.signer_cn, att.signature.codice_fiscale, att.signature.valid) == (
        "Mario Rossi",
        CF,
        True,
    )


def test_tampered_p7m_is_kept_with_an_italian_note() -> None:
    """A signature that does not verify is reported, the workbook is still returned."""
    tampered = make_p7m(CREMA_XLSX).replace(b"workbook Crema", b"workbook Lodi!", 1)
    parsed = parse_message(make_plain(attachments=[("Crema.xlsx.p7m", tampered)]))
    (att,) = parsed.attachments
    assert att.signature is not None and att.signature.valid is False
    assert any(n.startswith("Crema.xlsx.p7m: firma non valida") for n in parsed.notes)


def test_unreadable_p7m_is_noted_and_not_returned() -> None:
    """A .p7m that is not a signature is listed among the others with a note."""
    parsed = parse_message(make_plain(attachments=[("Crema.xlsx.p7m", b"not signed")]))
    assert parsed.attachments == ()
    assert parsed.other_attachments == ("Crema.xlsx.p7m",)
    assert any("file firmato non leggibile" in n for n in parsed.notes)


# --------------------------------------------------------------------------------------------
# other kinds


def test_anomalia_is_not_certified_but_attachments_are_extracted() -> None:
    """X-Trasporto: errore gives ANOMALIA, no certified time, the inner workbook."""
    parsed = parse_message(make_anomalia(ORIGINAL))
    assert parsed.kind is MessageKind.ANOMALIA
    assert parsed.certified_at is None and parsed.pec_identificativo is None
    assert parsed.sender == SENDER
    assert [(a.filename, a.path) for a in parsed.attachments] == [
        ("Crema.xlsx", ("postacert.eml", "Crema.xlsx"))
    ]
    assert any("non certificate" in n for n in parsed.notes)


def test_anomalia_without_inner_message_gives_its_own_attachments() -> None:
    """With no inner message the files attached to the anomalia itself are taken."""
    parsed = parse_message(
        make_anomalia(
            attachments=[("Lodi.xlsx", workbook("Lodi"))], sender="ufficio@comune.lodi.example"
        )
    )
    assert parsed.kind is MessageKind.ANOMALIA
    assert parsed.sender == "ufficio@comune.lodi.example"
    assert [(a.filename, a.path) for a in parsed.attachments] == [("Lodi.xlsx", ("Lodi.xlsx",))]


@pytest.mark.parametrize(
    "tipo",
    [
        "accettazione",
        "non-accettazione",
        "presa-in-carico",
        "avvenuta-consegna",
        "errore-consegna",
        "mancata-consegna",
        "preavviso-errore-consegna",
        "rilevazione-virus",
    ],
)
def test_every_ricevuta_is_a_receipt_without_attachments(tipo: str) -> None:
    """X-Ricevuta gives RICEVUTA and nothing extracted, even from a ricevuta completa."""
    parsed = parse_message(make_ricevuta(tipo, original=ORIGINAL))
    assert parsed.kind is MessageKind.RICEVUTA
    assert parsed.ricevuta_tipo == tipo
    assert parsed.attachments == ()
    assert parsed.message_id == "<richiesta.2026@capofila.example>"


def test_daticert_of_a_receipt_inside_an_envelope_makes_a_ricevuta() -> None:
    """A daticert tipo avvenuta-consegna is a receipt even under X-Trasporto."""
    parsed = parse_message(make_pec_envelope(ORIGINAL, tipo="avvenuta-consegna"))
    assert (parsed.kind, parsed.ricevuta_tipo, parsed.attachments) == (
        MessageKind.RICEVUTA,
        "avvenuta-consegna",
        (),
    )


def test_subject_posta_certificata_on_plain_mail_is_still_ordinaria() -> None:
    """Classification looks at headers only: a PEC-like subject changes nothing."""
    parsed = parse_message(
        make_plain(
            subject="POSTA CERTIFICATA: Piano abitativo", attachments=[("Crema.xlsx", CREMA_XLSX)]
        )
    )
    assert parsed.kind is MessageKind.ORDINARIA
    assert parsed.certified_at is None
    assert parsed.subject == "POSTA CERTIFICATA: Piano abitativo"
    assert [a.path for a in parsed.attachments] == [("Crema.xlsx",)]


def test_ordinary_mail_gives_from_subject_date_and_message_id() -> None:
    """A plain e-mail's own headers are reported, sender lower-cased."""
    parsed = parse_message(
        make_plain(
            sender="Ufficio Casa <Casa@Comune.Lodi.Example>",
            subject="Scheda",
            message_id="<a.1@lodi.example>",
        )
    )
    assert (parsed.kind, parsed.sender, parsed.subject, parsed.message_id) == (
        MessageKind.ORDINARIA,
        "casa@comune.lodi.example",
        "Scheda",
        "<a.1@lodi.example>",
    )
    assert parsed.date_header == dt.datetime(2024, 12, 5, 0, 2, 10, tzinfo=CET)


@pytest.mark.parametrize("as_file", [False, True])
def test_forwarded_pec_counts_as_pec(as_file: bool) -> None:
    """A PEC forwarded from an ordinary box (rfc822 part or .eml file) keeps its certified data."""
    parsed = parse_message(
        make_forwarded(make_pec_envelope(ORIGINAL), as_file=as_file, filename="inoltro.eml")
    )
    assert (parsed.kind, parsed.forwarded) == (MessageKind.PEC, True)
    assert parsed.sender == SENDER
    assert parsed.certified_at == dt.datetime(2024, 12, 5, 0, 2, 10, tzinfo=CET)
    assert parsed.pec_identificativo == IDENTIFICATIVO
    assert [a.path for a in parsed.attachments] == [("inoltro.eml", "postacert.eml", "Crema.xlsx")]
    assert "PEC inoltrata come allegato da segreteria@comune.crema.example" in parsed.notes


def test_workbook_beside_a_forwarded_pec_is_not_certified() -> None:
    """A file attached next to the forwarded PEC is not taken as part of it."""
    parsed = parse_message(
        make_forwarded(make_pec_envelope(ORIGINAL), attachments=[("Altro.xlsx", workbook("altro"))])
    )
    assert [a.filename for a in parsed.attachments] == ["Crema.xlsx"]
    assert any(n.startswith("Altro.xlsx: allegato fuori dalla PEC") for n in parsed.notes)


# --------------------------------------------------------------------------------------------
# attachments


def test_several_attachments_are_all_returned_in_order() -> None:
    """Every workbook type (any case of extension) is returned; other files are only named."""
    files = [
        ("Crema.xlsx", CREMA_XLSX),
        ("Lodi.XLSM", workbook("Lodi")),
        ("Vecchio.xls", workbook("xls")),
        ("Libre.ods", workbook("ods")),
        ("foto.jpg", b"\xff\xd8"),
    ]
    parsed = parse_message(make_plain(attachments=files))
    assert [(a.filename, a.data) for a in parsed.attachments] == files[:4]
    assert parsed.other_attachments == ("foto.jpg",)


def test_message_without_attachments_gives_none() -> None:
    """A text-only message has no attachments and no other files."""
    parsed = parse_message(make_plain())
    assert (parsed.attachments, parsed.other_attachments, parsed.notes) == ((), (), ())


def test_zip_with_two_workbooks_and_a_pdf() -> None:
    """Workbooks inside a zip come out with the zip in their path; the pdf is only named."""
    archive = make_zip(
        [
            ("risposte/Crema.xlsx", CREMA_XLSX),
            ("Lodi.xlsx.p7m", make_p7m(workbook("Lodi"))),
            ("nota.pdf", b"%PDF"),
        ]
    )
    parsed = parse_message(make_pec_envelope(make_plain(attachments=[("risposta.zip", archive)])))
    assert [(a.filename, a.data, a.path) for a in parsed.attachments] == [
        ("Crema.xlsx", CREMA_XLSX, ("postacert.eml", "risposta.zip", "Crema.xlsx")),
        ("Lodi.xlsx", workbook("Lodi"), ("postacert.eml", "risposta.zip", "Lodi.xlsx.p7m")),
    ]
    assert parsed.attachments[1].signature is not None
    assert "nota.pdf" in parsed.other_attachments


def test_oversized_zip_member_is_skipped() -> None:
    """A member over 20 MB uncompressed (a zip bomb in small) is not read; the others are."""
    archive = make_zip([("enorme.xlsx", b"\0" * (21 * MB)), ("Crema.xlsx", CREMA_XLSX)])
    parsed = parse_message(make_plain(attachments=[("risposta.zip", archive)]))
    assert [a.filename for a in parsed.attachments] == ["Crema.xlsx"]
    assert any("enorme.xlsx: file troppo grande" in n for n in parsed.notes)


def test_zip_reading_stops_past_fifty_megabytes() -> None:
    """Members are read until their total passes 50 MB, then the rest is skipped with a note.

    The members are incompressible: one repeated byte would be a zip bomb by the reader's
    ratio and skipped for that reason."""
    archive = make_zip(
        [(f"{n}.xlsx", random.Random(n).randbytes(18 * MB)) for n in range(1, 4)],
        compression=zipfile.ZIP_STORED,
    )
    parsed = parse_message(make_plain(attachments=[("tanti.zip", archive)]))
    assert [a.filename for a in parsed.attachments] == ["1.xlsx", "2.xlsx"]
    assert any("oltre 50 MB" in n for n in parsed.notes)


def test_encrypted_zip_is_ignored_with_a_note() -> None:
    """A password-protected zip is not opened and the clerk is told."""
    archive = make_zip([("Crema.xlsx", CREMA_XLSX)], encrypted=["Crema.xlsx"])
    parsed = parse_message(make_plain(attachments=[("protetto.zip", archive)]))
    assert parsed.attachments == ()
    assert "protetto.zip: zip protetto da password ignorato" in parsed.notes


def test_rfc2231_filename_keeps_italian_accents() -> None:
    """A filename sent as filename*=utf-8''... is decoded with its accents."""
    name = "Comunità Montana – Scheda è.xlsx"
    raw = make_plain(attachments=[(name, CREMA_XLSX)])
    assert b"filename*=utf-8''" in raw
    (att,) = parse_message(raw).attachments
    assert att.filename == name


def test_rfc2047_filename_and_directories_are_cleaned() -> None:
    """An encoded-word filename with a Windows path gives the bare decoded name."""
    raw = (
        b"From: a@comune.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
        b'filename="=?UTF-8?B?QzpcVXNlcnNcYW5uYVxDb211bml0w6AueGxzeA==?="\r\n\r\n'
        b"PK\r\n--B--\r\n"
    )
    (att,) = parse_message(raw).attachments
    assert att.filename == "Comunità.xlsx"


# --------------------------------------------------------------------------------------------
# malformed input


@pytest.mark.parametrize("raw", [b"", b"\x00\xff" * 40, b"Content-Type: multipart/mixed\r\n\r\n"])
def test_malformed_input_is_ordinaria_with_a_note(raw: bytes) -> None:
    """Empty, binary and header-less input never raises and says why it is empty."""
    parsed = parse_message(raw)
    assert parsed.kind is MessageKind.ORDINARIA
    assert parsed.attachments == ()
    assert parsed.notes


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=1500))
def test_random_bytes_never_raise(raw: bytes) -> None:
    """Any bytes give a ParsedMessage."""
    assert parse_message(raw).kind in set(MessageKind)


PEC = make_pec_envelope(
    make_plain(
        attachments=[
            ("Crema.xlsx.p7m", make_p7m(CREMA_XLSX)),
            ("r.zip", make_zip([("a.xlsx", CREMA_XLSX)])),
        ]
    )
)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_truncated_or_damaged_pec_never_raises(data: st.DataObject) -> None:
    """A real PEC cut anywhere or with a byte changed still parses to something."""
    raw = bytearray(PEC[: data.draw(st.integers(0, len(PEC)))])
    if raw:
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    assert parse_message(bytes(raw)).kind in set(MessageKind)


# --------------------------------------------------------------------------------------------
# Outlook .msg


def _split(raw: bytes) -> tuple[str, bytes]:
    head, body = raw.split(b"\r\n\r\n", 1)
    return head.decode() + "\r\n", body


def test_msg_of_a_signed_pec_is_rebuilt_and_classified_as_pec() -> None:
    """Outlook keeps a PEC as transport headers plus its multipart/signed entity: a PEC again."""
    head, body = _split(make_pec_envelope(ORIGINAL))
    content_type = next(line for line in head.split("\r\n") if line.startswith("Content-Type"))
    entity = content_type.encode() + b"\r\n\r\n" + body
    data = make_msg(
        transport_headers=head,
        subject="POSTA CERTIFICATA: Piano",
        message_class="IPM.Note.SMIME.MultipartSigned",
        attachments=[("smime.p7m", entity, "multipart/signed")],
    )
    parsed = parse_msg_file(data)
    assert parsed.kind is MessageKind.PEC
    assert parsed.certified_at == dt.datetime(2024, 12, 5, 0, 2, 10, tzinfo=CET)
    assert [(a.filename, a.data) for a in parsed.attachments] == [("Crema.xlsx", CREMA_XLSX)]
    assert parse_message(data) == parsed


def test_msg_of_a_decoded_pec_uses_headers_daticert_and_embedded_postacert() -> None:
    """A PEC that Outlook split into daticert.xml and an embedded message is still a PEC."""
    head, _ = _split(make_pec_envelope(ORIGINAL))
    postacert = msg_storage(
        transport_headers="From: protocollo@pec.comune.crema.example\r\nSubject: Piano\r\n",
        attachments=[("Crema.xlsx", CREMA_XLSX, "application/octet-stream")],
    )
    data = make_msg(
        transport_headers=head,
        attachments=[("daticert.xml", daticert(), "application/xml")],
        embedded=[("postacert", postacert)],
    )
    parsed = parse_msg_file(data)
    assert parsed.kind is MessageKind.PEC
    assert parsed.certified_at == dt.datetime(2024, 12, 5, 0, 2, 10, tzinfo=CET)
    assert [a.path for a in parsed.attachments] == [("postacert.eml", "Crema.xlsx")]


def test_msg_forwarding_a_pec_as_item_is_a_forwarded_pec() -> None:
    """An ordinary .msg with the PEC attached as an Outlook item gives forwarded=True."""
    head, body = _split(make_pec_envelope(ORIGINAL))
    content_type = next(line for line in head.split("\r\n") if line.startswith("Content-Type"))
    pec_item = msg_storage(
        transport_headers=head,
        attachments=[("smime.p7m", content_type.encode() + b"\r\n\r\n" + body, "multipart/signed")],
    )
    data = make_msg(
        transport_headers="From: segreteria@comune.crema.example\r\nSubject: I\r\n",
        embedded=[("POSTA CERTIFICATA: Piano", pec_item)],
    )
    parsed = parse_msg_file(data)
    assert (parsed.kind, parsed.forwarded, parsed.sender) == (MessageKind.PEC, True, SENDER)
    assert [a.filename for a in parsed.attachments] == ["Crema.xlsx"]


def test_msg_without_transport_headers_is_ordinaria_with_its_files() -> None:
    """A .msg with no transport headers is ordinary mail; its workbooks are still read."""
    data = make_msg(
        subject="Scheda",
        sender="casa@comune.lodi.example",
        attachments=[
            ("Lodi.xlsx", workbook("Lodi"), "application/octet-stream"),
            ("nota.pdf", b"%PDF", "application/pdf"),
        ],
    )
    parsed = parse_msg_file(data)
    assert (parsed.kind, parsed.sender, parsed.subject) == (
        MessageKind.ORDINARIA,
        "casa@comune.lodi.example",
        "Scheda",
    )
    assert [(a.filename, a.data) for a in parsed.attachments] == [("Lodi.xlsx", workbook("Lodi"))]
    assert parsed.other_attachments == ("nota.pdf",)
    assert any("nessuna prova di PEC" in n for n in parsed.notes)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"From: a@b\r\n\r\nciao",
        CREMA_XLSX,
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
        make_cfb({"Workbook": b"\x09\x08" * 300}),
    ],
)
def test_not_a_msg_is_ordinaria_with_a_note(data: bytes) -> None:
    """Anything that is not an Outlook .msg (an .xls is OLE too) gives ORDINARIA and a note."""
    parsed = parse_msg_file(data)
    assert (parsed.kind, parsed.attachments) == (MessageKind.ORDINARIA, ())
    assert parsed.notes == ("il file non è un messaggio Outlook (.msg) leggibile",)


MSG = make_msg(
    transport_headers="From: casa@comune.lodi.example\r\nSubject: Scheda\r\n",
    attachments=[("Lodi.xlsx", workbook("Lodi"), "application/octet-stream")],
)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_msg_never_raises(data: st.DataObject) -> None:
    """A real .msg cut anywhere or with a byte changed still gives a ParsedMessage."""
    raw = bytearray(MSG[: data.draw(st.integers(0, len(MSG)))])
    if raw:
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    assert parse_msg_file(bytes(raw)).kind in set(MessageKind)


def test_signed_file_with_a_bare_p7m_name_is_recognised_by_content() -> None:
    """scheda.p7m holding an .xlsx is returned as scheda.xlsx with a note."""
    xlsx = make_zip([("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<workbook/>")])
    parsed = parse_message(make_plain(attachments=[("scheda.p7m", make_p7m(xlsx))]))
    assert [(a.filename, a.data) for a in parsed.attachments] == [("scheda.xlsx", xlsx)]
    assert any("è un foglio di calcolo (.xlsx)" in n for n in parsed.notes)


def test_postacert_sent_in_base64_is_decoded() -> None:
    """Some gestori encode message/rfc822 in base64 (not allowed by MIME): it is read anyway."""
    original = make_plain(attachments=[("Crema.xlsx", CREMA_XLSX)])
    pec = make_pec_envelope(original)
    header = b'Content-Disposition: inline; filename="postacert.eml"\r\n'
    encoded = pec.replace(
        header + b"\r\n" + original,
        header
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(original).replace(b"\n", b"\r\n"),
    )
    assert encoded != pec
    parsed = parse_message(encoded)
    assert [(a.filename, a.data) for a in parsed.attachments] == [("Crema.xlsx", CREMA_XLSX)]
    # re-encoding the signed part breaks the gestore's signature, and nothing else is wrong
    assert parsed.verifica_pec == "non_valida"
    assert parsed.notes and all("firma del gestore PEC" in n for n in parsed.notes)
