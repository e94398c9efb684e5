"""`importa --da` with saved messages (.eml, Outlook .msg) and signed files (.p7m)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.mail import ingest
from piano_abitativo.mail.folder import import_files

from . import mailfactory as mf
from .mailraccolta import make_raccolta, workbook_of

WHEN = dt.datetime(2025, 12, 4, 16, 20, 0, tzinfo=mf.CET)
CREMA_PEC = "protocollo@pec.comune.crema.example"


@pytest.fixture
def racc(tmp_path: Path) -> rc.Raccolta:
    return make_raccolta(tmp_path)


def _msg_of_pec(pec: bytes) -> bytes:
    """The .msg Outlook saves for a PEC: transport headers plus the signed entity."""
    head, body = pec.split(b"\r\n\r\n", 1)
    content_type = next(ln for ln in head.decode().split("\r\n") if ln.startswith("Content-Type"))
    return mf.make_msg(
        transport_headers=head.decode() + "\r\n",
        subject="POSTA CERTIFICATA: Piano",
        message_class="IPM.Note.SMIME.MultipartSigned",
        attachments=[("smime.p7m", content_type.encode() + b"\r\n\r\n" + body, "multipart/signed")],
    )


def test_outlook_msg_of_a_pec_keeps_the_certified_time(racc: rc.Raccolta, tmp_path: Path) -> None:
    """A PEC saved from Outlook as .msg: certified, PEC channel, original sender."""
    pec = mf.make_pec_envelope(
        mf.make_plain(sender=CREMA_PEC, attachments=[("Crema.xlsx", workbook_of(racc, "019035"))]),
        when=WHEN,
        identificativo="opec.msg@gestore.example",
    )
    path = tmp_path / "PEC Crema.msg"
    path.write_bytes(_msg_of_pec(pec))
    res = import_files(racc, [path])
    [out] = res.outcomes
    assert out.esito == "importato" and out.receipt is not None
    got = out.receipt
    assert (got.report.ente, got.certificato, got.canale, got.ricevuto_il) == (
        "019035",
        True,
        ingest.CANALE_PEC,
        WHEN,
    )
    assert got.extra["mittente"] == CREMA_PEC
    assert got.extra["identificativo_pec"] == "opec.msg@gestore.example"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (racc.path / "archivio" / "originali" / sha[:2] / f"{sha}.msg").is_file()


def test_signed_file_alone_records_its_signer(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Crema.xlsx.p7m (base64, signed twice) imported from a folder: the workbook inside is
    the return, with the signer's name and codice fiscale; importing again changes nothing."""
    book = workbook_of(racc, "019035")
    folder = tmp_path / "arrivi"
    folder.mkdir()
    (folder / "Crema.xlsx.p7m").write_bytes(mf.make_p7m(book, form="base64", nested=2))
    assert main(["importa", str(racc.path), "--da", str(folder), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["file"]
    assert (row["esito"], row["nome"], row["ente"], row["valido"]) == (
        "importato",
        "Crema.xlsx",
        "019035",
        True,
    )
    [got] = receipts(racc)
    assert got.sha256 == hashlib.sha256(book).hexdigest()
    assert (got.extra["firma"]["cn"], got.extra["firma"]["codice_fiscale"]) == (
        "Mario Rossi",
        mf.CF,
    )
    assert got.extra["firma"]["valida"] is True and len(got.extra["firme"]) == 2
    assert got.extra["originale"]["nome"] == "Crema.xlsx.p7m"
    assert main(["importa", str(racc.path), "--da", str(folder), "--json"]) == 0
    assert [r["esito"] for r in json.loads(capsys.readouterr().out)["file"]] == ["già importato"]


def test_damaged_signed_file_is_reported_not_recorded(racc: rc.Raccolta, tmp_path: Path) -> None:
    """A .p7m that is not a signed file: «illeggibile» with an Italian reason."""
    path = tmp_path / "Crema.xlsx.p7m"
    path.write_bytes(b"questo non e' un file firmato")
    [out] = import_files(racc, [path]).outcomes
    assert out.esito == "illeggibile" and "file firmato non leggibile" in out.messaggio
    assert receipts(racc) == []


def test_eml_with_several_workbooks_records_each_and_notes_the_stranger(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One message from an unknown address with two enti's files: two returns, each
    attributed by content, the sender reported as unknown."""
    raw = mf.make_plain(
        sender="impiegato@posta.example.org",
        date=WHEN,
        attachments=[
            ("uno.xlsx", workbook_of(racc, "019010")),
            ("due.xlsx", workbook_of(racc, "019005")),
        ],
    )
    path = tmp_path / "risposta.eml"
    path.write_bytes(raw)
    assert main(["importa", str(racc.path), "--da", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mittente sconosciuto" in out
    got = {rc_.report.ente: rc_ for rc_ in receipts(racc)}
    assert set(got) == {"019010", "019005"}
    assert all(
        r.ricevuto_il == WHEN and r.fonte_data == ingest.FONTE_DATE and not r.certificato
        for r in got.values()
    )


def test_importa_needs_something_to_import(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither --da nor --imap: one «Errore:» line saying what to give."""
    assert main(["importa", str(racc.path)]) == 2
    assert capsys.readouterr().err == (
        "Errore: indicare cosa importare: --da PERCORSO... e/o --imap\n"
    )
