"""Year over year: a 2026 raccolta linked to the 2025 one (the built-in Cremasco data).

In 2026 Crema halves its SAP (R13), Trescore Cremasco announces 20 new units, so that f)
exceeds its 2025 SAP stock (R14), the ALER, re-coded and spelled differently in the 2026
registry, more than doubles its SAS (R15), and Soncino sends the same figures as in 2025.
Montodine, which answered in 2025, is no longer in the 2026 registry.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.app import commands as actions
from piano_abitativo.app.commands import crea
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation import confronto, context
from piano_abitativo.consolidation.checking import validation_context
from piano_abitativo.consolidation.consolidate import Consolidation, EnteStatus
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.problems import Severity
from piano_abitativo.core.registry import default_registry
from piano_abitativo.core.schema import SHEET_SCHEDA
from piano_abitativo.core.settings import Settings
from piano_abitativo.simulation.demo import write_returns
from piano_abitativo.validation.validate import ValidationContext, validate_file

from .sample_returns import MakeReturn

CREMA_CODICE, TRESCORE, SONCINO, MONTODINE = "019035", "019109", "019097", "019059"
ALER_2025, ALER_2026 = "ALER-BCM", "ALER-BS-CR-MN"
CONFRONTO_CODES = {"R13", "R14", "R15"}
CHANGES_2026: dict[str, dict[str, Any]] = {
    CREMA_CODICE: {"a_sap": 170},  # 358 in 2025
    TRESCORE: {"c_nuova_edificazione": 20},  # f = 3 + 20 = 23 > 21 SAP in 2025
    ALER_2026: {"a_sas": 25},  # 11 in 2025
}


@pytest.fixture(scope="module")
def built_2025(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2025 raccolta with the 26 returns of the published plan, imported."""
    base = tmp_path_factory.mktemp("anno2025")
    r = crea(base / "raccolta-2025", anno=2025)
    actions.importa(r, write_returns(r, base / "risposte"))
    return r.path


@pytest.fixture
def r2025(built_2025: Path, tmp_path: Path) -> Path:
    """A private copy of the 2025 raccolta, next to where the 2026 one goes."""
    return Path(shutil.copytree(built_2025, tmp_path / "raccolta-2025"))


@pytest.fixture
def enti_2026(tmp_path: Path) -> Path:
    """The 2026 registry: the ALER re-coded and spelled in capitals."""
    text = (
        default_registry()
        .to_csv()
        .replace(
            "ALER-BCM,ALER,ALER Brescia-Cremona-Mantova",
            f"{ALER_2026},ALER,ALER BRESCIA CREMONA MANTOVA",
        )
    )
    assert ALER_2026 in text
    path = tmp_path / "enti_2026.csv"
    path.write_text(text, encoding="utf-8")
    return path


Make2026 = Callable[..., rc.Raccolta]


@pytest.fixture
def make_2026(
    tmp_path: Path, r2025: Path, enti_2026: Path, monkeypatch: pytest.MonkeyPatch
) -> Make2026:
    """crea the 2026 raccolta through the CLI (linked or not), fill its returns, drop
    Montodine from its registry and import them."""

    def make(*, linked: bool) -> rc.Raccolta:
        monkeypatch.chdir(tmp_path)  # --precedente is relative to the working directory
        link = ["--precedente", "raccolta-2025"] if linked else []
        assert (
            main(["crea", "raccolta-2026", "--anno", "2026", "--enti", str(enti_2026), *link]) == 0
        )
        r = rc.load(tmp_path / "raccolta-2026")
        files = write_returns(
            r,
            tmp_path / "risposte-2026",
            changes=CHANGES_2026,
            only={CREMA_CODICE, TRESCORE, SONCINO, ALER_2026},
        )
        csv = r.path / rc.REGISTRY_NAME
        lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
        csv.write_text(
            "".join(ln for ln in lines if not ln.startswith(MONTODINE)), encoding="utf-8"
        )
        r = rc.load(r.path)
        actions.importa(r, files)
        return rc.load(r.path)

    return make


def _status(cons: Consolidation, codice: str) -> EnteStatus:
    return next(s for s in cons.enti if s.ente.codice == codice)


def _yoy_problems(cons: Consolidation, codice: str) -> list[Any]:
    latest = _status(cons, codice).latest
    assert latest is not None
    return [p for p in latest.report.problems if p.code in CONFRONTO_CODES]


def test_crea_precedente_links_and_the_jumps_get_avvisi_with_both_years(
    make_2026: Make2026,
) -> None:
    """crea --precedente writes the link relative to the raccolta; R13, R14 and R15 appear
    on the right cells with both values and both years; the unchanged ente gets none."""
    r = make_2026(linked=True)
    assert 'precedente = "../raccolta-2025"' in r.config_path.read_text(encoding="utf-8")
    assert r.precedente_path == r.path.parent / "raccolta-2025"
    cons = actions.consolidation(r)

    (crema,) = _yoy_problems(cons, CREMA_CODICE)
    assert (crema.code, crema.severity, crema.sheet, crema.cell, crema.value) == (
        "R13",
        Severity.AVVISO,
        SHEET_SCHEDA,
        LAYOUT.cell("a_sap"),
        170,
    )
    assert crema.message == "a) N. alloggi SAP: 170 nel 2026 contro 358 nel 2025 (la metà o meno)"
    assert "ignorare l'avviso" in crema.hint

    (trescore,) = _yoy_problems(cons, TRESCORE)
    assert (trescore.code, trescore.cell, trescore.value) == (
        "R14",
        LAYOUT.cell("f_totale_assegnabili"),
        23,
    )
    assert trescore.message == (
        "f) Totale assegnabili: 23 nel 2026, più degli alloggi SAP indicati in a) nel 2025 (21)"
    )

    (aler,) = _yoy_problems(cons, ALER_2026)  # matched by name despite the new code
    assert (aler.code, aler.cell) == ("R15", LAYOUT.cell("a_sas"))
    assert "25 nel 2026 contro 11 nel 2025" in aler.message

    assert _yoy_problems(cons, SONCINO) == []
    r25 = rc.load(r.path.parent / "raccolta-2025")
    soncino_2025 = _status(actions.consolidation(r25), SONCINO).latest
    soncino_2026 = _status(cons, SONCINO).latest
    assert soncino_2025 is not None and soncino_2026 is not None
    assert soncino_2026.report.codes() == soncino_2025.report.codes()


def test_collega_after_import_revalidates_the_archived_returns(make_2026: Make2026) -> None:
    """Returns imported before the link get their R13 at the next consolidation; collega
    changes only the precedente line of raccolta.toml."""
    r = make_2026(linked=False)
    assert _yoy_problems(actions.consolidation(r), CREMA_CODICE) == []
    before = r.config_path.read_text(encoding="utf-8").splitlines()
    ledger = (r.path / "archivio" / "registro.jsonl").read_bytes()

    assert main(["collega", str(r.path), "--precedente", str(r.path.parent / "raccolta-2025")]) == 0

    after = r.config_path.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [('# precedente = "../raccolta-2025"', 'precedente = "../raccolta-2025"')]
    r = rc.load(r.path)
    assert [p.code for p in _yoy_problems(actions.consolidation(r), CREMA_CODICE)] == ["R13"]
    assert (r.path / "archivio" / "registro.jsonl").read_bytes() == ledger  # no reimport


def test_compare_gives_deltas_totals_and_keeps_enti_gone_from_the_registry(
    make_2026: Make2026,
) -> None:
    """Deltas per ente and field; 2025 totals as printed (1.680 SAP); the re-coded ALER
    matched; Montodine, gone from the 2026 registry, listed apart and still in the total."""
    r = make_2026(linked=True)
    y = confronto.confronta(r, actions.consolidation(r))
    assert y is not None
    assert (y.anno_precedente, y.raccolta_precedente) == (2025, r.path.parent / "raccolta-2025")
    assert y.totals["a_sap"] == (1680, 170 + 21 + 58 + 997)
    assert y.totals["a_totale"][0] == 1697 and y.totals["f_totale_assegnabili"] == (30, 38)
    assert set(y.totals) == {
        "a_totale",
        "a_sap",
        "a_sas",
        "b_carenza_manutentiva",
        "c_nuova_edificazione",
        "d_turnover",
        "e_conferite_privati",
        "f_totale_assegnabili",
        "j_sat",
        "k_assegnate_anno_precedente",
    }

    crema = y.change(CREMA_CODICE)
    assert crema is not None and crema.answered_previous and crema.answered_current
    assert [fc.field_id for fc in crema.fields] == [
        "a_totale",
        "a_sap",
        "a_sas",
        "b_carenza_manutentiva",
        "c_nuova_edificazione",
        "d_turnover",
        "e_conferite_privati",
        "f_totale_assegnabili",
        "g_soglia_indigenti",
        "i_forze_polizia",
        "j_sat",
        "k_assegnate_anno_precedente",
    ]
    assert (
        crema.field("a_sap").previous,
        crema.field("a_sap").current,
        crema.field("a_sap").delta,
    ) == (358, 170, -188)
    assert crema.field("f_totale_assegnabili").delta == 0
    assert crema.field("g_soglia_indigenti").delta is None  # no threshold either year

    aler = y.enti[0]  # the plan lists the ALER first
    assert aler.ente.codice == ALER_2026 and aler.answered_previous
    assert aler.field("a_sas").delta == 14
    vailate = y.change("019112")  # answered in 2025 only
    assert vailate is not None and not vailate.answered_current
    assert vailate.field("a_sap").previous == 17 and vailate.field("a_sap").delta is None
    assert y.change("019010") is None  # Camisano answered in neither year

    assert [c.ente.codice for c in y.solo_precedente] == [MONTODINE]
    assert len(y.enti) == 25
    assert sum(int(c.field("a_sap").previous or 0) for c in (*y.enti, *y.solo_precedente)) == 1680


def test_previous_raccolta_deleted_later_gives_a_notice_not_a_crash(
    make_2026: Make2026, capsys: pytest.CaptureFixture[str]
) -> None:
    """consolida still works without the 2025 folder, says why the comparison is missing,
    and the R13 avviso goes away."""
    r = make_2026(linked=True)
    assert _yoy_problems(actions.consolidation(r), CREMA_CODICE) != []
    shutil.rmtree(r.path.parent / "raccolta-2025")
    capsys.readouterr()

    assert main(["consolida", str(r.path), "--json"]) == 0

    captured = capsys.readouterr()
    assert json.loads(captured.out)["totali"]["a_sap"] == 170 + 21 + 58 + 997
    assert "Avviso: La raccolta dell'anno precedente non si trova" in captured.err
    r = rc.load(r.path)
    assert _yoy_problems(actions.consolidation(r), CREMA_CODICE) == []
    assert confronto.confronta(r, actions.consolidation(r)) is None
    assert context.previous_values(r) == {}


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("mancante", "non esiste"),
        ("vuota", "non è una raccolta (manca raccolta.toml)"),
        ("stesso-anno", "è dell'anno 2026"),
        ("anno-dopo", "è dell'anno 2027"),
    ],
)
def test_collega_refuses_what_is_not_an_earlier_raccolta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, fragment: str
) -> None:
    """Missing folder, a folder without raccolta.toml, the same or a later year: an Italian
    error, exit code 2, raccolta.toml untouched; crea --precedente creates nothing."""
    r = crea(tmp_path / "r2026", anno=2026)
    (tmp_path / "vuota").mkdir()
    crea(tmp_path / "stesso-anno", anno=2026)
    crea(tmp_path / "anno-dopo", anno=2027)
    config = r.config_path.read_bytes()
    capsys.readouterr()

    assert main(["collega", str(r.path), "--precedente", str(tmp_path / target)]) == 2
    assert fragment in capsys.readouterr().err
    assert r.config_path.read_bytes() == config

    assert (
        main(
            [
                "crea",
                str(tmp_path / "nuova"),
                "--anno",
                "2026",
                "--precedente",
                str(tmp_path / target),
            ]
        )
        == 2
    )
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "nuova").exists()


def _previous(**values: int) -> dict[str, Any]:
    base = {"a_sap": 0, "a_sas": 0, "f_totale_assegnabili": 0}
    return base | values


@pytest.mark.parametrize(
    ("prev", "cur", "codes"),
    [
        (_previous(a_sap=358), {"a_sap": 179}, {"R13"}),  # exactly half
        (_previous(a_sap=358), {"a_sap": 180}, set()),
        (_previous(a_sap=20), {"a_sap": 40}, {"R13"}),  # exactly double
        (_previous(a_sap=20), {"a_sap": 39}, set()),
        (_previous(a_sap=1), {"a_sap": 3}, set()),  # below the minimum of 10 units
        (_previous(a_sap=9), {"a_sap": 4}, set()),
        (_previous(a_sap=0), {"a_sap": 12}, {"R13"}),
        (_previous(a_sap=12), {"a_sap": 0}, {"R13"}),
        (_previous(a_sap=12, a_sas=12), {"a_sap": 12, "a_sas": 4}, {"R15"}),
        (
            _previous(a_sap=7),
            {"a_sap": 7, "b_carenza_manutentiva": 4, "d_turnover": 4},
            {"R14"},
        ),  # f 8 > 7 SAP last year
        (_previous(a_sap=7), {"a_sap": 7, "b_carenza_manutentiva": 3, "d_turnover": 4}, set()),
    ],
)
def test_thresholds_of_the_jump_avvisi(
    make_return: MakeReturn,
    vctx: ValidationContext,
    prev: dict[str, Any],
    cur: dict[str, Any],
    codes: set[str],
) -> None:
    """Halved or less / doubled or more, only from 10 units up; f) above last year's SAP."""
    values = {
        "a_sas": 0,
        "b_carenza_manutentiva": 0,
        "c_nuova_edificazione": 0,
        "d_turnover": 0,
        "e_conferite_privati": 0,
        "k_assegnate_anno_precedente": 0,
        "j_sat": 0,
        "referente_nome": "Ufficio Casa",
        "referente_email": "c@x.example",
    } | cur
    ctx = ValidationContext(
        anno=2026,
        raccolta_id=vctx.raccolta_id,
        registry=vctx.registry,
        previous={CREMA_CODICE: prev},
        anno_precedente=2025,
    )
    report = validate_file(make_return(values, ente=CREMA_CODICE), ctx)
    assert report.codes() & CONFRONTO_CODES == codes
    assert report.valid


def test_sap_swapped_with_sas_is_named_in_the_message(
    make_return: MakeReturn, vctx: ValidationContext
) -> None:
    """SAP 30 → 0 while SAS 0 → 30: the R13 message says where the units went."""
    ctx = ValidationContext(
        anno=2026,
        registry=vctx.registry,
        anno_precedente=2025,
        previous={CREMA_CODICE: _previous(a_sap=30)},
    )
    report = validate_file(make_return({"a_sap": 0, "a_sas": 30}, ente=CREMA_CODICE), ctx)
    (r13,) = [p for p in report.problems if p.code == "R13"]
    assert r13.message == (
        "a) N. alloggi SAP: 0 nel 2026 contro 30 nel 2025 (nessun "
        "alloggio); intanto N. alloggi SAS sono passati da 0 a 30"
    )


def test_thresholds_are_settings_of_raccolta_toml(tmp_path: Path) -> None:
    """crea writes the three thresholds and the commented link; edited values are read,
    wrong ones refused naming file and key; with no link there is nothing to compare."""
    r = crea(tmp_path / "r", anno=2026)
    text = r.config_path.read_text(encoding="utf-8")
    assert "confronto_minimo_percentuale = 50\n" in text
    assert "[confronto]\n" in text and '# precedente = "../raccolta-2025"\n' in text
    assert rc.load(r.path).settings == Settings()
    assert context.previous_raccolta(r) is None and context.previous_notice(r) is None
    assert validation_context(r).previous is None

    r.config_path.write_text(
        text.replace("confronto_minimo_alloggi = 10", "confronto_minimo_alloggi = 3"),
        encoding="utf-8",
    )
    assert rc.load(r.path).settings.confronto_minimo_alloggi == 3
    r.config_path.write_text(
        text.replace("confronto_massimo_percentuale = 200", "confronto_massimo_percentuale = 50"),
        encoding="utf-8",
    )
    with pytest.raises(rc.RaccoltaError, match="confronto_massimo_percentuale"):
        rc.load(r.path)


def test_previous_values_are_read_once_per_raccolta_object(make_2026: Make2026) -> None:
    """Importing many files loads last year's ledger once: the values are cached."""
    r = make_2026(linked=True)
    first = validation_context(r).previous
    assert first is not None and first[CREMA_CODICE]["a_sap"] == 358
    assert first[ALER_2026]["a_sas"] == 11
    (r.path.parent / "raccolta-2025" / "archivio" / "registro.jsonl").unlink()
    assert validation_context(r).previous is first
    fresh = rc.load(r.path)  # a new object reads last year again: no return there now
    assert validation_context(fresh).previous == {}
    assert [rc_.report.codes() & CONFRONTO_CODES for rc_ in receipts(fresh)] == [set()] * 4


def test_collega_on_an_older_config_without_confronto_keeps_windows_line_ends(
    tmp_path: Path,
) -> None:
    """A raccolta.toml written before [confronto] existed, saved with CRLF by Notepad,
    gets the section appended; every other line stays as it was, CRLF included."""
    crea(tmp_path / "r2025", anno=2025)
    r = crea(tmp_path / "r2026", anno=2026)
    text = r.config_path.read_text(encoding="utf-8")
    start, end = text.index("\n[confronto]"), text.index("\n# [posta]")
    old = (text[:start] + text[end:]).replace("\n", "\r\n")
    r.config_path.write_bytes(old.encode("utf-8"))

    assert main(["collega", str(r.path), "--precedente", str(tmp_path / "r2025")]) == 0

    new = r.config_path.read_bytes().decode("utf-8")
    assert new.startswith(old) and "\n" not in new.replace("\r\n", "")
    assert new[len(old) :] == (
        "\r\n[confronto]\r\n# Raccolta dell'anno precedente, per il "
        "confronto dei dati (piano-abitativo collega).\r\n"
        'precedente = "../r2025"\r\n'
    )
    assert rc.load(r.path).precedente_path == tmp_path / "r2025"


def test_master_compares_each_ente_with_last_year_after_recalculation(
    make_2026: Make2026, tmp_path: Path
) -> None:
    """With the link, the master gets a sheet "Confronto 2025": each ente's SAP, SAS, f),
    j) and k) in both years and the change. LibreOffice recalculates it from its formulas
    (cached results dropped): Crema 358 → 170 (−188), the ALER's SAS 11 → 25, the 2025
    totals include Montodine, the 2026 ones are the plan's totals."""
    import openpyxl

    from piano_abitativo.template.workbook import _without_cached_results

    from .lo_runner import recalculate, require_libreoffice

    require_libreoffice()
    r = make_2026(linked=True)
    res = actions.consolida(r)
    assert res.consolidation.confronto is not None
    plain = tmp_path / "confronto.xlsm"
    plain.write_bytes(_without_cached_results(res.master.read_bytes()))
    with zipfile.ZipFile(res.master) as zf:
        wbxml = zf.read("xl/workbook.xml").decode("utf-8")
    # printed on pages across and down: the ente's name and both header rows on each page
    assert "$A:$A,'Confronto 2025'!$3:$4</definedName>" in wbxml
    [out] = recalculate([plain], tmp_path / "lo")
    ws = openpyxl.load_workbook(out, data_only=True)["Confronto 2025"]
    rows = {row[0]: row[1:] for row in ws.iter_rows(min_row=5, values_only=True) if row[0]}
    crema = rows["Comune di Crema"]
    assert crema[0:3] == (358, 170, -188)
    aler = next(v for k, v in rows.items() if k and "ALER" in k)
    assert aler[3:6] == (11, 25, 14)
    montodine = rows["Comune di Montodine"]
    assert montodine[0] is not None and montodine[1] is None and montodine[2] is None
    y = res.consolidation.confronto
    both = [e for e in y.enti if e.answered_previous and e.answered_current]
    same = rows[f"Totale dei {len(both)} enti presenti in entrambi gli anni"]
    assert same[0:3] == (
        sum(int(e.field("a_sap").previous or 0) for e in both),
        sum(int(e.field("a_sap").current or 0) for e in both),
        sum(int(e.field("a_sap").delta or 0) for e in both),
    )
    [everyone] = [v for k, v in rows.items() if str(k).startswith("Totale di tutti")]
    sap_2025, sap_2026, change = everyone[0:3]
    assert sap_2025 == 1680
    assert sap_2026 == sum(int(s.values["a_sap"]) for s in res.consolidation.enti if s.values)
    assert change is None  # all of 2025 against the answers so far is not a change


def test_confronto_totals_compare_only_the_enti_present_in_both_years(
    make_2026: Make2026,
) -> None:
    """The like-with-like totals add up only the enti with a valid return in both years,
    and say how many answered last year and not yet this year (Vailate) or only now."""
    r = make_2026(linked=True)
    y = confronto.confronta(r, actions.consolidation(r))
    assert y is not None
    same = confronto.like_for_like(y)
    both = [e for e in y.enti if e.answered_previous and e.answered_current]
    assert same.both == len(both) and 0 < same.both < len(y.enti)
    assert same.waiting == sum(1 for e in y.enti if e.answered_previous and not e.answered_current)
    assert same.waiting >= 1  # Vailate answered in 2025 only
    assert same.totals["a_sap"] == (
        sum(int(e.field("a_sap").previous or 0) for e in both),
        sum(int(e.field("a_sap").current or 0) for e in both),
    )
    assert same.totals["a_sap"][0] < y.totals["a_sap"][0]  # Vailate and Montodine left out
    assert set(same.totals) == set(y.totals)


def test_master_has_no_comparison_sheet_without_a_link(make_2026: Make2026) -> None:
    """An unlinked raccolta's master has the usual sheets only."""
    import openpyxl

    r = make_2026(linked=False)
    res = actions.consolida(r)
    assert res.consolidation.confronto is None
    names = openpyxl.load_workbook(res.master, read_only=True).sheetnames
    assert not [n for n in names if n.startswith("Confronto")]
