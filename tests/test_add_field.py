"""Adding one count field to the schema is one edit: everything downstream follows.

The extended schema is built here (`SCHEMA.with_field`); a raccolta using it goes through
templates, a return filled and saved by LibreOffice, import, consolidation, master and
document. A last test inserts the field's line into a copy of the sources and runs the
CLI on it, as an external check does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest

from piano_abitativo.app import commands as actions
from piano_abitativo.archive.store import Receipt
from piano_abitativo.consolidation.consolidate import Consolidation, consolidate
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Schema
from piano_abitativo.document.docx import write_document
from piano_abitativo.master.sheets import SHEET_DATI, build_master, dati_header, table_sheets
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import generate_templates, template_filename

from .lo_runner import require_libreoffice, run_batch

NEW = Field("j_sat_nuove", "j", "di cui unità SAT di nuova destinazione", Kind.COUNT)
#: the values of the returns: (ente, values); the new field's sum is 3 + 2
RETURNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("019005", {"a_sap": 40, "a_sas": 2, "d_turnover": 4, "j_sat": 5, "j_sat_nuove": 3}),
    ("019002", {"a_sap": 90, "a_sas": 6, "b_carenza_manutentiva": 1, "j_sat": 4, "j_sat_nuove": 2}),
)
SRC = Path(__file__).resolve().parents[1] / "src"


def _schema() -> Schema:
    return SCHEMA.with_field(NEW)


def _raccolta(tmp_path: Path, schema: Schema) -> Raccolta:
    r = actions.crea(tmp_path / "raccolta", anno=2026)
    r.schema = schema
    return r


def _fill(template: bytes, values: dict[str, Any], schema: Schema) -> bytes:
    """`fill_template` with the raccolta's schema."""
    return fill_template(template, values, schema=schema)


def _returned(tmp_path: Path, r: Raccolta, *, new_field: bool) -> list[Path]:
    """The returns of `RETURNS` filled into `r`'s templates (the new field's value too
    when `new_field`) and saved by LibreOffice."""
    out = tmp_path / "ricevuti"
    out.mkdir()
    jobs, paths = [], []
    for codice, values in RETURNS:
        ente = r.registry.get(codice)
        assert ente is not None
        template = r.modelli_dir / template_filename(ente, r.anno)
        filled = tmp_path / f"compilato_{codice}.xlsx"
        typed = values if new_field else {k: v for k, v in values.items() if k != NEW.id}
        filled.write_bytes(_fill(template.read_bytes(), typed, r.schema))
        saved = out / f"{codice}.xlsx"
        jobs.append({"input": str(filled), "save": [{"path": str(saved)}]})
        paths.append(saved)
    for res in run_batch(jobs):
        assert res["error"] is None, res["error"]
    return paths


def _with_new_values(rcs: list[Receipt]) -> list[Receipt]:
    """The receipts as a reader that knows the new field gives them: its value added."""
    wanted = dict(RETURNS)
    out = []
    for rc in rcs:
        extra = {NEW.id: wanted[rc.report.ente or ""][NEW.id]}
        report = dataclasses.replace(rc.report, values={**rc.report.values, **extra})
        out.append(dataclasses.replace(rc, report=report))
    return out


def _template_has_field(r: Raccolta) -> bool:
    """Whether the templates generated for `r` expose the new field as a defined name."""
    first = next(iter(sorted(r.modelli_dir.glob("*.xlsx"))))
    with zipfile.ZipFile(first) as z:
        book = z.read("xl/workbook.xml").decode("utf-8")
    return f'name="{NEW.id}"' in book


def _check_downstream(tmp_path: Path, r: Raccolta, cons: Consolidation) -> None:
    """The new field in Dati, in j)'s table with a named total LibreOffice recalculates,
    in the totals and in the document's j) table."""
    expected = sum(v[NEW.id] for _, v in RETURNS)
    assert cons.totals[NEW.id] == expected
    assert NEW.id in {f.id for f in cons.schema.total_fields}
    master = tmp_path / "master.xlsx"
    master.write_bytes(build_master(cons))
    wb = openpyxl.load_workbook(master)
    dati = wb[SHEET_DATI]
    header_row = next(row for row in dati.iter_rows(values_only=True) if row and row[0] == "Codice")
    assert dati_header(NEW) in header_row
    j_sheet = wb[table_sheets(cons.schema)["j"]]
    j_headers = [c.value for c in j_sheet[2]]
    assert j_headers == ["Comune", "Numero unità immobiliari", NEW.label]
    assert f"totale_{NEW.id}" in wb.defined_names
    (res,) = run_batch([{"input": str(master), "read": [f"totale_{NEW.id}", "totale_j_sat"]}])
    assert res["error"] is None, res["error"]
    assert res["reads"][f"totale_{NEW.id}"]["value"] == expected
    assert res["reads"]["totale_j_sat"]["value"] == sum(v["j_sat"] for _, v in RETURNS)
    doc = docx.Document(str(write_document(r, cons, pdf=False).docx))
    table = next(t for t in doc.tables if NEW.label in [c.text for c in t.rows[0].cells])
    assert [c.text for c in table.rows[-1].cells] == ["Totale", "9", str(expected)]


@pytest.mark.libreoffice
def test_added_field_downstream_from_receipts(tmp_path: Path) -> None:
    """Given receipts that carry the new field, consolidation, master (named total
    recalculated by LibreOffice) and document all show it, nothing else edited."""
    require_libreoffice()
    r = _raccolta(tmp_path, _schema())
    generate_templates(r)
    actions.importa(r, _returned(tmp_path, r, new_field=False))
    cons = consolidate(r, _with_new_values(receipts(r)))
    assert all(s.used is not None for s in cons.enti if s.ente.codice in dict(RETURNS))
    _check_downstream(tmp_path, r, cons)


@pytest.mark.libreoffice
def test_added_field_end_to_end(tmp_path: Path) -> None:
    """Templates, fill, reader and validator of the raccolta's schema carry the new field
    from the clerk's cell to the master and the document."""
    require_libreoffice()
    r = _raccolta(tmp_path, _schema())
    generate_templates(r)
    assert _template_has_field(r)
    actions.importa(r, _returned(tmp_path, r, new_field=True))
    _check_downstream(tmp_path, r, actions.consolidation(r))


def _copy_with_field(tmp_path: Path) -> Path:
    """A copy of the sources with the field's line inserted in `FIELDS` after `j_sat`."""
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    schema_py = copy / "piano_abitativo" / "core" / "schema.py"
    text = schema_py.read_text(encoding="utf-8")
    start = text.index('        "j_sat",\n')
    entry = text.rfind("    Field(\n", 0, start)
    end = text.index("\n    ),\n", entry) + len("\n    ),\n")
    line = f'    Field("{NEW.id}", "{NEW.section}", "{NEW.label}", Kind.COUNT),\n'
    schema_py.write_text(text[:end] + line + text[end:], encoding="utf-8")
    return copy


def _cli(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    code = "import sys; from piano_abitativo.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_field_line_inserted_in_fields_works_from_the_cli(tmp_path: Path) -> None:
    """With only the Field line added to FIELDS, crea, modelli, importa of one filled
    return and consolida --json exit 0 and list the new field among the totals."""
    copy = _copy_with_field(tmp_path)
    racc = tmp_path / "raccolta"
    for args in (("crea", str(racc), "--anno", "2026"), ("modelli", str(racc))):
        done = _cli(copy, *args)
        assert done.returncode == 0, done.stderr
    template = next(p for p in (racc / "modelli").glob("*.xlsx") if "Crema." in p.name)
    filled = tmp_path / "crema.xlsx"
    fill = (
        "import sys; from pathlib import Path; from piano_abitativo.template.fill import "
        "fill_template; Path(sys.argv[2]).write_bytes(fill_template("
        "Path(sys.argv[1]).read_bytes(), {'a_sap': 7, 'j_sat': 2, 'j_sat_nuove': 1}))"
    )
    env = {**os.environ, "PYTHONPATH": str(copy)}
    subprocess.run(
        [sys.executable, "-c", fill, str(template), str(filled)], env=env, check=True, timeout=600
    )
    done = _cli(copy, "importa", str(racc), "--da", str(filled))
    assert done.returncode == 0, done.stderr
    done = _cli(copy, "consolida", str(racc), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout[done.stdout.index("{") :])
    assert NEW.id in out["totali"]
    assert out["totali"]["a_sap"] == 7
    assert "Traceback" not in done.stderr
