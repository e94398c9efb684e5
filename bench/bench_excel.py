"""Benchmark: the *Consolida* button of the master workbook, on xlwings' remote engine.

The Ambito Cremasco (49 enti) with the 26 returns of 2025 imported. The payload is what
Excel's RunRemotePython would send for the master workbook (used-range values of every
sheet from A1, tables, names). One round trip = parse the request JSON, `xw.Book(json=...)`,
`excel.consolida()` (consolidation of the archive, layout, writing back), serialise the
actions to JSON. Measured for two workbooks: one built before any return arrived (every
table grows, every total name moves, the Anomalie shrink) and one already up to date.

Baseline, in the same process: the same consolidation written back cell by cell
(``sheet.range(cell).value = v``, one action per cell) instead of one grid per sheet.

The remote engine is part of xlwings PRO: this benchmark sets its noncommercial licence key
for itself only; the product never does (on Windows the buttons use classic xlwings).

Run: ``python bench/bench_excel.py [--repeat 5]``.
"""

from __future__ import annotations

import os

# before xlwings is imported: it registers the remote engine at import time
os.environ["XLWINGS_LICENSE_KEY"] = "noncommercial"

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import xlwings as xw

from piano_abitativo.app import commands as actions
from piano_abitativo.consolidation import consolidate
from piano_abitativo.core import raccolta as rc
from piano_abitativo.excel import buttons as excel
from piano_abitativo.master.sheets import build_master, master_layout
from piano_abitativo.simulation import demo

# the payload builder is shared with the tests (run from a checkout of the repository)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.xlwings_payload import calling_book, payload_of

from piano_abitativo.app.commands import crea

TARGET_S = 2.0


def build(folder: Path) -> rc.Raccolta:
    """The Cremasco 2025 raccolta with its 26 returns imported."""
    r = crea(folder / "raccolta", anno=2025, scadenza=dt.date(2024, 12, 18))
    actions.importa(r, demo.write_returns(r, folder / "ritorni"))
    return r


def payload_text(data: bytes, name: str) -> str:
    """The request body RunRemotePython would send for the workbook `data`."""
    return json.dumps(payload_of(data, name))


def round_trip(body: str, write: Callable[[], None]) -> tuple[float, int, int]:
    """Seconds, actions and response bytes of one button click served from `body`."""
    start = time.perf_counter()
    with calling_book(json.loads(body)) as book:
        write()
    response = json.dumps(book.json(), default=str)
    secs = time.perf_counter() - start
    return secs, len(book.json()["actions"]), len(response)


def cell_by_cell(r: rc.Raccolta) -> Callable[[], None]:
    """The baseline: the same consolidation written back one cell at a time."""

    def write() -> None:
        book = xw.Book.caller()
        layout = master_layout(actions.consolidation(r))
        for sh in layout.sheets:
            ws = book.sheets[sh.name]
            for (row, col), cell in sh.cells.items():
                ws.range((row + 1, col + 1)).value = cell.formula or cell.value
        for name, ref in layout.names.items():
            book.names.add(name, "=" + ref.ref)
        book.app.alert("fatto", title=excel.TITLE)

    return write


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per measure (median)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-excel-"))
    try:
        r = build(root)
        os.environ[excel.ENV_RACCOLTA] = str(r.path)
        full = actions.consolidation(r)
        print(
            f"piano-abitativo bench_excel: Ambito {full.ambito}, {len(full.enti)} enti, "
            f"{len(full.answered)} risposte; Python {platform.python_version()}, "
            f"xlwings {xw.__version__} (motore remote), {os.cpu_count()} CPU"
        )
        name = "Consolidato_piano_abitativo_2025.xlsm"
        empty = consolidate.consolidate(r, [])
        bodies = {
            "cartella costruita prima delle risposte": payload_text(build_master(empty), name),
            "cartella già aggiornata": payload_text(build_master(full), name),
        }
        cells = sum(len(sh.cells) for sh in master_layout(full).sheets)
        print(
            f"{cells} celle in {len(master_layout(full).sheets)} fogli; ripetizioni: "
            f"{args.repeat} (mediana)"
        )
        print(f"{'Consolida, remote engine':<44}{'secondi':>9}{'azioni':>8}{'risposta':>11}")
        medians: dict[str, float] = {}
        for label, body in bodies.items():
            runs = [round_trip(body, excel.consolida) for _ in range(args.repeat)]
            secs = medians[label] = statistics.median(x[0] for x in runs)
            _, n_actions, size = runs[-1]
            print(f"{label:<44}{secs:>9.3f}{n_actions:>8}{size / 1024:>8.0f} KB")
        first = "cartella costruita prima delle risposte"
        base_runs = [round_trip(bodies[first], cell_by_cell(r)) for _ in range(args.repeat)]
        base = statistics.median(x[0] for x in base_runs)
        _, n_actions, size = base_runs[-1]
        print(
            f"{'baseline: cella per cella (stesso libro)':<44}{base:>9.3f}{n_actions:>8}"
            f"{size / 1024:>8.0f} KB"
        )
        worst = max(medians.values())
        verdict = "PASS" if worst <= TARGET_S else "FAIL"
        print(
            f"Consolida: {worst:.3f} s nel caso peggiore (obiettivo ≤ {TARGET_S:.0f} s) {verdict}"
        )
        print(f"rapporto baseline / Consolida (stesso libro): {base / medians[first]:.1f}×")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
