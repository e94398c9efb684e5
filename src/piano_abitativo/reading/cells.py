"""What a reading is made of: where each field was read, and the outcome of one file."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from piano_abitativo.core.problems import Problem, problem


@dataclass(frozen=True)
class RawCell:
    """Where a field was read and what was in the cell."""

    field: str
    sheet: str
    cell: str
    raw: Any


@dataclass
class Reading:
    """The outcome of reading one file: typed values, their cells and the problems."""

    file: str
    format: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    cells: dict[str, RawCell] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    readable: bool = False  # the fields could be located and read

    def cell_of(self, field_id: str) -> str | None:
        c = self.cells.get(field_id)
        return c.cell if c else None

    def add(self, code: str, message: str | None = None, **kw: Any) -> None:
        self.problems.append(problem(code, self.file, message, **kw))


def col_letter(col: int) -> str:
    s = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        s = chr(65 + rem) + s
    return s


@functools.lru_cache(maxsize=8192)
def a1(row: int, col: int) -> str:
    return f"{col_letter(col)}{row + 1}"


_A1 = re.compile(r"^\$?([A-Z]{1,3})\$?(\d+)$")


@functools.lru_cache(maxsize=4096)
def parse_a1(ref: str) -> tuple[int, int] | None:
    m = _A1.match(ref.strip().upper())
    if not m:
        return None
    col = 0
    for ch in m.group(1):
        col = col * 26 + (ord(ch) - 64)
    return int(m.group(2)) - 1, col - 1
