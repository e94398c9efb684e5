"""The template: defined names, protection, validation, metadata, printing, freshness."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

from piano_abitativo.core.layout import COL_HELP
from piano_abitativo.core.registry import Registry
from piano_abitativo.core.schema import FIELD_IDS, FIELDS, SHEET_META, SHEET_SCHEDA, Kind, Role
from piano_abitativo.template.workbook import (
    LAYOUT,
    STANDARD_TEMPLATE_NAME,
    TemplateFactory,
    build_standard_template,
    template_filename,
)

ROOT = Path(__file__).resolve().parents[1]


def _load(data: bytes) -> openpyxl.Workbook:
    return openpyxl.load_workbook(io.BytesIO(data))


@pytest.fixture(scope="module")
def crema(factory: TemplateFactory, registry: Registry) -> openpyxl.Workbook:
    ente = registry.get("019035")
    assert ente
    return _load(factory.render(ente))


@pytest.fixture(scope="module")
def aler(factory: TemplateFactory, registry: Registry) -> openpyxl.Workbook:
    ente = registry.get("ALER-BCM")
    assert ente
    return _load(factory.render(ente))


def test_every_field_is_a_workbook_level_defined_name_on_its_cell(crema: openpyxl.Workbook) -> None:
    """Each field id of the public contract is a workbook-level name on the Scheda cell."""
    names = crema.defined_names
    for fid in FIELD_IDS:
        dests = list(names[fid].destinations)
        assert dests == [(SHEET_SCHEDA, f"${LAYOUT.cell(fid)[0]}${LAYOUT.cell(fid)[1:]}")]


def test_identification_is_prefilled_as_text_keeping_leading_zeros(
    crema: openpyxl.Workbook,
) -> None:
    """Codice ISTAT 019035 is text with its zero; name and year are filled in."""
    ws = crema[SHEET_SCHEDA]
    assert ws[LAYOUT.cell("ente_codice")].value == "019035"
    assert ws[LAYOUT.cell("ente_denominazione")].value == "Crema"
    assert ws[LAYOUT.cell("anno")].value == 2026


def test_only_input_cells_are_unlocked_and_sheets_protected(crema: openpyxl.Workbook) -> None:
    """The clerk can type only in the input cells; the layout is locked."""
    ws = crema[SHEET_SCHEDA]
    assert ws.protection.sheet
    unlocked = {c.coordinate for row in ws.iter_rows() for c in row if not c.protection.locked}
    expected = {LAYOUT.cell(f.id) for f in FIELDS if f.role is Role.INPUT}
    assert expected <= unlocked
    assert unlocked - expected == set() or all(ws[c].value is None for c in unlocked - expected)
    for f in FIELDS:
        if f.role is not Role.INPUT:
            assert ws[LAYOUT.cell(f.id)].protection.locked, f.id
    assert crema["Istruzioni"].protection.sheet


def test_input_cells_have_italian_native_data_validation(crema: openpyxl.Workbook) -> None:
    """Counts are whole numbers >= 0, percentages bounded, h) a SI/NO list, in Italian."""
    ws = crema[SHEET_SCHEDA]
    by_cell = {}
    for dv in ws.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            by_cell[rng.coord] = dv
    sap = by_cell[LAYOUT.cell("a_sap")]
    assert sap.type == "whole" and sap.formula1 == "0"
    assert "numero intero" in (sap.error or "")
    pct = by_cell[LAYOUT.cell("i_forze_polizia")]
    assert pct.type == "decimal" and (pct.formula1, pct.formula2) == ("0", "10")
    yn = by_cell[LAYOUT.cell("h_categoria_aggiuntiva")]
    assert yn.type == "list" and yn.formula1 == '"SI,NO"'
    assert all(dv.showErrorMessage for dv in by_cell.values())


def test_aler_template_marks_g_h_i_not_applicable_and_locked(aler: openpyxl.Workbook) -> None:
    """For the ALER the comuni-only sections are shown as not applicable and locked."""
    ws = aler[SHEET_SCHEDA]
    for fid in ("g_soglia_indigenti", "h_categoria_aggiuntiva", "h_motivazione", "i_forze_polizia"):
        cell = ws[LAYOUT.cell(fid)]
        # blank and grey, no words: the column of the numbers holds no text (AutoInput)
        assert cell.value is None
        assert cell.fill.fgColor.rgb.endswith("EDEDED")
        assert cell.protection.locked
        row = LAYOUT.field_rows[fid]
        assert ws.cell(row + 1, COL_HELP + 1).value == "Non applicabile all'ALER."


def test_hidden_metadata_identifies_the_file_whatever_its_name(crema: openpyxl.Workbook) -> None:
    """A very hidden sheet carries version, raccolta, year and ente."""
    meta_ws = crema[SHEET_META]
    assert meta_ws.sheet_state == "veryHidden"
    meta = {r[0]: r[1] for r in meta_ws.iter_rows(min_row=2, values_only=True)}
    assert meta["ente_codice"] == "019035"
    assert meta["raccolta_id"] == "2026-test"
    assert meta["anno"] == "2026"
    assert meta["versione_modello"] == "1.0"


def test_self_checks_and_conditional_formats_cover_each_input(crema: openpyxl.Workbook) -> None:
    """Each check is a formula cell; each input cell has a conditional format."""
    ws = crema[SHEET_SCHEDA]
    for chk_row in LAYOUT.check_rows.values():
        assert str(ws.cell(chk_row + 1, 2).value).startswith("=")
    cf_cells = {str(cf.sqref) for cf in ws.conditional_formatting}
    for f in FIELDS:
        if f.role is Role.INPUT and f.section in ("a", "b", "c", "d", "e", "j", "k"):
            assert LAYOUT.cell(f.id) in cf_cells


def test_formulas_use_only_functions_safe_in_excel_2010_and_libreoffice(
    crema: openpyxl.Workbook,
) -> None:
    """No function outside the safe list of excel.md appears in any formula."""
    import re

    safe = {
        "SUM",
        "IF",
        "AND",
        "OR",
        "NOT",
        "ISBLANK",
        "ISNUMBER",
        "ISERROR",
        "INT",
        "VALUE",
        "TRIM",
        "N",
        "ROUNDUP",
        "COUNTIF",
        "UPPER",
        "LEN",
        "FIND",
        "RIGHT",
        "SUBSTITUTE",
        "EXACT",
        "MAX",
        "ROUNDDOWN",
        "ROUND",
        "IFERROR",
        "ISTEXT",
        "LEFT",
    }
    ws = crema[SHEET_SCHEDA]
    used: set[str] = set()
    for row in ws.iter_rows():
        for c in row:
            if isinstance(c.value, str) and c.value.startswith("="):
                text = re.sub(r'"[^"]*"', "", c.value)
                used |= set(re.findall(r"([A-Z][A-Z0-9.]*)\(", text))
    assert used and used <= safe, used - safe


def test_prints_on_a4(crema: openpyxl.Workbook) -> None:
    """Both visible sheets print on A4 paper, one page wide."""
    for name in ("Istruzioni", SHEET_SCHEDA):
        ws = crema[name]
        assert ws.page_setup.paperSize == 9
        assert ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.print_area


def test_no_macros_in_templates(factory: TemplateFactory, registry: Registry) -> None:
    """Templates for the enti are macro-free .xlsx files."""
    import zipfile

    for ente in list(registry)[:3]:
        names = zipfile.ZipFile(io.BytesIO(factory.render(ente))).namelist()
        assert not any("vba" in n.lower() for n in names)


def test_file_names_are_readable_by_a_clerk(registry: Registry) -> None:
    """Accents and apostrophes become plain letters and underscores."""
    ente = registry.get("019084")
    assert ente
    assert template_filename(ente, 2026) == "Piano_abitativo_2026_Comune_di_Rivolta_d_Adda.xlsx"


def test_names_with_xml_special_characters_survive_personalisation() -> None:
    """An ente called 'A & B <x>' gets a valid workbook showing its name verbatim."""
    from piano_abitativo.core.registry import Ente
    from piano_abitativo.template.workbook import TemplateContext

    ente = Ente("999999", "COMUNE", 'A & B <x> "y"')
    wb = _load(TemplateFactory(TemplateContext(anno=2026)).render(ente))
    assert wb[SHEET_SCHEDA][LAYOUT.cell("ente_denominazione")].value == 'A & B <x> "y"'


def test_committed_standard_template_is_up_to_date() -> None:
    """templates/ holds exactly what `piano-abitativo modello-vuoto` writes today."""
    committed = ROOT / "templates" / STANDARD_TEMPLATE_NAME
    assert committed.read_bytes() == build_standard_template(), (
        "Rigenerare con: piano-abitativo modello-vuoto --output templates/" + STANDARD_TEMPLATE_NAME
    )


def test_template_generation_is_deterministic(factory: TemplateFactory, registry: Registry) -> None:
    """Two renders of the same ente are byte-identical."""
    ente = registry.get("019035")
    assert ente
    assert factory.render(ente) == TemplateFactory(factory.ctx).render(ente)


# --- AutoInput: no text where numbers are typed --------------------------------------

#: what a typed number or code starts with: AutoInput may complete it into such a text
_NUMBERLIKE = tuple("0123456789+-.,")


def _text_constants(ws: openpyxl.worksheet.worksheet.Worksheet) -> dict[int, list[str]]:
    """Column (1-based) -> the text constants in it (formulas excluded)."""
    out: dict[int, list[str]] = {}
    for row in ws.iter_rows():
        for cell in row:
            v = cell.value
            if isinstance(v, str) and v and not v.startswith("="):
                out.setdefault(cell.column, []).append(f"{cell.coordinate}={v!r}")
    return out


def _inputs(ws: openpyxl.worksheet.worksheet.Worksheet) -> list[openpyxl.cell.Cell]:
    return [c for row in ws.iter_rows() for c in row if not c.protection.locked]


@pytest.mark.parametrize("ente", ["019025", "019035", "ALER-BCM", None])
def test_no_text_constant_stands_in_a_column_where_numbers_are_typed(
    ente: str | None, factory: TemplateFactory, registry: Registry
) -> None:
    """LibreOffice's AutoInput completes a typed 0 into the text of the same column (the
    code "019025" stored 19025): no column with an input cell for a number holds a text
    constant besides the table's header (the reader finds the column by it; a number never
    completes into "Valore"), and no input cell's column holds a text a number or a code
    could complete into."""
    if ente is None:
        data = build_standard_template()
    else:
        found = registry.get(ente)
        assert found
        data = factory.render(found)
    ws = _load(data)[SHEET_SCHEDA]
    texts = _text_constants(ws)
    header = LAYOUT.header_row + 1
    numbers = {
        LAYOUT.cell(f.id)
        for f in FIELDS
        if f.role is Role.INPUT and f.kind in (Kind.COUNT, Kind.PERCENT, Kind.YEAR)
    }
    inputs = _inputs(ws)
    assert {c.coordinate for c in inputs} >= {
        LAYOUT.cell(f.id) for f in FIELDS if f.role is Role.INPUT and not f.comuni_only
    }
    for cell in inputs:
        column = texts.get(cell.column, [])
        if cell.coordinate in numbers:
            below = [
                t
                for t in column
                if int("".join(ch for ch in t.split("=")[0] if ch.isdigit())) != header
            ]
            assert not below, f"{cell.coordinate}: text in the column of a number: {below}"
        numberlike = [t for t in column if t.split("=", 1)[1].strip("'\"").startswith(_NUMBERLIKE)]
        assert not numberlike, f"{cell.coordinate}: AutoInput could complete into {numberlike}"


def test_identification_sits_in_a_box_above_the_table_out_of_the_value_column() -> None:
    """Codice, denominazione and anno are above the header, in their own column."""
    for fid in ("ente_codice", "ente_denominazione", "anno"):
        assert LAYOUT.field_rows[fid] < LAYOUT.header_row
        assert LAYOUT.cell(fid)[0] == "E"
    assert all(LAYOUT.cell(f.id)[0] == "D" for f in FIELDS if f.role is not Role.IDENT)
