"""The archive of returns: nothing lost, history kept, idempotent, safe under concurrency."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.app.commands import crea
from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.consolidate import STATO_CON_ERRORI, consolidate
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.registry import Ente
from piano_abitativo.mail.folder import import_files
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateContext, TemplateFactory, context_for

from .sample_returns import CREMA

Ret = Callable[..., Path]
T0 = dt.datetime(2025, 12, 1, 9, 30, tzinfo=archive.TZ)


@pytest.fixture
def racc(tmp_path: Path) -> rc.Raccolta:
    return crea(tmp_path / "raccolta", anno=2026)


@pytest.fixture
def ret(racc: rc.Raccolta, tmp_path: Path) -> Ret:
    """ret("019035", {...}, name=..., when=datetime) -> a filled return with that mtime."""
    factory = TemplateFactory(context_for(racc))
    folder = tmp_path / "arrivi"
    folder.mkdir()
    counter = iter(range(10_000))

    def make(
        codice: str = "019035",
        values: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        when: dt.datetime = T0,
        ente: Ente | None = None,
    ) -> Path:
        found = ente or racc.registry.get(codice)
        assert found is not None
        path = folder / (name or f"{codice}_{next(counter)}.xlsx")
        path.write_bytes(fill_template(factory.render(found), CREMA | (values or {})))
        os.utime(path, (when.timestamp(), when.timestamp()))
        return path

    return make


def _ledger_lines(r: rc.Raccolta) -> list[dict[str, Any]]:
    text = (r.path / "archivio" / "registro.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines() if line]
    return [r for r in records if r["tipo"] not in ("lettura", "letto")]  # archive.quarantine


def test_each_file_is_archived_by_content_and_identified_from_its_metadata(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """A return renamed by the clerk is archived under its sha256 and attributed by content."""
    path = ret("019035", name="risposta definitiva (2).xlsx")
    res = import_files(racc, [path])
    [out] = res.outcomes
    assert out.esito == "importato" and out.receipt is not None
    receipt = out.receipt
    data = path.read_bytes()
    assert receipt.sha256 == hashlib.sha256(data).hexdigest()
    assert (racc.path / receipt.blob).read_bytes() == data
    assert receipt.blob == f"archivio/file/{receipt.sha256[:2]}/{receipt.sha256}.xlsx"
    assert receipt.report.ente == "019035" and receipt.report.valid
    assert receipt.ricevuto_il == T0
    assert receipt.fonte_data == archive.FONTE_FILE and not receipt.certificato
    assert receipt.nome == "risposta definitiva (2).xlsx"


def test_importing_the_same_bytes_again_changes_nothing(racc: rc.Raccolta, ret: Ret) -> None:
    """A second import of the same files leaves the ledger byte for byte as it was."""
    paths = [ret("019035"), ret("019005", {"a_sap": 17})]
    import_files(racc, paths)
    ledger = (racc.path / "archivio" / "registro.jsonl").read_bytes()
    copy = paths[0].with_name("copia con altro nome.xlsx")
    copy.write_bytes(paths[0].read_bytes())
    res = import_files(racc, [*paths, copy])
    assert [o.esito for o in res.outcomes] == ["già importato"] * 3
    assert (racc.path / "archivio" / "registro.jsonl").read_bytes() == ledger


def test_a_later_return_supersedes_the_earlier_one_and_both_stay(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """The latest reception wins for consolidation even when imported first; history stays."""
    later = ret("019035", {"b_carenza_manutentiva": 9}, when=T0 + dt.timedelta(days=2))
    earlier = ret("019035", {"b_carenza_manutentiva": 7}, when=T0)
    import_files(racc, [later])
    import_files(racc, [earlier])
    cons = consolidate(racc, receipts(racc))
    crema = next(s for s in cons.enti if s.ente.codice == "019035")
    assert len(crema.versions) == 2
    assert crema.used is not None and crema.used.ricevuto_il == T0 + dt.timedelta(days=2)
    assert crema.values["b_carenza_manutentiva"] == 9
    assert cons.totals["b_carenza_manutentiva"] == 9
    assert all(v.report.valid for v in crema.versions)


def test_a_latest_return_with_errors_keeps_the_previous_valid_values(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """An ente whose new file has errors is 'da correggere'; its last valid data stay used."""
    import_files(racc, [ret("019035", {"i_forze_polizia": 5}, when=T0)])
    import_files(racc, [ret("019035", {"i_forze_polizia": 15}, when=T0 + dt.timedelta(hours=1))])
    cons = consolidate(racc, receipts(racc))
    crema = next(s for s in cons.enti if s.ente.codice == "019035")
    assert crema.stato == STATO_CON_ERRORI and crema.errori == 1
    assert [p.code for p in crema.open_problems if p.severity.value == "errore"] == ["R4"]
    assert crema.values["i_forze_polizia"] == 5
    assert cons.count(STATO_CON_ERRORI) == 1


def test_a_return_of_an_ente_outside_the_registry_is_reported_not_added(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """A file naming an ente the ambito does not have stays apart, with an M12 error."""
    stranger = Ente(codice="015146", tipo="COMUNE", denominazione="Milano")
    import_files(racc, [ret(ente=stranger, name="milano.xlsx")])
    cons = consolidate(racc, receipts(racc))
    assert [x.nome for x in cons.non_attribuiti] == ["milano.xlsx"]
    assert "M12" in cons.non_attribuiti[0].report.codes()
    assert all(s.ente.codice != "015146" for s in cons.enti)
    assert cons.totals["a_sap"] == 0


def test_a_registry_change_is_applied_to_archived_returns(racc: rc.Raccolta, ret: Ret) -> None:
    """Adding the missing ente to enti.csv makes its archived return count, without reimport."""
    stranger = Ente(codice="015146", tipo="COMUNE", denominazione="Milano")
    import_files(racc, [ret(ente=stranger, values={"a_sap": 11})])
    enti = racc.path / "enti.csv"
    enti.write_text(
        enti.read_text(encoding="utf-8").rstrip("\n") + "\n015146,COMUNE,Milano,MI,F205,\n",
        encoding="utf-8",
    )
    again = rc.load(racc.path)
    cons = consolidate(again, receipts(again))
    assert not cons.non_attribuiti
    assert cons.totals["a_sap"] == 11


def test_a_non_workbook_given_explicitly_is_archived_and_reported(
    racc: rc.Raccolta, tmp_path: Path
) -> None:
    """A PDF sent by mistake is kept in the archive, with a problem saying it is no workbook."""
    pdf = tmp_path / "lettera.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% lettera di accompagnamento\n")
    [out] = import_files(racc, [pdf]).outcomes
    assert out.receipt is not None
    assert (racc.path / out.receipt.blob).read_bytes() == pdf.read_bytes()
    assert not out.receipt.report.valid
    assert out.receipt.report.errors[0].code.startswith("F")


def test_a_folder_import_takes_only_workbooks_and_skips_temporary_files(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """Excel's ~$ owner files, hidden files and non-workbooks in a folder are not imported."""
    path = ret("019035")
    (path.parent / "~$019035.xlsx").write_bytes(b"\x05mario")
    (path.parent / ".nascosto.xlsx").write_bytes(b"x")
    (path.parent / "note.txt").write_text("appunti", encoding="utf-8")
    res = import_files(racc, [path.parent])
    assert [Path(o.origine).name for o in res.outcomes] == [path.name]


def test_a_ledger_line_cut_by_a_crash_is_skipped_and_the_next_append_is_whole(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """A half-written last line is ignored; the next import ends it and adds a clean line."""
    import_files(racc, [ret("019035")])
    ledger = racc.path / "archivio" / "registro.jsonl"
    with open(ledger, "ab") as fh:
        fh.write(b'{"tipo": "ricezione", "sha256": "abc')  # killed mid-write
    assert len(archive.read_ledger(racc.path).records) == 1
    assert archive.read_ledger(racc.path).damaged_lines == 1
    import_files(racc, [ret("019005", {"a_sap": 17})])
    contents = archive.read_ledger(racc.path)
    assert len(contents.records) == 2 and contents.damaged_lines == 1
    assert len(receipts(racc)) == 2


def test_a_file_archived_but_not_recorded_is_recorded_by_the_next_import(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """A crash between archiving and recording loses nothing: the next run records it."""
    path = ret("019035", when=T0)
    sha, _ = archive.store_blob(racc.path, path.read_bytes(), suffix=".xlsx", mtime=T0.timestamp())
    res = import_files(racc, [])
    [rec] = res.recovered
    assert rec.sha256 == sha and rec.report.ente == "019035"
    assert rec.ricevuto_il == T0 and rec.fonte_data == archive.FONTE_RECUPERO
    assert import_files(racc, [path]).outcomes[0].esito == "già importato"


def _import_worker(raccolta_path: str, files: list[str]) -> None:
    r = rc.load(Path(raccolta_path))
    import_files(r, [Path(f) for f in files], timeout=60)


def test_concurrent_imports_record_each_file_exactly_once(racc: rc.Raccolta, ret: Ret) -> None:
    """Four processes importing overlapping sets at once leave one record per content."""
    paths = [
        str(ret(e.codice, {"a_sap": 10 + i}, when=T0 + dt.timedelta(minutes=i)))
        for i, e in enumerate(list(racc.registry)[:30])
    ]
    ctx = multiprocessing.get_context("spawn")
    orders = [paths, paths[::-1], paths[1::2] + paths[::2], paths[15:] + paths[:15]]
    procs = [ctx.Process(target=_import_worker, args=(str(racc.path), order)) for order in orders]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = _ledger_lines(racc)
    assert sorted(r["sha256"] for r in lines) == sorted(
        hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths
    )


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from piano_abitativo.archive import store as archive
with archive.locked(Path(sys.argv[1])):
    print("preso", flush=True)
    time.sleep(30)
"""


def test_a_busy_raccolta_is_reported_in_italian_with_who_holds_it(
    racc: rc.Raccolta, ret: Ret
) -> None:
    """While another process writes, an import waits, then says who holds the raccolta."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(racc.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "preso"
        started = time.monotonic()
        with pytest.raises(archive.ArchiveBusy) as exc:
            import_files(racc, [ret("019035")], timeout=0.5)
        assert time.monotonic() - started >= 0.5
        assert "è in uso da" in str(exc.value) and "Riprovare" in str(exc.value)
    finally:
        holder.kill()
        holder.wait()
    # the OS released the lock of the killed process: the import now goes through
    assert import_files(racc, [ret("019035")], timeout=5).outcomes[0].receipt


def test_receipts_and_reports_survive_the_ledger_round_trip(racc: rc.Raccolta, ret: Ret) -> None:
    """What `receipts` reads back equals what `import_files` recorded, problems included."""
    res = import_files(racc, [ret("019035", {"a_sap": "12", "i_forze_polizia": 15})])
    [rec] = receipts(racc)
    assert res.imported[0].to_record() == rec.to_record()
    assert rec.report.codes() == res.imported[0].report.codes() and rec.report.problems


def test_times_are_shown_in_italian_time_whatever_the_machine(racc: rc.Raccolta, ret: Ret) -> None:
    """A file modified at 08:30 UTC in winter is received at 09:30 Europe/Rome."""
    when = dt.datetime(2025, 12, 1, 8, 30, tzinfo=dt.UTC)
    [out] = import_files(racc, [ret("019035", when=when)]).outcomes
    assert out.receipt is not None
    assert out.receipt.ricevuto_il.isoformat() == "2025-12-01T09:30:00+01:00"


def test_template_context_of_other_years_is_rejected_with_a_problem(
    racc: rc.Raccolta, tmp_path: Path
) -> None:
    """A template of another raccolta year is archived and flagged M06, never mixed in."""
    ctx = TemplateContext(
        anno=2025, raccolta_id="vecchia", ambito="Cremasco", capofila="Comune di Crema"
    )
    ente = racc.registry.get("019035")
    assert ente is not None
    path = tmp_path / "vecchio.xlsx"
    path.write_bytes(fill_template(TemplateFactory(ctx).render(ente), CREMA))
    [out] = import_files(racc, [path]).outcomes
    assert out.receipt is not None and "M06" in out.receipt.report.codes()
    cons = consolidate(racc, receipts(racc))
    assert cons.totals["a_sap"] == 0
