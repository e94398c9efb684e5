"""The gestore's S/MIME signature of a PEC envelope decides whether its daticert time counts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import random
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from piano_abitativo.app import stato as status
from piano_abitativo.archive import store as archive
from piano_abitativo.core.errors import MailError
from piano_abitativo.mail import ingest, settings
from piano_abitativo.mail import pec_signature as ps
from piano_abitativo.mail.folder import import_files
from piano_abitativo.mail.parse import MessageKind, parse_message
from piano_abitativo.simulation import gestore as dp

from . import mailfactory as mf
from .mailraccolta import configure, make_raccolta, workbook_of
from .real_mail import real_file

WHEN = dt.datetime(2025, 12, 4, 16, 20, 0, tzinfo=mf.CET)
CREMA_PEC = "protocollo@pec.comune.crema.example"
SIGNED_BOUNDARY = b"----signed-boundary-1c9e"


def _gestore() -> dp.Signer:
    """The signer mailfactory's PEC envelopes use (cached: the same key every time)."""
    return mf.make_signer("Gestore PEC di prova", "00000000000", cf_prefix="VATIT-")


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _trust(*certs: x509.Certificate) -> ps.Trust:
    return tuple(certs)


def _pec(signer: dp.Signer | None = None, when: dt.datetime = mf.WHEN) -> bytes:
    return mf.make_pec_envelope(
        mf.make_plain(attachments=[("Crema.xlsx", mf.workbook())]), when=when, signer=signer
    )


def _level(raw: bytes, trusted: ps.Trust | None = None) -> str | None:
    return parse_message(raw, trusted=trusted).verifica_pec


# --------------------------------------------------------------------------------------------
# levels on built envelopes


def test_simulated_gestore_envelope_is_verified_with_its_certificate_in_the_trust() -> None:
    parsed = parse_message(_pec(), trusted=_trust(_gestore()[0]))
    assert (parsed.kind, parsed.verifica_pec) == (MessageKind.PEC, ps.VERIFICATA)
    assert parsed.notes == ()


def test_valid_signature_without_trust_file_is_gestore_non_verificato() -> None:
    assert _level(_pec()) == ps.GESTORE_NON_VERIFICATO


def test_signer_issued_by_a_trusted_ca_is_verified_and_the_ca_of_another_is_not() -> None:
    ca = dp.make_signer("CA gestore", "00000000000", cf_prefix="VATIT-")
    leaf = dp.make_signer("Gestore PEC", "00000000000", cf_prefix="VATIT-", issuer=ca)
    other_ca = dp.make_signer("CA gestore", "00000000000", cf_prefix="VATIT-")  # same name
    raw = _pec(leaf)
    assert _level(raw, _trust(ca[0])) == ps.VERIFICATA
    # same issuer name, other key: the certificate's signature does not match
    assert _level(raw, _trust(other_ca[0])) == ps.NON_VALIDA


def test_signed_by_another_key_than_the_trusted_is_non_valida() -> None:
    stranger = dp.make_signer("Gestore PEC di prova", "00000000000", cf_prefix="VATIT-")
    parsed = parse_message(_pec(stranger), trusted=_trust(_gestore()[0]))
    assert parsed.verifica_pec == ps.NON_VALIDA
    assert any("non è fra quelli dei gestori" in n for n in parsed.notes)


def test_signer_certificate_expired_at_the_signing_time_is_non_valida() -> None:
    old = dp.make_signer(
        "Gestore PEC scaduto",
        "00000000000",
        valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        valid_days=30,
    )
    assert _level(_pec(old), _trust(old[0])) == ps.NON_VALIDA
    assert _level(_pec(old)) == ps.GESTORE_NON_VERIFICATO  # no trust file: dates not checked


def test_tampered_byte_in_the_signed_part_is_non_valida() -> None:
    raw = _pec()
    # the Subject of postacert.eml, inside the signed part
    at = raw.index(b"Piano abitativo", raw.index(b"postacert.eml"))
    tampered = raw[:at] + b"Qiano" + raw[at + 5 :]
    assert tampered != raw
    assert _level(tampered) == ps.NON_VALIDA
    assert _level(tampered, _trust(_gestore()[0])) == ps.NON_VALIDA


def test_daticert_outside_the_signed_part_is_non_valida() -> None:
    """A genuine signed envelope without daticert.xml, plus a hand-made daticert.xml as a
    third part of the multipart/signed: the parser reads it, but the gestore never signed it."""
    signed = mf.make_pec_envelope(
        mf.make_plain(attachments=[("Crema.xlsx", mf.workbook())]), with_daticert=False
    )
    forged = dp.mime_leaf(
        "application/xml",
        mf.daticert(when=dt.datetime(2099, 1, 1, 12, 0, tzinfo=mf.CET)),
        filename="daticert.xml",
    )
    close = b"--" + SIGNED_BOUNDARY + b"--"
    raw = signed.replace(close, b"--" + SIGNED_BOUNDARY + b"\r\n" + forged + close)
    parsed = parse_message(raw, trusted=_trust(_gestore()[0]))
    assert parsed.certified_at is not None and parsed.certified_at.year == 2099
    assert parsed.verifica_pec == ps.NON_VALIDA
    assert any("daticert.xml fuori dalla parte firmata" in n for n in parsed.notes)


def test_envelope_saved_with_lf_line_ends_still_verifies() -> None:
    """The gestore signed CRLF bytes; a client that saved the .eml with LF is canonicalised."""
    raw = _pec().replace(b"\r\n", b"\n")
    assert _level(raw, _trust(_gestore()[0])) == ps.VERIFICATA


def _forged(when: dt.datetime, workbook: bytes) -> bytes:
    """An unsigned hand-made 'PEC': X-Trasporto, a daticert.xml certifying ``when``."""
    original = mf.make_plain(sender=CREMA_PEC, attachments=[("Crema.xlsx", workbook)])
    inner = dp.multipart(
        "mixed",
        [
            dp.text_parts("Messaggio di posta certificata"),
            dp.mime_leaf(
                "application/xml",
                mf.daticert(mittente=CREMA_PEC, when=when),
                filename="daticert.xml",
                disposition="inline",
            ),
            dp.message_part(original),
        ],
        "----forged-1",
    )
    head = (
        f'From: "Per conto di: {CREMA_PEC}" <posta-certificata@pec.gestore.example>\r\n'
        f"Reply-To: {CREMA_PEC}\r\nTo: {mf.CAPOFILA}\r\nSubject: POSTA CERTIFICATA: Piano\r\n"
        "Message-ID: <forged@pec.gestore.example>\r\nX-Trasporto: posta-certificata\r\n"
        "MIME-Version: 1.0\r\n"
    )
    return head.encode() + inner


def test_forged_unsigned_pec_is_assente_and_never_replaces_a_genuine_earlier_version(
    tmp_path: Path,
) -> None:
    """A forged .eml (no signature, daticert dated 2099) counts at its file's time, is not
    certified, and does not become the latest version over the genuine signed one."""
    r = make_raccolta(tmp_path)
    (r.path / "gestori_pec").mkdir()
    (r.path / "gestori_pec" / "gestore.pem").write_bytes(_pem(_gestore()[0]))
    r = configure(r, gestori_pec="gestori_pec")
    genuine = mf.make_pec_envelope(
        mf.make_plain(sender=CREMA_PEC, attachments=[("Crema.xlsx", workbook_of(r, "019035"))]),
        when=WHEN,
    )
    forged_raw = _forged(
        dt.datetime(2099, 1, 1, 9, 0, tzinfo=mf.CET), workbook_of(r, "019035", a_sap=99)
    )
    assert parse_message(forged_raw).verifica_pec == ps.ASSENTE
    folder = tmp_path / "arrivi"
    folder.mkdir()
    (folder / "vera.eml").write_bytes(genuine)
    (folder / "falsa.eml").write_bytes(forged_raw)
    saved = WHEN - dt.timedelta(hours=3)  # saved from the webmail earlier that day
    os.utime(folder / "falsa.eml", (saved.timestamp(), saved.timestamp()))
    res = import_files(r, [folder])
    by_name = {Path(o.origine.split(" › ")[0]).name: o.receipt for o in res.outcomes}
    real, fake = by_name["vera.eml"], by_name["falsa.eml"]
    assert real is not None and fake is not None
    assert (real.certificato, real.ricevuto_il, real.extra["verifica_pec"]) == (
        True,
        WHEN,
        ps.VERIFICATA,
    )
    assert (fake.certificato, fake.ricevuto_il, fake.fonte_data) == (
        False,
        saved,
        archive.FONTE_FILE,
    )
    assert fake.extra["verifica_pec"] == ps.ASSENTE
    [crema] = [e for e in status.stato(r).to_json()["enti"] if e["codice"] == "019035"]
    assert (crema["versioni"], crema["certificato"], crema["verifica_pec"]) == (
        2,
        True,
        ps.VERIFICATA,
    )
    assert dt.datetime.fromisoformat(crema["ricevuto_il"]) == WHEN


def test_forged_pec_alone_shows_not_certified_in_stato(tmp_path: Path) -> None:
    r = make_raccolta(tmp_path)
    path = tmp_path / "falsa.eml"
    path.write_bytes(
        _forged(dt.datetime(2099, 1, 1, 9, 0, tzinfo=mf.CET), workbook_of(r, "019035"))
    )
    [out] = import_files(r, [path]).outcomes
    assert out.receipt is not None and out.receipt.ricevuto_il.year != 2099
    [crema] = [e for e in status.stato(r).to_json()["enti"] if e["codice"] == "019035"]
    assert (crema["certificato"], crema["verifica_pec"]) == (False, ps.ASSENTE)


def test_hostile_envelopes_never_raise() -> None:
    raw = _pec()
    rnd = random.Random(12)
    cuts = [raw[:n] for n in (0, 10, 400, len(raw) // 2, len(raw) - 30)]
    flips = []
    for _ in range(40):
        data = bytearray(raw)
        for _ in range(5):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        flips.append(bytes(data))
    odd = [
        raw.replace(b'protocol="application/x-pkcs7-signature"', b'protocol="text/plain"'),
        raw.replace(b'boundary="----signed-boundary-1c9e"', b"boundary="),
        b"Content-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n\r\n--x\r\n\r\nAAAA\r\n--x--",
    ]
    for data in [*cuts, *flips, *odd]:
        check = ps.verify_envelope(data, _trust(_gestore()[0]))
        assert check.level in {ps.VERIFICATA, ps.NON_VALIDA, ps.ASSENTE}
        assert parse_message(data).kind in set(MessageKind)


# --------------------------------------------------------------------------------------------
# the trust file


def test_trust_file_missing_is_an_italian_error_naming_the_key(tmp_path: Path) -> None:
    r = configure(make_raccolta(tmp_path), gestori_pec="gestori/nessuno.pem")
    with pytest.raises(
        MailError, match=r"\[posta\] gestori_pec: «gestori/nessuno.pem» non trovato"
    ):
        settings.load_settings(r, env={})
    with pytest.raises(MailError, match="gestori_pec"):
        ingest.IngestState(r, set())


def test_trust_file_unreadable_is_an_italian_error_naming_the_file(tmp_path: Path) -> None:
    r = make_raccolta(tmp_path)
    (r.path / "gestori.pem").write_bytes(b"questo non e' un certificato")
    r = configure(r, gestori_pec="gestori.pem")
    assert settings.load_settings(r, env={}).gestori_pec == r.path / "gestori.pem"
    with pytest.raises(MailError, match=r"gestori\.pem: non contiene certificati leggibili"):
        ps.trust_for(r)


def test_trust_folder_reads_pem_bundles_and_der_files(tmp_path: Path) -> None:
    a, b, c = (dp.make_signer(f"Gestore {n}", "00000000000")[0] for n in "abc")
    folder = tmp_path / "gestori"
    folder.mkdir()
    (folder / "due.pem").write_bytes(_pem(a, b))
    (folder / "tre.cer").write_bytes(c.public_bytes(serialization.Encoding.DER))
    (folder / "leggimi.txt").write_text("ignored")
    assert set(ps.load_trusted(folder)) == {a, b, c}
    empty = tmp_path / "vuota"
    empty.mkdir()
    with pytest.raises(MailError, match=r"nessun file \.pem, \.crt o \.cer"):
        ps.load_trusted(empty)


def test_crea_writes_the_key_commented_with_where_to_get_the_certificates(tmp_path: Path) -> None:
    r = make_raccolta(tmp_path)
    text = r.config_path.read_text(encoding="utf-8")
    assert '# gestori_pec = "gestori_pec"' in text
    assert "AgID" in text and "gestori PEC" in text
    assert "gestori_pec" not in r.posta and settings.load_settings(r, env={}).gestori_pec is None


# --------------------------------------------------------------------------------------------
# real envelopes


def _certs_of(raw: bytes) -> list[x509.Certificate]:
    """The certificates inside the smime.p7s of a real envelope, as stored."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    [p7s] = [p for p in msg.walk() if p.get_filename() == "smime.p7s"]
    payload = p7s.get_payload(decode=True)
    assert isinstance(payload, bytes)
    signed = cms.ContentInfo.load(payload)["content"]
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]


#: the level of every real PEC envelope, receipt and variant, without a trust file
REAL_LEVELS = {
    "pec/gopec_email_3.eml": ps.NON_VALIDA,  # anonymised: smime.p7s is not a CMS any more
    "pec/oca_pec_messages_message1.eml": ps.GESTORE_NON_VERIFICATO,  # Aruba
    "pec/oca_pec_messages_message2.eml": ps.GESTORE_NON_VERIFICATO,  # Aruba
    "pec/oca_sdi_pec_invio_file.eml": ps.GESTORE_NON_VERIFICATO,  # Sogei
    "pec/oca_sdi_pec_invio_file_base64.eml": ps.NON_VALIDA,  # edited by OCA after signing
    "pec/oca_sdi_pec_invio_file_broken_xml.eml": ps.NON_VALIDA,  # edited by OCA
    "pec/oca_sdi_pec_mancata_consegna_sdi.eml": ps.NON_VALIDA,  # daticert.xml removed
    "pec/oca_sdi_pec_ricevuta_consegna_sdi.eml": ps.GESTORE_NON_VERIFICATO,  # Sogei
    "pec/osst_users_namirial_pec_spam.eml": ps.NON_VALIDA,  # re-wrapped by the mailing list
    "pec/phpimap_pec.eml": None,  # no transport headers: ordinary mail
    "ricevute/gopec_email_2_avvenuta_consegna.eml": ps.NON_VALIDA,  # anonymised
    "ricevute/javapec_accettazione.eml": ps.NON_VALIDA,  # smime.p7s part removed
    "ricevute/javapec_errore_consegna.eml": ps.NON_VALIDA,  # smime.p7s part removed
    "ricevute/oca_pec_messages_message2_accettazione.eml": ps.GESTORE_NON_VERIFICATO,
    "ricevute/oca_pec_messages_message2_consegna.eml": ps.GESTORE_NON_VERIFICATO,
    "ricevute/oca_sdi_accettazione.eml": ps.GESTORE_NON_VERIFICATO,
    "ricevute/oca_sdi_avvenuta_consegna.eml": ps.GESTORE_NON_VERIFICATO,
    "varianti/variant_aruba_pec_with_workbook.eml": ps.NON_VALIDA,  # workbook added inside
    "varianti/variant_forwarded_real_namirial_pec.eml": None,  # forwarded: never certifies
    "varianti/variant_tnef_winmail_dat.eml": None,  # ordinary mail
}


@pytest.mark.parametrize("relpath", sorted(REAL_LEVELS))
def test_real_envelope_level(relpath: str) -> None:
    assert _level(real_file(relpath).read_bytes()) == REAL_LEVELS[relpath]


@pytest.mark.parametrize(
    "relpath", ["pec/oca_pec_messages_message1.eml", "pec/oca_pec_messages_message2.eml"]
)
def test_real_aruba_pec_verifies_against_its_certificate_or_its_ca_and_not_another(
    relpath: str,
) -> None:
    """Aruba's signing certificate, issued by DigitPA CA1: trusting either verifies."""
    raw = real_file(relpath).read_bytes()
    aruba, digitpa = _certs_of(raw)
    assert aruba.issuer == digitpa.subject and aruba.subject != digitpa.subject
    for trusted in (aruba, digitpa):
        parsed = parse_message(raw, trusted=_trust(trusted))
        assert (parsed.kind, parsed.verifica_pec) == (MessageKind.PEC, ps.VERIFICATA)
        assert parsed.certified_at is not None
    assert _level(raw, _trust(_gestore()[0])) == ps.NON_VALIDA


def test_real_aruba_variant_with_a_workbook_added_is_not_certified(tmp_path: Path) -> None:
    r = make_raccolta(tmp_path)
    src = real_file("varianti/variant_aruba_pec_with_workbook.eml")
    [out] = import_files(r, [src]).outcomes
    assert out.receipt is not None
    assert (out.receipt.certificato, out.receipt.extra["verifica_pec"]) == (False, ps.NON_VALIDA)
    assert out.receipt.fonte_data == archive.FONTE_FILE


def test_real_namirial_pec_forwarded_from_an_ordinary_box_is_not_certified(
    tmp_path: Path,
) -> None:
    raw = real_file("varianti/variant_forwarded_real_namirial_pec.eml").read_bytes()
    parsed = parse_message(raw)
    assert (parsed.kind, parsed.forwarded, parsed.verifica_pec) == (MessageKind.PEC, True, None)
    r = make_raccolta(tmp_path)
    path = tmp_path / "inoltro.eml"
    path.write_bytes(raw)
    out = ingest.ingest_message(
        ingest.IngestState(r, set()), raw, ingest.Provenance(str(path), file_mtime=WHEN)
    )
    assert (out.certificato, out.ricevuto_il, out.verifica_pec) == (False, WHEN, None)
    ledger = archive.read_ledger(r.path).records
    [record] = [rec for rec in ledger if rec.get("tipo") == "messaggio"]
    assert (record["certificato"], record["verifica_pec"], record["data_certificata"]) == (
        False,
        None,
        None,
    )
