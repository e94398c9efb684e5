"""The buttons of the master workbook, clicked through xlwings' remote engine on Linux.

Each test builds the JSON that Excel's RunRemotePython sends for a real master workbook
(used-range values from A1, names, tables), makes it the calling book, calls the entry
point exactly as the button's macro does and reads the actions Excel would apply.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import smtplib
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import xlwings as xw

from piano_abitativo.app import commands as actions
from piano_abitativo.app.commands import crea
from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation import consolidate
from piano_abitativo.consolidation.consolidate import TOTAL_FIELDS
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta
from piano_abitativo.excel import buttons as excel
from piano_abitativo.mail.folder import import_files
from piano_abitativo.master.model import BUTTON_COL, BUTTON_FIRST_ROW, BUTTON_INSTRUCTION_COL
from piano_abitativo.master.sheets import (
    SHEET_ANOMALIE,
    SHEET_CRUSCOTTO,
    SHEET_DATI,
    SHEET_REPORT,
    TABLE_SHEETS,
    Cell,
    SheetLayout,
    build_master,
)
from piano_abitativo.master.xlsm import master_buttons
from piano_abitativo.simulation import demo

from . import xlwings_payload
from .mailraccolta import ENTI_CSV, make_raccolta, workbook_of
from .xlwings_payload import (  # noqa: F401 - _remote_engine: a fixture
    MASTER_NAME,
    Action,
    Payload,
    _remote_engine,
    alerts,
    click,
)

GENERATED_AT = dt.datetime(2024, 12, 20, 9, 30, tzinfo=archive.TZ)
CONF_SHEET = "xlwings.conf"
BUTTONS = master_buttons()
ALER = "ALER Brescia-Cremona-Mantova"


# --------------------------------------------------------------------------- payloads


def _xlwings_vba_project() -> bytes:
    with zipfile.ZipFile(Path(xw.__file__).parent / "quickstart_standalone.xlsm") as zf:
        return zf.read("xl/vbaProject.bin")


def payload_of(data: bytes, name: str = MASTER_NAME) -> Payload:
    """What RunRemotePython sends for a master workbook, plus the ``xlwings.conf`` sheet of
    the .xlsm."""
    return xlwings_payload.payload_of(
        data,
        name,
        extra_sheets=[
            {
                "name": CONF_SHEET,
                "values": [["INTERPRETER_WIN", "pythonw.exe"]],
                "tables": [],
                "pictures": [],
            }
        ],
    )


def index_of(payload: Payload, sheet: str) -> int:
    return [s["name"] for s in payload["sheets"]].index(sheet)


def grid_written(acts: list[Action], payload: Payload, sheet: str) -> list[list[Any]]:
    """The one grid written from A1 into `sheet`."""
    ix = index_of(payload, sheet)
    (grid,) = [
        a["values"]
        for a in acts
        if a["func"] == "setValues"
        and a["sheet_position"] == ix
        and (a["start_row"], a["start_column"]) == (0, 0)
    ]
    return list(grid)


def touched_sheets(acts: list[Action]) -> set[int]:
    return {a["sheet_position"] for a in acts if a["sheet_position"] is not None}


def cell_of(grid: list[list[Any]], ref: str) -> Any:
    """The value at an A1 reference (``$J$19``) of a written grid."""
    m = re.fullmatch(r"\$?([A-Z]+)\$?(\d+)", ref)
    assert m is not None
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return grid[int(m.group(2)) - 1][col - 1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _no_raccolta_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(excel.ENV_RACCOLTA, raising=False)


@dataclass
class World:
    r: raccolta.Raccolta
    #: the workbook as built before any return arrived
    before: Payload
    #: the workbook as built from the 26 returns of 2025
    current: Payload
    #: what Consolida does to `before`
    acts: list[Action]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("excel")
    r = crea(base / "raccolta", anno=2025, scadenza=dt.date(2024, 12, 18))
    import_files(r, demo.write_returns(r, base / "ritorni"))
    vba = _xlwings_vba_project()
    empty = consolidate.consolidate(r, [], generated_at=GENERATED_AT)
    full = consolidate.consolidate(r, receipts(r), generated_at=GENERATED_AT)
    before = payload_of(build_master(empty, vba_project=vba, buttons=BUTTONS))
    current = payload_of(build_master(full, vba_project=vba, buttons=BUTTONS))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(excel.ENV_RACCOLTA, str(r.path))
        acts = click(excel.consolida, before)
    yield World(r, before, current, acts)


@pytest.fixture
def small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[raccolta.Raccolta, Payload]:
    """A new raccolta with nothing received, and its workbook as then built."""
    r = crea(tmp_path / "raccolta", anno=2025)
    monkeypatch.setenv(excel.ENV_RACCOLTA, str(r.path))
    empty = consolidate.consolidate(r, [], generated_at=GENERATED_AT)
    return r, payload_of(build_master(empty))


CREMA_CODICE, CASTELLEONE = "019035", "019025"


# --------------------------------------------------------------------------- Consolida


def test_consolida_fills_table_b_from_dati_with_a_sum_total(world: World) -> None:
    """After Consolida, table b) lists ALER 4, Crema 7, Rivolta 8 and Trescore 3 through
    formulas into the Dati written in the same click, and its Totale is =SUM(B3:B6)."""
    grid = grid_written(world.acts, world.before, TABLE_SHEETS["b"])
    dati = grid_written(world.acts, world.before, SHEET_DATI)
    rows = grid[2:6]
    assert [row[0] for row in rows] == [
        ALER,
        "Comune di Crema",
        "Comune di Rivolta d'Adda",
        "Comune di Trescore Cremasco",
    ]
    refs = [re.fullmatch(r"='Dati'!(\$[A-Z]+\$\d+)", row[1]) for row in rows]
    assert all(refs)
    assert [cell_of(dati, m.group(1)) for m in refs if m] == [4, 7, 8, 3]
    assert grid[6] == ["Totale", "=SUM(B3:B6)", ""]
    assert len(grid) == 7


def test_consolida_points_every_total_name_at_its_total_cell(world: World) -> None:
    """Every totale_* name moves to the row where its table now ends, and that cell of the
    written grid holds the total's formula."""
    added = {
        a["args"][0]: a["args"][1]
        for a in world.acts
        if a["func"] == "namesAdd" and a["args"][0].startswith("totale_")
    }
    # e) stays empty in 2025: its total keeps its row, so its name is left as it was
    assert set(added) == {f"totale_{f.id}" for f in TOTAL_FIELDS} - {"totale_e_conferite_privati"}
    assert added["totale_b_carenza_manutentiva"] == "='b) Carenza manutentiva'!$B$7"
    for name, target in added.items():
        m = re.fullmatch(r"='(.+)'!(\$[A-Z]+\$\d+)", target)
        assert m is not None, target
        formula = cell_of(grid_written(world.acts, world.before, m.group(1)), m.group(2))
        assert re.fullmatch(r"=(SUM\([A-Z]+3:[A-Z]+\d+\)|totale_\w+(\+totale_\w+)+)", formula), (
            name,
            formula,
        )


def _block(grid: list[list[Any]], target: str) -> tuple[str, list[Any]]:
    """The sheet and the written values of a name's block (``='a) X'!$A$3:$A$7``)."""
    m = re.fullmatch(r"='(.+)'!\$([A-Z]+)\$(\d+)(?::\$([A-Z]+)\$(\d+))?", target)
    assert m is not None, target
    sheet, col, r1, col2, r2 = m.groups()
    assert col2 in (None, col)
    r2 = r2 or r1
    return sheet, [cell_of(grid, f"{col}{r}") for r in range(int(r1), int(r2) + 1)]


def test_consolida_points_the_charts_at_the_rows_the_tables_now_have(world: World) -> None:
    """The charts read the grafico_* names. Before any return they point at an empty cell
    of Grafici; Consolida moves them onto the rows of f) and a) as now written, the ALER
    apart from the Comuni, so that the charts follow the rows."""
    before = {n["name"]: (n["sheet_index"], n["address"]) for n in world.before["names"]}
    grafici = index_of(world.before, "Grafici")
    assert before["grafico_f_enti"] == before["grafico_a_comuni_sap"] == (grafici, "Z1")
    added = {a["args"][0]: a["args"][1] for a in world.acts if a["func"] == "namesAdd"}
    charts = {k: v for k, v in added.items() if k.startswith("grafico_")}
    assert set(charts) == {
        f"grafico_{c}_{p}"
        for c, parts in (("f", ("enti", "assegnabili")), ("a_comuni", ("enti", "sap", "sas")))
        for p in parts
    } | {f"grafico_a_altri_{p}" for p in ("enti", "sap", "sas")}
    a_grid = grid_written(world.acts, world.before, TABLE_SHEETS["a"])
    sheet, altri = _block(a_grid, charts["grafico_a_altri_enti"])
    assert sheet == TABLE_SHEETS["a"] and altri == [ALER]
    sheet, comuni = _block(a_grid, charts["grafico_a_comuni_enti"])
    entries = [row[0] for row in a_grid[2:]]
    assert sheet == TABLE_SHEETS["a"] and altri + comuni == entries[: entries.index("Totale")]
    assert len(comuni) > 20 and all(str(c).startswith("Comune di ") for c in comuni)
    _, sap = _block(a_grid, charts["grafico_a_comuni_sap"])
    assert all(str(v).startswith("='Dati'!") or str(v).startswith("=Dati!") for v in sap), sap
    f_grid = grid_written(world.acts, world.before, TABLE_SHEETS["f"])
    _, enti_f = _block(f_grid, charts["grafico_f_enti"])
    assert enti_f[0] == ALER and len(enti_f) == 5 and cell_of(f_grid, f"A{3 + 5}") == "Totale"


def test_consolida_formats_the_rows_it_adds_as_the_writer_does(world: World) -> None:
    """Table f) had one row "nessuna" and its Totale; now it has 5 entries: Consolida gives
    the entries the writer's thin grey borders and no fill, and the Totale row, moved
    down to row 8, its blue fill and bold font; below the shrunk Anomalie, the formats of
    the rows left over are cleared with their contents."""
    ix = index_of(world.before, TABLE_SHEETS["f"])
    acts = [a for a in world.acts if a["sheet_position"] == ix]

    def covers(a: Action, row: int, col: int) -> bool:
        return a["start_row"] <= row < a["start_row"] + a["row_count"] and (
            a["start_column"] <= col < a["start_column"] + a["column_count"]
        )

    def fills(row: int, col: int) -> list[Any]:
        return [a["args"] for a in acts if a["func"] == "setRangeColor" and covers(a, row, col)]

    def borders(row: int, col: int) -> list[Any]:
        return [a["args"] for a in acts if a["func"] == "setBorderProperty" and covers(a, row, col)]

    grid = grid_written(world.acts, world.before, TABLE_SHEETS["f"])
    assert grid[7][0] == "Totale" and "nessuna" not in [r[0] for r in grid]
    thin_grey = [
        ["edge_top", "weight", "thin"],
        ["inside_horizontal", "line_style", "continuous"],
        ["inside_horizontal", "color", "#bfbfbf"],
    ]
    for row in range(2, 7):  # the 5 entries (rows 3 to 7)
        assert fills(row, 0) == [[None]]
        assert all(b in borders(row, 1) for b in thin_grey), borders(row, 1)
    assert fills(7, 0) == [["#D9E1F2"]]
    assert borders(7, 1)[-1] == ["edge_top", "weight", "medium"]
    fonts = [a["args"] for a in acts if a["func"] == "setFontProperty" and covers(a, 7, 0)]
    assert ["bold", True] in fonts, fonts
    an = index_of(world.before, SHEET_ANOMALIE)
    cleared = [
        (a["start_row"], a["row_count"])
        for a in world.acts
        if a["func"] == "rangeClearFormats" and a["sheet_position"] == an
    ]
    assert cleared == [(26, 49 - 23)]


def test_consolida_writes_the_report_and_the_cruscotto_counts(world: World) -> None:
    """The Report has one row per return (26), its times read from Dati, and the Cruscotto
    counts the enti by formulas over its state column."""
    report = grid_written(world.acts, world.before, SHEET_REPORT)
    rows = [row for row in report[3:] if row[0]]
    assert len(rows) == 26
    assert all(str(row[1]).startswith("=IF('Dati'!$E$") for row in rows)
    crus = grid_written(world.acts, world.before, SHEET_CRUSCOTTO)
    assert [row[3:5] for row in crus[1:6]] == [
        ["Enti nell'elenco", "=COUNTA(D10:D58)"],
        ["Hanno risposto", '=COUNTA(D10:D58)-COUNTIF(D10:D58,"non ricevuto")'],
        ["Non hanno risposto", '=COUNTIF(D10:D58,"non ricevuto")'],
        ["Da correggere", '=COUNTIF(D10:D58,"da correggere")'],
        ["Ricevuti con avvisi", '=COUNTIF(D10:D58,"ricevuto con avvisi")'],
    ]
    states = [row[3] for row in crus[9:58]]
    assert (states.count("ricevuto"), states.count("non ricevuto")) == (26, 23)
    (crema,) = [row for row in crus[9:58] if row[1] == "Comune di Crema"]
    assert crema[0] == "'019035"  # the code keeps its leading zero


def test_consolida_writes_each_sheet_in_one_assignment_and_leaves_the_rest(world: World) -> None:
    """One grid per sheet of the layout; on the Cruscotto the label "Comandi" and each
    button's instruction (F1, H2:H7, inside the grid) are written back as they were, nothing
    right of the table is touched, nor the xlwings.conf sheet; one Italian alert ends the
    click."""
    writes = [a for a in world.acts if a["func"] == "setValues"]
    layout_sheets = [s["name"] for s in world.before["sheets"] if s["name"] != CONF_SHEET]
    assert sorted(a["sheet_position"] for a in writes) == list(range(len(layout_sheets)))
    crus = index_of(world.before, SHEET_CRUSCOTTO)
    values = world.before["sheets"][crus]["values"]
    assert (values[0][BUTTON_COL], values[1][BUTTON_INSTRUCTION_COL]) == (
        "Comandi",
        BUTTONS[0].istruzione,
    )
    written = grid_written(world.acts, world.before, SHEET_CRUSCOTTO)
    assert written[0][BUTTON_COL] == "Comandi"
    assert [written[BUTTON_FIRST_ROW + i][BUTTON_INSTRUCTION_COL] for i in range(6)] == [
        b.istruzione for b in BUTTONS
    ]
    assert all(
        a["start_column"] + a["column_count"] <= 12
        for a in world.acts
        if a["sheet_position"] == crus
    )
    assert index_of(world.before, CONF_SHEET) not in touched_sheets(world.acts)
    (text,) = alerts(world.acts)
    assert text.startswith("Consolidato aggiornato") and "26 enti su 49" in text
    assert "piano-abitativo consolida" in text
    assert world.acts[-1]["func"] == "alert"


def test_consolida_shrinks_the_anomalie_and_clears_the_rows_left_below(world: World) -> None:
    """Before any return the 49 missing enti were anomalies; now 23 are: the rows below are
    cleared (contents only) and the Anomalie table is resized to the new rows."""
    ix = index_of(world.before, SHEET_ANOMALIE)
    grid = grid_written(world.acts, world.before, SHEET_ANOMALIE)
    assert len(grid) == 3 + 23
    clears = [
        (a["start_row"], a["row_count"], a["column_count"])
        for a in world.acts
        if a["func"] == "rangeClearContents" and a["sheet_position"] == ix
    ]
    assert clears == [(26, 49 - 23, 11)]
    resized = [
        a["args"] for a in world.acts if a["func"] == "resizeTable" and a["sheet_position"] == ix
    ]
    assert resized == [[0, "$A$3:$K$26"]]


def test_consolida_on_an_up_to_date_workbook_rewrites_its_own_values(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a workbook already holding the 26 returns, Consolida writes back every constant
    the built master holds (only the update time differs) and moves no name."""
    monkeypatch.setenv(excel.ENV_RACCOLTA, str(world.r.path))
    acts = click(excel.consolida, world.current)
    assert not [a for a in acts if a["func"] in ("namesAdd", "resizeTable")]
    # nothing is cleared: every sheet's grid covers what it held (the Cruscotto's column
    # L holds the Note of each ente, where unattributed returns show their message)
    clears = [a for a in acts if a["func"] == "rangeClearContents"]
    assert clears == []

    def norm(v: Any) -> Any:
        if v in ("", None):
            return None
        if isinstance(v, str):
            m = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d:\d\d))?(\.000Z)?", v)
            if m:  # a date or time, as the client sends it and as xlwings writes it
                return f"{m.group(1)} {m.group(2) or '00:00:00'}"
            return v.removeprefix("'")
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        return v

    compared = 0
    for sheet in world.current["sheets"][:-1]:
        grid = grid_written(acts, world.current, sheet["name"])
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if isinstance(v, str) and v.startswith("="):
                    continue
                if (sheet["name"], r, c) == (SHEET_CRUSCOTTO, 4, 1):  # "Aggiornato al"
                    continue
                old = sheet["values"][r][c]
                assert norm(v) == norm(old), (sheet["name"], r, c, v, old)
                compared += 1
    assert compared > 1500


# --------------------------------------------------------------------------- Importa


def ledger_size(r: raccolta.Raccolta) -> int:
    return len(archive.read_ledger(r.path).records)


def test_importa_creates_the_drop_folder_and_says_where(
    small: tuple[raccolta.Raccolta, Payload],
) -> None:
    """Without «arrivi» in the raccolta, Importa creates it, imports nothing, writes
    nothing and tells the clerk where to put the files."""
    r, payload = small
    acts = click(excel.importa, payload)
    assert (r.path / "arrivi").is_dir()
    (text,) = alerts(acts)
    assert "Mettere i file ricevuti" in text and str(r.path / "arrivi") in text
    assert touched_sheets(acts) == set()
    assert ledger_size(r) == 0


def test_importa_imports_new_files_once_and_refreshes_the_workbook(
    small: tuple[raccolta.Raccolta, Payload],
) -> None:
    """Two files dropped in «arrivi» (one with an error) are imported and the Cruscotto
    rewritten; a second click imports nothing, writes nothing and says so."""
    r, payload = small
    demo.write_returns(
        r,
        r.path / "arrivi",
        only={CREMA_CODICE, CASTELLEONE},
        changes={CASTELLEONE: {"i_forze_polizia": 15}},
    )
    acts = click(excel.importa, payload)
    assert ledger_size(r) == 2
    (text,) = alerts(acts)
    assert text.startswith("Importati 2 file nuovi (1 con errori).")
    assert "Il Cruscotto e le Anomalie sono aggiornati" in text
    crus = grid_written(acts, payload, SHEET_CRUSCOTTO)
    states = {row[0].lstrip("'"): row[3] for row in crus[9:58]}
    assert states[CREMA_CODICE] == "ricevuto" and states[CASTELLEONE] == "da correggere"
    assert list(states.values()).count("non ricevuto") == 47

    again = click(excel.importa, payload)
    assert ledger_size(r) == 2
    (text,) = alerts(again)
    assert text.startswith("Nessun file nuovo") and "2 file già importati" in text
    assert touched_sheets(again) == set()


def test_importa_prepares_the_replies_to_the_enti_as_the_command_line_does(
    with_addresses: tuple[raccolta.Raccolta, Payload], no_smtp: None
) -> None:
    """As «piano-abitativo importa», Importa prepares the reply to the ente whose file came
    in (a draft in the outbox, never sent) and tells the clerk how to send it."""
    r, payload = with_addresses
    (r.path / "arrivi").mkdir()
    (r.path / "arrivi" / "crema.xlsx").write_bytes(workbook_of(r, CREMA_CODICE))
    acts = click(excel.importa, payload)
    (text,) = alerts(acts)
    outbox = r.path / "posta" / "uscita"
    drafts = sorted(outbox.glob("*.eml"))
    assert len(drafts) == 1
    assert (
        f"Risposte agli enti preparate, non inviate: 1 nella cartella {outbox}. Per "
        f"inviarle usare il comando «piano-abitativo esiti {r.path} --davvero»."
    ) in text


# --------------------------------------------------------------------------- Valida


def test_valida_applies_the_current_rules_to_cruscotto_and_anomalie_only(
    small: tuple[raccolta.Raccolta, Payload],
) -> None:
    """Crema's 20 SAT units pass the 10% rule; after the rule is lowered to 5% in
    raccolta.toml, Valida marks Crema with a warning, writing only Cruscotto and Anomalie."""
    r, payload = small
    import_files(
        r,
        demo.write_returns(
            r, r.path / "ritorni", only={CREMA_CODICE}, changes={CREMA_CODICE: {"j_sat": 20}}
        ),
    )
    crema_row = 9 + [e.codice for e in r.registry].index(CREMA_CODICE)
    config = r.config_path.read_text(encoding="utf-8")
    assert "sat_percentuale = 10\n" in config
    r.config_path.write_text(
        config.replace("sat_percentuale = 10\n", "sat_percentuale = 5\n"), encoding="utf-8"
    )
    acts = click(excel.valida, payload)
    assert touched_sheets(acts) == {
        index_of(payload, SHEET_CRUSCOTTO),
        index_of(payload, SHEET_ANOMALIE),
    }
    assert not [a for a in acts if a["func"] == "namesAdd"]
    crus = grid_written(acts, payload, SHEET_CRUSCOTTO)
    assert crus[crema_row][3] == "ricevuto con avvisi"
    anomalie = grid_written(acts, payload, SHEET_ANOMALIE)
    assert any(row[4] == "R5" and row[0] == "Comune di Crema" for row in anomalie)
    (text,) = alerts(acts)
    assert "regole attuali" in text and "1 con avvisi" in text


# --------------------------------------------------------------------------- Genera modelli


def test_genera_modelli_writes_one_template_per_ente(
    small: tuple[raccolta.Raccolta, Payload],
) -> None:
    """Genera modelli writes the 49 templates of the Cremasco into «modelli» and says how
    many and where, without touching the workbook's cells."""
    r, payload = small
    acts = click(excel.genera_modelli, payload)
    assert len(list(r.modelli_dir.glob("*.xlsx"))) == 49
    (text,) = alerts(acts)
    assert text == f"Scritti 49 modelli (uno per ente) nella cartella {r.modelli_dir}."
    assert touched_sheets(acts) == set()


# --------------------------------------------------------------------------- Solleciti, Documento


@pytest.fixture
def with_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[raccolta.Raccolta, Payload]:
    """A raccolta of five enti with their addresses (and a sixth without), nothing
    received, and its workbook as then built."""
    r = make_raccolta(tmp_path, enti_csv=ENTI_CSV + "019100,COMUNE,Senza Posta,CR,Z000,,,\n")
    monkeypatch.setenv(excel.ENV_RACCOLTA, str(r.path))
    empty = consolidate.consolidate(r, [], generated_at=GENERATED_AT)
    return r, payload_of(build_master(empty))


@pytest.fixture
def no_smtp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any SMTP connection fails the test: a button must never send mail."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a button must never send mail")

    monkeypatch.setattr(smtplib, "SMTP", refuse)
    monkeypatch.setattr(smtplib, "SMTP_SSL", refuse)


def test_solleciti_is_always_a_dry_run(
    with_addresses: tuple[raccolta.Raccolta, Payload], no_smtp: None
) -> None:
    """On a raccolta where nobody answered, Solleciti writes one reminder per ente with an
    address to the outbox, opens no SMTP connection, and says how many, where, and who
    was left out, in one informative alert."""
    r, payload = with_addresses
    acts = click(excel.solleciti, payload)
    (alert,) = [a["args"] for a in acts if a["func"] == "alert"]
    assert alert[3] == "info"
    outbox = r.path / "posta" / "uscita"
    written = sorted(outbox.glob("*.eml"))
    with_address = [e for e in r.registry if e.pec or e.email]
    assert len(written) == len(with_address) > 0
    assert alert[0].startswith(
        "Solleciti preparati in prova: nessun messaggio è stato inviato. "
        f"{len(written)} messaggi scritti nella cartella {outbox}."
    )
    assert len(r.registry) - len(with_address) == 1
    assert "\n\n1 ente escluso: Comune di Senza Posta: " in alert[0]
    assert "piano-abitativo solleciti" in alert[0]


def test_solleciti_twice_the_same_day_prepares_nothing_new(
    with_addresses: tuple[raccolta.Raccolta, Payload], no_smtp: None
) -> None:
    """A second click the same day writes the same reminders again, under the same names
    and no more: a dry run is not counted as a reminder sent."""
    r, payload = with_addresses
    click(excel.solleciti, payload)
    outbox = r.path / "posta" / "uscita"
    before = sorted(outbox.glob("*.eml"))
    acts = click(excel.solleciti, payload)
    (text,) = alerts(acts)
    assert sorted(outbox.glob("*.eml")) == before
    assert text.startswith(
        f"Solleciti preparati in prova: nessun messaggio è stato inviato. "
        f"{len(before)} messaggi scritti nella cartella {outbox}."
    )


# --------------------------------------------------------------------------- errors


def test_a_folder_that_is_not_a_raccolta_gives_one_italian_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: tuple[raccolta.Raccolta, Payload]
) -> None:
    """PIANO_ABITATIVO_RACCOLTA naming a folder without raccolta.toml gives one critical
    alert naming the variable and the cause, and nothing else."""
    _, payload = small
    monkeypatch.setenv(excel.ENV_RACCOLTA, str(tmp_path))
    acts = click(excel.consolida, payload)
    assert [a["func"] for a in acts] == ["alert"]
    text, title, _, mode, _ = acts[0]["args"]
    assert (title, mode) == ("Piano abitativo", "critical")
    assert excel.ENV_RACCOLTA in text and "non è una raccolta: manca raccolta.toml" in text
    assert "Traceback" not in text


def test_a_workbook_outside_any_raccolta_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: tuple[raccolta.Raccolta, Payload]
) -> None:
    """Without the variable, a workbook that is not saved in a raccolta (the remote engine
    knows only its name) is refused, even when the current folder is a raccolta."""
    r, payload = small
    monkeypatch.delenv(excel.ENV_RACCOLTA)
    monkeypatch.chdir(r.path)
    acts = click(excel.valida, payload)
    (text,) = alerts(acts)
    assert text.startswith("La cartella di lavoro non è dentro una raccolta")


def test_an_unexpected_error_is_logged_not_shown(
    small: tuple[raccolta.Raccolta, Payload], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception becomes one line for the clerk naming the log file, and the
    traceback goes to piano-abitativo.log in the raccolta; the entry point returns."""
    r, payload = small

    def broken(_: raccolta.Raccolta) -> Any:
        raise RuntimeError("disco\nguasto")

    monkeypatch.setattr(actions, "consolidation", broken)
    acts = click(excel.consolida, payload)
    (text,) = alerts(acts)
    log = r.path / excel.LOG_NAME
    assert text == UNEXPECTED.format(log=log) and "disco" not in text
    details = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in details and "pulsante consolida" in details
    assert 'raise RuntimeError("disco\\nguasto")' in details


def test_a_call_outside_excel_returns_and_explains_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Run without a calling workbook, an entry point returns normally and says on stderr
    that it is started by the workbook's button."""
    assert excel.consolida() is None
    err = capsys.readouterr().err
    assert err.startswith(
        "piano-abitativo: consolida si avvia con il pulsante della cartella "
        "di lavoro riepilogativa aperta in Excel"
    )
    assert "Traceback" not in err


def test_an_unexpected_error_before_the_raccolta_is_known_is_logged_for_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small: tuple[raccolta.Raccolta, Payload]
) -> None:
    """When the raccolta cannot even be looked for, the details go to the user's
    ~/.piano-abitativo/piano-abitativo.log, named in the alert."""
    _, payload = small
    monkeypatch.setenv("HOME", str(tmp_path))

    def broken(_: Path) -> Any:
        raise OSError("rete assente")

    monkeypatch.setattr(raccolta, "load", broken)
    acts = click(excel.genera_modelli, payload)
    (text,) = alerts(acts)
    log = tmp_path / ".piano-abitativo" / excel.LOG_NAME
    assert text == UNEXPECTED.format(log=log) and "rete" not in text
    assert "OSError: rete assente" in log.read_text(encoding="utf-8")


def test_an_error_of_the_system_is_one_italian_sentence_without_log(
    small: tuple[raccolta.Raccolta, Payload],
) -> None:
    """A file named «arrivi» where Importa wants its folder is an error of the system, not
    a bug: one critical alert in Italian naming the path, and no log is written."""
    r, payload = small
    (r.path / "arrivi").write_text("non una cartella", encoding="utf-8")
    acts = click(excel.importa, payload)
    assert [a["func"] for a in acts] == ["alert"]
    text, _, _, mode, _ = acts[0]["args"]
    assert mode == "critical"
    assert (
        text == f"Operazione non riuscita su {r.path / 'arrivi'}: esiste già. Risolvere e ripetere."
    )
    assert not (r.path / excel.LOG_NAME).exists()


# --------------------------------------------------------------------------- import, pure part

UNEXPECTED = (
    "Errore imprevisto: l'operazione non è stata completata per un guasto del "
    "programma, da segnalare all'assistenza. Dettagli in {log}"
)
ENTRY_POINTS = ("importa", "valida", "consolida", "genera_modelli", "solleciti", "documento")


def test_import_needs_neither_excel_nor_xlwings_nor_a_licence() -> None:
    """Importing piano_abitativo.excel in a fresh interpreter without the licence key loads
    no xlwings, and every entry point is a callable without parameters."""
    code = (
        "import inspect, sys; import piano_abitativo.excel as x; "
        f"names = {ENTRY_POINTS!r}; "
        "print([len(inspect.signature(getattr(x, n)).parameters) for n in names], "
        "'xlwings' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLWINGS_LICENSE_KEY"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[0, 0, 0, 0, 0, 0] False"


def test_sheet_grid_keeps_text_as_text() -> None:
    """Text that Excel would turn into a formula, a number or a date gets the apostrophe
    prefix; formulas, plain text, numbers and empty cells are written as they are."""
    sh = SheetLayout("Prova")
    sh.cells.update(
        {
            (0, 0): Cell("019035"),
            (0, 1): Cell('=HYPERLINK("http://x")'),
            (0, 2): Cell(7, formula="=SUM(B3:B6)"),
            (1, 0): Cell("Comune di Crema"),
            (1, 1): Cell(dt.time(12, 0)),
            (2, 0): Cell("@cmd"),
            (2, 1): Cell("VERO"),
            (2, 3): Cell(3.5),
        }
    )
    assert excel.sheet_grid(sh) == [
        ["'019035", '\'=HYPERLINK("http://x")', "=SUM(B3:B6)", None],
        ["Comune di Crema", 0.5, None, None],
        ["'@cmd", "'VERO", None, 3.5],
    ]


def test_layout_names_each_sheet_once(world: World) -> None:
    """layout_grids gives one rectangular grid per sheet of the master, in its order."""
    from piano_abitativo.master.sheets import master_layout

    full = consolidate.consolidate(world.r, receipts(world.r), generated_at=GENERATED_AT)
    grids = excel.layout_grids(master_layout(full))
    assert list(grids) == [s["name"] for s in world.current["sheets"][:-1]]
    assert all(len({len(row) for row in g}) == 1 for g in grids.values())
    assert grids[TABLE_SHEETS["b"]][6] == ["Totale", "=SUM(B3:B6)", None]
