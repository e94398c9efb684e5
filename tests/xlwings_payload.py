"""What Excel's RunRemotePython sends for a workbook, for xlwings' remote engine in the
tests and the benchmark (``xw.Book(json=payload_of(...))``), and the helpers that click a
button of it (`click`, `alerts`, the `_remote_engine` fixture) shared by the test files."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
from collections.abc import Callable, Iterator
from typing import Any

import openpyxl
import pytest
import xlwings as xw
from python_calamine import CalamineWorkbook

Payload = dict[str, Any]
Action = dict[str, Any]
#: the name of the calling workbook when none is given
MASTER_NAME = "Consolidato_piano_abitativo_2025.xlsm"


def json_value(v: Any) -> Any:
    """A cell value as the client sends it: "" when empty, dates as ISO strings."""
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(v, dt.date):
        return v.strftime("%Y-%m-%dT00:00:00.000Z")
    if isinstance(v, dt.time):
        return dt.datetime.combine(dt.date(1899, 12, 30), v).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return v


def payload_of(
    data: bytes, name: str = MASTER_NAME, *, extra_sheets: list[dict[str, Any]] | None = None
) -> Payload:
    """Each sheet's used-range values from A1, its tables and the workbook names of the
    workbook `data`; `extra_sheets` are appended as given."""
    cw = CalamineWorkbook.from_filelike(io.BytesIO(data))
    wb = openpyxl.load_workbook(io.BytesIO(data))
    sheets = []
    for n in cw.sheet_names:
        rows = cw.get_sheet_by_name(n).to_python(skip_empty_area=False)
        tables = [
            {"name": t, "range_address": "$" + ref.replace(":", ":$")}
            for t, ref in wb[n].tables.items()
        ]  # type: ignore[no-untyped-call]
        sheets.append(
            {
                "name": n,
                "values": [[json_value(v) for v in row] for row in rows],
                "tables": tables,
                "pictures": [],
            }
        )
    sheets += extra_sheets or []
    names = []
    for nm, dn in wb.defined_names.items():
        ((sheet, coord),) = list(dn.destinations)
        names.append(
            {
                "name": nm,
                "sheet_index": cw.sheet_names.index(sheet),
                "address": coord.replace("$", ""),
                "book_scope": True,
                "scope_sheet_name": None,
                "scope_sheet_index": None,
            }
        )
    return {
        "client": "VBA",
        "version": xw.__version__,
        "book": {"name": name, "active_sheet_index": 0, "selection": "A1"},
        "names": names,
        "sheets": sheets,
    }


@contextlib.contextmanager
def calling_book(payload: Payload) -> Iterator[xw.Book]:
    """A remote-engine book made from `payload` that ``xw.Book.caller()`` returns inside
    the block, as when a button of that workbook is clicked."""
    book = xw.Book(json=payload)
    book.set_mock_caller()
    try:
        yield book
    finally:
        delattr(xw.Book, "_mock_caller")


def click(entry: Callable[[], None], payload: Payload) -> list[Action]:
    """Call a button's entry point with `payload` as the calling workbook; its actions."""
    with calling_book(copy.deepcopy(payload)) as book:
        entry()
    return list(book.json()["actions"])


def alerts(acts: list[Action]) -> list[str]:
    """The texts of the message boxes among `acts`."""
    return [a["args"][0] for a in acts if a["func"] == "alert"]


@pytest.fixture(scope="module", autouse=True)
def _remote_engine() -> Iterator[None]:
    """The remote engine is part of xlwings PRO: its noncommercial key, in the test modules
    that import this fixture only (registered here when xlwings was imported before the
    key was set)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLWINGS_LICENSE_KEY", "noncommercial")
        added = None
        if "remote" not in [e.name for e in xw.engines]:
            from xlwings.pro import _xlremote

            added = xw.main.Engine(impl=_xlremote.engine)
            xw.engines.add(added)
        yield
        if added is not None:
            xw.engines.engines.remove(added)
            del xw.engines.engines_by_name[added.name]
