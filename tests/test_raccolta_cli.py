"""Registry, raccolta folder and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from piano_abitativo.cli.commands import main
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.registry import (
    Ente,
    RegistryError,
    default_registry,
    normalise_name,
    parse_registry,
)

from .sample_returns import CREMA


def test_builtin_registry_is_the_ambito_cremasco() -> None:
    """48 comuni and the ALER, Crema capofila, ISTAT codes with leading zeros."""
    reg = default_registry()
    assert len(reg) == 49
    assert sum(1 for e in reg if e.is_comune) == 48
    assert reg.capofila is not None and reg.capofila.denominazione == "Crema"
    assert reg.get("019035") is not None


@pytest.mark.parametrize(
    ("csv_text", "fragment"),
    [
        (
            "codice,tipo,denominazione\n1,COMUNE,A\n1,COMUNE,B\n",
            "riga 3: codice 000001 già presente",
        ),
        ("codice,tipo,denominazione\n019001,PROVINCIA,A\n", "riga 2: tipo 'PROVINCIA' sconosciuto"),
        ("codice,tipo,denominazione\n019001,COMUNE,\n", "riga 2: manca la denominazione"),
        ("codice,denominazione\n019001,A\n", "riga 1: mancano le colonne tipo"),
    ],
)
def test_bad_registry_rows_are_rejected_naming_the_line(csv_text: str, fragment: str) -> None:
    """Each bad row is refused with its line number."""
    with pytest.raises(RegistryError, match=fragment):
        parse_registry(csv_text, source="enti.csv")


def test_registry_accepts_excel_semicolon_csv_and_restores_zeros() -> None:
    """A CSV saved by Excel in Italy (';', codes without zeros) is read correctly."""
    reg = parse_registry(
        "codice;tipo;denominazione;provincia;codice_catastale;capofila;pec\n"
        "19035;COMUNE;Crema;CR;D142;SI;crema@pec.example\n"
    )
    ente = reg.get("019035")
    assert ente is not None and ente.capofila and ente.indirizzo == "crema@pec.example"


@pytest.mark.parametrize(
    "variant", ["RIVOLTA D'ADDA", "Comune di Rivolta d’Adda", "rivolta-d-adda"]
)
def test_names_match_after_normalisation(variant: str) -> None:
    """R10: case, apostrophes, hyphens and 'Comune di' do not matter."""
    assert normalise_name(variant) == normalise_name("Rivolta d'Adda")


@pytest.mark.parametrize(
    ("denominazione", "tipo", "nome"),
    [
        ("Crema", "COMUNE", "Comune di Crema"),
        ("Comune di Crema", "COMUNE", "Comune di Crema"),
        ("COMUNE DI CREMA", "COMUNE", "COMUNE DI CREMA"),
        ("  comune  di Rivolta d'Adda", "COMUNE", "  comune  di Rivolta d'Adda"),
        ("Comunità Montana", "COMUNE", "Comune di Comunità Montana"),
        ("ALER Brescia-Cremona-Mantova", "ALER", "ALER Brescia-Cremona-Mantova"),
    ],
)
def test_the_full_name_of_a_comune_says_comune_di_once(
    denominazione: str, tipo: str, nome: str
) -> None:
    """A registry that already writes «Comune di Crema» does not become «Comune di Comune
    di Crema» in the master, the document and the subject of the mail."""
    assert Ente("019035", tipo, denominazione).nome_completo == nome


def test_crea_writes_commented_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    """crea makes raccolta.toml + enti.csv, and a second crea on the same folder fails."""
    d = tmp_path / "r"
    assert main(["crea", str(d), "--anno", "2026", "--scadenza", "15/12/2025"]) == 0
    text = (d / "raccolta.toml").read_text(encoding="utf-8")
    assert "# " in text and 'scadenza = "15/12/2025"' in text
    r = rc.load(d)
    assert r.anno == 2026 and len(r.registry) == 49
    before = text
    assert main(["crea", str(d), "--anno", "2027"]) == 2
    assert (d / "raccolta.toml").read_text(encoding="utf-8") == before


def test_modelli_writes_one_template_per_ente(tmp_path: Path) -> None:
    """modelli writes a personalised file for each of the 49 enti."""
    d = tmp_path / "r"
    main(["crea", str(d), "--anno", "2026"])
    assert main(["modelli", str(d)]) == 0
    files = sorted((d / "modelli").glob("*.xlsx"))
    assert len(files) == 49
    assert any(f.name == "Piano_abitativo_2026_Comune_di_Crema.xlsx" for f in files)


def test_valida_json_inside_a_raccolta_checks_year_and_ente(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clean return gives valido=true; another raccolta's file gives M07; exit code 1."""
    from piano_abitativo.template.fill import fill_template

    d = tmp_path / "r"
    main(["crea", str(d), "--anno", "2026"])
    main(["modelli", str(d)])
    (d / "ricevuti").mkdir()
    crema = (d / "modelli" / "Piano_abitativo_2026_Comune_di_Crema.xlsx").read_bytes()
    (d / "ricevuti" / "buono.xlsx").write_bytes(fill_template(crema, CREMA))
    other = tmp_path / "altra"
    main(["crea", str(other), "--anno", "2026"])
    main(["modelli", str(other)])
    alien = (other / "modelli" / "Piano_abitativo_2026_Comune_di_Crema.xlsx").read_bytes()
    (d / "ricevuti" / "altra.xlsx").write_bytes(fill_template(alien, CREMA))
    capsys.readouterr()
    code = main(["valida", "--json", str(d / "ricevuti")])
    out = json.loads(capsys.readouterr().out)
    by_name = {Path(f["file"]).name: f for f in out["files"]}
    assert by_name["buono.xlsx"]["valido"] is True
    assert by_name["buono.xlsx"]["ente"] == "019035"
    assert [p["codice"] for p in by_name["altra.xlsx"]["problemi"]] == ["M07"]
    assert set(by_name["altra.xlsx"]["problemi"][0]) == {
        "codice",
        "gravita",
        "foglio",
        "cella",
        "campo",
        "valore",
        "messaggio",
        "suggerimento",
    }
    assert code == 1


def test_valida_terminal_output_is_an_italian_table(
    make_return: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """The terminal shows the cell, the message and the hint in Italian."""
    path = make_return({**CREMA, "i_forze_polizia": 15})  # type: ignore[operator]
    assert main(["valida", str(path)]) == 1
    out = " ".join(capsys.readouterr().out.split())  # the table wraps with the path's length
    assert "NON VALIDO" in out and LAYOUT.cell("i_forze_polizia") in out and "R4" in out


def test_valida_unreadable_file_reports_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PDF named .xlsx is a problem F02 in the JSON, not a crash."""
    f = tmp_path / "finto.xlsx"
    f.write_bytes(b"%PDF-1.4 not a workbook")
    assert main(["valida", "--json", str(f)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["files"][0]["problemi"][0]["codice"] == "F02"
    assert "Traceback" not in captured.err
