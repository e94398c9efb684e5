"""The template as a clerk meets it: where the cursor is, what is cut, what prints small."""

from __future__ import annotations

import io
import re
import zipfile

import openpyxl
import pytest

from piano_abitativo.core.registry import Registry
from piano_abitativo.core.schema import FIELDS, SHEET_SCHEDA, Role
from piano_abitativo.template.sheets import PROMPT_MAX, _row_height
from piano_abitativo.template.workbook import LAYOUT, TemplateFactory, build_standard_template


def _xml(data: bytes, member: str) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(member).decode("utf-8")


@pytest.fixture(scope="module")
def crema_bytes(factory: TemplateFactory, registry: Registry) -> bytes:
    ente = registry.get("019035")
    assert ente
    return factory.render(ente)


@pytest.fixture(scope="module")
def aler_bytes(factory: TemplateFactory, registry: Registry) -> bytes:
    ente = registry.get("ALER-BCM")
    assert ente
    return factory.render(ente)


def test_template_opens_on_the_scheda_with_the_cursor_on_its_first_yellow_cell(
    crema_bytes: bytes, aler_bytes: bytes
) -> None:
    """The Scheda is the active tab and its selected cell is unlocked (the first input),
    for a comune, the ALER and the blank template alike."""
    for data in (crema_bytes, aler_bytes, build_standard_template()):
        wb = openpyxl.load_workbook(io.BytesIO(data))
        ws = wb.active
        assert ws is not None and ws.title == SHEET_SCHEDA
        active = ws.sheet_view.selection[0].activeCell
        assert active is not None
        assert ws[active].protection.locked is False, active


def test_no_first_sheet_so_the_istruzioni_tab_is_never_scrolled_off(crema_bytes: bytes) -> None:
    """workbook.xml has no firstSheet: the tab strip starts at Istruzioni."""
    assert "firstSheet" not in _xml(crema_bytes, "xl/workbook.xml")


def test_aler_code_label_is_codice_ente_and_its_name_wraps_instead_of_being_cut(
    aler_bytes: bytes, crema_bytes: bytes
) -> None:
    """The ALER's code label drops '(ISTAT)'; a comune keeps it; the name cell wraps."""
    aler = openpyxl.load_workbook(io.BytesIO(aler_bytes))[SHEET_SCHEDA]
    crema = openpyxl.load_workbook(io.BytesIO(crema_bytes))[SHEET_SCHEDA]
    row = LAYOUT.field_rows["ente_codice"] + 1
    labels = [c.value for c in aler[row] if isinstance(c.value, str)]
    assert "Codice ente" in labels and "Codice ente (ISTAT)" not in labels
    assert "Codice ente (ISTAT)" in [c.value for c in crema[row]]
    name = aler[LAYOUT.cell("ente_denominazione")]
    assert name.value == "ALER Brescia-Cremona-Mantova"
    assert name.alignment.wrap_text


def test_long_labels_f_and_i_get_rows_tall_enough_for_their_wrapped_lines(
    crema_bytes: bytes,
) -> None:
    """f) and i) take four lines at the label column's width; their rows hold them all."""
    ws = openpyxl.load_workbook(io.BytesIO(crema_bytes))[SHEET_SCHEDA]
    for fid in ("f_totale_assegnabili", "i_forze_polizia"):
        height = ws.row_dimensions[LAYOUT.field_rows[fid] + 1].height
        assert height is not None and height >= 15 * 3, (fid, height)
    long_label = "parola " * 40  # 280 characters: 5 lines at 56 characters
    assert _row_height(long_label, "") >= 15 * 5


def test_input_prompts_are_short_and_the_scheda_prints_at_full_size(crema_bytes: bytes) -> None:
    """Every data-validation prompt is at most ~2 lines; the Scheda prints landscape at
    100% (no fit-to-width shrinking the 9 pt Indicazioni)."""
    ws = openpyxl.load_workbook(io.BytesIO(crema_bytes))[SHEET_SCHEDA]
    prompts = [dv.prompt for dv in ws.data_validations.dataValidation if dv.prompt]
    inputs = [f for f in FIELDS if f.role is Role.INPUT]
    assert len(prompts) >= len(inputs) - 2
    assert all(len(p) <= PROMPT_MAX for p in prompts), prompts
    sheet = _xml(crema_bytes, "xl/worksheets/sheet2.xml")
    setup = re.search(r"<pageSetup[^>]*>", sheet)
    assert setup and 'orientation="landscape"' in setup.group(0)
