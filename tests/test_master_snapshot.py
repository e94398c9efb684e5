"""The values `consolida` wrote in the master's *Dati*, kept to catch values typed there by
hand: one list per ente in field order, written without building the whole text, the
form written before still read, and nothing rewritten when nothing changed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from piano_abitativo.app import commands as actions
from piano_abitativo.cli.commands import main
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.schema import SCHEMA
from piano_abitativo.master.edits import Write, dati_values, read_snapshot, snapshot_path
from piano_abitativo.master.model import dati_header, master_path
from piano_abitativo.master.tables import DATI_FIRST_FIELD_COL, DATI_HEADER_ROW

from .mailraccolta import make_raccolta, workbook_of

CREMA = "019035"


@pytest.fixture
def racc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> rc.Raccolta:
    r = make_raccolta(tmp_path)
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "crema.xlsx").write_bytes(workbook_of(r, CREMA, a_sap=997))
    assert main(["importa", str(r.path), "--da", str(inbox)]) == 0
    assert main(["consolida", str(r.path)]) == 0
    capsys.readouterr()
    return r


def _type_in_dati(r: rc.Raccolta, codice: str, field_id: str, value: Any) -> None:
    path = master_path(r.path, r.anno, ".xlsm")
    wb = openpyxl.load_workbook(path, keep_vba=True)
    ws = wb["Dati"]
    header = [c.value for c in ws[DATI_HEADER_ROW + 1]]
    wanted = dati_header(SCHEMA.field_by_id[field_id])
    col = next(i for i, h in enumerate(header) if i >= DATI_FIRST_FIELD_COL and h == wanted)
    row = next(x for x in ws.iter_rows(min_row=DATI_HEADER_ROW + 2) if x[0].value == codice)
    row[col].value = value
    wb.save(path)


def test_the_snapshot_keeps_one_list_per_ente_in_the_order_of_the_fields(
    racc: rc.Raccolta,
) -> None:
    data = json.loads(snapshot_path(racc.path).read_text(encoding="utf-8"))
    assert data["formato"] == 2 and data["precedenti"] == [] and data["in_sospeso"] == []
    campi = data["valori"]["campi"]
    assert campi == [f.id for f in SCHEMA.plan_fields]
    enti = data["valori"]["enti"]
    assert set(enti) == {e.codice for e in racc.registry}
    assert all(len(row) == len(campi) for row in enti.values())
    assert enti[CREMA][campi.index("a_sap")] == 997
    assert read_snapshot(racc.path) == [dati_values(actions.consolidation(racc))]


def test_a_snapshot_in_the_earlier_form_still_catches_a_value_typed_in_dati(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file written by earlier versions (a dict field → value per ente) is read."""
    path = snapshot_path(racc.path)
    data = json.loads(path.read_text(encoding="utf-8"))
    w = data["valori"]
    data["valori"] = {k: dict(zip(w["campi"], row, strict=True)) for k, row in w["enti"].items()}
    del data["formato"]
    path.write_text(json.dumps(data), encoding="utf-8")
    (old,) = read_snapshot(racc.path) or []
    assert old.enti[CREMA][old.index["a_sap"]] == 997
    assert main(["consolida", str(racc.path)]) == 0  # nothing typed: nothing to ask
    _type_in_dati(racc, CREMA, "a_sap", 990)
    assert main(["consolida", str(racc.path)]) == 2
    assert "997 → 990" in capsys.readouterr().err


def test_a_consolida_that_changes_nothing_does_not_rewrite_the_snapshot(
    racc: rc.Raccolta,
) -> None:
    path = snapshot_path(racc.path)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    assert main(["consolida", str(racc.path)]) == 0
    assert path.stat().st_mtime == 1_000_000_000


def test_the_writes_remembered_are_the_last_three_different_ones(racc: rc.Raccolta) -> None:
    """Each differing write goes first; a value typed in Dati equal to any of them is the
    program's own, not a change by hand."""
    for sap in (1, 2, 3):
        _type_in_dati(racc, CREMA, "a_sap", sap)
        assert main(["consolida", str(racc.path), "--registra-rettifiche", "--motivo", "x"]) == 0
    writes = read_snapshot(racc.path) or []
    assert [w.enti[CREMA][w.index["a_sap"]] for w in writes] == [3, 2, 1]
    assert all(isinstance(w, Write) for w in writes)
    _type_in_dati(racc, CREMA, "a_sap", 2)  # an earlier write, as an unsaved workbook holds
    assert actions.master_modifiche(racc) == []


def test_a_damaged_row_of_the_snapshot_is_read_as_blanks_and_asked_about(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row cut short (the file damaged by hand or by a disk) does not stop consolida:
    its missing values are blanks, so the value in Dati is asked about, not overwritten."""
    path = snapshot_path(racc.path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["valori"]["enti"][CREMA] = data["valori"]["enti"][CREMA][:1]
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["consolida", str(racc.path)]) == 2
    assert "997" in capsys.readouterr().err


def _counting_consolidation(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = actions.consolidation

    def counted(r: Any) -> Any:
        calls.append(1)
        return real(r)

    monkeypatch.setattr(actions, "consolidation", counted)
    return calls


def test_consolida_consolidates_once_for_the_check_of_dati_and_the_master(
    racc: rc.Raccolta, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check for values typed in Dati and the master use one consolidation (each
    costs a pass over the ledger and every return: a second of 1500 enti)."""
    calls = _counting_consolidation(monkeypatch)
    actions.consolida(racc)
    assert len(calls) == 1


def test_rettifiche_recorded_by_consolida_are_in_the_master_it_writes(
    racc: rc.Raccolta, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --registra-rettifiche the master is written from a consolidation made after
    the rettifiche were recorded: the value typed in Dati stays, now on record."""
    _type_in_dati(racc, CREMA, "a_sap", 1001)
    calls = _counting_consolidation(monkeypatch)
    out = actions.consolida(racc, registra_rettifiche=True, motivo="verifica telefonica")
    assert len(out.rettifiche) == 1 and out.rettifiche[0].valore == 1001
    assert len(calls) == 2  # the check, then the master after the record
    status = next(s for s in out.consolidation.enti if s.ente.codice == CREMA)
    assert status.rettifiche and status.rettifiche[0].valore == 1001
    assert actions.master_modifiche(racc) == []
