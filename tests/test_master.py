"""The consolidated master workbook: the Cremasco 2025 returns imported the real way, the
master recalculated by LibreOffice from its formulas alone, names, safety of the formulas,
determinism, anomalies, atomic writing and the .xlsm hooks."""

from __future__ import annotations

import datetime as dt
import html
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlwings
from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.app.commands import crea
from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation import consolidate
from piano_abitativo.consolidation.consolidate import TOTAL_FIELDS, Consolidation
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta
from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.registry import Ente, normalise_name
from piano_abitativo.core.schema import SCHEMA, Kind
from piano_abitativo.mail.folder import import_files
from piano_abitativo.master.dashboard import CRUSCOTTO_HEADER_ROW
from piano_abitativo.master.model import BUTTON_INSTRUCTION_COL
from piano_abitativo.master.sheets import (
    BUTTON_COL,
    BUTTON_FIRST_ROW,
    REPORT_HEADER_ROW,
    SHEET_ANOMALIE,
    SHEET_CRUSCOTTO,
    SHEET_DATI,
    SHEET_REPORT,
    TABLE_FIRST_ROW,
    TABLE_SHEETS,
    MasterButton,
    MasterLocked,
    build_master,
    master_path,
    write_master,
)
from piano_abitativo.simulation import demo
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import (
    TemplateFactory,
    _without_cached_results,
    context_for,
    template_filename,
)

from .lo_runner import recalculate, require_libreoffice
from .test_xlsm import button_boxes
from .workbook_values import named_values

GENERATED_AT = dt.datetime(2024, 12, 20, 9, 30, tzinfo=archive.TZ)

#: the totals of the published plan (a) is not printed there: 1.697 / 1.680 / 17)
PLAN_TOTALS = {
    "a_totale": 1697,
    "a_sap": 1680,
    "a_sas": 17,
    "b_carenza_manutentiva": 22,
    "c_nuova_edificazione": 5,
    "d_turnover": 3,
    "e_conferite_privati": 0,
    "f_totale_assegnabili": 30,
    "j_sat": 8,
    "k_assegnate_anno_precedente": 59,
}

ALER = "ALER Brescia-Cremona-Mantova"
#: the rows of each table, spelled as the plan prints them
PLAN_ROWS: dict[str, list[str]] = {
    "a": [
        ALER,
        "Comune di Bagnolo Cremasco",
        "Comune di Casale Cremasco-Vidolasco",
        "Comune di Casaletto Ceredano",
        "Comune di Casaletto di Sopra",
        "Comune di Castelleone",
        "Comune di Crema",
        "Comune di Cremosano",
        "Comune di Gombito",
        "Comune di Izano",
        "Comune di Montodine",
        "Comune di Offanengo",
        "Comune di Pandino",
        "Comune di Pianengo",
        "Comune di Rivolta d'Adda",
        "Comune di Romanengo",
        "Comune di Sergnano",
        "Comune di Soncino",
        "Comune di Spino d'Adda",
        "Comune di Torlino Vimercati",
        "Comune di Trescore Cremasco",
        "Comune di Trigolo",
        "Comune di Vaiano Cremasco",
        "Comune di Vailate",
    ],
    "b": [ALER, "Comune di Crema", "Comune di Rivolta D'Adda", "Comune di Trescore Cremasco"],
    "c": ["Comune di Crema", "Comune di Trescore Cremasco"],
    "d": [ALER, "Comune di Castelleone", "Comune di Crema"],
    "f": [
        ALER,
        "Comune di Castelleone",
        "Comune di Crema",
        "Comune di Rivolta D'Adda",
        "Comune di Trescore Cremasco",
    ],
    "i": ["Comune di Castelleone"],
    "j": [
        ALER,
        "Comune di Bagnolo Cremasco",
        "Comune di Casale Cremasco Vidolasco",
        "Comune di Casaletto Ceredano",
        "Comune di Pandino",
        "Comune di Rivolta D'Adda",
        "Comune di Trescore Cremasco",
        "Comune di Vailate",
    ],
    "k": [
        ALER,
        "Comune di Bagnolo Cremasco",
        "Comune di Casale Cremasco Vidolasco",
        "Comune di Castelleone",
        "Comune di Crema",
        "Comune di Pandino",
        "Comune di Pianengo",
        "Comune di Rivolta D'Adda",
    ],
}

#: the functions excel.md lists as safe in both Excel 2010+ and LibreOffice 7.4
SAFE_FUNCTIONS = {
    "SUM",
    "SUMIF",
    "SUMIFS",
    "COUNTIF",
    "COUNTIFS",
    "IF",
    "IFERROR",
    "AND",
    "OR",
    "NOT",
    "COUNT",
    "COUNTA",
    "COUNTBLANK",
    "ISBLANK",
    "ISNUMBER",
    "ISTEXT",
    "ISERROR",
    "ISERR",
    "ISNA",
    "ISLOGICAL",
    "ISNONTEXT",
    "VLOOKUP",
    "INDEX",
    "MATCH",
    "SUMPRODUCT",
    "ROUND",
    "ROUNDUP",
    "ROUNDDOWN",
    "INT",
    "ABS",
    "MIN",
    "MAX",
    "AVERAGE",
    "LEN",
    "TRIM",
    "UPPER",
    "LOWER",
    "LEFT",
    "RIGHT",
    "MID",
    "FIND",
    "SEARCH",
    "SUBSTITUTE",
    "EXACT",
    "REPT",
    "CONCATENATE",
    "VALUE",
    "DATE",
    "YEAR",
    "MONTH",
    "DAY",
    "EOMONTH",
}


@dataclass
class World:
    r: raccolta.Raccolta
    #: the 26 returns of 2025, each valid
    cons: Consolidation
    #: then Castelleone sends a wrong version (i = 15) and an unknown ente sends a file
    faulty: Consolidation
    base: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("master")
    r = crea(base / "raccolta", anno=2025, scadenza=dt.date(2024, 12, 18))
    first, later = base / "ritorni", base / "ritorni_dopo"
    import_files(r, demo.write_returns(r, first))
    cons = consolidate.consolidate(r, receipts(r), generated_at=GENERATED_AT)

    # two days later Castelleone sends a wrong version (i = 15)
    castelleone = {ret.codice for ret in demo.cremasco_2025_returns() if ret.nome == "Castelleone"}
    demo.write_returns(
        r,
        later,
        only=castelleone,
        prefix="seconda_",
        changes={c: {"i_forze_polizia": 15} for c in castelleone},
        delay=dt.timedelta(days=2),
    )
    factory = TemplateFactory(context_for(r))
    ghost = Ente("099999", "COMUNE", "Fantasma")
    stray = later / template_filename(ghost, r.anno)
    stray.write_bytes(fill_template(factory.render(ghost), {"a_sap": 3}))
    import_files(r, [later])
    faulty = consolidate.consolidate(r, receipts(r), generated_at=GENERATED_AT)
    return World(r, cons, faulty, base)


@pytest.fixture(scope="module")
def recalculated(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One LibreOffice run: the master as built (no cached results) and a copy where
    Crema's b) was corrected in Dati from 7 to 9."""
    require_libreoffice()
    tmp = tmp_path_factory.mktemp("lo")
    (tmp / "in").mkdir()
    data = build_master(world.cons)
    plain = tmp / "in" / "piano.xlsx"
    plain.write_bytes(_without_cached_results(data))
    wb = openpyxl.load_workbook(io.BytesIO(data))
    cell = _dati_cell(wb[SHEET_DATI], "019035", "b) Carenza manutentiva")
    assert cell.value == 7
    cell.value = 9
    edited = tmp / "in" / "modificato.xlsx"
    wb.save(edited)  # openpyxl writes formulas without cached results
    empty = tmp / "in" / "vuoto.xlsx"
    nothing = consolidate.consolidate(world.r, [], generated_at=GENERATED_AT)
    empty.write_bytes(_without_cached_results(build_master(nothing)))
    out = recalculate([plain, edited, empty], tmp / "out")
    return {"piano": out[0], "modificato": out[1], "vuoto": out[2]}


def _dati_cell(ws: Any, codice: str, header: str) -> Any:
    headers = {c.value: c.column for c in ws[3]}
    for row in ws.iter_rows(min_row=4):
        if row[0].value == codice:
            return ws.cell(row=row[0].row, column=headers[header])
    raise AssertionError(f"{codice} not in Dati")


def _table_rows(ws: Any) -> list[tuple[Any, ...]]:
    """The data rows of a table sheet: from row 3 to the Totale / count row."""
    rows = []
    for row in ws.iter_rows(min_row=3, values_only=True):
        if row[0] in (None, "Totale", "Numero di Comuni"):
            break
        rows.append(row)
    return rows


@pytest.mark.libreoffice
def test_recalculated_totals_are_the_plans(world: World, recalculated: dict[str, Path]) -> None:
    """Recalculated by LibreOffice from formulas only, every named total equals the
    published plan and Python's own sums."""
    require_libreoffice()
    values = named_values(recalculated["piano"])
    got = {f.id: values[f"totale_{f.id}"] for f in TOTAL_FIELDS}
    assert got == PLAN_TOTALS
    assert got == world.cons.totals
    ws = openpyxl.load_workbook(recalculated["piano"], data_only=True)[SHEET_CRUSCOTTO]
    counts = {r[3]: r[4] for r in ws.iter_rows(min_row=2, max_row=7, values_only=True)}
    assert counts == {
        "Enti nell'elenco": 49,
        "Hanno risposto": 26,
        "Non hanno risposto": 23,
        "Da correggere": 0,
        "Ricevuti con avvisi": 0,
        "Ritorni non attribuiti": 0,
    }


@pytest.mark.libreoffice
def test_recalculated_tables_list_the_plans_rows(recalculated: dict[str, Path]) -> None:
    """Each table lists exactly the plan's rows; i) is Castelleone 10, g) and h) none."""
    require_libreoffice()
    wb = openpyxl.load_workbook(recalculated["piano"], data_only=True)
    for letter, names in PLAN_ROWS.items():
        rows = _table_rows(wb[TABLE_SHEETS[letter]])
        assert {normalise_name(r[0]) for r in rows} == {normalise_name(n) for n in names}, letter
        assert len(rows) == len(names), letter
    assert [r[:2] for r in _table_rows(wb[TABLE_SHEETS["i"]])] == [("Comune di Castelleone", 10)]
    for letter in "gh":
        ws = wb[TABLE_SHEETS[letter]]
        assert [r[0] for r in _table_rows(ws)] == ["nessun Comune"], letter
        count_cell = xl_rowcol_to_cell(TABLE_FIRST_ROW + 1, 1)  # "Numero di Comuni"
        assert ws[count_cell].value == 0, letter
    assert [r[0] for r in _table_rows(wb[TABLE_SHEETS["e"]])] == ["nessuna"]
    assert [r[1] for r in _table_rows(wb[TABLE_SHEETS["f"]])] == [5, 1, 10, 8, 6]
    check = next(
        row
        for row in wb[TABLE_SHEETS["f"]].iter_rows()
        if str(row[0].value).startswith("Controllo")
    )
    assert check[1].value == "✔"


@pytest.mark.libreoffice
def test_recalculated_report_has_the_26_enti_with_their_times(
    recalculated: dict[str, Path],
) -> None:
    """The Report lists the 26 enti that answered, with the date and time of reception of
    the source (Crema: 05-12-2024 09:44:55), in order of reception."""
    require_libreoffice()
    ws = openpyxl.load_workbook(recalculated["piano"], data_only=True)[SHEET_REPORT]
    assert ws[xl_rowcol_to_cell(REPORT_HEADER_ROW, 1)].value == "Data Ricezione"
    rows = [r for r in ws.iter_rows(min_row=4, values_only=True) if r[0]]
    assert len(rows) == 26
    got = {normalise_name(r[0]): r for r in rows}
    expected = {normalise_name(ret.nome): ret.ricevuto for ret in demo.cremasco_2025_returns()}
    assert set(got) == set(expected)
    stamps = []
    for key, when in expected.items():
        day, time = got[key][1], got[key][2]
        stamp = dt.datetime.combine(day.date(), dt.time()) + dt.timedelta(
            seconds=round(
                time.hour * 3600 + time.minute * 60 + time.second + time.microsecond / 1e6
            )
        )
        stamps.append(stamp)
        if when is not None:
            assert stamp == when.astimezone(archive.TZ).replace(tzinfo=None), key
    crema = got["crema"]
    assert crema[1].strftime("%d-%m-%Y") == "05-12-2024"
    assert crema[3:6] == (0, 358, 10)  # SAS, SAP, complessivo
    assert crema[-2:] == ("No", archive.FONTE_FILE)
    times = [
        dt.datetime.combine(r[1].date(), dt.time())
        + dt.timedelta(hours=r[2].hour, minutes=r[2].minute, seconds=r[2].second)
        for r in rows
    ]
    assert times == sorted(times)


@pytest.mark.libreoffice
def test_a_value_corrected_in_dati_updates_the_totals(recalculated: dict[str, Path]) -> None:
    """Crema's b) changed from 7 to 9 in Dati gives totale b 24 and totale f 32."""
    require_libreoffice()
    values = named_values(recalculated["modificato"])
    assert values["totale_b_carenza_manutentiva"] == 24
    assert values["totale_f_totale_assegnabili"] == 32
    assert values["totale_a_totale"] == 1697


@pytest.mark.libreoffice
def test_before_any_return_every_table_says_none_and_totals_are_zero(
    recalculated: dict[str, Path],
) -> None:
    """With no return yet every table shows its "nessuna" row and every total is 0."""
    require_libreoffice()
    values = named_values(recalculated["vuoto"])
    assert {f.id: values[f"totale_{f.id}"] for f in TOTAL_FIELDS} == dict.fromkeys(PLAN_TOTALS, 0)
    wb = openpyxl.load_workbook(recalculated["vuoto"], data_only=True)
    for letter, sheet in TABLE_SHEETS.items():
        expected = "nessun Comune" if letter in "ghi" else "nessuna"
        assert [r[0] for r in _table_rows(wb[sheet])] == [expected], letter
    counts = {
        r[3]: r[4] for r in wb[SHEET_CRUSCOTTO].iter_rows(min_row=2, max_row=7, values_only=True)
    }
    assert counts["Enti nell'elenco"] == 49 and counts["Non hanno risposto"] == 49
    assert counts["Hanno risposto"] == 0
    assert wb[SHEET_REPORT][xl_rowcol_to_cell(REPORT_HEADER_ROW + 1, 0)].value == "nessuna"


def _formulas(data: bytes) -> list[str]:
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            if not name.endswith(".xml"):
                continue
            xml = zf.read(name).decode("utf-8")
            for tag in ("f", "formula", "definedName"):
                out += [
                    html.unescape(m) for m in re.findall(rf"<{tag}\b[^>]*>([^<]*)</{tag}>", xml)
                ]
    return out


def test_only_functions_safe_in_excel_and_libreoffice(world: World) -> None:
    """Every formula of the master (cells, conditional formats, names) uses only the
    functions excel.md lists as safe in Excel 2010+ and LibreOffice 7.4."""
    formulas = _formulas(build_master(world.faulty))
    used: set[str] = set()
    for f in formulas:
        bare = re.sub(r'"(?:[^"]|"")*"', '""', f)
        bare = re.sub(r"'(?:[^']|'')*'", "S", bare)
        used |= set(re.findall(r"\b([A-Za-z_][A-Za-z0-9._]*)\s*\(", bare))
    assert {"SUM", "COUNTIF", "COUNTA", "IF", "INT"} <= used
    assert used <= SAFE_FUNCTIONS, used - SAFE_FUNCTIONS
    assert len(formulas) > 300


def test_each_total_has_a_workbook_name_on_its_total_cell(world: World) -> None:
    """totale_<field> exists for each of the 10 total fields, workbook-level, on the
    Totale row of its table: a SUM of the rows, f) the sum of the names b)–e)."""
    wb = openpyxl.load_workbook(io.BytesIO(build_master(world.cons)))
    expected = {f"totale_{f.id}": TABLE_SHEETS[f.section or ""] for f in TOTAL_FIELDS}
    assert len(expected) == sum(1 for f in SCHEMA.plan_fields if f.kind is Kind.COUNT)
    for name, sheet in expected.items():
        assert name in wb.defined_names, name
        assert all(name not in ws.defined_names for ws in wb.worksheets)
        ((target, coord),) = list(wb.defined_names[name].destinations)
        assert target == sheet
        cell = wb[sheet][coord.replace("$", "")]
        assert wb[sheet].cell(row=cell.row, column=1).value == "Totale"
        if name == "totale_f_totale_assegnabili":
            assert cell.value == (
                "=totale_b_carenza_manutentiva+totale_c_nuova_edificazione"
                "+totale_d_turnover+totale_e_conferite_privati"
            )
        else:
            assert re.fullmatch(
                rf"=SUM\({cell.column_letter}3:{cell.column_letter}"
                rf"{cell.row - 1}\)",
                cell.value,
            ), cell.value


def _sheet_xml(data: bytes) -> dict[str, str]:
    """Each sheet's XML by sheet name, and "workbook" for the workbook part."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        wbxml = zf.read("xl/workbook.xml").decode("utf-8")
        rels = zf.read("xl/_rels/workbook.xml.rels").decode("utf-8")
        targets = dict(re.findall(r'Id="(rId\d+)"[^>]*Target="([^"]+)"', rels))
        targets |= {k: v for v, k in re.findall(r'Target="([^"]+)"[^>]*Id="(rId\d+)"', rels)}
        out = {"workbook": wbxml}
        for name, rid in re.findall(r'<sheet name="([^"]+)" sheetId="\d+" r:id="(rId\d+)"', wbxml):
            out[html.unescape(name)] = zf.read(
                "xl/" + targets[rid].lstrip("/").removeprefix("xl/")
            ).decode("utf-8")
        return out


def test_wide_sheets_print_landscape_on_pages_across_with_repeated_headers(
    world: World,
) -> None:
    """Report, Dati and Anomalie print landscape, fitted to as many pages across as keep
    them readable (Dati's 20 columns on 3, not one unreadable page), as many pages down
    as needed, the header row and the ente's name repeated on every page; the Cruscotto
    on one page across."""
    xml = _sheet_xml(build_master(world.cons))
    titles = dict(
        (html.unescape(sheet), ref)
        for sheet, ref in re.findall(
            r'<definedName name="_xlnm.Print_Titles" localSheetId="\d+">([^!]+)!([^<]+)<',
            xml["workbook"],
        )
    )
    for sheet, across, titles_ref in (
        (SHEET_REPORT, "2", "$A:$A,'Report programmazione'!$3:$3"),
        (SHEET_DATI, "3", "$A:$B,Dati!$3:$3"),
        (SHEET_ANOMALIE, "2", "$A:$A,Anomalie!$3:$3"),
        (SHEET_CRUSCOTTO, None, "$9:$9"),
    ):
        setup = re.search(r"<pageSetup [^>]*/>", xml[sheet])
        assert setup is not None, sheet
        assert 'orientation="landscape"' in setup.group(0) and 'fitToHeight="0"' in setup.group(0)
        if across is None:
            assert "fitToWidth" not in setup.group(0), sheet  # 1, the default
        else:
            assert f'fitToWidth="{across}"' in setup.group(0), (sheet, setup.group(0))
        assert '<pageSetUpPr fitToPage="1"/>' in xml[sheet]
        quoted = "'Report programmazione'" if sheet == SHEET_REPORT else sheet
        assert titles[quoted] == titles_ref, (sheet, titles[quoted])


def test_each_chart_prints_on_its_own_page_and_reads_workbook_names(world: World) -> None:
    """The Grafici sheet breaks the page before each chart and prints at a fixed scale
    (Excel ignores page breaks when fitting); every series reads a grafico_* name, defined
    at workbook level on the rows of its table: f) all its entries, a) the ALER apart
    from the Comuni; the value axes start at nought."""
    data = build_master(world.cons)
    xml = _sheet_xml(data)
    grafici = xml["Grafici"]
    assert re.findall(r'<brk id="(\d+)"', grafici) and "fitToPage" not in grafici
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        charts = [zf.read(n).decode() for n in sorted(zf.namelist()) if "charts/chart" in n]
    assert len(charts) == 3
    refs = [f for c in charts for f in re.findall(r"<c:f>([^<]+)</c:f>", c)]
    assert refs and all(re.fullmatch(r"\[0\]!grafico_\w+", f) for f in refs), refs
    assert all('<c:min val="0"/>' in c for c in charts)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    a = wb[TABLE_SHEETS["a"]]
    for f in refs:
        name = f.removeprefix("[0]!")
        assert name in wb.defined_names, name

    def block(name: str) -> list[Any]:
        ((sheet, coord),) = list(wb.defined_names[name].destinations)
        got = wb[sheet][coord.replace("$", "")]
        return [c.value for row in got for c in row] if ":" in coord else [got.value]

    entries = [r[0] for r in a.iter_rows(min_row=3, max_col=1, values_only=True)]
    entries = entries[: entries.index("Totale")]
    altri, comuni = block("grafico_a_altri_enti"), block("grafico_a_comuni_enti")
    assert altri == ["ALER Brescia-Cremona-Mantova"] and altri + comuni == entries
    assert len(block("grafico_a_comuni_sap")) == len(comuni)
    f_rows = [r[0] for r in wb[TABLE_SHEETS["f"]].iter_rows(min_row=3, max_col=1, values_only=True)]
    assert block("grafico_f_enti") == f_rows[: f_rows.index("Totale")]


def test_two_builds_are_byte_identical(world: World) -> None:
    """The same Consolidation gives the same bytes, dated by its generation time."""
    first = build_master(world.faulty)
    assert build_master(world.faulty) == first
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        core = zf.read("docProps/core.xml").decode("utf-8")
    assert "2024-12-20T08:30:00Z" in core  # 09:30 in Rome


def test_cruscotto_and_anomalie_show_a_wrong_version_and_a_stray_return(world: World) -> None:
    """Castelleone's later version with i) = 15 makes it "da correggere" with its R4 error
    on D21, while the tables keep its earlier valid values; the unknown ente's file is
    listed apart in the Cruscotto and in the Anomalie."""
    data = build_master(world.faulty)
    wb = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    crus = wb[SHEET_CRUSCOTTO]
    rows = {r[1]: r for r in crus.iter_rows(min_row=10, values_only=True) if r[0]}
    castelleone = rows["Comune di Castelleone"]
    assert castelleone[3] == "da correggere"
    assert castelleone[6] == 2 and castelleone[8] >= 1
    assert castelleone[10].startswith("seconda_")
    assert rows["Comune di Crema"][3] == "ricevuto"
    assert rows["Comune di Camisano"][3] == "non ricevuto"
    labels = {r[3]: r[4] for r in crus.iter_rows(min_row=2, max_row=7, values_only=True)}
    assert labels["Da correggere"] == 1 and labels["Ritorni non attribuiti"] == 1
    col_a = [r[0] for r in crus.iter_rows(values_only=True)]
    stray_title = col_a.index("Ritorni non attribuiti a un ente dell'elenco")
    stray = next(crus.iter_rows(min_row=stray_title + 3, max_row=stray_title + 3, values_only=True))
    assert stray[:4] == ("099999", "Fantasma", "COMUNE", "non attribuito")
    assert stray[10] == "Piano_abitativo_2025_Comune_di_Fantasma.xlsx"
    assert "099999" in stray[11]  # M12: not in the registry

    anomalie = [r for r in wb[SHEET_ANOMALIE].iter_rows(min_row=4, values_only=True)]
    r4 = [r for r in anomalie if r[0] == "Comune di Castelleone" and r[4] == "R4"]
    assert len(r4) == 1
    assert r4[0][3] == "errore" and r4[0][6] == LAYOUT.cell("i_forze_polizia") and r4[0][8] == 15
    assert any(r[4] == "M12" and r[1] == stray[10] for r in anomalie)
    assert sum(1 for r in anomalie if r[4] == "R9") == 23
    castelleone_rows = [r[3] for r in anomalie if r[0] == "Comune di Castelleone"]
    assert castelleone_rows == sorted(castelleone_rows, key=lambda g: g != "errore")

    polizia = _table_rows(wb[TABLE_SHEETS["i"]])
    assert [r[:2] for r in polizia] == [("Comune di Castelleone", 10)]
    assert _dati_cell(wb[SHEET_DATI], "019025", "i) Forze di Polizia (%)").value == 10
    assert _dati_cell(wb[SHEET_DATI], "019025", "Stato").value == "da correggere"


def test_write_master_replaces_the_file_atomically(world: World, tmp_path: Path) -> None:
    """write_master puts the master in the raccolta folder, replaces an old one and leaves
    no temporary file behind."""
    target = master_path(tmp_path, 2025)
    assert target == tmp_path / "Consolidato_piano_abitativo_2025.xlsx"
    target.write_bytes(b"vecchio")
    assert write_master(world.cons, target) == target
    assert target.read_bytes() == build_master(world.cons)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


@pytest.mark.parametrize("lock", ["excel", "libreoffice"])
def test_write_master_refuses_a_file_open_in_excel_or_libreoffice(
    world: World, tmp_path: Path, lock: str
) -> None:
    """With Excel's "~$" owner file or LibreOffice's ".~lock" file next to the master,
    write_master names who has it open and leaves the old file untouched."""
    target = master_path(tmp_path, 2025)
    target.write_bytes(b"vecchio")
    if lock == "excel":
        user = "m.rossi"
        owner = bytes([len(user)]) + user.encode("cp1252")
        (tmp_path / f"~${target.name}").write_bytes(owner.ljust(165, b"\x20"))
        program = "Excel"
    else:
        (tmp_path / f".~lock.{target.name}#").write_text(
            "m.rossi,PC-UFFICIO,PC-UFFICIO,25.11.2026 10:00,file:///C:/Users/m.rossi;",
            encoding="utf-8",
        )
        program = "LibreOffice"
    with pytest.raises(MasterLocked) as info:
        write_master(world.cons, target)
    assert f"è aperto da m.rossi in {program}: chiuderlo e ripetere" in str(info.value)
    assert target.read_bytes() == b"vecchio"
    assert len(list(tmp_path.iterdir())) == 2


def test_write_master_when_the_os_refuses_the_replace(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When os.replace fails with PermissionError (Windows: the file is open) the error is
    MasterLocked in Italian, the old file is intact and no temporary file remains."""
    target = master_path(tmp_path, 2025)
    target.write_bytes(b"vecchio")

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(MasterLocked) as info:
        write_master(world.cons, target)
    assert "aperto" in str(info.value) and target.name in str(info.value)
    assert target.read_bytes() == b"vecchio"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def _xlwings_vba_project() -> bytes:
    xlsm = Path(xlwings.__file__).parent / "quickstart_standalone.xlsm"
    with zipfile.ZipFile(xlsm) as zf:
        return zf.read("xl/vbaProject.bin")


def test_vba_project_and_buttons_make_an_xlsm(world: World, tmp_path: Path) -> None:
    """With a vbaProject.bin and two buttons the master is a macro-enabled workbook whose
    Cruscotto carries both buttons bound to their macros, each with its instruction."""
    vba = _xlwings_vba_project()
    buttons = [
        MasterButton(
            "Consolida",
            "Aggiorna il consolidato",
            "Rilegge i ritorni archiviati e aggiorna tutte le tabelle.",
        ),
        MasterButton(
            "Importa", "Importa ritorni", "Archivia e controlla i file della cartella ritorni."
        ),
    ]
    target = write_master(
        world.cons, master_path(tmp_path, 2025, ".xlsm"), vba_project=vba, buttons=buttons
    )
    with zipfile.ZipFile(target) as zf:
        assert zf.read("xl/vbaProject.bin") == vba
        types = zf.read("[Content_Types].xml").decode("utf-8")
        rels = zf.read("xl/worksheets/_rels/sheet1.xml.rels").decode("utf-8")
        vml_name = re.search(r'Target="\.\./drawings/(vmlDrawing\d+\.vml)"', rels)
        assert vml_name is not None
        vml = zf.read(f"xl/drawings/{vml_name.group(1)}").decode("utf-8")
        workbook = zf.read("xl/workbook.xml").decode("utf-8")
    assert "application/vnd.ms-excel.sheet.macroEnabled.main+xml" in types
    assert re.findall(r"<x:FmlaMacro>\[0\]!(\w+)</x:FmlaMacro>", vml) == ["Consolida", "Importa"]
    assert "Aggiorna il consolidato" in vml
    assert 'codeName="ThisWorkbook"' in workbook
    ws = openpyxl.load_workbook(target, keep_vba=True)[SHEET_CRUSCOTTO]
    assert ws[xl_rowcol_to_cell(BUTTON_FIRST_ROW - 1, BUTTON_COL)].value == "Comandi"
    instructions = [
        ws[xl_rowcol_to_cell(BUTTON_FIRST_ROW + i, BUTTON_INSTRUCTION_COL)].value
        for i in range(len(buttons))
    ]
    assert instructions == [b.istruzione for b in buttons]
    # with 26 returns the table's columns are wider, yet the buttons stay on the first
    # screen: left of the saved window's right edge (805 pt), above the table
    window = re.search(r'windowWidth="(\d+)"', workbook)
    assert window is not None
    for caption, left, right, top, _ in button_boxes(target.read_bytes()):
        assert 0 < left < right <= int(window.group(1)) / 20, (caption, right)
        assert top < CRUSCOTTO_HEADER_ROW


def test_macros_need_an_xlsm_name_and_buttons_need_macros(world: World, tmp_path: Path) -> None:
    """A workbook with macros is never written under an .xlsx name, and buttons without
    the macros they call are refused."""
    with pytest.raises(ValueError, match="xlsm"):
        write_master(world.cons, tmp_path / "x.xlsx", vba_project=_xlwings_vba_project())
    with pytest.raises(ValueError, match="vba_project"):
        build_master(world.cons, buttons=[MasterButton("M", "m", "m")])
    assert list(tmp_path.iterdir()) == []


def test_the_anomalie_colours_reach_the_rows_a_refresh_may_add(world: World) -> None:
    """The severity colours of *Anomalie* cover 5000 rows below the header, not just the
    rows written when the master was built: rows the *Consolida* button adds later are
    coloured like the others."""
    wb = openpyxl.load_workbook(io.BytesIO(build_master(world.cons)))
    ws = wb[SHEET_ANOMALIE]
    ranges = {str(cf.sqref) for cf in ws.conditional_formatting}
    assert ranges == {"D4:D5003"}
    assert ws.max_row < 5003
