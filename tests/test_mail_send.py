"""Outgoing mail against a real SMTP server (aiosmtpd): dry run, log, limits, retries."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from piano_abitativo.app import stato as status
from piano_abitativo.archive import store as archive
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.checking import validation_context
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.mail import imap, ingest, outbox, send, settings
from piano_abitativo.mail.folder import import_files
from piano_abitativo.template.workbook import template_filename
from piano_abitativo.validation.validate import validate_bytes

from . import mailfactory as mf
from .mailraccolta import make_raccolta, workbook_of

if TYPE_CHECKING:
    from .mailservers import Mailbox, SmtpServer

pytest_plugins = ("tests.mailservers",)

ADDRESSES = {
    "019035": "protocollo@pec.comune.crema.example",
    "019002": "ufficio@comune.agnadello.example",
    "019010": "comune.camisano@pec.example",
    "019005": "protocollo@pec.comune.bagnolo.example",
    "ALER-BCM": "aler@pec.aler.example",
}


@pytest.fixture
def racc(tmp_path: Path, smtp: SmtpServer) -> rc.Raccolta:
    """A raccolta whose [posta] points at the test SMTP server, no pause between messages."""
    return make_raccolta(tmp_path, pausa=0, attesa_tentativi=5, **smtp.settings())


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _attachments(msg: EmailMessage) -> list[tuple[str, bytes]]:
    out = []
    for part in msg.iter_attachments():
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        out.append((str(part.get_filename()), data))
    return out


def _text(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def test_invia_without_davvero_sends_nothing_and_fills_the_outbox(
    tmp_path: Path,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Settings from the environment; without --davvero no message reaches the server and
    each ente's message is an .eml in posta/uscita/."""
    r = make_raccolta(tmp_path)
    for key, value in smtp.settings().items():
        monkeypatch.setenv(f"PIANO_ABITATIVO_{key.upper()}", str(value))
    assert main(["invia", str(r.path)]) == 0
    assert smtp.received == []
    out = capsys.readouterr().out
    assert "PROVA: 5 messaggi scritti" in out and "--davvero" in out
    emls = sorted(outbox.outbox_dir(r.path).glob("*.eml"))
    assert len(emls) == 5
    to = {str(_parse(p.read_bytes())["To"]) for p in emls}
    assert to == set(ADDRESSES.values())
    assert not [rec for rec in archive.read_ledger(r.path).records if rec["tipo"] == "invio"]


def test_invia_davvero_delivers_each_ente_its_own_template(
    racc: rc.Raccolta, smtp: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """One message per ente, to its PEC (else e-mail), with its personalised template and
    the deadline; a second run sends nothing."""
    assert main(["invia", str(racc.path), "--davvero"]) == 0
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(ADDRESSES.values())
    ctx = validation_context(racc)
    for got in smtp.received:
        msg = _parse(got.data)
        codice = next(c for c, a in ADDRESSES.items() if a == got.rcpt_tos[0])
        ente = racc.registry.get(codice)
        assert ente is not None
        [(name, data)] = _attachments(msg)
        assert name == template_filename(ente, 2026)
        assert data == (racc.modelli_dir / name).read_bytes()
        assert validate_bytes(data, name, ctx).ente == codice
        assert ente.nome_completo in str(msg["Subject"])
        assert "entro il 15/12/2025" in _text(msg)
        assert got.mail_from == "piano.abitativo@pec.comune.crema.example"
    log = [rec for rec in archive.read_ledger(racc.path).records if rec["tipo"] == "invio"]
    assert [rec["esito"] for rec in log] == ["tentativo", "inviato"] * 5
    capsys.readouterr()
    assert main(["invia", str(racc.path), "--davvero"]) == 0
    assert len(smtp.received) == 5
    assert "già inviati prima: 5" in capsys.readouterr().out
    assert {e.codice: e.invitato_il is not None for e in status.stato(racc).enti} == {
        c: True for c in ADDRESSES
    }


def test_limite_sends_at_most_n_and_the_rest_next_time(racc: rc.Raccolta, smtp: SmtpServer) -> None:
    """--limite 2 sends two messages; the next run sends the other three only."""
    res = send.invia(racc, davvero=True, limite=2)
    assert (res.count(send.INVIATO), res.count(send.NON_INVIATO)) == (2, 3)
    assert len(smtp.received) == 2
    res = send.invia(racc, davvero=True)
    assert (res.count(send.INVIATO), res.count(send.GIA_INVIATO)) == (3, 2)
    assert len({m.rcpt_tos[0] for m in smtp.received}) == 5


def test_dry_run_is_honoured_by_the_library_itself(racc: rc.Raccolta, smtp: SmtpServer) -> None:
    """send.invia without davvero=True writes the outbox and sends nothing."""
    res = send.invia(racc, enti=["019035"])
    assert [o.esito for o in res.outcomes] == [send.PROVA]
    assert res.outcomes[0].eml is not None and res.outcomes[0].eml.is_file()
    assert smtp.received == []


def test_temporary_errors_are_retried_with_growing_waits(
    racc: rc.Raccolta, smtp: SmtpServer
) -> None:
    """Two "451" replies, then success: three attempts, waits of 5 and 10 seconds."""
    smtp.fail_next("451 4.3.0 Server occupato", "451 4.3.0 Server occupato")
    waits: list[float] = []
    res = send.invia(racc, enti=["019035"], davvero=True, sleep=waits.append)
    [out] = res.outcomes
    assert (out.esito, out.tentativi) == (send.INVIATO, 3)
    assert waits == [5.0, 10.0]
    assert len(smtp.received) == 1


def test_permanent_refusal_is_not_retried_and_is_sent_next_run(
    racc: rc.Raccolta, smtp: SmtpServer
) -> None:
    """A "550" is recorded as failed at once; the next run sends that message again."""
    smtp.fail_next("550 5.1.1 Casella inesistente")
    waits: list[float] = []
    res = send.invia(racc, enti=["019035", "019002"], davvero=True, sleep=waits.append)
    assert [o.esito for o in res.outcomes] == [send.FALLITO, send.INVIATO]
    assert "550" in res.outcomes[0].nota and waits == []
    res = send.invia(racc, enti=["019035", "019002"], davvero=True)
    assert [o.esito for o in res.outcomes] == [send.INVIATO, send.GIA_INVIATO]


def test_unreachable_server_stops_the_run_and_leaves_the_rest_for_later(tmp_path: Path) -> None:
    """No server on the port: the first message fails after its attempts, the others are
    not tried, and nothing is marked as sent."""
    from .mailservers import free_port

    r = make_raccolta(
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        smtp_sicurezza="nessuna",
        mittente="capofila@example.org",
        tentativi=2,
        attesa_tentativi=0,
    )
    res = send.invia(r, davvero=True, sleep=lambda s: None, timeout=2)
    assert [o.esito for o in res.outcomes] == [send.FALLITO] + [send.NON_INVIATO] * 4
    assert "connessione rifiutata" in res.outcomes[0].nota
    assert not [s for s in send.send_log(r).values() if s.esito == send.INVIATO]


def test_an_interrupted_send_is_never_repeated_silently(
    racc: rc.Raccolta, smtp: SmtpServer
) -> None:
    """The server takes the message but answers 451, and the program is stopped while it
    waits to retry: the next run reports the message as uncertain and does not send it;
    --ripeti sends it."""
    smtp.receive_then_reply("451 4.4.2 Tempo scaduto")

    def stopped(seconds: float) -> None:
        raise KeyboardInterrupt  # the clerk presses Ctrl-C during the wait

    with pytest.raises(KeyboardInterrupt):
        send.invia(racc, enti=["019035"], davvero=True, sleep=stopped)
    assert len(smtp.received) == 1
    log = [rec["esito"] for rec in archive.read_ledger(racc.path).records if rec["tipo"] == "invio"]
    assert log == [send.TENTATIVO]
    res = send.invia(racc, enti=["019035"], davvero=True)
    assert [o.esito for o in res.outcomes] == [send.INCERTO]
    assert "--ripeti" in res.outcomes[0].nota
    assert len(smtp.received) == 1
    res = send.invia(racc, enti=["019035"], davvero=True, ripeti=True)
    assert [o.esito for o in res.outcomes] == [send.INVIATO] and len(smtp.received) == 2


def test_a_copy_of_each_message_goes_to_the_sent_folder(
    tmp_path: Path, smtp: SmtpServer, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With IMAP configured, each message sent is appended, read, to the \\Sent folder."""
    monkeypatch.setenv(settings.PASSWORD_ENV, mailbox.password)
    r = make_raccolta(tmp_path, pausa=0, **smtp.settings(), **mailbox.server.settings(mailbox))
    res = send.invia(r, enti=["019035", "ALER-BCM"], davvero=True)
    assert res.count(send.INVIATO) == 2 and res.note == []
    sent = mailbox.snapshot("Sent")
    assert sorted(raw for _, _, raw in sent) == sorted(m.data for m in smtp.received)
    assert all("\\Seen" in flags for _, flags, _ in sent)
    assert mailbox.snapshot("INBOX") == []


def test_smtp_login_uses_the_password_from_the_environment(
    tmp_path: Path, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """utente in [posta], password in PIANO_ABITATIVO_PASSWORD: the server sees the login."""
    r = make_raccolta(tmp_path, pausa=0, utente="capofila", **smtp.settings())
    monkeypatch.setenv(settings.PASSWORD_ENV, "segreta-di-prova")
    send.invia(r, enti=["019035"], davvero=True)
    assert [m.login for m in smtp.received] == ["capofila"]
    monkeypatch.setenv(settings.PASSWORD_ENV, "sbagliata")
    with pytest.raises(settings.MailError, match="rifiutato utente o password"):
        send.invia(r, enti=["019002"], davvero=True)


def test_missing_password_is_asked_for_in_italian_before_sending(
    tmp_path: Path,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No variable and no keyring entry: one «Errore:» line saying where to put it."""
    monkeypatch.delenv(settings.PASSWORD_ENV, raising=False)
    r = make_raccolta(tmp_path, utente="capofila", **smtp.settings())
    assert main(["invia", str(r.path), "--davvero"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Errore: Manca la password della casella capofila")
    assert "PIANO_ABITATIVO_PASSWORD" in err and "keyring set piano-abitativo capofila" in err
    assert smtp.received == []


def _import_returns(r: rc.Raccolta, tmp_path: Path) -> None:
    """Crema answers by PEC with an error, Agnadello by e-mail with a valid file, Bagnolo
    writes by PEC without the file (all as .eml files saved by the clerk)."""
    when = dt.datetime(2025, 12, 5, 10, 0, tzinfo=mf.CET)
    crema = mf.make_pec_envelope(
        mf.make_plain(
            sender=ADDRESSES["019035"],
            date=when,
            message_id="<crema@x>",
            attachments=[("Crema.xlsx", workbook_of(r, "019035", a_sap="tre"))],
        ),
        when=when,
    )
    agnadello = mf.make_plain(
        sender=ADDRESSES["019002"],
        message_id="<agn@x>",
        attachments=[("A.xlsx", workbook_of(r, "019002"))],
    )
    bagnolo = mf.make_pec_envelope(
        mf.make_plain(
            sender=ADDRESSES["019005"], subject="Domanda sul modello", message_id="<bag@x>"
        ),
        identificativo="bagnolo@gestore.example",
    )
    folder = tmp_path / "salvati"
    folder.mkdir()
    for name, raw in (("crema.eml", crema), ("agnadello.eml", agnadello), ("bagnolo.eml", bagnolo)):
        (folder / name).write_bytes(raw)
    import_files(r, [folder])


def test_solleciti_go_to_the_silent_and_list_errors_in_plain_italian(
    racc: rc.Raccolta, smtp: SmtpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reminders go to the enti without a return (template attached again) and to Crema,
    whose file has an error, quoting sheet, cell and what to do; none to Agnadello."""
    _import_returns(racc, tmp_path)
    today = dt.date(2025, 12, 12)
    res = send.solleciti(racc, davvero=True, oggi=today)
    by_to = {m.rcpt_tos[0]: _parse(m.data) for m in smtp.received}
    assert set(by_to) == {ADDRESSES[c] for c in ("019035", "019010", "019005", "ALER-BCM")}
    crema = _text(by_to[ADDRESSES["019035"]])
    assert (
        f'- foglio "Scheda", cella {LAYOUT.cell("a_sap")}: N. alloggi SAP: «tre» non è un '
        "numero. Scrivere solo cifre, es. 3."
    ) in crema
    assert _attachments(by_to[ADDRESSES["019035"]]) == []
    [(name, _)] = _attachments(by_to[ADDRESSES["ALER-BCM"]])
    assert name == "Piano_abitativo_2026_ALER_Brescia_Cremona_Mantova.xlsx"
    assert "Sollecito" in str(by_to[ADDRESSES["019010"]]["Subject"])
    assert res.count(send.INVIATO) == 4
    again = send.solleciti(racc, davvero=True, oggi=today)
    assert again.count(send.GIA_INVIATO) == 4 and len(smtp.received) == 4
    capsys.readouterr()
    assert main(["stato", str(racc.path), "--json"]) == 0
    rows = {e["codice"]: e for e in json.loads(capsys.readouterr().out)["enti"]}
    assert rows["019035"]["sollecitato_il"] is not None
    assert rows["019002"]["sollecitato_il"] is None


def test_esiti_accept_list_what_to_fix_and_ask_for_a_missing_file(
    racc: rc.Raccolta, smtp: SmtpServer, tmp_path: Path
) -> None:
    """After an import: Agnadello hears its file was accepted, Crema what to fix (as a reply
    to its message), Bagnolo that the file was missing; a second run sends nothing."""
    _import_returns(racc, tmp_path)
    res = send.esiti(racc, davvero=True)
    assert res.count(send.INVIATO) == 3
    by_to = {m.rcpt_tos[0]: _parse(m.data) for m in smtp.received}
    crema = by_to[ADDRESSES["019035"]]
    assert "contiene 1 errore e non può essere accettato" in _text(crema)
    assert f"cella {LAYOUT.cell('a_sap')}" in _text(crema)
    assert crema["In-Reply-To"] == "<crema@x>"
    assert crema["Auto-Submitted"] == "auto-replied"
    assert "è stato accettato" in _text(by_to[ADDRESSES["019002"]])
    bagnolo = by_to[ADDRESSES["019005"]]
    assert "manca il file" in str(bagnolo["Subject"])
    assert "«Domanda sul modello»" in _text(bagnolo)
    assert send.esiti(racc, davvero=True).count(send.INVIATO) == 0
    assert len(smtp.received) == 3


def test_no_manca_file_reply_to_unknown_senders_or_automatic_messages(
    racc: rc.Raccolta, tmp_path: Path
) -> None:
    """Messages without a file from a stranger or marked Auto-Submitted get no reply."""
    folder = tmp_path / "vari"
    folder.mkdir()
    (folder / "a.eml").write_bytes(
        mf.make_plain(sender="sconosciuto@example.org", message_id="<s@x>")
    )
    (folder / "b.eml").write_bytes(
        mf.make_plain(
            sender=ADDRESSES["019010"],
            message_id="<auto@x>",
            headers=[("Auto-Submitted", "auto-replied")],
        )
    )
    res = import_files(racc, [folder])
    assert {o.esito for o in res.outcomes} == {"senza allegati"}
    assert outbox.plan_esiti(racc).messages == []
    st = status.stato(racc)
    assert [m["mittente"] for m in st.mittenti_sconosciuti] == ["sconosciuto@example.org"]


def test_files_from_mail_carry_their_evidence_through_importa_da(
    racc: rc.Raccolta, tmp_path: Path
) -> None:
    """A saved PEC .eml keeps its certified time; importing it again changes nothing."""
    _import_returns(racc, tmp_path)
    [crema] = [rc_ for rc_ in receipts(racc) if rc_.report.ente == "019035"]
    assert crema.certificato and crema.canale == ingest.CANALE_PEC
    assert crema.ricevuto_il == dt.datetime(2025, 12, 5, 10, 0, tzinfo=mf.CET)
    ledger = (racc.path / "archivio" / "registro.jsonl").read_bytes()
    res = import_files(racc, [tmp_path / "salvati"])
    assert {o.esito for o in res.outcomes} == {"già importato"}
    assert (racc.path / "archivio" / "registro.jsonl").read_bytes() == ledger


def test_pec_receipts_of_our_messages_show_delivery_in_stato(
    tmp_path: Path, smtp: SmtpServer, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gestore's "avvenuta consegna" of the template sent to Crema and a "mancata
    consegna" for Agnadello appear in stato; neither counts as a return."""
    monkeypatch.setenv(settings.PASSWORD_ENV, mailbox.password)
    r = make_raccolta(
        tmp_path,
        pausa=0,
        cartella_inviati="Sent",
        **smtp.settings(),
        **mailbox.server.settings(mailbox),
    )
    send.invia(r, enti=["019035", "019002"], davvero=True)
    ids = {m.rcpt_tos[0]: str(_parse(m.data)["Message-ID"]) for m in smtp.received}
    when = dt.datetime(2025, 11, 20, 9, 0, 5, tzinfo=mf.CET)
    mailbox.append(
        mf.make_ricevuta("avvenuta-consegna", when=when, riferimento=ids[ADDRESSES["019035"]]),
        when=when,
    )
    mailbox.append(
        mf.make_ricevuta("mancata-consegna", when=when, riferimento=ids[ADDRESSES["019002"]]),
        when=when,
    )
    imap.import_imap(r)
    rows = {e.codice: e for e in status.stato(r).enti}
    assert rows["019035"].consegnato_il == when and not rows["019035"].ricevuto
    assert rows["019002"].consegnato_il is None
    assert rows["019002"].mancata_consegna == "mancata consegna il 20/11/2025"
    assert receipts(r) == []


def test_an_unrecognised_file_gets_an_esito_only_to_a_registry_sender(
    racc: rc.Raccolta, tmp_path: Path
) -> None:
    """A workbook that is not one of our templates, by mail: a sender of the registry is told
    it was not recognised, with the reasons; a sender outside the registry gets nothing and
    is listed for the capofila."""
    import io

    import openpyxl

    def unrelated(name: str, sender: str, text: str) -> Path:
        book = openpyxl.Workbook()
        book.active["A1"] = text  # type: ignore[index]
        buf = io.BytesIO()
        book.save(buf)
        path = tmp_path / f"{name}.eml"
        path.write_bytes(
            mf.make_plain(
                sender=sender,
                message_id=f"<{name}@x>",
                attachments=[("dati.xlsx", buf.getvalue())],
            )
        )
        return path

    import_files(racc, [unrelated("altro", ADDRESSES["019010"], "dati nostri")])
    import_files(racc, [unrelated("estraneo", "ufficio.tecnico@posta.example.org", "altri")])
    plan = outbox.plan_esiti(racc)
    [msg] = plan.messages
    assert (msg.genere, msg.destinatario, msg.ente) == ("esito", ADDRESSES["019010"], None)
    assert "non è stato riconosciuto come un modello del Piano 2026" in msg.corpo
    assert "\n- " in msg.corpo and msg.in_risposta_a == "<altro@x>"
    assert plan.esclusi == [
        ("ufficio.tecnico@posta.example.org", "non inviata: mittente non nell'elenco")
    ]
