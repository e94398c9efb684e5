"""Bad inputs: every kind of wrong file a clerk (or an attacker) can send back.

Each test builds its input inline (into ``tmp_path``), validates it and checks the exact
problem code and severity, and that `validate_file` returned a `Report` instead of
raising. No binary fixture is committed: everything is generated from the template.
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.utils import column_index_from_string, get_column_letter

from piano_abitativo.cli import commands as cli
from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.problems import CATALOGUE, Problem, Report, Severity
from piano_abitativo.core.registry import Registry, default_registry
from piano_abitativo.core.schema import (
    SHEET_SCHEDA,
    TEMPLATE_VERSION,
)
from piano_abitativo.reading.reader import MAX_FILE_BYTES
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateContext, TemplateFactory
from piano_abitativo.validation.validate import ValidationContext, validate_file

ANNO = 2026
RACCOLTA = "piano-2026-test"
CREMA_CODICE = "019035"
ALER = "ALER-BCM"

#: A complete, valid return of the Comune di Crema (every value distinct, so a value
#: read from the wrong cell cannot go unnoticed).
VALUES: dict[str, Any] = {
    "a_sap": 40,
    "a_sas": 12,
    "b_carenza_manutentiva": 3,
    "c_nuova_edificazione": 5,
    "d_turnover": 7,
    "e_conferite_privati": 2,
    "g_soglia_indigenti": 25,
    "h_categoria_aggiuntiva": "NO",
    "i_forze_polizia": 8,
    "j_sat": 4,
    "k_assegnate_anno_precedente": 9,
    "referente_nome": "Maria Rossi",
    "referente_email": "maria.rossi@comune.crema.cr.it",
    "referente_telefono": "0373 123456",
}
EXPECTED = {**VALUES, "a_totale": 52, "f_totale_assegnabili": 17}


# --- fixtures and helpers -------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="module")
def factory() -> TemplateFactory:
    return TemplateFactory(TemplateContext(anno=ANNO, raccolta_id=RACCOLTA))


@pytest.fixture(scope="module")
def template(factory: TemplateFactory, registry: Registry) -> bytes:
    """The empty template of the Comune di Crema for this raccolta."""
    ente = registry.get(CREMA_CODICE)
    assert ente is not None
    return factory.render(ente)


@pytest.fixture(scope="module")
def filled(template: bytes) -> bytes:
    """The template of Crema filled with `VALUES`: a fully valid return."""
    return fill_template(template, VALUES)


@pytest.fixture(scope="module")
def ctx(registry: Registry) -> ValidationContext:
    return ValidationContext(
        anno=ANNO, raccolta_id=RACCOLTA, registry=registry, ente_atteso=CREMA_CODICE
    )


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def check(path: Path, ctx: ValidationContext | None = None) -> Report:
    """Validate, asserting the contract every bad input must keep: a Report, no raise,
    only catalogued codes."""
    report = validate_file(path, ctx)
    assert isinstance(report, Report)
    for p in report.problems:
        assert p.code in CATALOGUE
        assert p.severity is CATALOGUE[p.code].severity, p
    json.dumps(report.to_json())  # always serialisable
    return report


def _measured_check(path: Path) -> tuple[Report, float, int]:
    """`check` with its time in seconds and its peak of Python memory in bytes."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        report = check(path)
        return report, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def only(report: Report, code: str) -> Problem:
    """The single problem with `code` (failing with the full list otherwise)."""
    found = [p for p in report.problems if p.code == code]
    assert len(found) == 1, [(p.code, p.message) for p in report.problems]
    return found[0]


def codes(report: Report) -> list[str]:
    return [p.code for p in report.problems]


def rewrite_zip(
    data: bytes,
    edit: Callable[[str, bytes], bytes] | None = None,
    add: Mapping[str, bytes] | None = None,
) -> bytes:
    """A copy of the xlsx `data` with members edited by `edit(name, content)` and the
    members in `add` appended."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            content = zin.read(info)
            zout.writestr(info.filename, edit(info.filename, content) if edit else content)
        for name, content in (add or {}).items():
            zout.writestr(name, content)
    return out.getvalue()


def with_openpyxl(data: bytes, change: Callable[[Any], None]) -> bytes:
    """Open `data` with openpyxl, apply `change(workbook)` and save (as a clerk's tool
    would: openpyxl keeps formulas but writes no cached values)."""
    wb = openpyxl.load_workbook(io.BytesIO(data))
    change(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


_NAME_REF = re.compile(r"^Scheda!\$([A-Z]+)\$(\d+)$")


def move_names(wb: Any, *, row_from: int | None = None, col_from: int | None = None) -> None:
    """What Excel does and openpyxl does not: shift the defined names pointing at or
    after an inserted row/column (1-based) by one."""
    for dn in wb.defined_names.values():
        m = _NAME_REF.match(dn.attr_text)
        if m is None:
            continue
        col, row = column_index_from_string(m.group(1)), int(m.group(2))
        if row_from is not None and row >= row_from:
            row += 1
        if col_from is not None and col >= col_from:
            col += 1
        dn.attr_text = f"{SHEET_SCHEDA}!${get_column_letter(col)}${row}"


def shifted(cell: str, *, rows: int = 0, cols: int = 0) -> str:
    m = re.fullmatch(r"([A-Z]+)(\d+)", cell)
    assert m
    return (
        f"{get_column_letter(column_index_from_string(m.group(1)) + cols)}{int(m.group(2)) + rows}"
    )


# --- not a workbook -------------------------------------------------------------------

PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
CSV = b"codice;ente;a_sap\n019035;Crema;40\n019036,Cremosano,3\n"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
    b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01"
    b"\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82"
)


def make_docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://'
            'schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        z.writestr("_rels/.rels", "<Relationships/>")
        z.writestr(
            "word/document.xml",
            '<w:document xmlns:w="urn:w"><w:body><w:p>'
            "<w:r><w:t>Piano abitativo</w:t></w:r></w:p></w:body></w:document>",
        )
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "what"),
    [
        ("piano.pdf.xlsx", PDF, "PDF"),
        ("piano.csv", CSV, "CSV"),
        ("piano.png", PNG, "PNG"),
        ("piano.docx", make_docx(), "Word"),
    ],
    ids=["pdf", "csv", "png", "docx"],
)
def test_not_a_workbook(tmp_path: Path, name: str, data: bytes, what: str) -> None:
    """A PDF, a CSV text, a PNG image or a Word .docx is refused with F02, naming what it
    is."""
    report = check(write(tmp_path, name, data))
    p = only(report, "F02")
    assert p.severity is Severity.ERRORE
    assert what in p.message
    assert codes(report) == ["F02"]
    assert not report.valid and report.values == {}


def test_corrupt_zip(tmp_path: Path) -> None:
    """Random bytes after a zip signature are a damaged file (F03), not a crash."""
    data = b"PK\x03\x04" + bytes((i * 7919 + 13) % 256 for i in range(4000))
    report = check(write(tmp_path, "rotto.xlsx", data))
    assert codes(report) == ["F03"]
    assert report.problems[0].severity is Severity.ERRORE


def test_truncated_zip(tmp_path: Path, filled: bytes) -> None:
    """A real filled template cut in half (an interrupted download) is F03."""
    report = check(write(tmp_path, "troncato.xlsx", filled[: len(filled) // 2]))
    assert codes(report) == ["F03"]
    assert report.problems[0].severity is Severity.ERRORE
    assert report.values == {}


def test_empty_file(tmp_path: Path) -> None:
    """A zero-byte file is F07 (file vuoto)."""
    report = check(write(tmp_path, "vuoto.xlsx", b""))
    assert codes(report) == ["F07"]
    assert report.problems[0].severity is Severity.ERRORE


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist gives F01 instead of FileNotFoundError."""
    report = check(tmp_path / "non_esiste.xlsx")
    assert codes(report) == ["F01"]
    assert report.problems[0].severity is Severity.ERRORE


def test_encrypted_workbook(tmp_path: Path, filled: bytes) -> None:
    """A workbook protected by an opening password (Office encryption) is F04."""
    msoffcrypto = pytest.importorskip("msoffcrypto")
    out = io.BytesIO()
    msoffcrypto.OfficeFile(io.BytesIO(filled)).encrypt("segreto", out)
    data = out.getvalue()
    assert data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an OLE container
    report = check(write(tmp_path, "protetto.xlsx", data))
    assert codes(report) == ["F04"]
    assert report.problems[0].severity is Severity.ERRORE


def test_workbook_with_macros(tmp_path: Path, filled: bytes, ctx: ValidationContext) -> None:
    """An .xlsm with a VBA project gives the avviso F05 and its values are still read."""

    def edit(name: str, data: bytes) -> bytes:
        if name == "[Content_Types].xml":
            data = data.replace(
                b'<Default Extension="xml"',
                b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
                b'<Default Extension="xml"',
            )
            data = data.replace(
                b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
            )
        elif name == "xl/_rels/workbook.xml.rels":
            data = data.replace(
                b"</Relationships>",
                b'<Relationship Id="rId99" Type="http://schemas.microsoft.com/office/2006/'
                b'relationships/vbaProject" Target="vbaProject.bin"/></Relationships>',
            )
        return data

    vba = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024)  # never executed nor parsed
    data = rewrite_zip(filled, edit, add={"xl/vbaProject.bin": vba})
    report = check(write(tmp_path, "con_macro.xlsm", data), ctx)
    p = only(report, "F05")
    assert p.severity is Severity.AVVISO
    assert codes(report) == ["F05"]
    assert report.valid
    assert {k: report.values[k] for k in EXPECTED} == EXPECTED


# --- a template, but not the right one -----------------------------------------------


def test_template_of_another_year(
    tmp_path: Path, registry: Registry, ctx: ValidationContext
) -> None:
    """Last year's template sent to this year's raccolta is M06 on the year cell."""
    ente = registry.get(CREMA_CODICE)
    assert ente is not None
    old = TemplateFactory(TemplateContext(anno=ANNO - 1, raccolta_id=RACCOLTA)).render(ente)
    report = check(write(tmp_path, "vecchio.xlsx", fill_template(old, VALUES)), ctx)
    p = only(report, "M06")
    assert p.severity is Severity.ERRORE
    assert p.cell == LAYOUT.cell("anno") and p.field == "anno"
    assert str(ANNO - 1) in p.message
    assert codes(report) == ["M06"]


def test_template_of_another_raccolta(
    tmp_path: Path, registry: Registry, ctx: ValidationContext
) -> None:
    """A template generated for another raccolta (same year) is M07."""
    ente = registry.get(CREMA_CODICE)
    assert ente is not None
    other = TemplateFactory(TemplateContext(anno=ANNO, raccolta_id="altra-raccolta")).render(ente)
    report = check(write(tmp_path, "altra.xlsx", fill_template(other, VALUES)), ctx)
    p = only(report, "M07")
    assert p.severity is Severity.ERRORE
    assert p.value == "altra-raccolta"
    assert codes(report) == ["M07"]


def test_template_of_another_ente(
    tmp_path: Path, factory: TemplateFactory, registry: Registry, ctx: ValidationContext
) -> None:
    """The template of Agnadello sent where Crema's return is expected is M08."""
    other = registry.get("019002")
    assert other is not None and other.denominazione == "Agnadello"
    report = check(
        write(tmp_path, "agnadello.xlsx", fill_template(factory.render(other), VALUES)), ctx
    )
    p = only(report, "M08")
    assert p.severity is Severity.ERRORE
    assert p.cell == LAYOUT.cell("ente_codice") and p.value == "019002"
    assert codes(report) == ["M08"]
    assert report.ente == "019002"


def test_scheda_code_differs_from_meta(tmp_path: Path, template: bytes, registry: Registry) -> None:
    """A code cell edited so it no longer matches the hidden _meta sheet is M08."""
    data = fill_template(template, {**VALUES, "ente_codice": "019036"})
    report = check(
        write(tmp_path, "codice.xlsx", data),
        ValidationContext(anno=ANNO, raccolta_id=RACCOLTA, registry=registry),
    )
    p = only(report, "M08")
    assert p.severity is Severity.ERRORE
    assert p.cell == LAYOUT.cell("ente_codice") and p.value == "019036"
    assert CREMA_CODICE in p.message
    assert codes(report) == ["M08"]
    assert report.ente == CREMA_CODICE  # the hidden sheet wins


def _patch_version(data: bytes, version: str) -> bytes:
    """Rewrite _meta's versione_modello (XlsxWriter keeps it in xl/sharedStrings.xml)."""
    old = f"<t>{TEMPLATE_VERSION}</t>".encode()
    sst = zipfile.ZipFile(io.BytesIO(data)).read("xl/sharedStrings.xml")
    assert sst.count(old) == 1, "the version string must be a single shared string"
    return rewrite_zip(
        data,
        lambda name, b: (
            b.replace(old, f"<t>{version}</t>".encode()) if name == "xl/sharedStrings.xml" else b
        ),
    )


def test_unknown_template_version(tmp_path: Path, filled: bytes, ctx: ValidationContext) -> None:
    """A template whose version is not known to the reader is M10."""
    report = check(write(tmp_path, "versione.xlsx", _patch_version(filled, "0.7")), ctx)
    p = only(report, "M10")
    assert p.severity is Severity.ERRORE
    assert p.value == "0.7"
    assert codes(report) == ["M10"]


def test_outdated_template_version(
    tmp_path: Path, filled: bytes, ctx: ValidationContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template of an older, still supported version is read, with the avviso M09
    (simulated by declaring a newer current version, as the next release will)."""
    import piano_abitativo.validation.validate as validate_mod

    monkeypatch.setattr(validate_mod, "TEMPLATE_VERSION", "1.1")
    monkeypatch.setattr(validate_mod, "SUPPORTED_TEMPLATE_VERSIONS", ("1.0", "1.1"))
    report = check(write(tmp_path, "superata.xlsx", filled), ctx)
    assert only(report, "M09").severity is Severity.AVVISO
    assert report.valid


# --- the template, altered ------------------------------------------------------------


def test_missing_scheda_sheet(tmp_path: Path, filled: bytes, ctx: ValidationContext) -> None:
    """The template with its Scheda sheet deleted is M02 (sheet missing), not M01."""

    def drop(wb: Any) -> None:
        del wb[SHEET_SCHEDA]

    report = check(write(tmp_path, "senza_scheda.xlsx", with_openpyxl(filled, drop)), ctx)
    p = only(report, "M02")
    assert p.severity is Severity.ERRORE and p.sheet == SHEET_SCHEDA
    assert codes(report) == ["M02"]
    assert report.values == {}


def test_not_the_template(tmp_path: Path, ctx: ValidationContext) -> None:
    """Any other workbook (no Scheda, no hidden _meta) is M01."""
    wb = openpyxl.Workbook()
    wb.active.title = "Foglio1"
    wb.active["A1"] = "alloggi SAP"
    wb.active["B1"] = 40
    out = io.BytesIO()
    wb.save(out)
    report = check(write(tmp_path, "altro.xlsx", out.getvalue()), ctx)
    p = only(report, "M01")
    assert p.severity is Severity.ERRORE
    assert codes(report) == ["M01"]


def test_missing_meta_sheet(tmp_path: Path, filled: bytes, ctx: ValidationContext) -> None:
    """Without the hidden _meta sheet the data are still read, with the avviso M15."""

    def drop(wb: Any) -> None:
        del wb["_meta"]

    report = check(write(tmp_path, "senza_meta.xlsx", with_openpyxl(filled, drop)), ctx)
    p = only(report, "M15")
    assert p.severity is Severity.AVVISO
    assert "M02" not in codes(report)
    assert report.ente == CREMA_CODICE
    # openpyxl writes no cached values for the totals: they read as empty
    assert {k: report.values[k] for k in VALUES} == VALUES


def test_missing_defined_name(tmp_path: Path, filled: bytes, ctx: ValidationContext) -> None:
    """A deleted defined name (a_sap) is M03 and the file is not read at all."""

    def drop(wb: Any) -> None:
        del wb.defined_names["a_sap"]

    report = check(write(tmp_path, "senza_nome.xlsx", with_openpyxl(filled, drop)), ctx)
    p = only(report, "M03")
    assert p.severity is Severity.ERRORE and p.field == "a_sap"
    assert codes(report) == ["M03"]
    assert report.values == {}


def test_inserted_rows_with_stale_names(
    tmp_path: Path, filled: bytes, ctx: ValidationContext
) -> None:
    """A row inserted without updating the names (openpyxl) is M05, and no value is read
    from the wrong cell."""
    row = LAYOUT.field_rows["b_carenza_manutentiva"] + 1  # 1-based: before b)
    data = with_openpyxl(filled, lambda wb: wb[SHEET_SCHEDA].insert_rows(row))
    report = check(write(tmp_path, "riga.xlsx", data), ctx)
    assert set(codes(report)) == {"M05"}
    assert all(p.severity is Severity.ERRORE for p in report.problems)
    # every field at or below the inserted row is flagged, at its (stale) named cell
    moved = sorted(f for f, r in LAYOUT.field_rows.items() if r + 1 >= row)
    assert sorted(p.field for p in report.problems) == moved
    assert all(p.cell == LAYOUT.cell(p.field) for p in report.problems if p.field)
    assert report.values == {}
    assert not report.valid


def test_inserted_rows_with_moved_names(
    tmp_path: Path, filled: bytes, ctx: ValidationContext
) -> None:
    """A row inserted with the names moved along (as Excel does) reads every value
    correctly, with the avviso M04 and problems at the new cells."""
    row = LAYOUT.field_rows["b_carenza_manutentiva"] + 1

    def insert(wb: Any) -> None:
        wb[SHEET_SCHEDA].insert_rows(row)
        move_names(wb, row_from=row)

    data = fill_template(filled, {**VALUES, "d_turnover": " 7 "})  # an L01 to locate
    report = check(write(tmp_path, "riga_ok.xlsx", with_openpyxl(data, insert)), ctx)
    assert only(report, "M04").severity is Severity.AVVISO
    assert set(codes(report)) == {"M04", "L01"}
    assert only(report, "L01").cell == shifted(LAYOUT.cell("d_turnover"), rows=1)
    assert report.valid
    assert {k: report.values[k] for k in VALUES} == {**VALUES, "d_turnover": 7}


def test_inserted_column_with_stale_names(
    tmp_path: Path, filled: bytes, ctx: ValidationContext
) -> None:
    """A column inserted before the whole layout without updating the names is M05,
    with no values read."""
    data = with_openpyxl(filled, lambda wb: wb[SHEET_SCHEDA].insert_cols(1))
    report = check(write(tmp_path, "colonna.xlsx", data), ctx)
    assert set(codes(report)) == {"M05"}
    assert all(p.severity is Severity.ERRORE for p in report.problems)
    assert report.values == {}


@pytest.mark.parametrize("col", [1, 2, 3, 4], ids=["before-A", "before-B", "before-C", "before-D"])
def test_column_inserted_with_moved_names(
    tmp_path: Path, filled: bytes, ctx: ValidationContext, col: int
) -> None:
    """A column inserted before the layout or between the hidden key column and the
    values, names moved along (as Excel does), is read correctly from the column headed
    «Valore», with the avviso M04."""

    def insert(wb: Any) -> None:
        wb[SHEET_SCHEDA].insert_cols(col)
        move_names(wb, col_from=col)

    data = fill_template(filled, {**VALUES, "d_turnover": " 7 "})
    report = check(write(tmp_path, "colonna_dentro.xlsx", with_openpyxl(data, insert)), ctx)
    assert only(report, "M04").severity is Severity.AVVISO
    assert set(codes(report)) == {"M04", "L01"}
    assert only(report, "L01").cell == shifted(LAYOUT.cell("d_turnover"), cols=1)
    assert report.valid
    assert {k: report.values[k] for k in VALUES} == {**VALUES, "d_turnover": 7}


@pytest.mark.parametrize("col", [2, 3, 4], ids=["before-B", "before-C", "before-D"])
def test_inserted_column_inside_layout_with_stale_names(
    tmp_path: Path, filled: bytes, ctx: ValidationContext, col: int
) -> None:
    """A column inserted between the hidden key column and the values without updating the
    names is M05, and no value is read from the column the names now point to."""
    data = with_openpyxl(filled, lambda wb: wb[SHEET_SCHEDA].insert_cols(col))
    report = check(write(tmp_path, "colonna_dentro_vecchia.xlsx", data), ctx)
    assert "M05" in codes(report)
    assert all(p.severity is Severity.ERRORE for p in report.problems if p.code == "M05")
    assert report.values == {}
    assert not report.valid


def test_formula_in_input_cell(tmp_path: Path, filled: bytes, ctx: ValidationContext) -> None:
    """A formula typed into an input cell (a_sap: =1+2) is the error M11 on that cell."""
    cell = LAYOUT.cell("a_sap")

    def typed(wb: Any) -> None:
        wb[SHEET_SCHEDA][cell] = "=1+2"

    report = check(write(tmp_path, "formula.xlsx", with_openpyxl(filled, typed)), ctx)
    p = only(report, "M11")
    assert p.severity is Severity.ERRORE
    assert (p.sheet, p.cell, p.field) == (SHEET_SCHEDA, cell, "a_sap")
    assert not report.valid


# --- hostile files --------------------------------------------------------------------


def test_oversized_file(tmp_path: Path, filled: bytes) -> None:
    """A file over 15 MB is refused with F06 from its size alone, quickly."""
    path = tmp_path / "enorme.xlsx"
    with path.open("wb") as fh:
        fh.write(filled)
        fh.truncate(MAX_FILE_BYTES + 1024 * 1024)  # sparse: nothing big is written
    start = time.perf_counter()
    report = check(path)
    elapsed = time.perf_counter() - start
    p = only(report, "F06")
    assert p.severity is Severity.ERRORE and p.value == path.stat().st_size
    assert codes(report) == ["F06"]
    assert elapsed < 0.5


def _add_zeros_member(zf: zipfile.ZipFile, name: str, megabytes: int) -> None:
    chunk = bytes(1024 * 1024)
    with zf.open(name, "w", force_zip64=True) as w:
        for _ in range(megabytes):
            w.write(chunk)


def test_zip_bomb(tmp_path: Path, filled: bytes) -> None:
    """A workbook hiding a member of 200 MB of zeros is F06, refused at once and without
    decompressing it."""
    path = tmp_path / "bomba.xlsx"
    zin = zipfile.ZipFile(io.BytesIO(filled))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in zin.infolist():
            zf.writestr(info.filename, zin.read(info))
        _add_zeros_member(zf, "xl/media/image1.png", 200)
    assert path.stat().st_size < 1024 * 1024
    report, elapsed, peak = _measured_check(path)
    p = only(report, "F06")
    assert p.severity is Severity.ERRORE and p.value == "xl/media/image1.png"
    assert codes(report) == ["F06"]
    assert elapsed < 0.5
    assert peak < 50 * 1024 * 1024


def _lie_about_size(data: bytearray, member: str, declared: int) -> None:
    """Set the uncompressed size of `member` to `declared` in both zip headers."""
    zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = zf.getinfo(member)
    assert data[info.header_offset : info.header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, info.header_offset + 22, declared)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46 : pos + 46 + name_len]) == member.encode():
            struct.pack_into("<I", data, pos + 24, declared)
        pos = data.find(b"PK\x01\x02", pos + 4)


def test_zip_bomb_with_lying_sizes(tmp_path: Path, filled: bytes) -> None:
    """A Scheda sheet that declares 20 KB but inflates to 64 MB is refused with F06
    without ever holding it in memory."""
    sheet = "xl/worksheets/sheet2.xml"
    zin = zipfile.ZipFile(io.BytesIO(filled))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in zin.infolist():
            content = zin.read(info)
            if info.filename != sheet:
                zf.writestr(info.filename, content)
                continue
            head, tail = content.split(b"<sheetData>", 1)
            with zf.open(sheet, "w") as w:
                w.write(head + b"<sheetData>")
                for _ in range(64):
                    w.write(b" " * (1024 * 1024))
                w.write(tail)
    data = bytearray(out.getvalue())
    _lie_about_size(data, sheet, 20_000)
    path = write(tmp_path, "bugiardo.xlsx", bytes(data))
    report, elapsed, peak = _measured_check(path)
    p = only(report, "F06")
    assert p.severity is Severity.ERRORE and p.value == sheet
    assert codes(report) == ["F06"]
    assert report.values == {}
    assert peak < 50 * 1024 * 1024
    assert elapsed < 2.0


# --- the command line on a folder of bad files ---------------------------------------


def test_cli_valida_json_on_bad_files(
    tmp_path: Path, filled: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """`piano-abitativo valida --json` on a folder of bad files prints one JSON object with
    an entry per file, exits with 1 and prints no traceback."""
    folder = tmp_path / "risposte"
    folder.mkdir()
    files = {
        "pdf_rinominato.xlsx": (PDF, "F02"),
        "vuoto.xlsx": (b"", "F07"),
        "troncato.xlsx": (filled[: len(filled) // 2], "F03"),
        "rotto.xlsm": (b"PK\x03\x04" + bytes(range(256)) * 2, "F03"),
        "word.xlsx": (make_docx(), "F02"),
        "buono.xlsx": (filled, None),
    }
    for name, (data, _) in files.items():
        write(folder, name, data)
    rc = cli.main(["valida", "--json", str(folder)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "Traceback" not in out + err
    doc = json.loads(out)
    assert list(doc) == ["files", "non_esaminati"]
    assert doc["non_esaminati"] == []  # every file in the folder is a workbook
    entries = {Path(e["file"]).name: e for e in doc["files"]}
    assert sorted(entries) == sorted(files)
    for name, (_, code) in files.items():
        entry = entries[name]
        found = [p["codice"] for p in entry["problemi"]]
        if code is None:
            assert entry["valido"] is True, found
        else:
            assert entry["valido"] is False
            assert found == [code]
            assert entry["problemi"][0]["gravita"] == "errore"
