"""Each command imports only what it uses: ``--help``, ``valida`` and ``stato`` run in a
fresh interpreter do not load the mail stack, the document, the master, the writers of
workbooks or the libraries behind them (the start-up a clerk waits for at every command);
importing the buttons of the master (``piano_abitativo.excel``) loads no button's work.

Each check runs ``main([...])`` in a new ``python`` process and compares its
``sys.modules`` with a list of modules the command must not import: a module-level import
of one of them anywhere on the command's path makes the test fail, naming the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TEMPLATE = ROOT / "templates" / "modello_piano_abitativo.xlsx"

#: runs the command line with argv[1] (JSON) and writes the names in sys.modules, as
#: JSON, to the file argv[2]
_PROBE = """
import json, sys
from piano_abitativo.cli import main
code = main(json.loads(sys.argv[1]))
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""

#: what no command that only reads needs: the mail stack and PEC signatures, the
#: document, the master and the template writers, Excel's bridge, the data frames
NOT_FOR_READING = (
    "asn1crypto",
    "cryptography",
    "docx",
    "email",
    "imaplib",
    "keyring",
    "lxml",
    "numpy",
    "openpyxl",
    "pandas",
    "piano_abitativo.document",
    "piano_abitativo.excel",
    "piano_abitativo.mail",
    "piano_abitativo.master",
    "piano_abitativo.simulation",
    "piano_abitativo.template",
    "smtplib",
    "xlsxwriter",
    "xlwings",
)

#: what validating a file does not need beyond that: the archive (its store, decisions,
#: quarantine: nothing is archived), the consolidation, rich's progress bars, the process
#: pool of a large batch, the socket and time zones the archive's records use, uuid (a
#: new raccolta's id) and python-calamine (a file the fast path reads, as the template)
NOT_FOR_VALIDA = (
    *NOT_FOR_READING,
    "concurrent.futures",
    "multiprocessing",
    "piano_abitativo.archive",
    "piano_abitativo.consolidation",
    "python_calamine",
    "rich.progress",
    "socket",
    "uuid",
    "zoneinfo",
)

#: ``--help`` is answered by argparse alone: no command's module, no reader, no rich
NOT_FOR_HELP = (
    *NOT_FOR_VALIDA,
    "piano_abitativo.app",
    "piano_abitativo.archive",
    "piano_abitativo.core.rules",
    "piano_abitativo.reading",
    "piano_abitativo.validation",
    "python_calamine",
    "rich",
)


def imported_by(argv: Sequence[str], tmp_path: Path) -> tuple[int, list[str]]:
    """The exit code of ``main(argv)`` run in a fresh interpreter, and its sys.modules."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIANO_ABITATIVO_")}
    env.update(PYTHONPATH=str(SRC), HOME=str(tmp_path), PYTHONIOENCODING="utf-8")
    subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(argv)), str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=True,
    )
    data = json.loads(out.read_text(encoding="utf-8"))
    return int(data["code"]), list(data["modules"])


def forbidden(modules: Sequence[str], names: Sequence[str]) -> list[str]:
    """The `modules` that are one of `names` or inside one of them (a package)."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_help_imports_no_command_module(tmp_path: Path) -> None:
    """``piano-abitativo --help`` exits 0 having imported argparse and the parser only."""
    code, modules = imported_by(["--help"], tmp_path)
    assert code == 0
    assert forbidden(modules, NOT_FOR_HELP) == []


@pytest.mark.parametrize(
    ("json_out", "not_needed"),
    [(False, NOT_FOR_VALIDA), (True, (*NOT_FOR_VALIDA, "rich"))],
    ids=["tabella", "json"],
)
def test_valida_of_one_file_imports_only_the_reader_and_the_rules(
    tmp_path: Path, json_out: bool, not_needed: tuple[str, ...]
) -> None:
    """``valida`` of the blank template (outside any raccolta, so it has errors: exit 1)
    imports neither the mail stack, the writers, the consolidation nor the archive's
    decisions; as JSON, not even rich (nothing is drawn)."""
    argv = ["valida", *(["--json"] if json_out else []), str(TEMPLATE)]
    code, modules = imported_by(argv, tmp_path)
    assert code == 1
    assert "piano_abitativo.validation.validate" in modules  # it did validate
    assert forbidden(modules, not_needed) == []


def test_valida_against_a_raccolta_not_linked_imports_neither_archive_nor_consolidation(
    tmp_path: Path,
) -> None:
    """With ``--raccolta`` (not linked to last year's) the context is the raccolta's year,
    id, registry and rules: last year's consolidation, and so the archive, is loaded only
    for a linked raccolta (R13–R15)."""
    racc = tmp_path / "raccolta"
    code, _ = imported_by(["crea", str(racc), "--anno", "2026"], tmp_path)
    assert code == 0
    argv = ["valida", "--json", "--raccolta", str(racc), str(TEMPLATE)]
    code, modules = imported_by(argv, tmp_path)
    assert code == 1
    assert "piano_abitativo.consolidation.checking" in modules  # the raccolta's context
    allowed = {"piano_abitativo.consolidation", "piano_abitativo.consolidation.checking"}
    assert [m for m in forbidden(modules, (*NOT_FOR_VALIDA, "rich")) if m not in allowed] == []


def test_stato_imports_no_pec_verification_nor_document(tmp_path: Path) -> None:
    """``stato`` of a new raccolta reads the ledger and the send log, but imports neither
    the PEC verification (cryptography, asn1crypto), the mailbox reader, the document nor
    the master."""
    racc = tmp_path / "raccolta"
    code, _ = imported_by(["crea", str(racc), "--anno", "2026"], tmp_path)
    assert code == 0
    code, modules = imported_by(["stato", str(racc)], tmp_path)
    assert code == 0
    not_for_stato = (
        "asn1crypto",
        "cryptography",
        "docx",
        "lxml",
        "numpy",
        "openpyxl",
        "pandas",
        "piano_abitativo.document",
        "piano_abitativo.mail.imap",
        "piano_abitativo.mail.ingest",
        "piano_abitativo.mail.p7m",
        "piano_abitativo.mail.pec_signature",
        "piano_abitativo.master",
        "xlwings",
    )
    assert forbidden(modules, not_for_stato) == []


def test_importing_the_buttons_loads_neither_xlwings_nor_what_a_click_needs(
    tmp_path: Path,
) -> None:
    """``import piano_abitativo.excel`` (what the UDF server runs before the first click)
    imports neither xlwings nor the application layer, the consolidation, the master or the
    mail: each button imports what it needs on its first click."""
    out = tmp_path / "modules.json"
    code = (
        "import json, sys\nimport piano_abitativo.excel\n"
        f"open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    modules = json.loads(out.read_text(encoding="utf-8"))
    assert "piano_abitativo.excel.buttons" in modules
    not_yet = (
        *(m for m in NOT_FOR_READING if m != "piano_abitativo.excel"),
        "piano_abitativo.app",
        "piano_abitativo.archive",
        "piano_abitativo.consolidation",
        "piano_abitativo.validation",
        "rich",
    )
    assert forbidden(modules, not_yet) == []


def test_layout_addresses_are_xlsxwriters() -> None:
    """`core.layout.xl_rowcol_to_cell` (which spares the reader XlsxWriter) gives the
    same A1 addresses as XlsxWriter's, relative and absolute, up to column XFD."""
    from xlsxwriter.utility import xl_rowcol_to_cell as xlsxwriters

    from piano_abitativo.core.layout import xl_rowcol_to_cell

    for row in (0, 1, 9, 99, 1_048_575):
        for col in (*range(0, 800), 16_383):
            for row_abs in (False, True):
                for col_abs in (False, True):
                    assert xl_rowcol_to_cell(row, col, row_abs, col_abs) == xlsxwriters(
                        row, col, row_abs, col_abs
                    )
