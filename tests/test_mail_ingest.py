"""Incoming mail against a real Dovecot: PEC, anomalie, receipts, duplicates, idempotence."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from piano_abitativo.app import stato as status
from piano_abitativo.archive import store as archive
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.context import receipts as validated_receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.mail import imap, ingest, outbox, settings

from . import mailfactory as mf
from .mailraccolta import make_raccolta, workbook_of

if TYPE_CHECKING:
    from .mailservers import Mailbox

pytest_plugins = ("tests.mailservers",)

CET = mf.CET
#: when the replies were certified / reached the box (December 2025, for the 2026 plan)
T_CREMA_1 = dt.datetime(2025, 12, 1, 9, 15, 0, tzinfo=CET)
T_CREMA = dt.datetime(2025, 12, 5, 10, 2, 10, tzinfo=CET)
T_AGNADELLO = dt.datetime(2025, 12, 6, 8, 30, 0, tzinfo=CET)
T_CAMISANO = dt.datetime(2025, 12, 7, 17, 45, 5, tzinfo=CET)
T_ALER = dt.datetime(2025, 12, 9, 11, 0, 0, tzinfo=CET)
T_BAGNOLO = dt.datetime(2025, 12, 10, 12, 0, 0, tzinfo=CET)

CREMA_PEC = "protocollo@pec.comune.crema.example"
CAMISANO_PEC = "comune.camisano@pec.example"
BAGNOLO_PEC = "protocollo@pec.comune.bagnolo.example"
AGNADELLO = "ufficio@comune.agnadello.example"
CLERK = "mario.rossi@posta.example.org"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.PASSWORD_ENV, "segreta-di-prova")


@pytest.fixture
def racc(tmp_path: Path, mailbox: Mailbox, env: None) -> rc.Raccolta:
    return make_raccolta(tmp_path, **mailbox.server.settings(mailbox))


def _pec(
    r: rc.Raccolta,
    sender: str,
    attachments: list[tuple[str, bytes]],
    when: dt.datetime,
    ident: str,
    subject: str = "Piano abitativo 2026",
) -> bytes:
    original = mf.make_plain(
        sender=sender,
        attachments=attachments,
        date=when,
        subject=subject,
        message_id=f"<{ident}@mittente.example>",
    )
    return mf.make_pec_envelope(original, when=when, identificativo=f"{ident}@gestore.example")


def fill_replies(r: rc.Raccolta, box: Mailbox) -> dict[str, bytes]:
    """The mailbox of the capofila after the enti answered (every kind of message)."""
    crema_ok = workbook_of(r, "019035")
    crema_bad = workbook_of(r, "019035", a_sap="tre")
    pec_crema = _pec(r, CREMA_PEC, [("Crema.xlsx.p7m", mf.make_p7m(crema_ok))], T_CREMA, "crema2")
    pec_camisano = _pec(
        r, CAMISANO_PEC, [("scheda.xlsx", workbook_of(r, "019010"))], T_CAMISANO, "camisano"
    )
    msgs: dict[str, tuple[bytes, dt.datetime]] = {
        # an earlier return of Crema with an error, by ordinary mail
        "crema_1": (
            mf.make_plain(
                sender=CREMA_PEC,
                attachments=[("Crema.xlsx", crema_bad)],
                date=T_CREMA_1,
                message_id="<crema1@x>",
            ),
            T_CREMA_1,
        ),
        # the corrected one by PEC, signed, and the same message delivered twice
        "crema_2": (pec_crema, T_CREMA + dt.timedelta(seconds=20)),
        "crema_2_bis": (pec_crema, T_CREMA + dt.timedelta(minutes=5)),
        # receipts of our own request: never returns
        "accettazione": (mf.make_ricevuta("accettazione", when=T_CREMA_1), T_CREMA_1),
        "consegna": (mf.make_ricevuta("avvenuta-consegna", when=T_CREMA_1), T_CREMA_1),
        # ordinary mail that reached the PEC box: an anomalia, not certified
        "agnadello": (
            mf.make_anomalia(
                mf.make_plain(
                    sender=AGNADELLO,
                    attachments=[("Agnadello.xlsx", workbook_of(r, "019002"))],
                    date=T_AGNADELLO - dt.timedelta(hours=2),
                    message_id="<agn@x>",
                ),
                when=T_AGNADELLO,
            ),
            T_AGNADELLO,
        ),
        # a PEC forwarded as an attachment from an ordinary box
        "camisano": (
            mf.make_forwarded(pec_camisano, forwarder="segreteria@posta.example.org"),
            T_CAMISANO + dt.timedelta(hours=1),
        ),
        # the ALER's clerk from a personal address, workbook inside a zip
        "aler": (
            mf.make_plain(
                sender=CLERK,
                message_id="<aler@x>",
                date=T_ALER,
                attachments=[
                    (
                        "dati.zip",
                        mf.make_zip(
                            [
                                ("ALER.xlsx", workbook_of(r, "ALER-BCM")),
                                ("lettera.pdf", b"%PDF-1.4 lettera"),
                            ]
                        ),
                    )
                ],
            ),
            T_ALER,
        ),
        # a PEC without the file
        "bagnolo": (
            _pec(r, BAGNOLO_PEC, [], T_BAGNOLO, "bagnolo", subject="Risposta richiesta dati"),
            T_BAGNOLO,
        ),
    }
    for raw, when in msgs.values():
        box.append(raw, when=when)
    return {k: v[0] for k, v in msgs.items()}


def _stato_json(r: rc.Raccolta, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["stato", str(r.path), "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def _ledger(r: rc.Raccolta) -> list[dict[str, Any]]:
    return archive.read_ledger(r.path).records


def _unflagged(snapshot: list[tuple[int, str, bytes]]) -> list[tuple[int, str, bytes]]:
    # \Recent belongs to the IMAP session that first sees a message, not to the message
    return [(uid, flags.replace("\\Recent", "").strip(), raw) for uid, flags, raw in snapshot]


def test_mailbox_import_lists_exactly_the_enti_that_answered_with_certified_times(
    racc: rc.Raccolta, mailbox: Mailbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """importa --imap then stato --json: the four enti that sent a file, PEC times certified,
    the mailbox untouched, and a second run changes nothing."""
    raws = fill_replies(racc, mailbox)
    before = _unflagged(mailbox.snapshot())
    assert main(["importa", str(racc.path), "--imap"]) == 1  # Crema's first file has errors
    # the ALER's clerk writes from an address outside the registry: no reply is drafted to it
    assert "Risposte agli enti preparate, non inviate: 4" in capsys.readouterr().out
    drafts = sorted(p.name.split("_")[0] for p in outbox.outbox_dir(racc.path).glob("*.eml"))
    assert drafts == ["esito"] * 3 + ["manca-file"]

    enti = {e["codice"]: e for e in _stato_json(racc, capsys)["enti"]}
    assert set(enti) == {"019035", "019002", "019010", "019005", "ALER-BCM"}
    assert {c for c, e in enti.items() if e["ricevuto"]} == {
        "019035",
        "019002",
        "019010",
        "ALER-BCM",
    }
    crema, agn, cam, aler, bag = (
        enti[c] for c in ("019035", "019002", "019010", "ALER-BCM", "019005")
    )
    assert crema["ricevuto_il"] == "2025-12-05T10:02:10+01:00"
    assert (crema["certificato"], crema["canale"], crema["versioni"], crema["errori"]) == (
        True,
        "PEC",
        2,
        0,
    )
    # a PEC forwarded from an ordinary box certifies nothing: the time of arrival counts
    assert dt.datetime.fromisoformat(cam["ricevuto_il"]) == T_CAMISANO + dt.timedelta(hours=1)
    assert (cam["certificato"], cam["verifica_pec"], cam["fonte_data"]) == (
        False,
        None,
        ingest.FONTE_IMAP,
    )
    # the gestore signs the anomalia too, but its time is never certified
    assert (crema["verifica_pec"], agn["verifica_pec"]) == ("gestore_non_verificato",) * 2
    assert dt.datetime.fromisoformat(agn["ricevuto_il"]) == T_AGNADELLO
    assert (agn["certificato"], agn["canale"]) == (False, "e-mail")
    assert agn["fonte_data"] == ingest.FONTE_IMAP
    assert dt.datetime.fromisoformat(aler["ricevuto_il"]) == T_ALER and not aler["certificato"]
    assert aler["mittente"] == CLERK
    assert (bag["ricevuto"], bag["ricevuto_il"], bag["sollecitato_il"]) == (False, None, None)
    assert main(["stato", str(racc.path)]) == 0
    text = capsys.readouterr().out
    assert "Enti che hanno risposto: 4 di 5." in text
    assert f"Mittente sconosciuto: {CLERK}" in text

    assert _unflagged(mailbox.snapshot()) == before, "the mailbox must not change"
    ledger = (racc.path / "archivio" / "registro.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["importa", str(racc.path), "--imap"]) == 0
    assert "già importati prima 9, nuovi 0" in capsys.readouterr().out
    assert (racc.path / "archivio" / "registro.jsonl").read_bytes() == ledger
    assert _unflagged(mailbox.snapshot()) == before
    for raw in raws.values():  # every message archived as fetched, byte for byte
        sha = hashlib.sha256(raw).hexdigest()
        assert (racc.path / "archivio" / "originali" / sha[:2] / f"{sha}.eml").read_bytes() == raw


def test_every_message_is_recorded_with_its_evidence(racc: rc.Raccolta, mailbox: Mailbox) -> None:
    """The ledger keeps kind, sender, certified time, PEC identificativo, signer and the
    duplicate delivery, and receipts are recorded but give no return."""
    raws = fill_replies(racc, mailbox)
    res = imap.import_imap(racc)
    assert res.totale == 9 and res.gia_visti == 0
    messages = [rec for rec in _ledger(racc) if rec["tipo"] == "messaggio"]
    by_sha = {rec["sha256"]: rec for rec in messages if not rec.get("duplicato")}
    assert len(by_sha) == 8 and sum(1 for m in messages if m.get("duplicato")) == 1

    pec = by_sha[hashlib.sha256(raws["crema_2"]).hexdigest()]
    assert (pec["genere"], pec["certificato"], pec["mittente"], pec["ente_mittente"]) == (
        "pec",
        True,
        CREMA_PEC,
        "019035",
    )
    assert pec["data_certificata"] == "2025-12-05T10:02:10+01:00"
    assert pec["verifica_pec"] == "gestore_non_verificato"
    assert pec["identificativo_pec"] == "crema2@gestore.example"
    assert pec["gestore"] == mf.GESTORE
    assert pec["imap"]["uid"] == 2 and pec["imap"]["cartella"] == "INBOX"
    assert dt.datetime.fromisoformat(pec["arrivo_casella"]) == T_CREMA + dt.timedelta(seconds=20)
    [firma] = pec["allegati"][0]["firma"]
    assert (firma["cn"], firma["codice_fiscale"], firma["valida"]) == ("Mario Rossi", mf.CF, True)
    assert "verifica legale non eseguita" in firma["dettaglio"]

    kinds = Counter(rec["genere"] for rec in by_sha.values())
    assert kinds == Counter({"pec": 3, "ordinaria": 2, "ricevuta": 2, "anomalia": 1})
    assert {rec["esito"] for rec in by_sha.values() if rec["genere"] == "ricevuta"} == {
        ingest.RICEVUTA
    }
    bagnolo = by_sha[hashlib.sha256(raws["bagnolo"]).hexdigest()]
    assert bagnolo["esito"] == ingest.SENZA_ALLEGATI and bagnolo["ente_mittente"] == "019005"

    receipts = validated_receipts(racc)
    assert sorted(rc_.report.ente or "" for rc_ in receipts) == sorted(
        ["019035", "019035", "019002", "019010", "ALER-BCM"]
    )
    good = workbook_of(racc, "019035")
    [signed] = [rc_ for rc_ in receipts if rc_.sha256 == hashlib.sha256(good).hexdigest()]
    assert signed.certificato and signed.fonte_data == ingest.FONTE_PEC
    assert signed.ricevuto_il == T_CREMA and signed.canale == ingest.CANALE_PEC
    assert signed.extra["firma"]["codice_fiscale"] == mf.CF
    assert signed.extra["identificativo_pec"] == "crema2@gestore.example"
    assert (racc.path / signed.blob).read_bytes() == good


def test_unknown_sender_is_reported_and_its_file_attributed_by_content(
    racc: rc.Raccolta, mailbox: Mailbox
) -> None:
    """A clerk writing from a personal address: the file counts for the ALER, the sender is
    listed as unknown with a note saying so."""
    fill_replies(racc, mailbox)
    res = imap.import_imap(racc)
    [aler] = [m for m in res.messages if m.mittente == CLERK]
    assert aler.mittente_sconosciuto and aler.ente_mittente is None
    assert [rc_.report.ente for rc_ in aler.receipts] == ["ALER-BCM"]
    assert any("mittente sconosciuto" in n and "ALER" in n for n in aler.note)
    st = status.stato(racc)
    unknown = {m["mittente"]: m for m in st.mittenti_sconosciuti}
    assert unknown[CLERK]["attribuito_a"] == ["ALER-BCM"]
    assert CREMA_PEC not in unknown


def test_stato_times_are_the_ones_of_the_consolidation_the_master_uses(
    racc: rc.Raccolta, mailbox: Mailbox
) -> None:
    """stato and the master's consolidation show the same reception time for each ente."""
    from piano_abitativo.app import commands as actions

    fill_replies(racc, mailbox)
    imap.import_imap(racc)
    cons = actions.consolidation(racc)
    st = status.stato(racc, cons)
    for row, ente in zip(st.enti, cons.enti, strict=True):
        assert row.codice == ente.ente.codice
        assert row.ricevuto_il == (ente.latest.ricevuto_il if ente.latest else None)
    assert st.enti[[e.codice for e in st.enti].index("019035")].ricevuto_il == T_CREMA


def test_a_crash_half_way_loses_nothing_and_duplicates_nothing(
    racc: rc.Raccolta, mailbox: Mailbox
) -> None:
    """The ledger cannot be written from the fourth message on (the import dies there); the
    next run records every message once."""
    fill_replies(racc, mailbox)
    ledger = racc.path / "archivio" / "registro.jsonl"
    aside = ledger.with_name("registro.jsonl.da-parte")

    def disk_fails_after_three(done: int, total: int) -> None:
        if done == 3:  # a directory in its place: the next append fails with a real OSError
            ledger.rename(aside)
            ledger.mkdir()

    with pytest.raises(OSError):
        imap.import_imap(racc, progress=disk_fails_after_three)
    ledger.rmdir()
    aside.rename(ledger)
    with open(ledger, "ab") as fh:
        fh.write(b'{"tipo": "messaggio", "sha256": "tron')  # a write cut by the crash
    res = imap.import_imap(racc)
    assert res.gia_visti == 3
    messages = [rec for rec in _ledger(racc) if rec["tipo"] == "messaggio"]
    assert len({m["sha256"] for m in messages}) == 8
    assert len([m for m in messages if not m.get("duplicato")]) == 8
    shas = [rec["sha256"] for rec in _ledger(racc) if rec["tipo"] == "ricezione"]
    assert len(shas) == len(set(shas)) == 5
    assert imap.import_imap(racc).gia_visti == 9


def test_a_message_archived_but_not_recorded_is_recovered_from_the_archive(
    racc: rc.Raccolta, mailbox: Mailbox
) -> None:
    """A message archived by a run that died, and since removed from the box, is recorded by
    the next run with its arrival time."""
    raw = _pec(racc, CREMA_PEC, [("Crema.xlsx", workbook_of(racc, "019035"))], T_CREMA, "rec")
    arrival = T_CREMA + dt.timedelta(minutes=1)
    ingest.store_original(racc.path, raw, suffix=".eml", mtime=arrival)
    res = imap.import_imap(racc)
    [got] = res.recuperati
    assert got.certificato and got.ricevuto_il == T_CREMA
    assert [rc_.report.ente for rc_ in got.receipts] == ["019035"]
    assert imap.import_imap(racc).recuperati == []


def test_sposta_moves_recorded_messages_and_deletes_nothing(
    tmp_path: Path, mailbox: Mailbox, env: None
) -> None:
    """With --sposta the imported messages go to the configured folder, byte for byte."""
    r = make_raccolta(tmp_path, cartella_importati="Importati", **mailbox.server.settings(mailbox))
    fill_replies(r, mailbox)
    before = sorted(raw for _, _, raw in mailbox.snapshot())
    res = imap.import_imap(r, sposta=True)
    assert res.spostati == 9
    assert mailbox.snapshot() == []
    assert sorted(raw for _, _, raw in mailbox.snapshot("Importati")) == before
    assert imap.import_imap(r).totale == 0


def test_sposta_without_a_folder_is_refused_before_touching_the_box(
    racc: rc.Raccolta, mailbox: Mailbox
) -> None:
    """--sposta needs cartella_importati: an Italian error, and the box stays as it was."""
    fill_replies(racc, mailbox)
    with pytest.raises(settings.MailError, match="cartella_importati"):
        imap.import_imap(racc, sposta=True)
    assert len(mailbox.snapshot()) == 9


def test_wrong_password_is_an_italian_error(
    racc: rc.Raccolta, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused login ends the command with one «Errore:» line naming the mailbox."""
    monkeypatch.setenv(settings.PASSWORD_ENV, "sbagliata")
    assert main(["importa", str(racc.path), "--imap"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Errore: La casella 127.0.0.1 ha rifiutato utente o password")


def test_load_two_hundred_messages_in_bounded_memory(
    tmp_path: Path, mailbox: Mailbox, env: None
) -> None:
    """200 messages written into the Maildir are ingested in one run, time and peak memory
    printed (bench/bench_posta.py runs 2,000)."""
    from bench.bench_posta import fill_box, measure

    r = make_raccolta(tmp_path, **mailbox.server.settings(mailbox))
    expected = fill_box(r, mailbox, 200)
    seconds, peak, res = measure(r)
    print(f"\n200 messaggi: {seconds:.1f} s, picco di memoria Python {peak / 2**20:.1f} MB")
    assert res.totale == 200 and len(res.messages) == 200
    assert len(res.receipts) == expected
    assert peak < 64 * 2**20
    assert imap.import_imap(r).gia_visti == 200
