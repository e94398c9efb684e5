"""Crash quarantine: a file or message whose reading kills the process never blocks the others.

The process really dies (``os._exit`` from inside the reading, as a parser that aborts
would, through the test hook ``PIANO_ABITATIVO_TEST_CRASH``, a no-op without it; and a far
cell that makes calamine abort). The next run reads the file first in a child process: if
that dies too, the file is marked «lettura non riuscita» once, never read again (folder
import, orphan recovery, IMAP intake) and the rest is imported; ``stato`` and the master's
Anomalie list it. If the child survives (the first run was only interrupted), nothing is
lost: the file is imported.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import resource
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest

from piano_abitativo.archive import quarantine
from piano_abitativo.archive import store as archive
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.context import consolidate_raccolta
from piano_abitativo.core import raccolta as rc
from piano_abitativo.mail import imap, settings
from piano_abitativo.master.model import SHEET_ANOMALIE, master_path
from piano_abitativo.master.review import review_rows

from . import mailfactory as mf
from .mailraccolta import make_raccolta, workbook_of

if TYPE_CHECKING:
    from .mailservers import Mailbox

pytest_plugins = ("tests.mailservers",)

_MAIN = "import sys\nfrom piano_abitativo.cli.commands import main\nsys.exit(main(sys.argv[1:]))"
T0 = dt.datetime(2025, 12, 1, 9, 0, tzinfo=archive.TZ)


def _run(args: list[str], crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(quarantine.CRASH_ENV, None)
    env["COLUMNS"] = "250"
    if crash is not None:
        env[quarantine.CRASH_ENV] = crash
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args], env=env, capture_output=True, text=True, timeout=120
    )


def _of(r: rc.Raccolta, tipo: str) -> list[dict[str, Any]]:
    records = archive.read_ledger(r.path, letture=True).records
    return [x for x in records if x.get("tipo") == tipo]


def _stato_json(r: rc.Raccolta, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["stato", str(r.path), "--json"]) in (0, 1)
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


@pytest.fixture
def racc(tmp_path: Path) -> rc.Raccolta:
    return make_raccolta(tmp_path / "r")


@pytest.fixture
def arrivi(racc: rc.Raccolta, tmp_path: Path) -> Path:
    folder = tmp_path / "arrivi"
    folder.mkdir()
    for name, codice in (("a_crema.xlsx", "019035"), ("b_bomba.xlsx", "019002")):
        (folder / name).write_bytes(workbook_of(racc, codice))
    (folder / "c_camisano.xlsx").write_bytes(workbook_of(racc, "019010"))
    return folder


def test_a_file_that_kills_the_reader_is_marked_once_never_read_again_and_the_rest_imported(
    racc: rc.Raccolta, arrivi: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(["importa", str(racc.path), "--da", str(arrivi)], crash="b_bomba.xlsx")
    assert first.returncode == 134, first.stderr  # the process died in the middle
    assert [x["nome"] for x in _of(racc, "ricezione")] == ["a_crema.xlsx"]
    assert [x["nome"] for x in _of(racc, "lettura")][-1] == "b_bomba.xlsx"

    # the content is the cause: the second look (in a child process) dies as well
    second = _run(["importa", str(racc.path), "--da", str(arrivi)], crash="b_bomba.xlsx")
    assert second.returncode in (0, 1), second.stderr
    assert "Traceback" not in second.stderr
    assert "lettura non riuscita" in second.stdout
    marked = _of(racc, "lettura_non_riuscita")
    assert [x["nome"] for x in marked] == ["b_bomba.xlsx"]
    # the others are imported; the archived copy of the bomb is not recovered as an orphan
    assert sorted(x["nome"] for x in _of(racc, "ricezione")) == ["a_crema.xlsx", "c_camisano.xlsx"]

    third = _run(["importa", str(racc.path), "--da", str(arrivi)])
    assert third.returncode in (0, 1), third.stderr
    assert len(_of(racc, "lettura_non_riuscita")) == 1  # marked once
    assert len(_of(racc, "ricezione")) == 2

    [shown] = _stato_json(racc, capsys)["letture_non_riuscite"]
    assert shown["file"] == "b_bomba.xlsx" and shown["sha256"] == marked[0]["sha256"]
    assert "si è interrotto leggendo questo file" in shown["motivo"]
    assert main(["stato", str(racc.path)]) in (0, 1)
    assert "File non letto: b_bomba.xlsx" in capsys.readouterr().out
    rows = [p for _, _, p in review_rows(consolidate_raccolta(racc)) if p.code == "D08"]
    assert len(rows) == 1 and "b_bomba.xlsx" in rows[0].message
    assert main(["consolida", str(racc.path)]) in (0, 1)
    assert "File non letto: b_bomba.xlsx" in capsys.readouterr().out
    wb = openpyxl.load_workbook(master_path(racc.path, racc.anno, ".xlsm"), read_only=True)
    try:
        cells = [str(c) for row in wb[SHEET_ANOMALIE].iter_rows(values_only=True) for c in row]
    finally:
        wb.close()
    assert any("b_bomba.xlsx" in c and "lettura non riuscita" in c for c in cells)


def test_a_file_that_kills_the_orphan_recovery_is_marked_and_never_read_in_process(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    """The file is archived before it is read: the run after the crash finds it as an
    orphan (archived, not recorded); the child that reads it first dies, so it is marked
    and the run goes on."""
    bomb = arrivi / "b_bomba.xlsx"
    assert _run(["importa", str(racc.path), "--da", str(bomb)], crash="b_bomba.xlsx").returncode
    blob = next((racc.path / "archivio" / "file").glob("??/*.xlsx"))
    # the recovery reads the orphan under its archived name: make that one die as well
    for crash in (blob.name, None):
        done = _run(["importa", str(racc.path), "--da", str(arrivi / "a_crema.xlsx")], crash)
        assert done.returncode in (0, 1), done.stderr
    assert [x["nome"] for x in _of(racc, "lettura_non_riuscita")] == ["b_bomba.xlsx"]
    assert [x["nome"] for x in _of(racc, "ricezione")] == ["a_crema.xlsx"]


def test_a_message_file_that_kills_the_reader_is_skipped_and_never_recovered(
    racc: rc.Raccolta, tmp_path: Path
) -> None:
    folder = tmp_path / "posta"
    folder.mkdir()
    for name, codice in (("1.eml", "019035"), ("2.eml", "019010")):
        raw = mf.make_plain(
            sender="protocollo@pec.comune.crema.example",
            attachments=[(f"{codice}.xlsx", workbook_of(racc, codice))],
            date=T0,
            subject="Piano abitativo 2026",
            message_id=f"<{codice}@mittente.example>",
        )
        (folder / name).write_bytes(raw)
    assert _run(["importa", str(racc.path), "--da", str(folder)], crash="1.eml").returncode == 134
    for crash in ("1.eml", None):
        done = _run(["importa", str(racc.path), "--da", str(folder)], crash)
        assert done.returncode in (0, 1), done.stderr
    assert [x["nome"] for x in _of(racc, "lettura_non_riuscita")] == ["1.eml"]
    assert [x["nome"] for x in _of(racc, "ricezione")] == ["019010.xlsx"]
    assert len(_of(racc, "messaggio")) == 1  # the archived original is never re-read


def test_imap_intake_goes_on_past_a_message_that_killed_it(
    tmp_path: Path, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.PASSWORD_ENV, "segreta-di-prova")
    r = make_raccolta(tmp_path, **mailbox.server.settings(mailbox))
    for i, codice in enumerate(("019035", "019010", "019005")):
        mailbox.append(
            mf.make_plain(
                sender="protocollo@pec.comune.crema.example",
                attachments=[(f"{codice}.xlsx", workbook_of(r, codice))],
                date=T0,
                subject="Piano abitativo 2026",
                message_id=f"<m{i}@mittente.example>",
            ),
            when=T0 + dt.timedelta(minutes=i),
        )
    assert _run(["importa", str(r.path), "--imap"], crash="UID 2").returncode == 134
    assert [x["nome"] for x in _of(r, "ricezione")] == ["019035.xlsx"]
    second = _run(["importa", str(r.path), "--imap"], crash="UID 2")
    assert second.returncode in (0, 1), second.stderr
    assert "lettura non riuscita" in second.stdout
    assert sorted(x["nome"] for x in _of(r, "ricezione")) == ["019005.xlsx", "019035.xlsx"]
    again = imap.import_imap(r)
    assert [m.receipts for m in again.messages] == [] and len(again.note) == 1
    assert len(_of(r, "lettura_non_riuscita")) == 1


def test_a_python_error_while_reading_is_no_crash_and_the_file_is_read_again(
    racc: rc.Raccolta,
) -> None:
    """Only a dead process leaves a reading open: an exception closes it."""
    sha = "ab" * 32
    with archive.locked(racc.path):
        with pytest.raises(ValueError), quarantine.reading(racc.path, sha, "x.xlsx", "qui"):
            raise ValueError("un errore qualsiasi")
        records = archive.read_ledger(racc.path, letture=True).records
        assert quarantine.triage(records) == ({}, {})
        assert sha not in quarantine.known_shas(records)
    assert quarantine.failed_in_ledger(racc.path) == []


def test_a_run_that_was_only_interrupted_while_reading_loses_nothing(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    """Killed in the middle of a good file (the PC switched off): the child process reads
    it without dying, so the next run imports it and marks nothing."""
    assert _run(["importa", str(racc.path), "--da", str(arrivi)], "b_bomba.xlsx").returncode
    done = _run(["importa", str(racc.path), "--da", str(arrivi)])
    assert done.returncode in (0, 1), done.stderr
    assert not _of(racc, "lettura_non_riuscita")
    assert sorted(x["nome"] for x in _of(racc, "ricezione")) == [
        "a_crema.xlsx",
        "b_bomba.xlsx",
        "c_camisano.xlsx",
    ]


def test_the_crash_hook_does_nothing_without_its_variable(racc: rc.Raccolta, arrivi: Path) -> None:
    done = _run(["importa", str(racc.path), "--da", str(arrivi)])
    assert done.returncode in (0, 1), done.stderr
    assert len(_of(racc, "ricezione")) == 3 and not _of(racc, "lettura_non_riuscita")


def _far_cell(data: bytes) -> bytes:
    """A valid return with one more cell at XFD1048576 on every sheet: calamine allocates
    the dense grid (~512 GB) and the process aborts (issue 13, case 1)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            body = zin.read(item.filename)
            if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", item.filename):
                far = b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
                body = body.replace(b"</sheetData>", far)
            zout.writestr(item, body, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


def test_a_file_that_really_aborts_the_parser_blocks_nothing(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    """No test hook: a far cell that makes the parser abort (SIGABRT) under a 2 GB address
    space. Once the reader refuses such a file before parsing (bounded reading), the same
    file is simply reported: either way the others are imported and no run is blocked."""
    bomb = arrivi / "b_bomba.xlsx"
    bomb.write_bytes(_far_cell(bomb.read_bytes()))
    args = [sys.executable, "-c", _MAIN, "importa", str(racc.path), "--da", str(arrivi)]
    env = {**os.environ, "COLUMNS": "250"}
    env.pop(quarantine.CRASH_ENV, None)
    runs = [
        subprocess.run(
            args, env=env, preexec_fn=_limited, capture_output=True, text=True, timeout=60
        )
        for _ in range(3)
    ]
    assert all(p.returncode in (0, 1) for p in runs[1:]), runs[1].stderr
    assert sorted(x["nome"] for x in _of(racc, "ricezione") if x["report"]["ente"]) in (
        ["a_crema.xlsx", "c_camisano.xlsx"],
        ["a_crema.xlsx", "b_bomba.xlsx", "c_camisano.xlsx"],  # recorded as not valid
    )
    if runs[0].returncode < 0 or runs[0].returncode == 134:  # the parser aborted
        assert [x["nome"] for x in _of(racc, "lettura_non_riuscita")] == ["b_bomba.xlsx"]
        assert "lettura non riuscita" in runs[1].stdout
    else:  # refused before parsing
        assert runs[0].returncode in (0, 1), runs[0].stderr
        assert not _of(racc, "lettura_non_riuscita")
