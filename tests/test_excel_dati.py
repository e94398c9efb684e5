"""The Consolida button and values typed by hand in the open workbook's Dati: it asks
(Sì records them as rettifiche with a motivo, No discards them, Annulla stops) and never
overwrites them silently. The dialog is desktop Excel's, so it is the one thing mocked;
the workbook is the real master written by `consolida`, as the remote engine sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.app.commands import consolida
from piano_abitativo.archive import store as archive
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.schema import SCHEMA
from piano_abitativo.excel import buttons as excel
from piano_abitativo.mail.folder import import_files
from piano_abitativo.master.model import SHEET_DATI, dati_header

from .mailraccolta import make_raccolta, workbook_of
from .xlwings_payload import (  # noqa: F401 - _remote_engine: a fixture
    Payload,
    _remote_engine,
    alerts,
    click,
    payload_of,
)

CREMA = "019035"


def _dati_index(payload: Payload, codice: str, field_id: str) -> tuple[int, int, int]:
    ix = [s["name"] for s in payload["sheets"]].index(SHEET_DATI)
    rows = payload["sheets"][ix]["values"]
    header = next(i for i, row in enumerate(rows) if "Codice" in row)
    col = rows[header].index(dati_header(SCHEMA.field_by_id[field_id]))
    row = next(i for i, r in enumerate(rows) if r and r[0] == codice)
    return ix, row, col


@pytest.fixture
def edited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[rc.Raccolta, Payload]:
    """A raccolta with Crema's return (a_sap 997) consolidated, and its master as Excel
    would send it with Dati's a_sap of Crema changed to 990 by hand."""
    r = make_raccolta(tmp_path)
    folder = tmp_path / "ritorni"
    folder.mkdir()
    (folder / "crema.xlsx").write_bytes(workbook_of(r, CREMA, a_sap=997))
    import_files(r, [folder])
    res = consolida(r)
    payload = payload_of(res.master.read_bytes(), res.master.name)
    ix, row, col = _dati_index(payload, CREMA, "a_sap")
    assert payload["sheets"][ix]["values"][row][col] == 997
    payload["sheets"][ix]["values"][row][col] = 990
    monkeypatch.setenv(excel.ENV_RACCOLTA, str(r.path))
    return r, payload


def _answer(monkeypatch: pytest.MonkeyPatch, button: str, motivo: str | None = None) -> list[str]:
    asked: list[str] = []

    def ask(self: Any, text: str) -> str:
        asked.append(text)
        return button

    monkeypatch.setattr(excel._Session, "ask", ask)
    monkeypatch.setattr(excel._Session, "ask_text", lambda self, prompt: motivo)
    return asked


def _dati_written(acts: list[dict[str, Any]], payload: Payload) -> list[list[Any]]:
    ix = [s["name"] for s in payload["sheets"]].index(SHEET_DATI)
    (grid,) = [a["values"] for a in acts if a["func"] == "setValues" and a["sheet_position"] == ix]
    return list(grid)


def _rettifiche(r: rc.Raccolta) -> list[dict[str, Any]]:
    return [x for x in archive.read_ledger(r.path).records if x["tipo"] == "rettifica"]


def test_si_records_the_typed_value_as_a_rettifica_with_its_motivo(
    edited: tuple[rc.Raccolta, Payload], monkeypatch: pytest.MonkeyPatch
) -> None:
    r, payload = edited
    asked = _answer(monkeypatch, "yes", "telefonata del 2/12")
    acts = click(excel.consolida, payload)
    (question,) = asked
    assert "Comune di Crema" in question and "997 → 990" in question
    assert "Sì: registrarli come rettifiche" in question
    (text,) = alerts(acts)
    assert text.startswith("Registrate 1 rettifiche dal foglio Dati (motivo: telefonata del 2/12)")
    (rt,) = _rettifiche(r)
    assert (rt["campo"], rt["valore"], rt["valore_precedente"]) == ("a_sap", 990, 997)
    assert rt["origine"] == "cartella di lavoro"
    _, row, col = _dati_index(payload, CREMA, "a_sap")
    assert _dati_written(acts, payload)[row][col] == 990


def test_no_discards_the_typed_value_and_writes_the_entes_again(
    edited: tuple[rc.Raccolta, Payload], monkeypatch: pytest.MonkeyPatch
) -> None:
    r, payload = edited
    _answer(monkeypatch, "no")
    acts = click(excel.consolida, payload)
    assert alerts(acts)[0].startswith("Scartate 1 modifiche del foglio Dati.")
    assert _rettifiche(r) == []
    _, row, col = _dati_index(payload, CREMA, "a_sap")
    assert _dati_written(acts, payload)[row][col] == 997


@pytest.mark.parametrize(("button", "motivo"), [("cancel", None), ("yes", None), ("yes", " ")])
def test_annulla_or_no_motivo_touches_nothing(
    edited: tuple[rc.Raccolta, Payload],
    monkeypatch: pytest.MonkeyPatch,
    button: str,
    motivo: str | None,
) -> None:
    r, payload = edited
    _answer(monkeypatch, button, motivo)
    acts = click(excel.consolida, payload)
    assert [a["func"] for a in acts] == ["alert"]
    assert alerts(acts)[0].startswith("Consolidamento annullato")
    assert _rettifiche(r) == []


def test_an_untouched_workbook_is_consolidated_without_a_question(
    edited: tuple[rc.Raccolta, Payload], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, payload = edited
    ix, row, col = _dati_index(payload, CREMA, "a_sap")
    payload["sheets"][ix]["values"][row][col] = 997
    asked = _answer(monkeypatch, "cancel")
    acts = click(excel.consolida, payload)
    assert asked == []
    assert alerts(acts)[0].startswith("Consolidato aggiornato")


def test_an_engine_without_dialogs_stops_rather_than_overwrite(
    edited: tuple[rc.Raccolta, Payload],
) -> None:
    """The remote engine cannot ask: the typed value is kept, nothing is written and the
    message says how to decide from the command line."""
    r, payload = edited
    acts = click(excel.consolida, payload)
    assert [a["func"] for a in acts] == ["alert"]
    (text,) = alerts(acts)
    assert text.startswith("Consolidamento annullato. Nel foglio Dati")
    assert "--registra-rettifiche" in text
    assert _rettifiche(r) == []
