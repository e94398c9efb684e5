"""Property tests of the reader and validator: whatever is in the file, `validate_file`
returns a `Report` made only of catalogued problems, and never raises."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.problems import CATALOGUE, Report
from piano_abitativo.core.registry import default_registry
from piano_abitativo.core.schema import FIELD_BY_ID, INPUT_FIELDS, SHEET_SCHEDA, Kind
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateContext, TemplateFactory
from piano_abitativo.validation.validate import ValidationContext, validate_bytes, validate_file

_REGISTRY = default_registry()
_FACTORY = TemplateFactory(TemplateContext(anno=2026, raccolta_id="prop"))
#: one template per variant: a comune (Crema) and the ALER (its comuni-only cells say
#: "non applicabile")
TEMPLATES: dict[str, bytes] = {
    codice: _FACTORY.render(ente)
    for codice in ("019035", "ALER-BCM")
    if (ente := _REGISTRY.get(codice)) is not None
}
CONTEXT = ValidationContext(anno=2026, raccolta_id="prop", registry=_REGISTRY)
INPUT_IDS = [f.id for f in INPUT_FIELDS]

CELL_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.booleans(),
    st.sampled_from(["SI", "sì", "no", "10%", "0,1", " 5 ", "1.008", "=1+1"]),
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proprieta")


def _xml_char(ch: str) -> bool:
    """Whether XML 1.0 can hold the character (fill_template escapes only & < >)."""
    cp = ord(ch)
    return (
        cp in (0x9, 0xA, 0xD)
        or 0x20 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


def representable(value: Any) -> bool:
    """Whether fill_template can type `value` into a cell of a well-formed file.

    Numbers are written with repr(): nan and ±inf come out as "nan"/"inf", which are not
    xsd:double ("NaN"/"INF") but which python-calamine reads as NaN/inf, so they stay in
    (the reader must give L05/L06 for them); an int too large for a double is read as inf.
    Strings become inline strings: only characters XML 1.0 forbids cannot be written.
    """
    if isinstance(value, str):
        return all(_xml_char(ch) for ch in value)
    return True


def assert_well_formed(report: Report, name: str) -> None:
    assert isinstance(report, Report)
    assert report.file == name
    for p in report.problems:
        assert p.code in CATALOGUE, p
        assert p.severity is CATALOGUE[p.code].severity, p
        assert p.message and p.hint
    json.dumps(report.to_json())


@PROPERTY
@given(
    ente=st.sampled_from(sorted(TEMPLATES)),
    values=st.dictionaries(st.sampled_from(INPUT_IDS), CELL_VALUES, max_size=len(INPUT_IDS)),
)
def test_any_cell_content_gives_a_report(workdir: Path, ente: str, values: dict[str, Any]) -> None:
    """Any mix of numbers, texts, booleans, NaN/inf and formula-like strings typed into
    the input cells gives a readable file and a Report of catalogued problems, each
    value problem (L*, R0) pointing at its cell."""
    assume(all(representable(v) for v in values.values()))
    path = workdir / f"valori_{ente}.xlsx"
    path.write_bytes(fill_template(TEMPLATES[ente], values))
    report = validate_file(path, CONTEXT)
    assert_well_formed(report, path.name)
    # only the cell contents changed: the file is always a readable template
    assert report.values, [(p.code, p.message) for p in report.problems]
    assert not [p for p in report.problems if p.code[0] in "FM"], report.problems
    for p in report.problems:
        if p.code.startswith("L") or p.code == "R0":
            assert p.sheet == SHEET_SCHEDA and p.field, p
            assert p.cell == LAYOUT.cell(p.field), p
    for fid, value in report.values.items():
        kind = FIELD_BY_ID[fid].kind
        if kind in (Kind.COUNT, Kind.PERCENT, Kind.YEAR) and value is not None:
            assert isinstance(value, int | float) and not isinstance(value, bool)
            assert math.isfinite(value)
        elif kind is Kind.YESNO:
            assert value in (None, "SI", "NO")


_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
RANDOM_FILES = st.one_of(
    st.binary(max_size=4096),
    st.binary(max_size=4096).map(lambda b: b"PK\x03\x04" + b),
    st.binary(max_size=4096).map(lambda b: _OLE_MAGIC + b),
    st.binary(max_size=512).map(lambda b: b"PK\x05\x06" + b),
)


@settings(max_examples=100, deadline=None)
@given(data=RANDOM_FILES)
def test_random_bytes_never_raise(workdir: Path, data: bytes) -> None:
    """Random bytes (also behind a zip or OLE signature) give a Report, never an
    exception, and are never taken for a readable workbook."""
    path = workdir / "casuale.xlsx"
    path.write_bytes(data)
    report = validate_file(path, CONTEXT)
    assert_well_formed(report, path.name)
    assert not report.valid and report.values == {}


def _stored(data: bytes) -> bytes:
    """The same workbook with uncompressed members, so byte flips hit the XML."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    return out.getvalue()


_FILLED = fill_template(TEMPLATES["019035"], {"a_sap": 10, "a_sas": 2, "d_turnover": "3"})
BASES = {"deflated": _FILLED, "stored": _stored(_FILLED)}


@st.composite
def mutated_templates(draw: st.DrawFn) -> bytes:
    base = bytearray(BASES[draw(st.sampled_from(sorted(BASES)))])
    flips = draw(
        st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=8)
    )
    for pos, byte in flips:
        base[pos] = byte
    if draw(st.booleans()):
        base = base[: draw(st.integers(0, len(base)))]
    return bytes(base)


@settings(max_examples=100, deadline=None)
@given(data=mutated_templates())
def test_mutated_template_never_raises(workdir: Path, data: bytes) -> None:
    """A real filled template with bytes flipped and/or cut short gives a Report of
    catalogued problems, never an exception (also through validate_bytes)."""
    path = workdir / "mutato.xlsx"
    path.write_bytes(data)
    report = validate_file(path, CONTEXT)
    assert_well_formed(report, path.name)
    again = validate_bytes(data, path.name, CONTEXT)
    assert [p.code for p in again.problems] == [p.code for p in report.problems]


# --- regressions found by the properties above (src bugs, pinned until fixed) ----------


def _validate_values(workdir: Path, values: dict[str, Any]) -> Report:
    path = workdir / "regressione.xlsx"
    path.write_bytes(fill_template(TEMPLATES["019035"], values))
    return validate_file(path, CONTEXT)


def test_huge_sap_stock_gives_a_report(workdir: Path) -> None:
    """A SAP stock of 1.7e308 (a finite double) is an R0 error, not an OverflowError."""
    report = _validate_values(workdir, {"a_sap": 1.7e308})
    assert "R0" in report.codes() and not report.valid


def test_endless_digit_text_is_not_read_as_infinity(workdir: Path) -> None:
    """400 digits typed as text in j) are refused (L05) rather than read as infinity."""
    report = _validate_values(workdir, {"j_sat": "9" * 400})
    assert report.values["j_sat"] is None
    assert "L05" in report.codes()


def test_report_json_is_strict_json(workdir: Path) -> None:
    """The JSON of a report stays standard JSON when a cell holds a non-finite number."""
    report = _validate_values(workdir, {"h_categoria_aggiuntiva": float("nan")})
    assert "L06" in report.codes()
    json.dumps(report.to_json(), allow_nan=False)
