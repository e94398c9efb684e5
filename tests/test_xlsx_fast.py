"""The fast path of a plain .xlsx (`reading.xlsx_fast`) reads exactly what python-calamine
reads, or gives way to it: random sheets compared cell by cell with calamine, returns of
the template (filled by this program and saved by LibreOffice) read both ways."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import python_calamine as pc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from piano_abitativo.core.schema import SHEET_META, SHEET_SCHEDA
from piano_abitativo.reading import safety
from piano_abitativo.reading.reader import read_bytes
from piano_abitativo.reading.xlsx_fast import FastBook, fast_book
from piano_abitativo.validation.validate import ValidationContext, validate_bytes

from .lo_runner import recalculate, require_libreoffice
from .sample_returns import MakeReturn

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
#: cellXfs: 0 General, 1 a date, 2 a custom percentage, 3 a duration, 4 an integer
_XFS = (
    '<xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="165"/>'
    '<xf numFmtId="1"/>'
)
_NUMFMTS = (
    '<numFmts><numFmt numFmtId="164" formatCode="#,##0.0&quot; %&quot;"/>'
    '<numFmt numFmtId="165" formatCode="[h]:mm"/></numFmts>'
)


def workbook(sheet_data: str, strings: list[str], *, sst_xml: str | None = None) -> bytes:
    """A minimal .xlsx with one sheet "S" of `sheet_data` and the shared `strings`."""
    sst = (
        sst_xml
        if sst_xml is not None
        else "".join(
            f'<si><t xml:space="preserve">{escape(s)}</t></si>'
            if i % 2
            else f"<si><t>{escape(s)}</t></si>"  # without preserve: spaces at the ends go
            for i, s in enumerate(strings)
        )
    )
    rels = (
        f'<Relationships xmlns="{_PKG}">'
        f'<Relationship Id="rId1" Type="{_R}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_R}/sharedStrings" Target="sharedStrings.xml"/>'
        f'<Relationship Id="rId3" Type="{_R}/styles" Target="styles.xml"/></Relationships>'
    )
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{_PKG}"><Relationship Id="rId1" '
            f'Type="{_R}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_R}"><sheets>'
            '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": rels,
        "xl/sharedStrings.xml": f'<sst xmlns="{_MAIN}">{sst}</sst>',
        "xl/styles.xml": (
            f'<styleSheet xmlns="{_MAIN}">{_NUMFMTS}<cellXfs>{_XFS}</cellXfs></styleSheet>'
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{_MAIN}"><dimension ref="A1"/>'
            f"<sheetData>{sheet_data}</sheetData></worksheet>"
        ),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + text)
    return buf.getvalue()


def fast(data: bytes) -> FastBook | None:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    return fast_book(
        ["S"],
        {"S": "xl/worksheets/sheet1.xml"},
        ["S"],
        members.get,
        "xl/sharedStrings.xml",
        "xl/styles.xml",
    )


def calamine_cells(data: bytes) -> dict[tuple[int, int], Any]:
    wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
    grid = wb.get_sheet_by_name("S").to_python(skip_empty_area=False)
    return {(r, c): v for r, row in enumerate(grid) for c, v in enumerate(row) if v != ""}


def fast_cells(book: FastBook) -> dict[tuple[int, int], Any]:
    grid = book.get_sheet_by_name("S").to_python(skip_empty_area=False)
    return {(r, c): v for r, row in enumerate(grid) for c, v in enumerate(row) if v != ""}


_TEXT = st.lists(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from(["\n", "\t", " ", "&", "<", ">", '"', "'", "_x000D_", "€", "SI"]),
    max_size=8,
).map("".join)
_NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["1E+300", "-0", "0.5", "2.5E-3", ".5", "7."]),
)


@st.composite
def cells(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Rows of cells of every kind a writer of the plain shape produces (and a few that
    are not plain: a date or duration style, an error, an ISO date)."""
    strings: list[str] = []
    rows = []
    for r in sorted(draw(st.sets(st.integers(1, 40), max_size=6))):
        out = []
        for c in sorted(draw(st.sets(st.integers(0, 30), max_size=5))):
            ref = f"{chr(65 + c) if c < 26 else 'A' + chr(65 + c - 26)}{r}"
            style = draw(
                st.sampled_from(["", ' s="0"', ' s="2"', ' s="4"'] * 6 + [' s="1"', ' s="3"'])
            )
            formula = draw(
                st.sampled_from(
                    [
                        "",
                        "<f>SUM(A1:A2)&lt;3</f>",
                        '<f t="shared" si="0"/>',
                        '<f t="shared" ref="A1:A3" si="0">B1*2</f>',
                        "<f></f>",
                    ]
                )
            )
            kind = draw(st.sampled_from(["n", "s", "is", "str", "b", "empty"] * 8 + ["e", "d"]))
            if kind == "n":
                out.append(f'<c r="{ref}"{style}>{formula}<v>{draw(_NUMBER)}</v></c>')
            elif kind == "s":
                strings.append(draw(_TEXT))
                out.append(f'<c r="{ref}"{style} t="s"><v>{len(strings) - 1}</v></c>')
            elif kind == "is":
                text = escape(draw(_TEXT))
                keep = draw(st.sampled_from(["", ' xml:space="preserve"']))
                out.append(f'<c r="{ref}"{style} t="inlineStr"><is><t{keep}>{text}</t></is></c>')
            elif kind == "str":
                text = escape(draw(_TEXT))
                out.append(f'<c r="{ref}"{style} t="str">{formula}<v>{text}</v></c>')
            elif kind == "b":
                out.append(f'<c r="{ref}" t="b"><v>{draw(st.sampled_from(["0", "1"]))}</v></c>')
            elif kind == "empty":
                out.append(f'<c r="{ref}"{style}/>')
            elif kind == "e":
                out.append(f'<c r="{ref}" t="e"><v>#DIV/0!</v></c>')
            else:
                out.append(f'<c r="{ref}" t="d"><v>2026-01-31T00:00:00</v></c>')
        rows.append(f'<row r="{r}" spans="1:5">{"".join(out)}</row>')
    return "".join(rows), strings


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cells())
def test_a_sheet_read_here_has_the_values_calamine_reads(sheet: tuple[str, list[str]]) -> None:
    sheet_data, strings = sheet
    data = workbook(sheet_data, strings)
    book = fast(data)
    event("read here" if book is not None else "left to calamine")
    if book is None:
        return  # not plain: the reader uses calamine
    assert fast_cells(book) == calamine_cells(data)


def test_plain_cells_of_every_kind_are_read_here() -> None:
    """Numbers (general, percent and integer styles), shared and inline strings with
    entities and spaces, formula results, booleans: read here, as calamine reads them."""
    strings = ["  SI  ", "a & b <c>", "riga\nnuova", ""]
    sheet = (
        '<row r="1" spans="1:3"><c r="A1"><v>2026</v></c><c r="B1" s="2"><v>12.5</v></c>'
        '<c r="C1" s="4"><f>SUM(A1:B1)</f><v>2038.5</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>0</v></c><c r="B3" t="s"><v>1</v></c>'
        '<c r="C3" t="s"><v>2</v></c><c r="D3" t="s"><v>3</v></c>'
        '<c r="E3" t="inlineStr"><is><t>N &amp; O</t></is></c></row>'
        '<row r="4"><c r="A4" t="str"><f>IF(A1&gt;0,"✔","✖")</f><v>✔</v></c>'
        '<c r="B4" t="b"><v>1</v></c><c r="C4" s="3"/></row>'
    )
    data = workbook(sheet, strings)
    book = fast(data)
    assert book is not None
    assert fast_cells(book) == calamine_cells(data)
    assert fast_cells(book)[0, 1] == 12.5 and fast_cells(book)[2, 1] == "a & b <c>"
    assert book.get_sheet_by_name("S").formulas == {"C1", "A4"}


@pytest.mark.parametrize(
    ("what", "sheet", "sst"),
    [
        ("a date", '<row r="1"><c r="A1" s="1"><v>45000</v></c></row>', None),
        ("a duration", '<row r="1"><c r="A1" s="3"><v>1.5</v></c></row>', None),
        ("an error", '<row r="1"><c r="A1" t="e"><v>#N/A</v></c></row>', None),
        ("an escape", '<row r="1"><c r="A1" t="s"><v>0</v></c></row>', "<si><t>a_x000D_b</t></si>"),
        (
            "phonetic runs",
            '<row r="1"><c r="A1" t="s"><v>0</v></c></row>',
            '<si><t>ab</t><rPh sb="0" eb="1"><t>x</t></rPh></si>',
        ),
        ("a prefixed cell", '<row r="1"><x:c r="A1"><x:v>1</x:v></x:c></row>', None),
        ("a cell without reference", "<row><c><v>1</v></c></row>", None),
        ("a number as text", '<row r="1"><c r="A1"><v> 12 </v></c></row>', None),
        ("markup in a formula", '<row r="1"><c r="A1"><f>1<x/>+1</f><v>2</v></c></row>', None),
        ("an unclosed formula", '<row r="1"><c r="A1"><f>1+1<v>2</v></c></row>', None),
        ("a string out of the table", '<row r="1"><c r="A1" t="s"><v>9</v></c></row>', None),
    ],
)
def test_what_is_not_plain_is_left_to_calamine(what: str, sheet: str, sst: str | None) -> None:
    assert fast(workbook(sheet, ["x"], sst_xml=sst)) is None, what


def _both_ways(
    data: bytes, name: str, monkeypatch: pytest.MonkeyPatch, vctx: ValidationContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report of `data` read here and read by calamine, as JSON."""
    used: list[bool] = []
    real = safety._fast_xlsx

    def spy(*args: Any) -> Any:
        out = real(*args)
        used.append(out is not None)
        return out

    with monkeypatch.context() as m:
        m.setattr(safety, "_fast_xlsx", spy)
        here = validate_bytes(data, name, vctx).to_json()
    assert used == [True], f"{name}: the fast path was not taken"
    with monkeypatch.context() as m:
        m.setattr(safety, "_fast_xlsx", lambda *args: None)
        there = validate_bytes(data, name, vctx).to_json()
    return here, there


_TYPED: list[dict[str, Any]] = [
    {},
    {"a_sap": "12 alloggi", "d_turnover": "1.008", "g_soglia_indigenti": "25%"},
    {"a_sas": None, "i_forze_polizia": 0.1, "h_categoria_aggiuntiva": "sì"},
    {"b_carenza_manutentiva": -3, "j_sat": 2.5, "ente_denominazione": "Crema & dintorni <x>"},
]


@pytest.mark.parametrize("changes", _TYPED, ids=["pulito", "testo", "vuoti", "errori"])
def test_a_filled_template_reads_the_same_here_and_with_calamine(
    changes: dict[str, Any],
    make_return: MakeReturn,
    crema_values: dict[str, Any],
    vctx: ValidationContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = make_return({**crema_values, **changes})
    here, there = _both_ways(path.read_bytes(), path.name, monkeypatch, vctx)
    assert here == there


def test_a_return_saved_by_libreoffice_reads_the_same_here_and_with_calamine(
    make_return: MakeReturn,
    crema_values: dict[str, Any],
    vctx: ValidationContext,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    require_libreoffice()
    made = [
        make_return({**crema_values, **changes}, name=f"r{i}.xlsx")
        for i, changes in enumerate(_TYPED)
    ]
    for saved in recalculate(made, tmp_path / "lo"):
        here, there = _both_ways(saved.read_bytes(), saved.name, monkeypatch, vctx)
        assert here == there


def test_a_cell_beyond_the_area_of_the_scheda_is_refused_as_before(
    make_return: MakeReturn,
    crema_values: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain Scheda with one value at XFD1048576 is F06 on the fast path, with the
    message of the scan of any other file."""
    path = make_return(crema_values)
    with zipfile.ZipFile(path) as src:
        parts = {i.filename: src.read(i) for i in src.infolist()}
    sheet = "xl/worksheets/sheet2.xml"
    assert b"<sheetData>" in parts[sheet]
    parts[sheet] = parts[sheet].replace(
        b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name, body in parts.items():
            out.writestr(name, body)
    data = buf.getvalue()
    here = read_bytes(data, "lontano.xlsx")
    monkeypatch.setattr(safety, "_fast_xlsx", lambda *args: None)
    there = read_bytes(data, "lontano.xlsx")
    assert [(p.code, p.message, p.sheet) for p in here.problems] == [
        (p.code, p.message, p.sheet) for p in there.problems
    ]
    assert [p.code for p in here.problems] == ["F06"]
    assert "XFD1048576" in here.problems[0].message
    assert SHEET_SCHEDA in here.problems[0].message and SHEET_META != SHEET_SCHEDA
