"""Numbers nobody can slip in: identity conflicts are held "in verifica", the capofila's
decisions (accetta, scarta, ripristina) and rettifiche are recorded with who, when, why,
values typed in the master's Dati are never silently overwritten, and a damaged ledger is
reported and recovered. Everything through the command line, on real files."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest

from piano_abitativo.archive import store as archive
from piano_abitativo.cli.commands import main
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.schema import SCHEMA
from piano_abitativo.master.model import dati_header, master_path
from piano_abitativo.master.tables import DATI_FIRST_FIELD_COL, DATI_HEADER_ROW

from .mailfactory import make_pec_envelope, make_plain
from .mailraccolta import make_raccolta, workbook_of

CREMA = "019035"
CAMISANO = "019010"
CREMA_PEC = "protocollo@pec.comune.crema.example"
CAMISANO_PEC = "comune.camisano@pec.example"
T0 = dt.datetime(2025, 12, 1, 9, 0, tzinfo=dt.UTC)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _stato(capsys: pytest.CaptureFixture[str], r: rc.Raccolta) -> dict[str, Any]:
    code, out, _ = _cli(capsys, "stato", str(r.path), "--json")
    assert code == 0
    data: dict[str, Any] = json.loads(out)
    return data


def _ente(st: dict[str, Any], codice: str) -> dict[str, Any]:
    return next(e for e in st["enti"] if e["codice"] == codice)


def _mail(
    folder: Path, name: str, r: rc.Raccolta, codice: str, sender: str, when: dt.datetime, **v: Any
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = make_plain(
        sender=sender,
        date=when,
        message_id=f"<{name}@example>",
        attachments=[(f"{name}.xlsx", workbook_of(r, codice, **v))],
    )
    path = folder / f"{name}.eml"
    path.write_bytes(data)
    return path


@pytest.fixture
def racc(tmp_path: Path) -> rc.Raccolta:
    return make_raccolta(tmp_path)


def _a_sap(capsys: pytest.CaptureFixture[str], r: rc.Raccolta) -> int:
    code, out, _ = _cli(capsys, "consolida", str(r.path), "--json")
    assert code == 0, out
    return int(json.loads(out)["totali"]["a_sap"])


def test_a_file_sent_by_another_ente_is_held_and_replaced_nothing(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Camisano sends Crema's template from its registered PEC: Crema keeps its own
    version, the file is 'in verifica' with the reason, and the reply drafted to Camisano
    says so (never "accettato")."""
    inbox = tmp_path / "in"
    _mail(inbox, "crema", racc, CREMA, CREMA_PEC, T0, a_sap=358)
    _mail(inbox, "falso", racc, CREMA, CAMISANO_PEC, T0 + dt.timedelta(days=1), a_sap=15)
    code, out, _ = _cli(capsys, "importa", str(racc.path), "--da", str(inbox))
    assert code == 0, out
    st = _stato(capsys, racc)
    crema = _ente(st, CREMA)
    assert crema["stato"] == "in verifica"
    (held,) = st["in_verifica"]
    assert held["ente"] == CREMA
    assert held["mittente"] == CAMISANO_PEC
    assert held["mittente_ente"] == CAMISANO
    assert "inviato dall'indirizzo registrato di Comune di Camisano" in held["motivo"]
    assert len(held["id"]) == 8
    assert _a_sap(capsys, racc) == 358
    drafts = [
        email.message_from_bytes(d.read_bytes(), policy=email.policy.default)
        for d in (racc.path / "posta" / "uscita").rglob("*.eml")
    ]
    to_camisano = [
        str(m.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        for m in drafts
        if CAMISANO_PEC in str(m["To"])
    ]
    assert to_camisano, "no reply drafted to the sender"
    assert all("accettato" not in d for d in to_camisano)
    assert any("è in verifica presso il Comune capofila" in d for d in to_camisano)


def test_accetta_scarta_ripristina_are_recorded_and_reversible(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "in"
    _mail(inbox, "crema", racc, CREMA, CREMA_PEC, T0, a_sap=358)
    _mail(inbox, "falso", racc, CREMA, CAMISANO_PEC, T0 + dt.timedelta(days=1), a_sap=15)
    _cli(capsys, "importa", str(racc.path), "--da", str(inbox))
    held_id = _stato(capsys, racc)["in_verifica"][0]["id"]
    code, out, _ = _cli(
        capsys, "accetta", str(racc.path), held_id, "--motivo", "confermato per telefono"
    )
    assert code == 0, out
    assert "Accettato il file" in out and "confermato per telefono" in out
    assert _a_sap(capsys, racc) == 15
    st = _stato(capsys, racc)
    assert st["in_verifica"] == []
    assert _ente(st, CREMA)["id"] == held_id
    code, out, _ = _cli(capsys, "scarta", str(racc.path), held_id, "--motivo", "errore")
    assert code == 0, out
    assert _a_sap(capsys, racc) == 358
    st = _stato(capsys, racc)
    assert [x["id"] for x in st["scartati"]] == [held_id]
    code, out, _ = _cli(capsys, "ripristina", str(racc.path), held_id)
    assert code == 0, out
    assert _a_sap(capsys, racc) == 15
    records = archive.read_ledger(racc.path).records
    decisions = [x for x in records if x["tipo"] == "decisione"]
    assert [d["azione"] for d in decisions] == ["accetta", "scarta", "ripristina"]
    assert all(d["utente"] and d["il"] for d in decisions)


def test_an_unknown_id_is_one_italian_line(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(capsys, "scarta", str(racc.path), "deadbeef", "--motivo", "x")
    assert code == 2
    assert err.startswith("Errore: Nessun file ricevuto ha l'identificativo deadbeef")
    assert "Traceback" not in err


def test_an_unknown_sender_is_used_but_flagged_and_held_when_it_replaces_the_ente(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "primo"
    _mail(first, "ignoto", racc, CAMISANO, "sindaco@gmail.example", T0, a_sap=7)
    _cli(capsys, "importa", str(racc.path), "--da", str(first))
    st = _stato(capsys, racc)
    assert _ente(st, CAMISANO)["mittente_non_registrato"] is True
    assert _ente(st, CAMISANO)["stato"] != "in verifica"
    second = tmp_path / "secondo"
    _mail(second, "proprio", racc, CAMISANO, CAMISANO_PEC, T0 + dt.timedelta(days=1), a_sap=8)
    _mail(second, "ignoto2", racc, CAMISANO, "altro@gmail.example", T0 + dt.timedelta(days=2))
    _cli(capsys, "importa", str(racc.path), "--da", str(second))
    st = _stato(capsys, racc)
    assert _ente(st, CAMISANO)["stato"] == "in verifica"
    (held,) = st["in_verifica"]
    assert held["mittente"] == "altro@gmail.example"
    assert "non registrato" in held["motivo"]


def test_a_workbook_imported_from_a_folder_is_the_capofilas_act(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cartella"
    folder.mkdir()
    (folder / "crema.xlsx").write_bytes(workbook_of(racc, CREMA, a_sap=300))
    _cli(capsys, "importa", str(racc.path), "--da", str(folder))
    st = _stato(capsys, racc)
    assert st["in_verifica"] == []
    assert _ente(st, CREMA)["mittente_non_registrato"] is False


def test_a_rettifica_is_applied_validated_and_stops_when_the_ente_sends_again(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "in"
    _mail(inbox, "crema", racc, CREMA, CREMA_PEC, T0, a_sap=358)
    _cli(capsys, "importa", str(racc.path), "--da", str(inbox))
    code, out, _ = _cli(
        capsys,
        "rettifica",
        str(racc.path),
        "--ente",
        CREMA,
        "--campo",
        "a_sap",
        "--valore",
        "360",
        "--motivo",
        "nota del 3/12",
    )
    assert code == 0, out
    assert "358 → 360" in out
    assert _a_sap(capsys, racc) == 360
    assert _ente(_stato(capsys, racc), CREMA)["rettificati"] == ["a_sap"]
    again = tmp_path / "again"
    _mail(again, "crema2", racc, CREMA, CREMA_PEC, T0 + dt.timedelta(days=2), a_sap=359)
    _cli(capsys, "importa", str(racc.path), "--da", str(again))
    assert _a_sap(capsys, racc) == 359
    (gone,) = _stato(capsys, racc)["rettifiche_superate"]
    assert gone["campo"] == "a_sap" and gone["motivo"] == "nota del 3/12"


def test_a_rettifica_of_an_unknown_field_or_a_bad_value_is_refused(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "in"
    _mail(inbox, "crema", racc, CREMA, CREMA_PEC, T0)
    _cli(capsys, "importa", str(racc.path), "--da", str(inbox))
    base = ["rettifica", str(racc.path), "--ente", CREMA, "--motivo", "x"]
    code, _, err = _cli(capsys, *base, "--campo", "zz", "--valore", "1")
    assert code == 2 and "Campo «zz» non riconosciuto" in err
    code, _, err = _cli(capsys, *base, "--campo", "a_sap", "--valore", "molti")
    assert code == 2 and "atteso un numero" in err
    code, _, err = _cli(capsys, *base, "--campo", "f_totale_assegnabili", "--valore", "3")
    assert code == 2 and "è calcolato" in err


def _dati_cell(ws: Any, codice: str, field_id: str) -> Any:
    header = [c.value for c in ws[DATI_HEADER_ROW + 1]]
    wanted = dati_header(SCHEMA.field_by_id[field_id])
    col = next(i for i, h in enumerate(header) if i >= DATI_FIRST_FIELD_COL and h == wanted)
    row = next(r for r in ws.iter_rows(min_row=DATI_HEADER_ROW + 2) if r[0].value == codice)
    return row[col]


def test_a_value_typed_in_dati_stops_consolida_until_recorded_or_discarded(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = tmp_path / "in"
    _mail(inbox, "crema", racc, CREMA, CREMA_PEC, T0, a_sap=997)
    _cli(capsys, "importa", str(racc.path), "--da", str(inbox))
    assert _a_sap(capsys, racc) == 997
    path = master_path(racc.path, racc.anno, ".xlsm")
    wb = openpyxl.load_workbook(path, keep_vba=True)
    cell = _dati_cell(wb["Dati"], CREMA, "a_sap")
    assert cell.value == 997
    cell.value = 990
    wb.save(path)
    code, out, err = _cli(capsys, "consolida", str(racc.path))
    assert code == 2
    assert "c'è 1 valore modificato a mano" in err
    assert "Comune di Crema" in err and "997 → 990" in err
    assert "--registra-rettifiche" in err and "--scarta-modifiche" in err
    code, out, err = _cli(
        capsys, "consolida", str(racc.path), "--registra-rettifiche", "--motivo", "verbale 12"
    )
    assert code == 0, err
    assert "Rettifiche registrate dal foglio Dati: 1." in err
    assert _a_sap(capsys, racc) == 990
    (rt,) = [x for x in archive.read_ledger(racc.path).records if x["tipo"] == "rettifica"]
    assert rt["origine"] == "cartella di lavoro" and rt["valore_precedente"] == 997
    wb = openpyxl.load_workbook(path, keep_vba=True)
    assert "Decisioni e rettifiche" in wb.sheetnames
    cell = _dati_cell(wb["Dati"], CREMA, "a_sap")
    assert cell.value == 990 and cell.comment is not None
    assert "verbale 12" in cell.comment.text
    cell.value = 1
    wb.save(path)
    code, _, err = _cli(capsys, "consolida", str(racc.path), "--scarta-modifiche")
    assert code == 0, err
    assert _a_sap(capsys, racc) == 990
    code, out, err = _cli(capsys, "documento", str(racc.path), "--senza-pdf", "--json")
    assert code == 0, err
    doc = docx.Document(json.loads(out)["docx"])
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "Nota — rettifiche del Comune capofila" in text
    assert "Comune di Crema, a) " in text and "997 → 990 (motivo: verbale 12" in text
    table_a = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    assert "990" in table_a and "997" not in table_a


def test_a_damaged_ledger_line_is_reported_and_its_file_recovered(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cartella"
    folder.mkdir()
    (folder / "crema.xlsx").write_bytes(workbook_of(racc, CREMA, a_sap=41))
    _cli(capsys, "importa", str(racc.path), "--da", str(folder))
    ledger = archive.archive_dir(racc.path) / archive.LEDGER_NAME
    lines = ledger.read_text(encoding="utf-8").splitlines()
    rec = json.loads(next(x for x in lines if '"tipo": "ricezione"' in x))
    rec["ricevuto_il"] = "31/12/2099"
    ledger.write_text(json.dumps(rec) + "\n", encoding="utf-8")  # only the damaged line
    st = _stato(capsys, racc)
    (damage,) = st["registro_danneggiato"]
    assert damage["riga"] == 1 and "data non valida" in damage["motivo"]
    code, out, _ = _cli(capsys, "consolida", str(racc.path))
    assert code == 0
    assert "Registro dell'archivio danneggiato, riga 1" in out
    empty = tmp_path / "vuota"
    empty.mkdir()
    _cli(capsys, "importa", str(racc.path), "--da", str(empty))
    st = _stato(capsys, racc)
    assert _ente(st, CREMA)["ricevuto"] is True
    (damage,) = st["registro_danneggiato"]
    assert damage["recuperato"] is True
    assert _a_sap(capsys, racc) == 41


def test_a_cut_or_binary_line_is_reported_with_its_number(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cartella"
    folder.mkdir()
    (folder / "crema.xlsx").write_bytes(workbook_of(racc, CREMA))
    _cli(capsys, "importa", str(racc.path), "--da", str(folder))
    ledger = archive.archive_dir(racc.path) / archive.LEDGER_NAME
    n = len(ledger.read_bytes().splitlines())  # the receipt (and its reading, see quarantine)
    with ledger.open("ab") as fh:
        fh.write(b'{"tipo": "ricezione", "\xff\xfe"}\n{"tipo": "ricez')
    damage = _stato(capsys, racc)["registro_danneggiato"]
    assert [d["riga"] for d in damage] == [n + 1, n + 2]
    assert "caratteri non validi" in damage[0]["motivo"]
    assert "interrotta" in damage[1]["motivo"]


def test_a_pec_whose_gestore_signature_fails_cannot_replace_the_entes_verified_version(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A later 'PEC' claiming Crema's address whose signed part was altered (so its sender
    is not verified) is held, not used: Crema keeps its genuine signed version."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    for name, when, a_sap in (("vera", T0, 358), ("falsa", T0 + dt.timedelta(days=2), 9999)):
        original = make_plain(
            sender=CREMA_PEC,
            date=when,
            message_id=f"<{name}@example>",
            attachments=[(f"{name}.xlsx", workbook_of(racc, CREMA, a_sap=a_sap))],
        )
        raw = make_pec_envelope(original, when=when, identificativo=f"id-{name}")
        if name == "falsa":
            raw = raw.replace(b"Buongiorno", b"Buongiorn0", 1)
        (inbox / f"{name}.eml").write_bytes(raw)
    code, out, _ = _cli(capsys, "importa", str(racc.path), "--da", str(inbox))
    assert code == 0, out
    st = _stato(capsys, racc)
    crema = _ente(st, CREMA)
    assert crema["stato"] == "in verifica"
    assert crema["verifica_pec"] == "gestore_non_verificato"
    (held,) = st["in_verifica"]
    assert "busta PEC senza una firma valida del gestore" in held["motivo"]
    assert _a_sap(capsys, racc) == 358


def test_a_mailed_file_whose_record_is_damaged_comes_back_with_its_messages_facts(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The message record still says who sent the file and when: the recovered version
    keeps its name, time, channel and sender, so it still protects the ente's data."""
    inbox = tmp_path / "in"
    _mail(inbox, "crema", racc, CREMA, CREMA_PEC, T0, a_sap=358)
    _cli(capsys, "importa", str(racc.path), "--da", str(inbox))
    ledger = archive.archive_dir(racc.path) / archive.LEDGER_NAME
    lines = ledger.read_bytes().split(b"\n")
    i = next(k for k, line in enumerate(lines) if b'"tipo": "ricezione"' in line)
    lines[i] = lines[i][:40] + b"\xff" + lines[i][41:]
    ledger.write_bytes(b"\n".join(lines))
    assert _ente(_stato(capsys, racc), CREMA)["ricevuto"] is False
    empty = tmp_path / "vuota"
    empty.mkdir()
    _cli(capsys, "importa", str(racc.path), "--da", str(empty))
    crema = _ente(_stato(capsys, racc), CREMA)
    assert crema["file"] == "crema.xlsx"
    assert crema["mittente"] == CREMA_PEC and crema["canale"] == "e-mail"
    assert dt.datetime.fromisoformat(crema["ricevuto_il"]) == T0
    assert crema["mittente_non_registrato"] is False
