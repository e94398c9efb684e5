"""The fast paths of the reader change nothing but the time: the area scan of an xlsx
sheet reaches exactly the verdict of the plain scan it replaced (same refusal and
message, same extent, same count of scanned cells, on well-formed, odd and hostile tags
alike), and a member inflated without zipfile is byte for byte what zipfile reads."""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from piano_abitativo.reading import bounds
from piano_abitativo.reading.bounds import Area, OutOfArea, _Extent, _ref, scan_xlsx_sheet
from piano_abitativo.reading.safety import _inflate_plain
from piano_abitativo.validation.validate import ValidationContext, validate_file

from .sample_returns import MakeReturn

_X_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|c|dimension)(?=[\s/>])([^<>]*)>")


def plain_scan(data: bytes, ext: _Extent) -> None:
    """The scan as it was before it was made fast: one Match and one search per tag."""
    row = -1
    col = -1
    for m in _X_TAG.finditer(data):
        closing, name, attrs = m.group(1), m.group(2), m.group(3)
        empty = attrs.endswith(b"/")
        if closing:
            continue
        r = bounds._X_R.search(attrs)
        if name == b"dimension":
            ref = bounds._X_R_REF.search(attrs)
            for part in ref.group(1).split(b":") if ref else []:
                pos = _ref(part)
                if pos is not None:
                    ext.cell(*pos, what="area dichiarata")
        elif name == b"row":
            row = int(r.group(1)) - 1 if r and r.group(1).strip().isdigit() else row + 1
            col = -1
        else:
            ext.tick()
            if r is not None:
                pos = _ref(r.group(1))
                if pos is None:
                    raise OutOfArea(
                        f"riferimento di cella non valido «{r.group(1)[:20].decode('latin-1')}» "
                        f"nel foglio «{ext.sheet}»",
                        ext.sheet,
                    )
                row, col = pos
            else:
                col += 1
                row = max(row, 0)
            if not empty:
                ext.cell(row, col)


def outcome(scan: object, data: bytes, area: Area) -> tuple[object, ...]:
    ext = _Extent("Scheda", area, [5])
    try:
        scan(data, ext)  # type: ignore[operator]
    except OutOfArea as exc:
        return (exc.message,)  # the file is refused: its extent no longer matters
    return None, ext.max_row, ext.max_col, ext.budget[0]


_REFS = st.sampled_from(
    ["A1", "B2", "$C$3", "d4", "Z99", "AA10", "XFD1048576", "", " A1 ", "A<1", "1A", "ZZZZZ9"]
)
_SPACE = st.sampled_from([" ", "  ", "\t", "\n", " \r\n "])
_QUOTE = st.sampled_from(['"', "'"])


@st.composite
def tag(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(["c", "row", "dimension", "x:c", "cc", "col", "/c", "/row"]))
    attrs = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["r", "rr", "s", "t", "ref", "r ", "xr"]))
        q = draw(_QUOTE)
        value = draw(st.one_of(_REFS, st.sampled_from(["3", "s", "A1:B2", "x r='C5'"])))
        attrs.append(f"{draw(_SPACE)}{key}={q}{value}{q}")
    if name == "row" and draw(st.booleans()):
        attrs.insert(0, f' r="{draw(st.integers(0, 6000))}"')
    end = draw(st.sampled_from([">", "/>", " />", ">", "<"]))
    body = draw(st.sampled_from(["", "<v>1</v>", "<f>SUM(A1)</f>", ""]))
    return f"<{name}{''.join(attrs)}{end}{body}"


@settings(max_examples=400, deadline=None)
@given(st.lists(tag(), max_size=30), st.sampled_from([(30, 8), (4000, 60), (10, 2)]))
def test_fast_scan_gives_the_verdict_of_the_plain_scan(
    tags: list[str], limits: tuple[int, int]
) -> None:
    """Any sequence of tags: the same refusal (or none), extent and cell count."""
    data = ("<sheetData>" + "".join(tags) + "</sheetData>").encode()
    area = Area(*limits)
    assert outcome(scan_xlsx_sheet, data, area) == outcome(plain_scan, data, area)


def test_fast_scan_counts_the_budget_like_the_plain_scan() -> None:
    """Past the scan budget both refuse with the same message."""
    data = b"<c/>" * (bounds.SCAN_BUDGET + 2)
    area = Area(4000, 60)
    assert outcome(scan_xlsx_sheet, data, area) == outcome(plain_scan, data, area)
    assert outcome(scan_xlsx_sheet, data, area)[0] is not None


def _zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


_ZIP = _zip_of(
    {
        "xl/workbook.xml": b"<workbook>" + b"<sheet/>" * 40 + b"</workbook>",
        "xl/_rels/workbook.xml.rels": b"<Relationships/>",
        "xl/worksheets/sheet1.xml": b'<sheetData><c r="A1"/></sheetData>',
    }
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_ZIP) - 1), st.integers(0, 255))
def test_a_member_inflated_without_zipfile_is_what_zipfile_reads(at: int, byte: int) -> None:
    """One byte of the archive changed anywhere: each member the fast path inflates
    is exactly what `ZipFile.read` returns; where they could differ it gives way."""
    data = bytearray(_ZIP)
    data[at] = byte
    try:
        zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
        return  # not an archive zipfile opens (the reader reports it as damaged: F03)
    for info in infos:
        fast = _inflate_plain(bytes(data), info)
        if fast is not None:
            assert fast == zf.read(info.filename)


def test_of_a_part_given_twice_the_last_entry_is_read_as_zipfile_does(
    make_return: MakeReturn, crema_values: dict[str, Any], vctx: ValidationContext
) -> None:
    """A return whose workbook part is preceded by a stale copy without defined names
    reads as the return itself: zipfile's `read` takes the last entry of a name, and so
    does the fast path."""
    path = make_return(crema_values)
    with zipfile.ZipFile(path) as src:
        parts = [(i.filename, src.read(i)) for i in src.infolist()]
    stale = re.sub(rb"<definedNames>.*</definedNames>", b"", dict(parts)["xl/workbook.xml"])
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr("xl/workbook.xml", stale)
            for name, body in parts:
                out.writestr(name, body)
    twice = path.with_name("due_volte.xlsx")
    twice.write_bytes(buf.getvalue())

    report = validate_file(twice, vctx)

    assert report.to_json()["problemi"] == validate_file(path, vctx).to_json()["problemi"]
    assert report.valid
