"""Another ambito, end to end through the command line and LibreOffice: registry from a
CSV, templates, returns typed in LibreOffice (.xlsx and .ods) with faults injected, and
`valida --json` on the folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.cli.commands import main

from .lo_runner import require_libreoffice, run_batch

pytestmark = pytest.mark.libreoffice

ENTI_CSV = """\
codice;tipo;denominazione;provincia;codice_catastale;capofila;pec
097001;COMUNE;Valdimonte;LC;X001;SI;protocollo@pec.valdimonte.example
097002;COMUNE;Borgo d'Olmo;LC;X002;;
097003;COMUNE;San Pietro al Lago;LC;X003;;
ALER-LC;ALER;ALER Lecco-Sondrio;;;;
"""

GOOD: dict[str, Any] = {
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
    "referente_email": "anna@valdimonte.example",
}

#: file stem -> (ente, values typed, expected error (code, field) or None, avvisi codes)
CASES: dict[str, tuple[str, dict[str, Any], tuple[str, str] | None, set[str]]] = {
    "pulito_comune": ("097001", GOOD, None, set()),
    "pulito_aler": (
        "ALER-LC",
        {k: v for k, v in GOOD.items() if k not in ("h_categoria_aggiuntiva", "i_forze_polizia")},
        None,
        set(),
    ),
    "negativo": ("097002", {**GOOD, "d_turnover": -2}, ("R0", "d_turnover"), set()),
    "polizia_oltre": ("097002", {**GOOD, "i_forze_polizia": 15}, ("R4", "i_forze_polizia"), set()),
    "soglia_bassa": (
        "097003",
        {**GOOD, "g_soglia_indigenti": 18},
        ("R3", "g_soglia_indigenti"),
        set(),
    ),
    "senza_motivazione": (
        "097003",
        {**GOOD, "h_categoria_aggiuntiva": "SI"},
        ("R6", "h_motivazione"),
        set(),
    ),
    "parola": (
        "097001",
        {**GOOD, "k_assegnate_anno_precedente": "tre"},
        ("L05", "k_assegnate_anno_precedente"),
        set(),
    ),
    "digitato": (
        "097001",
        {**GOOD, "a_sap": "40", "h_categoria_aggiuntiva": "no", "i_forze_polizia": "5%"},
        None,
        {"L01", "L02", "L03"},
    ),
    "sat_molte": ("097002", {**GOOD, "j_sat": 9}, None, {"R5"}),
}


def _sets(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": k, "string": v} if isinstance(v, str) else {"name": k, "value": v}
        for k, v in values.items()
    ]


def test_other_ambito_faults_are_reported_on_the_right_file_field_and_severity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each injected fault is an errore on its file and field; clerk typing gives only
    avvisi; clean files have no problem; both .xlsx and .ods behave the same."""
    require_libreoffice()
    csv_path = tmp_path / "enti_valle.csv"
    csv_path.write_text(ENTI_CSV, encoding="utf-8")
    racc = tmp_path / "raccolta"
    assert (
        main(
            [
                "crea",
                str(racc),
                "--anno",
                "2027",
                "--enti",
                str(csv_path),
                "--ambito",
                "Valle Example",
            ]
        )
        == 0
    )
    assert main(["modelli", str(racc)]) == 0
    modelli = {p.name: p for p in (racc / "modelli").glob("*.xlsx")}
    assert len(modelli) == 4
    by_code = {
        "097001": modelli["Piano_abitativo_2027_Comune_di_Valdimonte.xlsx"],
        "097002": modelli["Piano_abitativo_2027_Comune_di_Borgo_d_Olmo.xlsx"],
        "097003": modelli["Piano_abitativo_2027_Comune_di_San_Pietro_al_Lago.xlsx"],
        "ALER-LC": modelli["Piano_abitativo_2027_ALER_Lecco_Sondrio.xlsx"],
    }
    out = racc / "ricevuti"
    out.mkdir()
    jobs = [
        {
            "input": str(by_code[ente]),
            "set": _sets(values),
            "respect_protection": True,
            "save": [{"path": str(out / f"{stem}.xlsx")}, {"path": str(out / f"{stem}.ods")}],
        }
        for stem, (ente, values, _e, _w) in CASES.items()
    ]
    for res in run_batch(jobs):
        assert res["error"] is None, res["error"]
    capsys.readouterr()
    code = main(["valida", "--json", str(out)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    files = {Path(f["file"]).name: f for f in report["files"]}
    assert len(files) == 2 * len(CASES)
    for stem, (ente, _values, error, warnings) in CASES.items():
        for ext in ("xlsx", "ods"):
            f = files[f"{stem}.{ext}"]
            assert f["ente"] == ente, (stem, ext)
            errs = {(p["codice"], p["campo"]) for p in f["problemi"] if p["gravita"] == "errore"}
            avvisi = {p["codice"] for p in f["problemi"] if p["gravita"] == "avviso"}
            if error is None:
                assert errs == set(), (stem, ext, f["problemi"])
                assert f["valido"] is True
            else:
                assert error in errs, (stem, ext, f["problemi"])
                assert f["valido"] is False
            assert avvisi == warnings, (stem, ext, f["problemi"])
            for p in f["problemi"]:
                assert p["foglio"] == "Scheda" and p["cella"], p
