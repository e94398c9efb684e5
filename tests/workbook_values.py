"""Reading saved workbooks in tests (a plain helper module, not a test file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl


def named_values(path: Path) -> dict[str, Any]:
    """The cached value of each workbook-level defined name of one cell (the totals) of
    the workbook at `path`; names of a block of cells (the charts' series) are left out."""
    wb = openpyxl.load_workbook(path, data_only=True)
    out = {}
    for name, dn in wb.defined_names.items():
        ((sheet, coord),) = list(dn.destinations)
        if ":" in coord:
            continue
        out[name] = wb[sheet][coord.replace("$", "")].value
    return out
