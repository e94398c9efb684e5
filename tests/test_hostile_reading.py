"""Hostile returns are refused before any parser allocates, and only finite numbers
leave the reader.

Every hostile file is read in a child process under `RLIMIT_AS` (1.5 GB): a regression
(calamine building a dense grid for a far cell) fails the test instead of taking the
machine down. Each file is built here from a valid return: one extra cell at
XFD1048576 or ZZ500000, an .ods row repeated a million times, an .xls cell at IV65536.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import olefile
import pytest

from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.problems import CATALOGUE
from piano_abitativo.core.registry import default_registry
from piano_abitativo.reading.reader import read_bytes
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateContext, TemplateFactory
from piano_abitativo.validation.validate import validate_bytes

from .lo_runner import require_libreoffice, run_batch
from .test_bad_inputs import ANNO, CREMA_CODICE, RACCOLTA, VALUES, rewrite_zip

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
LIMIT_BYTES = 1536 * 1024 * 1024
#: what any file within the size limit may cost to refuse or read
MAX_SECONDS = 1.0
MAX_RSS_MB = 200
SCHEDA_PART = "xl/worksheets/sheet2.xml"
META_PART = "xl/worksheets/sheet3.xml"

_CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.path[:0] = [{src!r}, {tests!r}]
from piano_abitativo.reading.reader import read_workbook
def hwm():  # this process's peak RSS in KB (ru_maxrss would keep the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = hwm()
out = []
for path in sys.argv[1:]:
    start = time.perf_counter()
    rd = read_workbook(path)
    out.append({{
        "seconds": time.perf_counter() - start,
        "problems": [[p.code, p.message] for p in rd.problems],
        "values": rd.values,
        "readable": rd.readable,
    }})
peak = hwm()
print(json.dumps({{"files": out, "peak_mb": peak / 1024, "base_mb": before / 1024}}, default=str))
"""


def read_limited(*paths: Path, timeout: float = 60) -> dict[str, Any]:
    """Read `paths` in a child process limited to 1.5 GB of address space."""
    code = _CHILD.format(limit=LIMIT_BYTES, src=str(SRC), tests=str(TESTS.parent))
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


# --- the files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid return of Crema as .xlsx, and as .ods and .xls saved by LibreOffice."""
    require_libreoffice()
    tmp = tmp_path_factory.mktemp("ostili")
    ente = default_registry().get(CREMA_CODICE)
    assert ente is not None
    template = TemplateFactory(TemplateContext(anno=ANNO, raccolta_id=RACCOLTA)).render(ente)
    xlsx = tmp / "valido.xlsx"
    xlsx.write_bytes(fill_template(template, VALUES))
    out = {"xlsx": xlsx, "ods": tmp / "valido.ods", "xls": tmp / "valido.xls"}
    [res] = run_batch(
        [{"input": str(xlsx), "save": [{"path": str(out["ods"])}, {"path": str(out["xls"])}]}]
    )
    assert res["error"] is None, res["error"]
    return out


def edit_member(data: bytes, member: str, edit: Callable[[bytes], bytes]) -> bytes:
    """A copy of the zip `data` with `member` edited (mimetype kept first and stored)."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            content = zin.read(info)
            if info.filename == member:
                content = edit(content)
            kind = zipfile.ZIP_STORED if info.filename == "mimetype" else zipfile.ZIP_DEFLATED
            zout.writestr(info.filename, content, compress_type=kind)
    return buf.getvalue()


def extra_cell(ref: str) -> Callable[[bytes], bytes]:
    row = re.sub(r"[A-Z]", "", ref)
    extra = f'<row r="{row}"><c r="{ref}"><v>1</v></c></row></sheetData>'.encode()
    return lambda xml: xml.replace(b"</sheetData>", extra, 1)


def in_scheda_table(insert: bytes) -> Callable[[bytes], bytes]:
    """Insert rows in the .ods Scheda after its content, before LibreOffice's trailer of
    empty repeated rows."""

    def edit(content: bytes) -> bytes:
        start = content.index(b'table:name="Scheda"')
        end = content.index(b"</table:table>", start)
        trailer = content.rindex(b"<table:table-row", start, end)
        trailer = content.rindex(b"<table:table-row", start, trailer)
        return content[:trailer] + insert + content[trailer:]

    return edit


def _records(stream: bytes) -> Iterator[tuple[int, int, int]]:
    pos = 0
    while pos + 4 <= len(stream):
        rtype, size = struct.unpack_from("<HH", stream, pos)
        yield pos, rtype, size
        pos += 4 + size


def xls_moved_cell(src: Path, dst: Path, sheet_index: int, row: int, col: int) -> Path:
    """A copy of the .xls `src` whose first value cell of sheet `sheet_index` (0 the first
    sheet) is moved to (row, col), patched in place in the Workbook stream."""
    shutil.copy(src, dst)
    ole = olefile.OleFileIO(str(dst), write_mode=True)
    try:
        stream = bytearray(ole.openstream("Workbook").read())
        bof = -2  # the first BOF opens the workbook globals
        for pos, rtype, _size in _records(bytes(stream)):
            if rtype == 0x0809:
                bof += 1
            elif bof == sheet_index and rtype in (0x00FD, 0x0203, 0x027E):
                struct.pack_into("<HH", stream, pos + 4, row, col)
                break
        else:
            raise AssertionError("no value cell found")
        ole.write_stream("Workbook", bytes(stream))
    finally:
        ole.close()
    return dst


REPEATED_ODS = (
    b'<table:table-row table:number-rows-repeated="1000000">'
    b'<table:table-cell office:value-type="float" office:value="1" '
    b'table:number-columns-repeated="90"><text:p>1</text:p></table:table-cell>'
    b"</table:table-row>"
)
#: what LibreOffice writes itself: empty cells repeated to the last column, in rows
#: repeated too, then a value (still inside the area)
EMPTY_REPEATS_ODS = (
    b'<table:table-row table:number-rows-repeated="1000">'
    b'<table:table-cell table:style-name="ce1" table:number-columns-repeated="16384"/>'
    b"</table:table-row><table:table-row>"
    b'<table:table-cell office:value-type="float" office:value="7"><text:p>7</text:p>'
    b"</table:table-cell></table:table-row>"
)


def _f06(result: dict[str, Any]) -> str:
    found = [m for c, m in result["problems"] if c == "F06"]
    assert found, result["problems"]
    return found[0]


def _assert_cheap(run: dict[str, Any]) -> None:
    for f in run["files"]:
        assert f["seconds"] < MAX_SECONDS, f
    assert run["peak_mb"] < MAX_RSS_MB, run


@pytest.mark.parametrize(
    ("member", "ref", "sheet"),
    [
        (SCHEDA_PART, "XFD1048576", "Scheda"),
        (META_PART, "XFD1048576", "_meta"),
        (SCHEDA_PART, "ZZ500000", "Scheda"),
    ],
)
def test_far_cell_in_xlsx_is_refused_before_calamine_allocates(
    files: dict[str, Path], tmp_path: Path, member: str, ref: str, sheet: str
) -> None:
    path = tmp_path / "lontana.xlsx"
    path.write_bytes(edit_member(files["xlsx"].read_bytes(), member, extra_cell(ref)))
    run = read_limited(path)
    [result] = run["files"]
    message = _f06(result)
    assert f"Cella fuori dall'area del modello: {ref}" in message
    assert f"«{sheet}»" in message
    assert not result["readable"]
    _assert_cheap(run)


def test_ods_with_a_million_repeated_rows_is_refused(
    files: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "ripetute.ods"
    path.write_bytes(
        edit_member(files["ods"].read_bytes(), "content.xml", in_scheda_table(REPEATED_ODS))
    )
    run = read_limited(path)
    [result] = run["files"]
    assert "fuori dall'area del modello" in _f06(result)
    assert "«Scheda»" in _f06(result)
    _assert_cheap(run)


@pytest.mark.parametrize(("sheet_index", "sheet"), [(1, "Scheda"), (2, "_meta")])
def test_xls_cell_at_iv65536_is_refused(
    files: dict[str, Path], tmp_path: Path, sheet_index: int, sheet: str
) -> None:
    path = xls_moved_cell(files["xls"], tmp_path / "lontana.xls", sheet_index, 65535, 255)
    run = read_limited(path)
    [result] = run["files"]
    message = _f06(result)
    assert "IV65536" in message and f"«{sheet}»" in message
    _assert_cheap(run)


def test_valid_returns_and_libreoffice_empty_repeats_read_within_bounds(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """The valid return in every format reads exactly, and empty cells repeated to the
    last column (as LibreOffice writes them) are not counted: no F06."""
    repeats = tmp_path / "vuote_ripetute.ods"
    repeats.write_bytes(
        edit_member(files["ods"].read_bytes(), "content.xml", in_scheda_table(EMPTY_REPEATS_ODS))
    )
    run = read_limited(files["xlsx"], files["ods"], files["xls"], repeats)
    for result in run["files"]:
        assert result["readable"], result["problems"]
        assert not [c for c, _ in result["problems"] if c.startswith("F")], result["problems"]
        assert result["values"]["a_sap"] == VALUES["a_sap"]
    _assert_cheap(run)


# --- finite numbers -------------------------------------------------------------------


def _cell_value(xlsx: bytes, field_id: str, value: bytes) -> bytes:
    cell = LAYOUT.cell(field_id).encode()

    def edit(xml: bytes) -> bytes:
        new, n = re.subn(
            rb'<c r="%s"[^>]*?(?:/>|>.*?</c>)' % cell,
            b'<c r="%s"><v>%s</v></c>' % (cell, value),
            xml,
            count=1,
        )
        assert n == 1
        return new

    return rewrite_zip(
        xlsx, lambda name, content: edit(content) if name == SCHEDA_PART else content
    )


def _all_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return all(_all_finite(v) for v in obj)
    return True


@pytest.mark.parametrize("field_id", ["a_sap", "a_totale", "g_soglia_indigenti", "note"])
@pytest.mark.parametrize("value", [b"nan", b"NaN", b"inf", b"-inf", b"1e400"])
def test_nan_and_infinity_never_leave_the_reader(
    files: dict[str, Path], field_id: str, value: bytes
) -> None:
    data = _cell_value(files["xlsx"].read_bytes(), field_id, value)
    rd = read_bytes(data, "nan.xlsx")
    assert _all_finite(rd.values), rd.values
    assert _all_finite({k: c.raw for k, c in rd.cells.items()})
    report = validate_bytes(data, "nan.xlsx")
    json.dumps(report.to_json(), allow_nan=False)  # nothing a writer would refuse
    assert _all_finite([p.value for p in report.problems])
    if field_id != "note":
        assert "L05" in [p.code for p in report.problems if p.field == field_id]
        assert not report.valid


# --- mutations --------------------------------------------------------------------------

_MUTATE_CHILD = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
sys.path[:0] = [{src!r}, {tests!r}]
import tests.test_hostile_reading as t
print(json.dumps(t.run_mutations(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
"""

_ODS_ATTRS = [
    b"table:number-rows-repeated",
    b"table:number-columns-repeated",
    b"office:value",
    b"office:value-type",
    b"table:formula",
]
_ODS_VALUES = [
    b"0",
    b"-1",
    b"1",
    b"90",
    b"1024",
    b"16384",
    b"1000000",
    b"99999999999",
    b"nan",
    b"inf",
    b"1e400",
    b"float",
    b"string",
    b"",
    b"x",
]


def _mutate_ods(data: bytes, rnd: random.Random) -> bytes:
    def edit(content: bytes) -> bytes:
        tags = [
            m.end() - 1
            for m in re.finditer(rb"<table:(?:table-row|table-cell)\b[^<>]*?(?=/?>)", content)
        ]
        for _ in range(rnd.randint(1, 4)):
            at = rnd.choice(tags)
            attr = b' %s="%s"' % (rnd.choice(_ODS_ATTRS), rnd.choice(_ODS_VALUES))
            content = content[:at] + attr + content[at:]
            tags = [t + len(attr) if t > at else t for t in tags]
        return content

    return edit_member(data, "content.xml", edit)


def _mutate_xls(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        pos = rnd.randrange(512, len(out))
        out[pos] = rnd.choice([0x00, 0xFF, rnd.randrange(256)])
    return bytes(out)


def run_mutations(kind: str, path: str, examples: int) -> dict[str, Any]:
    """Read `examples` hypothesis-chosen mutations of the file at `path`; every one must
    give a Reading made of catalogued problems with finite values (run in a child)."""
    import time

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    base = Path(path).read_bytes()
    mutate = _mutate_ods if kind == "ods" else _mutate_xls
    slowest = [0.0]

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.randoms(use_true_random=False))
    def one(rnd: random.Random) -> None:
        data = mutate(base, rnd)
        start = time.perf_counter()
        rd = read_bytes(data, f"mutato.{kind}")
        slowest[0] = max(slowest[0], time.perf_counter() - start)
        assert all(p.code in CATALOGUE for p in rd.problems)
        assert _all_finite(rd.values)

    one()
    return {"slowest": slowest[0], "peak_mb": _peak_kb() / 1024}


def _peak_kb() -> int:
    """This process's peak RSS in KB: VmHWM, which starts again at exec (ru_maxrss keeps
    the forking parent's, a big pytest process)."""
    import resource

    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize("kind", ["ods", "xls"])
def test_mutated_ods_and_xls_always_give_a_reading(files: dict[str, Path], kind: str) -> None:
    code = _MUTATE_CHILD.format(limit=LIMIT_BYTES, src=str(SRC), tests=str(TESTS.parent))
    proc = subprocess.run(
        [sys.executable, "-c", code, kind, str(files[kind]), "60"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    assert run["slowest"] < MAX_SECONDS, run
    assert run["peak_mb"] < MAX_RSS_MB * 2, run
