"""A number cell holding text ("12 alloggi") does not cascade into the checks that read
it: the sheet shows "non verificabile", the validator reports only the reading problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.core.layout import LAYOUT, OK
from piano_abitativo.core.registry import Registry
from piano_abitativo.core.rules.book import UNKNOWN
from piano_abitativo.template.workbook import TemplateFactory
from piano_abitativo.validation.validate import ValidationContext, row_symbols, validate_file

from .lo_runner import require_libreoffice, run_batch

#: a complete, plausible return (20 alloggi SAP) whose SAP count is typed with a word
VALUES: dict[str, Any] = {
    "a_sap": "12 alloggi",
    "a_sas": 3,
    "b_carenza_manutentiva": 1,
    "c_nuova_edificazione": 0,
    "d_turnover": 2,
    "e_conferite_privati": 0,
    "i_forze_polizia": 10,
    "j_sat": 1,
    "k_assegnate_anno_precedente": 2,
    "referente_nome": "Mario Rossi",
    "referente_email": "mario.rossi@comune.crema.cr.it",
}
#: the rows that read the alloggi SAP besides their own field
DEPENDENT = ("R5", "R7", "R8", "R17", "R12", "R11", "R1")


def _sets(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": k, "string": v} if isinstance(v, str) else {"name": k, "value": v}
        for k, v in values.items()
    ]


@pytest.mark.libreoffice
def test_text_in_the_sap_count_shows_non_verificabile_in_the_sheet_and_one_avviso_in_the_report(
    tmp_path: Path, factory: TemplateFactory, registry: Registry, vctx: ValidationContext
) -> None:
    """a_sap = "12 alloggi" typed in LibreOffice: the rows of R5, R7, R8, R11, R12, R17
    show ? with "non verificabile" in their message, the row of a_sap shows ✖; the
    validator on the saved file reports L05 on that cell and one L08, none of the rules
    firing as if the SAP were 0, and its row symbols are the sheet's."""
    require_libreoffice()
    ente = registry.get("019035")
    assert ente
    src = tmp_path / "m.xlsx"
    src.write_bytes(factory.render(ente))
    checks = LAYOUT.checks
    reads = [f"controllo_{c.id}" for c in checks]
    [res] = run_batch(
        [
            {
                "input": str(src),
                "set": _sets(VALUES),
                "respect_protection": True,
                "read_text": reads,
                "save": [{"path": str(tmp_path / "r.xlsx")}],
            }
        ]
    )
    assert res["error"] is None, res["error"]
    got = {c.id: res["texts"][f"controllo_{c.id}"] for c in checks}
    for cid in DEPENDENT:
        assert got[cid] == UNKNOWN, (cid, got)
    assert got["num_a_sap"] == "✖"
    assert got["num_d_turnover"] == OK

    report = validate_file(tmp_path / "r.xlsx", vctx)
    codes = [(p.code, p.cell) for p in report.problems]
    sap_cell = LAYOUT.cell("a_sap")
    assert ("L05", sap_cell) in codes
    assert [c for c, _ in codes if c == "L08"] == ["L08"]
    assert not {c for c, _ in codes} & {"R5", "R7", "R8", "R11", "R12", "R17", "R18"}, codes
    l08 = next(p for p in report.problems if p.code == "L08")
    assert sap_cell in l08.message and "verificabil" in l08.message
    assert row_symbols(report, aler=False) == got
