"""`importa --da` given the whole raccolta folder: the raccolta's own outputs (its master,
the templates nobody filled in, its document) are archived but recorded as «generato»,
never as an ente's version; the filled returns are imported as always. Real files made by
the command line: crea, modelli, consolida, documento."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.archive import store as archive
from piano_abitativo.archive.decisions import TIPO_GENERATO
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.checking import validation_context
from piano_abitativo.consolidation.context import context_fingerprint
from piano_abitativo.core import raccolta as rc
from piano_abitativo.document.base import DOCUMENT_DIR
from piano_abitativo.mail import generated
from piano_abitativo.master.model import SHEET_ANOMALIE, SHEET_CRUSCOTTO, SHEET_DATI
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import template_filename

ENTI_CSV = """\
codice;tipo;denominazione;provincia;codice_catastale;capofila;email;pec
097001;COMUNE;Valdimonte;LC;X001;SI;;protocollo@pec.valdimonte.example
097002;COMUNE;Borgo d'Olmo;LC;X002;;ufficio@borgo.example;
097003;COMUNE;San Pietro al Lago;LC;X003;;;comune@pec.sanpietro.example
097004;COMUNE;Cà de' Monti;LC;X004;;;
ALER-LC;ALER;ALER Lecco-Sondrio;;;;;aler@pec.aler.example
"""
#: enough [posta] for the dry runs, which write to posta/uscita and contact no server
POSTA = """
[posta]
smtp_host = "127.0.0.1"
smtp_port = 9
smtp_sicurezza = "nessuna"
mittente = "casa@pec.valdimonte.example"
"""

VALUES: dict[str, Any] = {
    "a_sap": 40,
    "a_sas": 3,
    "b_carenza_manutentiva": 2,
    "c_nuova_edificazione": 0,
    "d_turnover": 1,
    "e_conferite_privati": 0,
    "h_categoria_aggiuntiva": "NO",
    "i_forze_polizia": 5,
    "j_sat": 1,
    "k_assegnate_anno_precedente": 3,
    "referente_nome": "Anna Bianchi",
    "referente_email": "anna@comune.example",
}
FILLED = ("097001", "097002")
BLANK = ("097003", "097004", "ALER-LC")
MASTER = "Consolidato_piano_abitativo_2026.xlsm"
DOCUMENT = "Piano_annuale_offerta_abitativa_2026.docx"


def _ok(*args: str) -> None:
    assert main(list(args)) == 0, args


def _make_raccolta(base: Path, name: str) -> Path:
    csv_path = base / "enti.csv"
    csv_path.write_text(ENTI_CSV, encoding="utf-8")
    racc = base / name
    _ok("crea", str(racc), "--anno", "2026", "--enti", str(csv_path), "--ambito", "Lario")
    _ok("modelli", str(racc))
    return racc


def _fill(racc: Path, codice: str, values: dict[str, Any], target: Path) -> Path:
    r = rc.load(racc)
    ente = r.registry.get(codice)
    assert ente is not None
    blank = r.modelli_dir / template_filename(ente, r.anno)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(fill_template(blank.read_bytes(), values))
    return target


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raccolta as the demo leaves it: templates, the messages sending them (a dry run:
    .eml files with the blank templates attached, in posta/uscita), two returns, master,
    document."""
    base = tmp_path_factory.mktemp("own")
    racc = _make_raccolta(base, "raccolta")
    with (racc / "raccolta.toml").open("a", encoding="utf-8") as fh:
        fh.write(POSTA)
    _ok("invia", str(racc))
    assert len(list((racc / "posta" / "uscita").glob("invio_*.eml"))) == 4
    for codice in FILLED:
        _fill(racc, codice, VALUES, racc / "risposte" / f"{codice}.xlsx")
    _ok("consolida", str(racc))
    _ok("documento", str(racc), "--senza-pdf")
    assert (racc / MASTER).is_file() and (racc / DOCUMENT_DIR / DOCUMENT).is_file()
    assert not (racc / "archivio" / archive.LEDGER_NAME).exists()
    return racc


@pytest.fixture
def racc(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "raccolta"
    shutil.copytree(built, copy)
    return copy


def _importa(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["importa", *args, "--json"]) == code
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _stati(racc: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    capsys.readouterr()
    assert main(["stato", str(racc), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    return {e["codice"]: e["stato"] for e in data["enti"]}


def _ledger(racc: Path) -> list[dict[str, Any]]:
    return archive.read_ledger(racc).records


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_importing_the_whole_raccolta_folder_records_only_the_filled_returns(
    racc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = racc / DOCUMENT_DIR / DOCUMENT
    got = _importa(capsys, str(racc), "--da", str(racc), str(document))
    by_name = {Path(f["origine"]).name: f for f in got["file"]}
    # returns, templates, master, document; not the archive, not the outbox's drafts
    assert len(got["file"]) == 2 + 5 + 1 + 1
    for codice in FILLED:
        assert by_name[f"{codice}.xlsx"]["esito"] == "importato"
        assert by_name[f"{codice}.xlsx"]["ente"] == codice
    templates = [n for n in by_name if n.startswith("Piano_abitativo_2026_")]
    assert len(templates) == 5
    for name in templates:
        assert by_name[name] == {
            "origine": str((racc / "modelli" / name).resolve()),
            "esito": "generato",
            "messaggio": f"{name}: modello non compilato generato da questa raccolta, "
            "non importato",
        }
    assert by_name[MASTER]["esito"] == "generato"
    assert by_name[MASTER]["messaggio"] == (
        f"{MASTER}: cartella di lavoro generata da questa raccolta, non importata"
    )
    assert by_name[DOCUMENT]["esito"] == "generato"
    assert "documento del Piano generato da questa raccolta" in by_name[DOCUMENT]["messaggio"]
    assert got["recuperati"] == []

    records = _ledger(racc)
    receipts = [x for x in records if x["tipo"] == "ricezione"]
    assert sorted(x["report"]["ente"] for x in receipts) == sorted(FILLED)
    own = {x["sha256"]: x for x in records if x["tipo"] == TIPO_GENERATO}
    assert len(own) == 7
    master = own[_sha(racc / MASTER)]
    assert set(master) == {
        "tipo",
        "versione",
        "sha256",
        "nome",
        "motivo",
        "origine",
        "importato_il",
    }
    assert master["nome"] == MASTER and master["versione"] == 1
    assert master["motivo"] == "cartella di lavoro generata da questa raccolta, non importata"
    # the archive holds every file given, the own outputs included
    for sha in own:
        assert list((racc / "archivio" / "file" / sha[:2]).glob(f"{sha}*"))

    stati = _stati(racc, capsys)
    assert {c: stati[c] for c in BLANK} == dict.fromkeys(BLANK, "non ricevuto")
    assert all(stati[c] != "non ricevuto" for c in FILLED)

    # a rerun (the archive folder is inside the raccolta folder: not scanned) adds nothing
    again = _importa(capsys, str(racc), "--da", str(racc), str(document))
    esiti = {Path(f["origine"]).name: f["esito"] for f in again["file"]}
    assert len(esiti) == 9
    assert [esiti[f"{c}.xlsx"] for c in FILLED] == ["già importato"] * 2
    assert sorted(set(esiti.values())) == ["generato", "già importato"]
    assert again["recuperati"] == []
    assert _ledger(racc) == records
    assert _stati(racc, capsys) == stati


def test_the_terminal_shows_own_outputs_as_a_note_not_as_errors(
    racc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["importa", str(racc), "--da", str(racc / "modelli"), str(racc / MASTER)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Nuovi file archiviati: 0" in out
    assert "Nota: 6 file generati da piano-abitativo" in out
    assert "non sono risposte degli enti, non importati" in out
    assert "non leggibili" not in out and "da correggere" not in out


def test_a_template_of_this_raccolta_with_one_value_typed_is_a_return(
    racc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero = _fill(racc, "097003", {"a_sap": 0}, tmp_path / "arrivi" / "zero.xlsx")
    name = _fill(racc, "097004", {"referente_nome": "Rossi"}, tmp_path / "arrivi" / "nome.xlsx")
    bad = _fill(racc, "ALER-LC", {"j_sat": "tanti"}, tmp_path / "arrivi" / "testo.xlsx")
    got = _importa(capsys, str(racc), "--da", str(zero), str(name), str(bad), code=1)
    assert [(f["esito"], f.get("ente")) for f in got["file"]] == [
        ("importato", "097003"),
        ("importato", "097004"),
        ("importato", "ALER-LC"),
    ]
    assert not [x for x in _ledger(racc) if x["tipo"] == TIPO_GENERATO]
    stati = _stati(racc, capsys)
    assert all(stati[c] != "non ricevuto" for c in BLANK)


def test_a_filled_template_of_another_raccolta_stays_a_return_with_m07(
    racc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _make_raccolta(tmp_path, "altra")
    assert rc.load(other).id != rc.load(racc).id
    filled = _fill(other, "097003", VALUES, tmp_path / "arrivi" / "altra.xlsx")
    ente = rc.load(other).registry.get("097004")
    assert ente is not None
    blank = other / "modelli" / template_filename(ente, 2026)
    got = _importa(capsys, str(racc), "--da", str(filled), str(blank), code=1)
    assert [f["esito"] for f in got["file"]] == ["importato", "importato"]
    for f in got["file"]:
        assert "M07" in {p["codice"] for p in f["problemi"]}
    assert not [x for x in _ledger(racc) if x["tipo"] == TIPO_GENERATO]


def test_the_master_is_told_by_its_content_whatever_its_name(
    racc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed = tmp_path / "arrivi" / "risposta_comune.xlsm"
    renamed.parent.mkdir()
    shutil.copyfile(racc / MASTER, renamed)
    blank_master = tmp_path / "vuoto" / "Consolidato_vuoto.xlsm"
    _ok("master-vuoto", "--output", str(blank_master))
    got = _importa(capsys, str(racc), "--da", str(renamed), str(blank_master))
    assert [f["esito"] for f in got["file"]] == ["generato", "generato"]
    assert got["file"][0]["messaggio"] == (
        "risposta_comune.xlsm: cartella di lavoro generata da questa raccolta, non importata"
    )
    assert got["file"][1]["messaggio"].startswith(
        "Consolidato_vuoto.xlsm: cartella di lavoro riepilogativa di piano-abitativo (raccolta "
    )
    assert "non è la risposta di un ente" in got["file"][1]["messaggio"]
    assert not [x for x in _ledger(racc) if x["tipo"] == "ricezione"]


def test_an_own_output_recorded_as_a_return_by_an_earlier_import_is_excluded(
    racc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the import before this change left: a receipt of a blank template."""
    r = rc.load(racc)
    ente = r.registry.get("097003")
    assert ente is not None
    template = r.modelli_dir / template_filename(ente, r.anno)
    data = template.read_bytes()
    with archive.locked(r.path):
        sha, rel = archive.store_blob(r.path, data, suffix=".xlsx")
        old = archive.make_receipt(
            r,
            data,
            nome=template.name,
            blob=rel,
            sha=sha,
            ricevuto_il=archive.now(),
            fonte_data=archive.FONTE_FILE,
            canale=archive.CANALE_CARTELLA,
            origine=str(template),
            ctx=validation_context(r),
            fingerprint=context_fingerprint(r),
        )
        archive.append_records(r.path, [old.to_record()])
    assert _stati(racc, capsys)["097003"] != "non ricevuto"
    got = _importa(capsys, str(racc), "--da", str(template))
    assert got["file"][0]["esito"] == "generato"
    assert got["file"][0]["messaggio"].endswith(
        "(era stato registrato come risposta: ora è escluso)"
    )
    assert _stati(racc, capsys)["097003"] == "non ricevuto"
    again = _importa(capsys, str(racc), "--da", str(template))
    assert again["file"][0]["esito"] == "generato"
    assert "ora è escluso" not in again["file"][0]["messaggio"]
    assert len([x for x in _ledger(racc) if x["tipo"] == TIPO_GENERATO]) == 1


def test_the_names_mirrored_in_mail_generated_are_those_of_master_and_document() -> None:
    assert generated.MASTER_SHEETS == (SHEET_CRUSCOTTO, SHEET_DATI, SHEET_ANOMALIE)
    assert generated.DOCUMENT_DIR == DOCUMENT_DIR
