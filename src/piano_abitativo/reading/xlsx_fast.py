"""The common case of an .xlsx read without a general parser: the two sheets the reader
needs (*Scheda* and *_meta*), straight from their XML, already inflated and checked.

A return is almost always the template as written by this program, then saved by Excel
or LibreOffice: every sheet cell is ``<c r="D11" s="16" t="s"><v>3</v></c>`` with an
optional ``<f>``. For such a sheet the values python-calamine would give are plain to
compute, and computing them here avoids opening the whole workbook a second time (its
parts inflated again, styles, themes and the conditional formatting parsed).

The fast path is strict, never approximate: a sheet is read here only when EVERY byte of
its ``<sheetData>`` is a row or a cell of that shape, every string is plain (only the
five XML entities and character references), every number is a plain decimal and no
number has a date or duration format. Anything else (inline strings, errors, dates,
rich text with phonetic runs, namespace prefixes, ``_xHHHH_`` escapes, carriage returns)
returns None and the caller reads the file with python-calamine as before. The values
are those calamine gives (tests/test_xlsx_fast.py compares both on every kind of cell).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: one row or one cell of <sheetData>, as Excel, LibreOffice and the template write them:
#: (whole token, column letters, row digits, style, type, formula, value, inline string,
#: its text, its text with spaces preserved)
_TOKEN = re.compile(
    rb'(<row r="[0-9]{1,7}"[^<>]*>|</row>'
    rb'|<c r="([A-Z]{1,3})([0-9]{1,7})"(?: s="([0-9]{1,6})")?(?: t="([a-zA-Z]{1,9})")?'
    rb"(?:/>|>(<f(?:/>|>[^<]*</f>|\s[^<>]*?(?:/>|>[^<]*</f>)))?"
    rb'(?:<v>([^<]*)</v>|<v/>|(<is>(?:<t>([^<]*)</t>|<t xml:space="preserve">([^<]*)</t>|<t/>)'
    rb"</is>))?"
    rb"</c>))"
)
_NUMBER = re.compile(rb"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
_ENTITY = re.compile(rb"&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));")
_NAMED = {b"amp": b"&", b"lt": b"<", b"gt": b">", b"quot": b'"', b"apos": b"'"}
#: a shared string: plain text, or runs of text (with optional run properties)
_SI = re.compile(
    rb"<si>(?:<t>([^<]*)</t>|<t xml:space=\"preserve\">([^<]*)</t>|<t/>"
    rb"|((?:<r>(?:<rPr>(?:[^<]|<(?!/rPr>))*</rPr>)?<t(?: xml:space=\"preserve\")?>[^<]*</t></r>)+))"
    rb"</si>"
)
_RUN_T = re.compile(rb"<t>([^<]*)</t>|<t xml:space=\"preserve\">([^<]*)</t>")
#: what an XML parser trims from a text element without xml:space="preserve" (calamine)
_XML_SPACE = b" \t\n"
_XF_BLOCK = re.compile(rb"<cellXfs\b[^>]*>(.*?)</cellXfs>", re.S)
_XF = re.compile(rb"<xf\b([^>]*)>")
_NUMFMT_ID = re.compile(rb'\bnumFmtId="([0-9]+)"')
_NUMFMT = re.compile(rb'<numFmt\b[^>]*?\bnumFmtId="([0-9]+)"[^>]*?\bformatCode="([^"]*)"')
#: built-in number formats that are not dates or durations (ECMA-376 18.8.30)
_PLAIN_BUILTIN = frozenset((*range(0, 14), *range(37, 45), 48, 49))
_QUOTED = re.compile(r'"[^"]*"')
_DATE_LETTERS = frozenset("dDmMyYhHsSaApPeEgGbB[\\_*")


_first = operator.itemgetter(0)


class NotPlain(Exception):
    """The part is not of the plain shape: read it with python-calamine."""


def _text(raw: bytes) -> str:
    """XML character data as the parser gives it (entities resolved), when plain."""
    if b"\r" in raw or b"_x" in raw:
        raise NotPlain
    if b"&" in raw:
        expected = raw.count(b"&")
        found = 0

        def entity(m: re.Match[bytes]) -> bytes:
            nonlocal found
            found += 1
            if m.group(1):
                return _NAMED[m.group(1)]
            code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
            if not (0x20 <= code <= 0x10FFFF or code in (0x9, 0xA)) or 0xD800 <= code < 0xE000:
                raise NotPlain
            return chr(code).encode("utf-8")

        raw = _ENTITY.sub(entity, raw)
        if found != expected:
            raise NotPlain
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotPlain from None


def shared_strings(sst: bytes | None) -> list[str]:
    """The shared string table, when every item is plain text or runs of text."""
    if sst is None:
        return []
    found = _SI.findall(sst)
    if len(found) != sst.count(b"<si") or b"<si/>" in sst:
        raise NotPlain
    if not (b"&" in sst or b"\r" in sst or b"_x" in sst or b"<r>" in sst):
        try:  # the usual table: plain items, nothing to resolve
            return [
                kept.decode("utf-8") if kept else trimmed.strip(_XML_SPACE).decode("utf-8")
                for trimmed, kept, _ in found
            ]
        except UnicodeDecodeError:
            raise NotPlain from None
    text = _decode if not (b"&" in sst or b"\r" in sst or b"_x" in sst) else _text
    out: list[str] = []
    for plain, preserved, runs in found:
        if runs:
            out.append("".join(_piece(text, t, k) for t, k in _RUN_T.findall(runs)))
        else:
            out.append(_piece(text, plain, preserved))
    return out


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotPlain from None


def _piece(text: Callable[[bytes], str], trimmed: bytes, kept: bytes) -> str:
    """The text of one <t>: spaces at its ends are kept only with xml:space="preserve"."""
    return text(kept) if kept else text(trimmed.strip(_XML_SPACE))


def _plain_format(code: str) -> bool:
    """A custom number format that is surely not a date or a duration."""
    if code.casefold() == "general":
        return True
    return not (_DATE_LETTERS & set(_QUOTED.sub("", code)))


@functools.lru_cache(maxsize=64)
def plain_styles(styles: bytes | None) -> frozenset[int] | None:
    """The cell styles (indices of cellXfs) whose numbers are plain numbers, or None when
    the style sheet is not of a shape read here. Cached: the returns of a raccolta share
    their style sheet."""
    if styles is None:
        return frozenset()
    block = _XF_BLOCK.search(styles)
    if block is None:
        return None
    custom = {int(i): _text(c) for i, c in _NUMFMT.findall(styles)}
    plain: set[int] = set()
    for index, attrs in enumerate(_XF.findall(block.group(1))):
        m = _NUMFMT_ID.search(attrs)
        fmt = int(m.group(1)) if m else 0
        if fmt in custom:
            if _plain_format(custom[fmt]):
                plain.add(index)
        elif fmt in _PLAIN_BUILTIN:
            plain.add(index)
    return frozenset(plain)


@functools.lru_cache(maxsize=256)
def _col(letters: bytes) -> int:
    col = 0
    for ch in letters:
        col = col * 26 + (ch - 64)
    return col - 1


@dataclass
class FastSheet:
    """A sheet read here: its cells (0-based row, col) -> value, as calamine reads them."""

    cells: dict[tuple[int, int], Any]
    formulas: set[str]
    max_row: int = -1
    max_col: int = -1

    def to_python(self, *, skip_empty_area: bool = False) -> list[list[Any]]:
        """The dense grid from A1, as `CalamineSheet.to_python(skip_empty_area=False)`."""
        width = self.max_col + 1
        grid = [[""] * width for _ in range(self.max_row + 1)]
        for (r, c), v in self.cells.items():
            grid[r][c] = v
        return grid


def read_sheet(xml: bytes, strings: Sequence[str], plain: frozenset[int]) -> FastSheet:
    """The cells of one worksheet part of the plain shape (raises NotPlain otherwise)."""
    start = xml.find(b"<sheetData>")
    if start < 0:
        if b"<sheetData/>" in xml and xml.count(b"sheetData") == 1:
            return FastSheet({}, set())
        raise NotPlain
    start += len(b"<sheetData>")
    end = xml.find(b"</sheetData>", start)
    if end < 0 or xml.count(b"sheetData") != 2:
        raise NotPlain
    region = xml[start:end]  # a formula's text is plain character data (_TOKEN)
    tokens = _TOKEN.findall(region)
    if sum(map(len, map(_first, tokens))) != len(region):
        raise NotPlain
    cells: dict[tuple[int, int], Any] = {}
    with_formula: list[bytes] = []
    max_row = max_col = -1
    n_strings = len(strings)
    valued = 0
    col_of = _col
    for _, letters, digits, style, typ, formula, value, inline, trimmed, kept in tokens:
        if formula:
            with_formula.append(letters + digits)
        if not value and not inline:
            continue  # a row (calamine places cells by their own reference), an empty cell
        if digits[0] == 0x30:  # row 0 or a leading zero: not a reference Excel writes
            raise NotPlain
        v: Any
        if typ == b"s":
            if not value.isdigit() or int(value) >= n_strings or inline:
                raise NotPlain
            v = strings[int(value)]
        elif inline:
            if typ != b"inlineStr":
                raise NotPlain
            v = _text(kept) if kept else _text(trimmed.strip(_XML_SPACE))
        elif typ in (b"", b"n"):
            if not _NUMBER.fullmatch(value) or (style and int(style) not in plain):
                raise NotPlain
            v = float(value)
        elif typ == b"str":
            v = _text(value)
        elif typ == b"b":
            v = value != b"0"
        else:
            raise NotPlain  # errors, ISO dates
        row, col = int(digits) - 1, col_of(letters)
        cells[row, col] = v
        valued += 1
        if row > max_row:
            max_row = row
        if col > max_col:
            max_col = col
    if valued != len(cells):  # a cell given twice
        raise NotPlain
    formulas = {ref.decode("ascii") for ref in with_formula}
    return FastSheet(cells, formulas, max_row, max_col)


@dataclass
class FastBook:
    """The sheets of a workbook read here, with the interface of the calamine workbook
    the reader uses (`sheet_names`, `get_sheet_by_name`)."""

    sheet_names: list[str]
    sheets: dict[str, FastSheet] = field(default_factory=dict)

    def get_sheet_by_name(self, name: str) -> FastSheet:
        return self.sheets[name]

    def close(self) -> None:
        """Nothing to release (the calamine workbook's interface)."""


def fast_book(
    sheet_names: list[str],
    parts: dict[str, str],
    wanted: Sequence[str],
    member: Callable[[str], bytes | None],
    shared: str | None,
    styles: str | None,
) -> FastBook | None:
    """The `wanted` sheets (those present) read here, or None when one is not plain.

    `parts` maps sheet name -> part name; `member` gives an inflated part (None when it
    is missing); `shared` and `styles` are the parts of the shared strings and styles."""
    try:
        plain = plain_styles(member(styles) if styles else None)
        if plain is None:
            return None
        strings: list[str] | None = None
        book = FastBook(sheet_names)
        for name in wanted:
            if name not in sheet_names:
                continue
            data = member(parts[name]) if name in parts else None
            if data is None:
                return None
            if strings is None:
                strings = shared_strings(member(shared) if shared else None)
            book.sheets[name] = read_sheet(data, strings, plain)
        return book
    except (NotPlain, ValueError, KeyError):
        return None
