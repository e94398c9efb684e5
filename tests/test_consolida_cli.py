"""Another ambito through the command line: crea, modelli, importa, consolida; the master
recalculated by LibreOffice from its formulas alone; a resubmission, a repeated import and
an invalid return."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from piano_abitativo.cli.commands import main
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.master.sheets import SHEET_ANOMALIE, SHEET_CRUSCOTTO
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import _without_cached_results, template_filename

from .lo_runner import recalculate, require_libreoffice

ENTI_CSV = """\
codice;tipo;denominazione;provincia;codice_catastale;capofila
097001;COMUNE;Valdimonte;LC;X001;SI
097002;COMUNE;Borgo d'Olmo;LC;X002;
097003;COMUNE;San Pietro al Lago;LC;X003;
097004;COMUNE;Cà de' Monti;LC;X004;
ALER-LC;ALER;ALER Lecco-Sondrio;;;
"""

BASE: dict[str, Any] = {
    "h_categoria_aggiuntiva": "NO",
    "i_forze_polizia": 0,
    "e_conferite_privati": 0,
    "c_nuova_edificazione": 0,
    "referente_nome": "Anna Bianchi",
    "referente_email": "anna@comune.example",
}
T1 = dt.datetime(2025, 11, 20, 10, 0, tzinfo=dt.UTC)

NAMES = (
    "totale_a_totale",
    "totale_a_sap",
    "totale_a_sas",
    "totale_b_carenza_manutentiva",
    "totale_c_nuova_edificazione",
    "totale_d_turnover",
    "totale_e_conferite_privati",
    "totale_f_totale_assegnabili",
    "totale_j_sat",
    "totale_k_assegnate_anno_precedente",
)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in args else out


def _return(
    modelli: Path, codice: str, values: dict[str, Any], folder: Path, name: str, when: dt.datetime
) -> Path:
    r = rc.load(modelli.parent)
    ente = r.registry.get(codice)
    assert ente is not None
    blank = modelli / template_filename(ente, r.anno)
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(fill_template(blank.read_bytes(), BASE | values))
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def _named(path: Path) -> dict[str, Any]:
    wb = openpyxl.load_workbook(path, data_only=True)
    out = {}
    for name in NAMES:
        ((sheet, coord),) = list(wb.defined_names[name].destinations)
        out[name] = wb[sheet][coord.replace("$", "")].value
    return out


@pytest.mark.libreoffice
def test_another_ambito_end_to_end_through_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Named totals recalculated by LibreOffice equal the sums of the latest valid returns."""
    require_libreoffice()
    csv_path = tmp_path / "enti.csv"
    csv_path.write_text(ENTI_CSV, encoding="utf-8")
    racc = tmp_path / "raccolta"
    assert (
        main(
            [
                "crea",
                str(racc),
                "--anno",
                "2026",
                "--enti",
                str(csv_path),
                "--ambito",
                "Lario Orientale",
            ]
        )
        == 0
    )
    assert main(["modelli", str(racc)]) == 0
    capsys.readouterr()
    modelli = racc / "modelli"
    first = tmp_path / "prima_tornata"
    _return(
        modelli,
        "097001",
        {
            "a_sap": 40,
            "a_sas": 3,
            "b_carenza_manutentiva": 2,
            "d_turnover": 1,
            "i_forze_polizia": 5,
            "j_sat": 1,
            "k_assegnate_anno_precedente": 3,
        },
        first,
        "a.xlsx",
        T1,
    )
    _return(
        modelli,
        "ALER-LC",
        {
            "a_sap": 1200,
            "a_sas": 30,
            "b_carenza_manutentiva": 10,
            "c_nuova_edificazione": 4,
            "d_turnover": 6,
            "j_sat": 2,
            "k_assegnate_anno_precedente": 41,
            "h_categoria_aggiuntiva": None,
            "i_forze_polizia": None,
        },
        first,
        "b.xlsx",
        T1 + dt.timedelta(hours=1),
    )
    _return(
        modelli,
        "097002",
        {
            "a_sap": 12,
            "b_carenza_manutentiva": 1,
            "d_turnover": 1,
            "k_assegnate_anno_precedente": 1,
        },
        first,
        "c.xlsx",
        T1 + dt.timedelta(hours=2),
    )
    # an invalid return: 15% for the Forze di Polizia (at most 10%)
    _return(
        modelli,
        "097003",
        {"a_sap": 9, "d_turnover": 2, "i_forze_polizia": 15},
        first,
        "d.xlsx",
        T1 + dt.timedelta(hours=3),
    )

    code, imported = _cli(capsys, "importa", str(racc), "--da", str(first), "--json")
    assert code == 1  # one file has errors
    assert [f["esito"] for f in imported["file"]] == ["importato"] * 4
    assert {f["ente"]: f["valido"] for f in imported["file"]} == {
        "097001": True,
        "ALER-LC": True,
        "097002": True,
        "097003": False,
    }
    _, cons1 = _cli(capsys, "consolida", str(racc), "--json")
    master = Path(cons1["master"])
    m1 = shutil.copy(master, tmp_path / "master_prima.xlsx")

    # the same files again: nothing changes
    ledger = (racc / "archivio" / "registro.jsonl").read_bytes()
    _, again = _cli(capsys, "importa", str(racc), "--da", str(first), "--json")
    assert [f["esito"] for f in again["file"]] == ["già importato"] * 4
    assert (racc / "archivio" / "registro.jsonl").read_bytes() == ledger
    assert _cli(capsys, "consolida", str(racc), "--json")[1]["totali"] == cons1["totali"]

    # Borgo d'Olmo sends a corrected file two days later: it replaces the first one
    second = tmp_path / "seconda_tornata"
    _return(
        modelli,
        "097002",
        {
            "a_sap": 12,
            "b_carenza_manutentiva": 3,
            "d_turnover": 0,
            "k_assegnate_anno_precedente": 1,
        },
        second,
        "c2.xlsx",
        T1 + dt.timedelta(days=2),
    )
    assert _cli(capsys, "importa", str(racc), "--da", str(second), "--json")[0] == 0
    _, cons2 = _cli(capsys, "consolida", str(racc), "--json")
    m2 = shutil.copy(master, tmp_path / "master_dopo.xlsx")

    expected1 = {
        "totale_a_totale": 40 + 3 + 1230 + 12,
        "totale_a_sap": 1252,
        "totale_a_sas": 33,
        "totale_b_carenza_manutentiva": 13,
        "totale_c_nuova_edificazione": 4,
        "totale_d_turnover": 8,
        "totale_e_conferite_privati": 0,
        "totale_f_totale_assegnabili": 25,
        "totale_j_sat": 3,
        "totale_k_assegnate_anno_precedente": 45,
    }
    expected2 = expected1 | {
        "totale_b_carenza_manutentiva": 15,
        "totale_d_turnover": 7,
        "totale_f_totale_assegnabili": 26,
    }
    assert cons1["totali"] == {k.removeprefix("totale_"): v for k, v in expected1.items()}
    assert cons2["totali"] == {k.removeprefix("totale_"): v for k, v in expected2.items()}

    plain = []
    for src in (Path(m1), Path(m2)):
        target = tmp_path / "senza_cache" / src.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(_without_cached_results(src.read_bytes()))
        plain.append(target)
    r1, r2 = recalculate(plain, tmp_path / "ricalcolati")
    assert _named(r1) == expected1
    assert _named(r2) == expected2

    # the invalid return: on the Cruscotto as "da correggere", in Anomalie with its cell
    wb = openpyxl.load_workbook(r2, data_only=True)
    crusc = [r for r in wb[SHEET_CRUSCOTTO].iter_rows(values_only=True) if r[0] == "097003"]
    assert crusc and crusc[0][3] == "da correggere"
    anomalie = [
        r
        for r in wb[SHEET_ANOMALIE].iter_rows(values_only=True)
        if r[0] == "Comune di San Pietro al Lago" and r[4] == "R4"
    ]
    assert (
        anomalie and anomalie[0][3] == "errore" and anomalie[0][6] == LAYOUT.cell("i_forze_polizia")
    )
    # Cà de' Monti never answered: R9 avviso
    assert any(
        r[0] == "Comune di Cà de' Monti" and r[4] == "R9"
        for r in wb[SHEET_ANOMALIE].iter_rows(values_only=True)
    )
