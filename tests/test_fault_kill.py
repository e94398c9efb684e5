"""Crash safety: `importa` and `consolida` killed with SIGKILL at random points, many times.

After every kill: each archived file still matches its sha256, every ledger record is whole
and points to an intact file, and the master workbook opens (the old one or the new one).
A final run completes and has recorded every file exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from piano_abitativo.app.commands import crea
from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.consolidate import consolidate
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.master.sheets import master_path
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateFactory, context_for

from .sample_returns import CREMA

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

BATCHES = 16
PER_BATCH = 30
KILLS = 24
T0 = dt.datetime(2025, 12, 1, 9, 0, tzinfo=archive.TZ)

_RUN = """
import sys
from piano_abitativo.cli.commands import main
imported = main(["importa", sys.argv[1], "--da", *sys.argv[2:]])
consolidated = main(["consolida", sys.argv[1]])
sys.exit(10 * imported + consolidated)
"""


def _run(
    raccolta: Path, sources: list[Path], *, stderr: int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _RUN, str(raccolta), *map(str, sources)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def _check_invariants(r: rc.Raccolta) -> None:
    files = r.path / "archivio" / "file"
    for blob in files.glob("??/*"):
        if blob.name.startswith("."):
            continue  # a temp file of the killed run: not part of the archive
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name.split(".")[0]
    for rec in archive.read_ledger(r.path).records:
        data = (r.path / rec["blob"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rec["sha256"]
    master = master_path(r.path, r.anno, ".xlsm")
    with zipfile.ZipFile(master) as zf:
        assert zf.testzip() is None
    openpyxl.load_workbook(master, read_only=True).close()


def test_random_kills_never_lose_or_corrupt_anything(tmp_path: Path) -> None:
    """24 SIGKILLs at random moments of importa+consolida: nothing lost, a rerun completes."""
    r = crea(tmp_path / "raccolta", anno=2026)
    factory = TemplateFactory(context_for(r))
    enti = list(r.registry)
    blanks = {e.codice: factory.render(e) for e in enti}
    batches: list[list[Path]] = []
    latest: dict[str, int] = {}
    for b in range(BATCHES):
        folder = tmp_path / f"lotto_{b:02d}"
        folder.mkdir()
        batch = []
        for k in range(PER_BATCH):
            ente = enti[(b * 7 + k) % len(enti)]  # distinct within a batch
            sap = 100 * b + k
            path = folder / f"{ente.codice}.xlsx"
            path.write_bytes(fill_template(blanks[ente.codice], CREMA | {"a_sap": sap}))
            when = (T0 + dt.timedelta(hours=b, minutes=k)).timestamp()
            os.utime(path, (when, when))
            batch.append(path)
            latest[ente.codice] = sap
        batches.append(batch)
    started = time.monotonic()
    done = _run(r.path, batches[0])
    assert done.wait(60) == 0  # 1 is a traceback, else 10 × importa's code + consolida's
    # kill anywhere within the time a whole run takes on this machine
    span = time.monotonic() - started
    rng = random.Random(20251201)  # reproducible timings
    kills = 0
    for i in range(KILLS):
        proc = _run(r.path, batches[1 + i % (BATCHES - 1)])
        time.sleep(rng.uniform(0.02, span))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(30)
        _check_invariants(r)
    assert kills >= KILLS // 2, "most runs ended before their kill"
    final = _run(r.path, [p for batch in batches for p in batch], stderr=subprocess.PIPE)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode("utf-8", "replace")
    _check_invariants(r)
    shas = [rec["sha256"] for rec in archive.read_ledger(r.path).records]
    expected = {hashlib.sha256(p.read_bytes()).hexdigest() for batch in batches for p in batch}
    assert sorted(shas) == sorted(expected)
    cons = consolidate(r, receipts(r))
    assert cons.totals["a_sap"] == sum(latest.values())
    wb = openpyxl.load_workbook(master_path(r.path, r.anno, ".xlsm"), read_only=True)
    wb.close()


#: consolida with one step replaced by the death of the process (os._exit: no cleanup)
_DIE = """
import os, sys
import piano_abitativo.master.edits as edits
import piano_abitativo.master.xlsm as xlsm
from piano_abitativo.cli.commands import main
if sys.argv[2] == "dopo-il-file":
    edits.write_snapshot = lambda *a, **k: os._exit(9)
else:
    xlsm.write_master_xlsm = lambda *a, **k: os._exit(9)
sys.exit(main(["consolida", sys.argv[1]]))
"""


@pytest.mark.parametrize("where", ["dopo-il-file", "prima-del-file"])
def test_a_consolida_killed_while_writing_never_takes_its_own_values_for_edits(
    tmp_path: Path, where: str
) -> None:
    """Killed after the master is written and before its values are noted (or the other
    way round), the next consolida writes again: it does not report the program's own
    values as changed by hand, and a value really typed in Dati is still caught."""
    from piano_abitativo.cli.commands import main

    r = crea(tmp_path / "raccolta", anno=2026)
    (ente, *_) = list(r.registry)
    blank = TemplateFactory(context_for(r)).render(ente)
    for k, sap in enumerate((10, 20, 30, 40)):
        path = tmp_path / f"v{k}" / f"{ente.codice}.xlsx"
        path.parent.mkdir()
        path.write_bytes(fill_template(blank, CREMA | {"a_sap": sap}))
        when = (T0 + dt.timedelta(hours=k)).timestamp()
        os.utime(path, (when, when))
        assert main(["importa", str(r.path), "--da", str(path.parent)]) == 0
        if k == 0:
            assert main(["consolida", str(r.path)]) == 0
            continue
        died = subprocess.run(
            [sys.executable, "-c", _DIE, str(r.path), where], capture_output=True, timeout=120
        )
        assert died.returncode == 9, died.stderr.decode("utf-8", "replace")
    assert main(["consolida", str(r.path)]) == 0
    master = master_path(r.path, r.anno, ".xlsm")
    wb = openpyxl.load_workbook(master, keep_vba=True)
    ws = wb["Dati"]
    row = next(x for x in ws.iter_rows() if x[0].value == ente.codice)
    cell = next(c for c in row if c.value == 40)
    cell.value = 41
    wb.save(master)
    assert main(["consolida", str(r.path)]) == 2
