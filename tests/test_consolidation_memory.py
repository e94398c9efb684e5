"""What a consolidation keeps of each version is small: the texts every version says
alike are one object, not one per ente (the master of 1,500 enti holds them all)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from piano_abitativo.app.commands import crea
from piano_abitativo.archive.store import Receipt
from piano_abitativo.consolidation import consolidate
from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core.problems import Report, problem
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail.folder import import_files
from piano_abitativo.simulation import demo


@pytest.fixture(scope="module")
def raccolta(tmp_path_factory: pytest.TempPathFactory) -> Raccolta:
    base = tmp_path_factory.mktemp("memoria")
    r = crea(base / "raccolta", anno=2025, scadenza=dt.date(2024, 12, 18))
    import_files(r, demo.write_returns(r, base / "ritorni"))
    return r


@pytest.fixture(scope="module")
def cons(raccolta: Raccolta) -> Consolidation:
    return consolidate.consolidate(raccolta, receipts(raccolta))


def test_a_kept_version_names_its_ente_with_the_registry_strings(cons: Consolidation) -> None:
    used = [s for s in cons.enti if s.used is not None]
    assert len(used) > 20
    for s in used:
        rep = s.used.report if s.used else None
        assert rep is not None
        assert rep.ente is s.ente.codice
        if rep.ente_denominazione == s.ente.denominazione:
            assert rep.ente_denominazione is s.ente.denominazione


def test_the_kind_of_ente_and_the_empty_values_are_one_object_for_all(
    cons: Consolidation,
) -> None:
    reports = [s.used.report for s in cons.enti if s.used is not None]
    comuni = [r.metadata for r in reports if r.metadata.get("ente_tipo") == "COMUNE"]
    assert len(comuni) > 20 and len({id(m) for m in comuni}) == 1
    assert len({id(r.values) for r in reports}) == 1 and reports[0].values == {}


def test_a_problem_read_from_the_ledger_names_its_file_with_the_receipt_string(
    cons: Consolidation,
) -> None:
    """The ledger gives the file's name three times (the receipt, its report, each
    problem): read back, it is one string."""
    rc = next(s.used for s in cons.enti if s.used is not None)
    record = rc.to_record()
    record["report"] = Report(
        rc.nome, problems=[problem("L05", rc.nome, "testo"), problem("R1", rc.nome, "altro")]
    ).to_record()
    back = Receipt.from_record(json.loads(json.dumps(record)), 0)
    assert back.report.file is back.nome
    assert [p.file is back.nome for p in back.report.problems] == [True, True]


def test_a_kept_version_leaves_its_archive_path_and_origin_to_the_ledger(
    raccolta: Raccolta, cons: Consolidation
) -> None:
    """Nothing shown of a consolidation reads where a file came from or where the archive
    keeps it: a kept version holds neither (the ledger has both)."""
    kept = [v for s in cons.enti for v in s.versions] + list(cons.non_attribuiti)
    assert len(kept) > 20
    assert {(rc.blob, rc.origine, rc.utente, rc.contesto) for rc in kept} == {("", "", "", "")}
    ledger = {rc.sha256: rc.blob for rc in receipts(raccolta)}
    assert all(ledger[rc.sha256].startswith("archivio/file/") for rc in kept)
