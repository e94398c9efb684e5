"""Every XML part of what the program writes is valid against the ECMA-376 Transitional
schemas (``../shared/ooxml_schemas/``, see tests/ooxml.py): the blank standard template, the
templates of a Comune and of the ALER written by ``crea`` + ``modelli``, the blank master,
the master consolidated by the demo, and the document (as the demo writes it, and with the
comparison with last year and no page numbers yet). The checker itself is tested too, on
broken copies of a real workbook and document, so that "zero violations" means something.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from pathlib import Path

import pytest

from piano_abitativo.app import commands as actions
from piano_abitativo.app.commands import crea
from piano_abitativo.consolidation.confronto import confronta
from piano_abitativo.document.docx import build_document
from piano_abitativo.mail.folder import import_files
from piano_abitativo.simulation import demo
from piano_abitativo.template.workbook import template_filename

from . import ooxml
from .lo_runner import require_libreoffice
from .ooxml import summary, violations

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def schemas() -> Path:
    return ooxml.schemas_dir()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoResult:
    """The whole demo, once per session: its master and document are checked here."""
    return demo.run_demo(tmp_path_factory.mktemp("ooxml") / "demo", log=lambda _m: None)


def _replace_part(source: Path, target: Path, part: str, data: bytes | None) -> Path:
    """A copy of package `source` with `part` replaced by `data` (left out when None)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            if info.filename == part:
                if data is not None:
                    out.writestr(info, data)
            else:
                out.writestr(info, src.read(info))
    return target


# --------------------------------------------------------------------------- our outputs


def test_the_blank_standard_template_is_schema_valid(schemas: Path, tmp_path: Path) -> None:
    written = actions.modello_vuoto(tmp_path / "modello.xlsx")
    assert violations(written) == [], summary(violations(written))
    committed = REPO / "templates" / "modello_piano_abitativo.xlsx"
    assert violations(committed) == [], summary(violations(committed))


def test_the_templates_of_a_comune_and_of_the_aler_are_schema_valid(
    schemas: Path, tmp_path: Path
) -> None:
    r = crea(tmp_path / "raccolta", anno=2026, scadenza="15/12/2025")
    written = actions.modelli(r)
    aler = [e for e in r.registry if e.tipo == "ALER"]
    capofila = [e for e in r.registry if e.capofila]
    comune = [e for e in r.registry if e.is_comune and not e.capofila][:1]
    chosen = [r.modelli_dir / template_filename(e, r.anno) for e in aler + capofila + comune]
    assert len(chosen) == 3 and set(chosen) <= set(written)
    for path in chosen:
        assert violations(path) == [], summary(violations(path))


def test_the_blank_master_is_schema_valid(schemas: Path, tmp_path: Path) -> None:
    written = actions.master_vuoto(tmp_path / "master.xlsm").master
    assert violations(written) == [], summary(violations(written))
    committed = REPO / "workbook" / "Consolidato_piano_abitativo_vuoto.xlsm"
    assert violations(committed) == [], summary(violations(committed))


def test_the_consolidated_master_of_the_demo_is_schema_valid(
    schemas: Path, demo_run: demo.DemoResult
) -> None:
    master = demo_run.master
    with zipfile.ZipFile(master) as package:  # the parts that are ours, not XlsxWriter's
        names = set(package.namelist())
    assert {"xl/vbaProject.bin", "xl/drawings/vmlDrawing1.vml", "xl/charts/chart1.xml"} <= names
    assert violations(master) == [], summary(violations(master))


@pytest.mark.libreoffice
def test_the_document_of_the_demo_with_its_page_numbers_is_schema_valid(
    schemas: Path, demo_run: demo.DemoResult
) -> None:
    """The .docx written with the PDF: its index fields carry the pages as cached results
    (PAGEREF) and Word is not asked to update them."""
    require_libreoffice()
    assert demo_run.documento is not None and demo_run.documento.pdf is not None
    written = demo_run.documento.docx
    with zipfile.ZipFile(written) as package:
        body = package.read("word/document.xml").decode()
        settings = package.read("word/settings.xml").decode()
    assert "PAGEREF" in body and "w:updateFields" not in settings
    assert violations(written) == [], summary(violations(written))


def test_the_document_with_the_comparison_and_no_page_numbers_is_schema_valid(
    schemas: Path, demo_run: demo.DemoResult, tmp_path: Path
) -> None:
    """Linked to a 2024 raccolta where Crema and the ALER answered (Crema with other
    figures): the comparison chapter is in, and without pages the index asks Word to
    update its fields (w:updateFields)."""
    prev = crea(tmp_path / "raccolta-2024", anno=2024)
    returns = demo.cremasco_2025_returns()
    crema = next(x.codice for x in returns if x.nome == "Crema")
    answered = {crema} | {x.codice for x in returns if x.nome.startswith("ALER")}
    assert len(answered) == 2
    changes = {crema: {"b_carenza_manutentiva": 5}}
    import_files(
        prev, demo.write_returns(prev, tmp_path / "ritorni-2024", only=answered, changes=changes)
    )
    r = dataclasses.replace(demo_run.raccolta, precedente=str(prev.path))
    confronto = confronta(r, demo_run.consolidation)
    assert confronto is not None
    built = build_document(r, demo_run.consolidation, confronto=confronto)
    target = tmp_path / "documento.docx"
    target.write_bytes(built)
    with zipfile.ZipFile(target) as package:
        body = package.read("word/document.xml").decode()
        settings = package.read("word/settings.xml").decode()
    assert "CONFRONTO" in body and "w:updateFields" in settings
    assert violations(target) == [], summary(violations(target))


def test_before_any_return_the_master_and_the_document_are_schema_valid(
    schemas: Path, tmp_path: Path
) -> None:
    """No return yet: empty lists in the master, every section of the document says none."""
    r = crea(tmp_path / "raccolta", anno=2026)
    master = actions.consolida(r).master
    document = actions.documento(r, pdf=False).docx
    for path in (master, document):
        assert violations(path) == [], summary(violations(path))


# --------------------------------------------------------------------------- the checker


def test_the_checker_reports_a_misplaced_element_with_part_and_line(
    schemas: Path, tmp_path: Path
) -> None:
    blank = actions.modello_vuoto(tmp_path / "modello.xlsx")
    with zipfile.ZipFile(blank) as package:
        sheet = package.read("xl/worksheets/sheet1.xml")
    broken = sheet.replace(b"<sheetData>", b"<sheetData>\n<bogus/>", 1)
    assert broken != sheet
    bad = _replace_part(blank, tmp_path / "bad.xlsx", "xl/worksheets/sheet1.xml", broken)
    found = violations(bad)
    assert len(found) == 1 and found[0].startswith("xl/worksheets/sheet1.xml:"), found
    assert "bogus" in found[0] and "This element is not expected" in found[0]
    line = int(found[0].split(":")[1])
    assert broken.splitlines()[line - 1].startswith(b"<bogus/>")


def test_the_checker_reports_a_wrong_root_an_unknown_type_and_a_part_without_type(
    schemas: Path, tmp_path: Path
) -> None:
    blank = actions.modello_vuoto(tmp_path / "modello.xlsx")
    with zipfile.ZipFile(blank) as package:
        types = package.read("[Content_Types].xml")
        styles = package.read("xl/styles.xml")
    # the styles part given the sharedStrings root
    wrong = _replace_part(blank, tmp_path / "wrong.xlsx", "xl/sharedStrings.xml", styles)
    assert violations(wrong) == [
        "xl/sharedStrings.xml: root element "
        "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}styleSheet, its content "
        "type needs {http://schemas.openxmlformats.org/spreadsheetml/2006/main}sst"
    ]
    # a part whose content type the checker does not know is reported, not skipped
    odd = types.replace(b"sharedStrings+xml", b"sharedStringz+xml")
    assert odd != types
    unknown = _replace_part(blank, tmp_path / "unknown.xlsx", "[Content_Types].xml", odd)
    assert [v for v in violations(unknown) if "unknown to tests/ooxml.py" in v] == [
        "xl/sharedStrings.xml: content type 'application/vnd.openxmlformats-officedocument."
        "spreadsheetml.sharedStringz+xml' unknown to tests/ooxml.py"
    ]
    # a part without any content type
    stripped = re.sub(
        rb'<(Default Extension="xml"|Override PartName="/docProps/custom.xml")[^>]*/>', b"", types
    )
    assert stripped != types
    untyped = _replace_part(blank, tmp_path / "untyped.xlsx", "[Content_Types].xml", stripped)
    assert "docProps/custom.xml: no content type in [Content_Types].xml" in violations(untyped)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_W14 = "http://schemas.microsoft.com/office/word/2010/wordml"
_MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"


def _document(body: str, *, ignorable: bool) -> bytes:
    mark = ' mc:Ignorable="w14"' if ignorable else ""
    return (
        f'<w:document xmlns:w="{_W}" xmlns:w14="{_W14}" xmlns:mc="{_MC}"{mark}>'
        f"<w:body>{body}</w:body></w:document>"
    ).encode()


def test_ignorable_namespaces_are_dropped_and_alternate_content_falls_back(
    schemas: Path, demo_run: demo.DemoResult, tmp_path: Path
) -> None:
    """As in the Open XML SDK: w14 markup passes only where mc:Ignorable names it; of an
    mc:AlternateContent the mc:Choice that requires w14 (no schema here) is left for the
    mc:Fallback, which is then validated like any other content."""
    assert demo_run.documento is not None
    source = demo_run.documento.docx

    def check(document: bytes, name: str) -> list[str]:
        return violations(_replace_part(source, tmp_path / name, "word/document.xml", document))

    para = '<w:p w14:paraId="1A2B3C4D"><w:r><w14:glow/><w:t>x</w:t></w:r></w:p>'
    assert check(_document(para, ignorable=True), "ignored.docx") == []
    kept = check(_document(para, ignorable=False), "kept.docx")
    assert len(kept) == 2 and all("w14" in v or _W14 in v for v in kept), kept

    def alternate(fallback: str) -> str:
        return (
            '<mc:AlternateContent><mc:Choice Requires="w14"><w14:glow/></mc:Choice>'
            f"<mc:Fallback>{fallback}</mc:Fallback></mc:AlternateContent>"
        )

    good = alternate("<w:p><w:r><w:t>y</w:t></w:r></w:p>")
    assert check(_document(good, ignorable=False), "fallback.docx") == []
    bad = alternate("<w:p><w:t>y</w:t></w:p>")  # w:t straight in a paragraph
    found = check(_document(bad, ignorable=False), "badfallback.docx")
    assert len(found) == 1 and found[0].startswith("word/document.xml:1: ") and "}t'" in found[0]


def test_without_the_schemas_the_tests_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIANO_ABITATIVO_OOXML_SCHEMAS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="ooxml_schemas not found"):
        ooxml.schemas_dir()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        ooxml.schemas_dir()
