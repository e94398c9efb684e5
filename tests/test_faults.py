"""Faults of the filesystem and of the data never end in a traceback and lose nothing.

A full disk is made real with ``RLIMIT_FSIZE`` in a subprocess (SIGXFSZ ignored, so the
write fails with EFBIG as it would with ENOSPC): the command says one Italian line and
exits with 2, and a rerun without the limit completes the work. Symlinks in an import
folder are never followed, a name that is not UTF-8 does not stop the others, temp files
of interrupted writes are removed at the next write, and a NaN that reached the ledger
becomes «valore non valido» in the master and the document, never an exception.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import resource
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from piano_abitativo.archive import store as archive
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.consolidate import Consolidation, plan_keys
from piano_abitativo.consolidation.context import consolidate_raccolta
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.document.docx import build_document
from piano_abitativo.document.measure import NOT_FINITE as DOC_NOT_FINITE
from piano_abitativo.master.model import SHEET_ANOMALIE, master_path
from piano_abitativo.master.review import review_rows
from piano_abitativo.master.writer import NOT_FINITE, write_master

from .mailraccolta import make_raccolta, workbook_of

pytestmark = pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")

_MAIN = "import sys\nfrom piano_abitativo.cli.commands import main\nsys.exit(main(sys.argv[1:]))"


def _run(args: list[str], limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def restrict() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        preexec_fn=restrict,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "250"},
    )


def _one_italian_line(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, (p.stdout, p.stderr)
    errors = [line for line in p.stderr.splitlines() if line.startswith("Errore")]
    assert len(errors) == 1, p.stderr
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
    assert "Errore imprevisto" not in p.stderr, p.stderr
    return errors[0]


def _receipts(r: rc.Raccolta) -> list[str]:
    return sorted(
        x["nome"] for x in archive.read_ledger(r.path).records if x.get("tipo") == "ricezione"
    )


@pytest.fixture
def racc(tmp_path: Path) -> rc.Raccolta:
    return make_raccolta(tmp_path / "r")


@pytest.fixture
def arrivi(racc: rc.Raccolta, tmp_path: Path) -> Path:
    folder = tmp_path / "arrivi"
    folder.mkdir()
    for codice in ("019035", "019002", "019010"):
        (folder / f"{codice}.xlsx").write_bytes(workbook_of(racc, codice))
    return folder


def test_a_full_disk_when_archiving_says_so_in_italian_and_a_rerun_imports_everything(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    line = _one_italian_line(_run(["importa", str(racc.path), "--da", str(arrivi)], 1000))
    assert "spazio" in line and "ripetere" in line
    assert _run(["importa", str(racc.path), "--da", str(arrivi)]).returncode in (0, 1)
    assert _receipts(racc) == ["019002.xlsx", "019010.xlsx", "019035.xlsx"]


def test_a_full_disk_at_the_ledger_append_loses_nothing_and_quarantines_nothing(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    """The ledger is filled up to a little less than the limit: the opening of the reading
    fits, the receipt does not. The reading is taken back (no false «lettura non
    riuscita»), and the rerun records every file exactly once."""
    limit = 200_000  # the archived files (~30 KB each) fit
    (racc.path / "archivio").mkdir(exist_ok=True)
    archive.append_records(racc.path, [{"tipo": "prova", "testo": "x" * (limit - 700)}])
    _one_italian_line(_run(["importa", str(racc.path), "--da", str(arrivi)], limit))
    ledger = archive.read_ledger(racc.path)
    assert not ledger.damage and not [x for x in ledger.records if x["tipo"] != "prova"]
    assert _run(["importa", str(racc.path), "--da", str(arrivi)]).returncode in (0, 1)
    after = archive.read_ledger(racc.path).records
    assert _receipts(racc) == ["019002.xlsx", "019010.xlsx", "019035.xlsx"]
    assert not [x for x in after if x["tipo"] == "lettura_non_riuscita"]


def test_a_full_disk_when_writing_the_master_or_the_document_is_one_italian_line(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    assert main(["importa", str(racc.path), "--da", str(arrivi)]) in (0, 1)
    master = master_path(racc.path, racc.anno, ".xlsm")
    for limit in (1000, 60_000):
        line = _one_italian_line(_run(["consolida", str(racc.path)], limit))
        assert "Il file precedente non è stato modificato" in line
        assert not master.exists()
        assert not list(racc.path.glob(".*.tmp"))
    line = _one_italian_line(_run(["documento", str(racc.path), "--senza-pdf"], 20_000))
    assert "spazio" in line
    assert _run(["consolida", str(racc.path)]).returncode in (0, 1)
    openpyxl.load_workbook(master, read_only=True).close()
    assert _run(["documento", str(racc.path), "--senza-pdf"]).returncode in (0, 1)


def test_a_raccolta_that_cannot_be_written_is_one_italian_line(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    """Tests run as root here, and root ignores permissions: a file where the archive
    folder is expected makes every write fail as a read-only folder would."""
    if (racc.path / "archivio").is_dir():
        (racc.path / "archivio").rmdir()
    (racc.path / "archivio").write_text("non una cartella", encoding="utf-8")
    line = _one_italian_line(_run(["importa", str(racc.path), "--da", str(arrivi)]))
    assert "archivio" in line
    (racc.path / "documento").write_text("non una cartella", encoding="utf-8")
    _one_italian_line(_run(["documento", str(racc.path), "--senza-pdf"]))
    (racc.path / "modelli").write_text("non una cartella", encoding="utf-8")
    _one_italian_line(_run(["modelli", str(racc.path)]))
    _one_italian_line(_run(["crea", str(racc.path / "modelli" / "nuova"), "--anno", "2026"]))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores the permissions of a folder")
def test_a_read_only_raccolta_is_one_italian_line(racc: rc.Raccolta, arrivi: Path) -> None:
    os.chmod(racc.path, 0o555)  # noqa: S103 - read-only on purpose
    try:
        _one_italian_line(_run(["consolida", str(racc.path)]))
    finally:
        os.chmod(racc.path, 0o755)  # noqa: S103 - as it was


def test_a_symlink_in_an_import_folder_is_skipped_with_a_note_never_followed(
    racc: rc.Raccolta, arrivi: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "segreto.txt"
    secret.write_text("root:x:0:0", encoding="utf-8")
    (arrivi / "risposta.xlsx").symlink_to(secret)
    (arrivi / "copia.xlsx").symlink_to(arrivi / "019035.xlsx")
    res = _run(["importa", str(racc.path), "--da", str(arrivi)])
    assert res.returncode in (0, 1), res.stderr
    assert res.stdout.count("collegamento simbolico, non seguito") == 2
    assert _receipts(racc) == ["019002.xlsx", "019010.xlsx", "019035.xlsx"]
    archived = [p.read_bytes() for p in (racc.path / "archivio").rglob("*") if p.is_file()]
    assert all(b"root:x:0:0" not in data for data in archived)


def test_a_file_name_that_is_not_utf8_is_imported_and_the_others_go_on(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    odd = os.path.join(os.fsencode(arrivi), b"risposta \xff\xfe.xlsx")
    with open(odd, "wb") as fh:
        fh.write(workbook_of(racc, "019005"))
    for _ in range(2):  # and the next run too
        res = _run(["importa", str(racc.path), "--da", str(arrivi)])
        assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stderr
    names = _receipts(racc)
    assert names == ["019002.xlsx", "019010.xlsx", "019035.xlsx", "risposta \ufffd\ufffd.xlsx"]
    (racc.path / "archivio" / "registro.jsonl").read_bytes().decode("utf-8")  # valid UTF-8


def test_leftover_temp_files_are_removed_at_the_next_write_of_their_file(
    racc: rc.Raccolta, arrivi: Path
) -> None:
    master = master_path(racc.path, racc.anno, ".xlsm")
    left = [racc.path / f".{master.name}.k{i}.tmp" for i in range(3)]
    other = racc.path / ".altro.xlsx.k0.tmp"
    for p in [*left, other]:
        p.write_bytes(b"PK interrotto")
    # a temp file another process is writing right now stays
    held = racc.path / f".{master.name}.vivo.tmp"
    held.write_bytes(b"")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "print('ok', flush=True)\n"
            "time.sleep(60)",
            str(held),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        assert main(["consolida", str(racc.path)]) in (0, 1)
        assert not any(p.exists() for p in left)
        assert other.exists() and held.exists()
    finally:
        holder.kill()
        holder.wait()
    atomic_write_bytes(master, master.read_bytes())
    assert not held.exists()


def _poisoned(r: rc.Raccolta, value: float) -> Consolidation:
    """The consolidation with a number that is not finite in Crema's plan values (as a
    reader that let one through would give)."""
    cons = consolidate_raccolta(r)
    keys = plan_keys(cons.schema)
    at = keys.index("g_soglia_indigenti")
    for i, s in enumerate(cons.enti):
        if s.ente.codice == "019035":
            assert s.plan is not None
            plan = (*s.plan[:at], value, *s.plan[at + 1 :])
            cons.enti[i] = dataclasses.replace(s, plan=plan)
    return cons


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_number_that_is_not_finite_is_refused_by_the_writers_not_an_exception(
    racc: rc.Raccolta, arrivi: Path, tmp_path: Path, value: float
) -> None:
    assert main(["importa", str(racc.path), "--da", str(arrivi)]) in (0, 1)
    cons = _poisoned(racc, value)
    rows = [p for _, _, p in review_rows(cons) if p.code == "D09"]
    assert len(rows) == 1 and "g_soglia_indigenti" in rows[0].message
    out = write_master(cons, tmp_path / "master.xlsx")
    wb = openpyxl.load_workbook(out, read_only=True)
    try:
        texts = {
            str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row
        }
        anomalie = [str(c) for row in wb[SHEET_ANOMALIE].iter_rows(values_only=True) for c in row]
    finally:
        wb.close()
    assert NOT_FINITE in texts and not texts & {"nan", "inf", "-inf"}
    assert any("D09" in c or "non è un numero finito" in c for c in anomalie)
    with zipfile.ZipFile(io.BytesIO(build_document(racc, cons))) as zf:
        body = zf.read("word/document.xml").decode("utf-8")
    assert DOC_NOT_FINITE in body
