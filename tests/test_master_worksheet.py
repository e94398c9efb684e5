"""The master's worksheets prepare a formula as XlsxWriter does, without its ~30
substitutions when the formula calls only functions they never change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import xlsxwriter.worksheet

from piano_abitativo.app.commands import crea
from piano_abitativo.consolidation import consolidate
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.mail.folder import import_files
from piano_abitativo.master.worksheet import PLAIN_FUNCTIONS, Worksheet
from piano_abitativo.master.xlsm import build_master_xlsm
from piano_abitativo.simulation import demo

STOCK = xlsxwriter.worksheet.Worksheet()
OURS = Worksheet()


@pytest.mark.parametrize("name", sorted(PLAIN_FUNCTIONS - {""}))
@pytest.mark.parametrize("future", [False, True])
def test_xlsxwriter_never_rewrites_a_plain_function(name: str, future: bool) -> None:
    """Each function taken as plain comes out of XlsxWriter's own preparation as it went
    in (also with the "future" functions expanded, as in conditional formats)."""
    formula = f"={name}(A1)+{name}(B2,1)"
    assert STOCK._prepare_formula(formula, future) == formula[1:]


@pytest.mark.parametrize(
    "formula",
    [
        '=IF(Dati!$C$5="","",Dati!$C$5)',
        "=SUM(B5:B1504)",
        "=totale_b_carenza+totale_c_nuove",
        "{=SUM(A1:A3)}",
        '=COUNTIF(Dati!$A:$A,"FILTER(x")',  # a text that names a rewritten function
        "=IF(A1>0,XLOOKUP(A1,B:B,C:C),0)",
        "=IF(A1,SINGLE(B1),0)",
        "=IF(A1,ISINGLE(B1),0)",  # XlsxWriter's \SINGLE\( rewrites this one too
        "=_xlfn.STDEV.S(A1:A9)",
        "=STDEV.S(A1:A9)",
        "=IF(A1,Ìndice(B1),0)",
        "=ROUND(A1/B1*100,1)",
    ],
)
@pytest.mark.parametrize("future", [False, True])
def test_every_formula_comes_out_as_xlsxwriter_prepares_it(formula: str, future: bool) -> None:
    assert OURS._prepare_formula(formula, future) == STOCK._prepare_formula(formula, future)


def test_a_rewritten_function_is_still_rewritten() -> None:
    """The shortcut does not hide XlsxWriter's work where it is needed."""
    assert OURS._prepare_formula("=IF(A1,XLOOKUP(A1,B:B,C:C),0)") == (
        "IF(A1,_xlfn.XLOOKUP(A1,B:B,C:C),0)"
    )


def test_the_master_prepares_all_its_formulas_without_the_substitutions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every formula of a master of the 2025 demo returns (tables, totals, Cruscotto,
    highlights, charts) takes the short way: with XlsxWriter's own preparation made to
    fail, the master is still written."""

    def refused(self: object, formula: str, expand: bool = False) -> str:
        raise AssertionError(f"formula prepared by XlsxWriter: {formula}")

    r = crea(tmp_path / "raccolta", anno=2025, scadenza=dt.date(2024, 12, 18))
    import_files(r, demo.write_returns(r, tmp_path / "ritorni"))
    cons = consolidate.consolidate(r, receipts(r))
    assert any(s.used for s in cons.enti)
    monkeypatch.setattr(xlsxwriter.worksheet.Worksheet, "_prepare_formula", refused)
    assert build_master_xlsm(cons, stub=True)[:2] == b"PK"


def test_no_xlsxwriter_workbook_outlives_the_master_it_wrote(tmp_path: Path) -> None:
    """XlsxWriter's workbook is a web of cycles: the writer frees it before returning,
    instead of leaving it (with its sheets' rows and temporary files) to a later
    collection."""
    import gc

    r = crea(tmp_path / "raccolta", anno=2025, scadenza=dt.date(2024, 12, 18))
    import_files(r, demo.write_returns(r, tmp_path / "ritorni"))
    cons = consolidate.consolidate(r, receipts(r))
    gc.collect()
    assert build_master_xlsm(cons, stub=True)[:2] == b"PK"
    alive = [o for o in gc.get_objects() if isinstance(o, xlsxwriter.Workbook)]
    assert alive == []
