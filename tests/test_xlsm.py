"""The master .xlsm with its buttons: macros decoded back exactly, deterministic builds, the
committed blank master in step with the builder, each button bound to a macro whose Python
command exists, and LibreOffice clicking through them."""

from __future__ import annotations

import importlib
import inspect
import io
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import olefile
import openpyxl
import pytest
from oletools.olevba import VBA_Parser

from piano_abitativo.app.commands import crea
from piano_abitativo.master import xlsm
from piano_abitativo.master.model import BUTTON_FIRST_ROW, BUTTON_INSTRUCTION_COL
from piano_abitativo.master.sheets import SHEET_CRUSCOTTO, master_layout
from piano_abitativo.master.vba import ModuleKind, VbaModule, document_modules

from .lo_runner import UNO_PYTHON, _run_group, find_soffice, require_libreoffice

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "workbook" / xlsm.BLANK_MASTER_NAME
VBA_DIR = ROOT / "workbook" / "vba"
VBA_DRIVER = Path(__file__).resolve().parent / "lo" / "vba_driver.py"


def _modules(data: bytes) -> dict[str, str]:
    """Module name -> source text, as oletools' olevba decodes them from an .xlsm."""
    parser = VBA_Parser("master.xlsm", data=data)
    try:
        return {Path(name).stem: code for _, _, name, code in parser.extract_macros()}
    finally:
        parser.close()


def _button_macros(data: bytes) -> dict[str, str]:
    """Button caption -> bound macro, read from the VML drawing of the Cruscotto."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if name.startswith("xl/drawings/vmlDrawing"):
                vml = zf.read(name).decode("utf-8")
                for shape in re.findall(r"<v:shape .*?</v:shape>", vml, re.DOTALL):
                    caption = re.search(r"<font[^>]*>([^<]*)</font>", shape)
                    macro = re.search(r"<x:FmlaMacro>\[0\]!([^<]*)</x:FmlaMacro>", shape)
                    if caption and macro:
                        out[caption.group(1)] = macro.group(1)
    return out


def test_the_committed_blank_master_is_what_the_builder_makes() -> None:
    """workbook/ holds the builder's blank master and the text of its macros, up to date
    (regenerate both with `piano-abitativo master-vuoto`)."""
    assert COMMITTED.read_bytes() == xlsm.build_blank_master()
    assert (VBA_DIR / "Pulsanti.bas").read_bytes() == xlsm.buttons_source().encode("cp1252")


def test_two_builds_are_byte_identical() -> None:
    """Building the master twice from the same data gives the same bytes."""
    cons = xlsm.blank_consolidation()
    assert xlsm.build_master_xlsm(cons) == xlsm.build_master_xlsm(cons)


def test_olevba_decodes_every_module_back_to_its_source() -> None:
    """Each VBA module in the committed master is exactly the text it was built from: the
    buttons module, xlwings' standalone module and class, and the document modules."""
    modules = _modules(COMMITTED.read_bytes())
    n_sheets = len(master_layout(xlsm.blank_consolidation()).sheets) + 1
    expected: list[VbaModule] = [
        *document_modules([f"Sheet{i}" for i in range(1, n_sheets + 1)]),
        VbaModule("Pulsanti", xlsm.buttons_source(), ModuleKind.PROCEDURAL),
        *xlsm.xlwings_modules(),
    ]
    assert sorted(modules) == sorted(m.name for m in expected)
    for m in expected:
        assert modules[m.name] == m.source, m.name  # CRLF, Attribute lines included
    assert modules["Pulsanti"].encode("cp1252") == (VBA_DIR / "Pulsanti.bas").read_bytes()


def test_the_vba_project_parses_strictly() -> None:
    """olefile reads the embedded vbaProject.bin with no tolerance for format defects."""
    with zipfile.ZipFile(COMMITTED) as zf:
        data = zf.read("xl/vbaProject.bin")
        content_types = zf.read("[Content_Types].xml").decode("utf-8")
    ole = olefile.OleFileIO(data, raise_defects=olefile.DEFECT_INCORRECT)
    streams = {"/".join(s) for s in ole.listdir()}
    ole.close()
    assert {
        "PROJECT",
        "PROJECTwm",
        "VBA/dir",
        "VBA/_VBA_PROJECT",
        "VBA/Pulsanti",
        "VBA/xlwings",
        "VBA/Dictionary",
        "VBA/ThisWorkbook",
    } <= streams
    assert "application/vnd.ms-excel.sheet.macroEnabled.main+xml" in content_types


def test_every_button_runs_an_existing_python_function() -> None:
    """Each button of the committed master is bound to a macro whose RunPython command
    imports a callable of the installed package that takes no arguments."""
    data = COMMITTED.read_bytes()
    bound = _button_macros(data)
    assert bound == {b.caption: b.macro for b in xlsm.BUTTONS}
    source = _modules(data)["Pulsanti"]
    for caption, macro in bound.items():
        body = re.search(
            rf"Sub {macro}\(\)\s*\n\s*RunPython \"([^\"]+)\"\s*\n\s*End Sub",
            source.replace("\r\n", "\n"),
        )
        assert body, f"{caption}: no one-line Sub {macro}"
        match = re.fullmatch(r"import ([\w.]+) as x; x\.(\w+)\(\)", body.group(1))
        assert match, body.group(1)
        func = getattr(importlib.import_module(match.group(1)), match.group(2))
        assert callable(func)
        assert all(p.default is not p.empty for p in inspect.signature(func).parameters.values())


def test_the_xlwings_settings_sheet_is_read_as_xlwings_reads_it() -> None:
    """xlwings.conf has its keys in column A from A1 down (no gap, no header) and values
    in B: the interpreter for Windows, PYTHONPATH and no workbook folder on the path."""
    wb = openpyxl.load_workbook(COMMITTED, read_only=True)
    rows = list(wb[xlsm.CONF_SHEET].iter_rows(min_col=1, max_col=3, values_only=True))
    wb.close()
    keys = [r[0] for r in rows if r[0]]
    assert keys == [
        "INTERPRETER_WIN",
        "PYTHONPATH",
        "ADD_WORKBOOK_TO_PYTHONPATH",
        xlsm.USE_UDF_SERVER,
    ]
    assert rows[0][1] == xlsm.DEFAULT_INTERPRETER_WIN
    assert all(r[2] in (None, "") for r in rows)  # column C empty: A1's region is A:B


def test_the_xlwings_settings_sheet_is_hidden_and_not_printed() -> None:
    """xlwings.conf is hidden (state="hidden" in workbook.xml), so it neither prints nor
    shows as a tab, and it is not the sheet the workbook opens on; xlwings' VBA finds it by
    name (``wb.Sheets("xlwings.conf")`` in GetConfigFromSheet), which a hidden sheet does
    not prevent."""
    with zipfile.ZipFile(COMMITTED) as zf:
        book = zf.read("xl/workbook.xml").decode("utf-8")
    states = dict(re.findall(r'<sheet name="([^"]+)"(?: sheetId="\d+")?(?: state="(\w+)")?', book))
    assert states[xlsm.CONF_SHEET] == "hidden"
    assert all(state == "" for name, state in states.items() if name != xlsm.CONF_SHEET)
    wb = openpyxl.load_workbook(COMMITTED, read_only=True)
    assert wb.active is not None and wb.active.title == SHEET_CRUSCOTTO
    wb.close()
    bas = (xlsm._xlwings_dir() / "xlwings.bas").read_text("cp1252")
    assert 'Set sht = wb.Sheets(PROJECT_NAME & ".conf")' in bas
    assert "Visible" not in bas.split("Function GetConfigFromSheet")[1].split("End Function")[0]


def _col_px(width: float) -> int:
    """A column's width in pixels as Excel draws it (Calibri 11: 7 px per character)."""
    return int((256 * width + int(128 / 7)) / 256 * 7)


def _cruscotto_xml(data: bytes) -> tuple[str, str]:
    """The Cruscotto's (first sheet's) XML and its buttons' VML drawing."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml").decode("utf-8")
        vml = next(
            zf.read(n).decode("utf-8") for n in zf.namelist() if n.startswith("xl/drawings/vml")
        )
    return sheet, vml


def left_pt(data: bytes, col: int, offset_px: int = 0) -> float:
    """How far from the sheet's left edge column `col` (0-based) starts, plus
    `offset_px`, in points, from the Cruscotto's saved column widths."""
    sheet, _ = _cruscotto_xml(data)
    widths = {
        c: float(w)
        for lo, hi, w in re.findall(r'<col min="(\d+)" max="(\d+)" width="([\d.]+)"', sheet)
        for c in range(int(lo) - 1, int(hi))
    }
    return (sum(_col_px(widths.get(c, 8.43)) for c in range(col)) + offset_px) * 0.75


def button_boxes(data: bytes) -> list[tuple[str, float, float, int, int]]:
    """Each button of the Cruscotto as (caption, left pt, right pt, first row, last row),
    from its VML anchor and the sheet's column widths."""
    _, vml = _cruscotto_xml(data)
    out = []
    for shape in re.findall(r"<v:shape .*?</v:shape>", vml, re.DOTALL):
        caption = re.search(r"<font[^>]*>([^<]*)</font>", shape)
        anchor = re.search(r"<x:Anchor>([^<]*)</x:Anchor>", shape)
        assert caption and anchor
        c1, dx1, r1, _, c2, dx2, r2, _ = (int(v) for v in anchor.group(1).split(","))
        out.append((caption.group(1), left_pt(data, c1, dx1), left_pt(data, c2, dx2), r1, r2))
    return out


def test_the_buttons_are_on_the_first_screen_beside_their_instructions() -> None:
    """Each button lies within the saved window width (805 pt) and above the Cruscotto's
    table, in its own row, with its instruction in the same row just right of it."""
    data = COMMITTED.read_bytes()
    with zipfile.ZipFile(COMMITTED) as zf:
        book = zf.read("xl/workbook.xml").decode("utf-8")
    window = re.search(r'windowWidth="(\d+)"', book)
    window_pt = int(window.group(1)) / 20 if window else 0.0
    boxes = button_boxes(data)
    assert [b[0] for b in boxes] == [b.caption for b in xlsm.BUTTONS]
    layout = master_layout(xlsm.blank_consolidation(), buttons=xlsm.master_buttons())
    cruscotto = layout.sheets[0]
    assert cruscotto.name == SHEET_CRUSCOTTO
    header_row = cruscotto.header_row
    instr_left = left_pt(data, BUTTON_INSTRUCTION_COL)
    for i, (caption, left, right, top, bottom) in enumerate(boxes):
        assert 0 < left < right <= min(window_pt, 1000), (caption, left, right, window_pt)
        assert top == bottom == BUTTON_FIRST_ROW + i < header_row, caption
        assert right <= instr_left < window_pt, (caption, right, instr_left)
        assert cruscotto.cells[(top, BUTTON_INSTRUCTION_COL)].value == xlsm.BUTTONS[i].istruzione


def test_runpython_reuses_the_udf_server_the_master_turns_on() -> None:
    """The committed master sets ``USE UDF SERVER`` to True, and the standalone xlwings
    module embedded in it honours that key in RunPython: on Windows it runs the command in
    the COM server (``XLPy.Exec``, one interpreter kept between clicks, the calling book
    handed over as BOOK_CALLER for ``Book.caller()``) instead of a new pythonw.exe."""
    assert xlsm.read_conf(COMMITTED)[xlsm.USE_UDF_SERVER] == "True"
    bas = _modules(COMMITTED.read_bytes())["xlwings"].replace("\r\n", "\n")
    runpython = bas.split("Public Function RunPython(")[1].split("End Function")[0]
    assert f'OPTIMIZED_CONNECTION = GetConfig("{xlsm.USE_UDF_SERVER}", False)' in runpython
    server = runpython.split("If OPTIMIZED_CONNECTION = True Then")[1].split("Else")[0]
    assert '"BOOK_CALLER", ThisWorkbook' in server and "XLPy.Exec" in server


def test_the_interpreter_is_the_building_pythons_pythonw_on_windows() -> None:
    """Built on Windows, the master points xlwings at pythonw.exe beside the Python used."""
    conf = xlsm.default_conf(platform="win32", executable=r"C:\piano\venv\Scripts\python.exe")
    assert conf["INTERPRETER_WIN"] == r"C:\piano\venv\Scripts\pythonw.exe"


def test_consolida_keeps_the_settings_it_edited(tmp_path: Path) -> None:
    """An interpreter path IT typed into xlwings.conf survives the next `consolida`."""
    from piano_abitativo.app import commands as actions

    r = crea(tmp_path / "raccolta", anno=2026)
    master = actions.consolida(r).master
    assert master.suffix == ".xlsm"
    wb = openpyxl.load_workbook(master, keep_vba=True)
    wb[xlsm.CONF_SHEET]["B1"] = r"D:\Python311\pythonw.exe"
    wb.save(master)
    again = actions.consolida(r).master
    assert xlsm.read_conf(again)["INTERPRETER_WIN"] == r"D:\Python311\pythonw.exe"
    assert _button_macros(again.read_bytes()) == {b.caption: b.macro for b in xlsm.BUTTONS}


@pytest.mark.libreoffice
def test_libreoffice_clicks_each_button_and_gets_its_python_command(tmp_path: Path) -> None:
    """In LibreOffice the master lists its modules and binds each button to its macro; in a
    build whose RunPython only writes its argument into A1, running each bound macro
    yields exactly that button's Python command."""
    require_libreoffice()
    real = tmp_path / "reale.xlsm"
    real.write_bytes(COMMITTED.read_bytes())
    stub = tmp_path / "stub.xlsm"
    stub.write_bytes(xlsm.build_master_xlsm(xlsm.blank_consolidation(), stub=True))

    def uri(macro: str) -> str:
        return f"vnd.sun.star.script:VBAProject.Pulsanti.{macro}?language=Basic&location=document"

    jobs = [{"input": str(real), "run": [], "read": []}]
    jobs += [
        {"input": str(stub), "run": [uri(b.macro)], "read": [f"{SHEET_CRUSCOTTO}.A1"]}
        for b in xlsm.BUTTONS
    ]
    with tempfile.TemporaryDirectory(prefix="lo-xlsm-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps({"soffice": find_soffice(), "jobs": jobs}), encoding="utf-8")
        proc = _run_group(
            [UNO_PYTHON, str(VBA_DRIVER), str(job_file), str(result_file)],
            timeout=300,
            env=dict(os.environ, TMPDIR=tmp),
        )
        assert proc.returncode == 0, proc.stderr
        results = json.loads(result_file.read_text(encoding="utf-8"))["results"]
    first, *clicks = results
    assert first["error"] is None, first["error"]
    assert {"Pulsanti", "xlwings", "Dictionary", "ThisWorkbook"} <= set(
        first["libraries"]["VBAProject"]
    )
    bound = {b["label"]: [e["script"] for e in b["events"]] for b in first["buttons"]}
    assert bound == {b.caption: [uri(b.macro)] for b in xlsm.BUTTONS}
    for b, res in zip(xlsm.BUTTONS, clicks, strict=True):
        assert res["error"] is None, (b.caption, res["error"])
        assert res["reads"] == {f"{SHEET_CRUSCOTTO}.A1": b.command}
