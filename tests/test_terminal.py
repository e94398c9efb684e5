"""What the terminal shows a person: Italian words and numbers, counts that add up, and
tables that never split a code or a date."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from piano_abitativo.cli import main
from piano_abitativo.cli.safe import quanti
from piano_abitativo.cli.terminal import number_text, print_reports
from piano_abitativo.core.problems import Report, problem


def _render(reports: list[Report], width: int = 160) -> str:
    buf = io.StringIO()
    print_reports(reports, Console(file=buf, width=width, color_system=None))
    return buf.getvalue()


def test_a_year_out_of_range_names_the_valid_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``crea --anno 1999`` says which years are accepted, not only that 1999 is wrong."""
    assert main(["crea", str(tmp_path / "r"), "--anno", "1999"]) == 2
    err = capsys.readouterr().err
    assert "Anno 1999 non valido" in err
    assert "tra 2000 e 2100" in err, err
    assert not (tmp_path / "r").exists()


def test_one_error_and_one_warning_are_singular() -> None:
    """A file with one error and one warning reads "1 errore, 1 avviso"."""
    rep = Report("comune.xlsx")
    rep.add(problem("R1", "comune.xlsx", sheet="Scheda", cell="D14", value=19025.0))
    rep.add(problem("L04", "comune.xlsx", sheet="Scheda", cell="D15"))
    text = _render([rep])
    assert "1 errore, 1 avviso" in text, text
    assert "1 errori" not in text and "1 avvisi" not in text
    assert (quanti(0, "errore", "errori"), quanti(2, "avviso", "avvisi")) == (
        "0 errori",
        "2 avvisi",
    )


def test_the_value_column_prints_italian_numbers() -> None:
    """Floats read from a cell are shown as the plan prints numbers: 19025.0 as 19.025,
    1.0 as 1, 12.75 as 12,75 (not "19025.0", "1.0", "12.75")."""
    rep = Report("comune.xlsx")
    for cell, value in (("D14", 19025.0), ("D15", 1.0), ("D16", 12.75), ("D17", "sì")):
        rep.add(problem("R0", "comune.xlsx", sheet="Scheda", cell=cell, value=value))
    text = _render([rep])
    rows = {m.group(1): m.group(2) for m in re.finditer(r"│ (D1\d)\s+│ (\S+)", text)}
    assert rows == {"D14": "19.025", "D15": "1", "D16": "12,75", "D17": "sì"}, text
    assert "19025.0" not in text and "1.0 " not in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1008, "1.008"), (1008.0, "1.008"), (-1234567.125, "-1.234.567,125"), (0.5, "0,5")],
)
def test_number_text_keeps_the_decimals_of_a_value(value: float, shown: str) -> None:
    """A value that is not whole keeps its decimals (a report shows what the file has)."""
    assert number_text(value) == shown


def test_valida_of_a_folder_lists_the_files_it_skipped_and_the_counts_add_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``valida CARTELLA`` names every file it did not validate, with why, and its
    summary adds up: found = examined + not examined."""
    monkeypatch.setenv("COLUMNS", "200")
    folder = tmp_path / "risposte"
    (folder / "sub").mkdir(parents=True)
    (folder / "risposta.xlsx").write_text("non un xlsx", encoding="utf-8")
    skipped = {
        "lettera.docx": "non è una cartella di lavoro (.docx)",
        "sub/nota.pdf": "non è una cartella di lavoro (.pdf)",
        "leggimi.txt": "non è una cartella di lavoro (.txt)",
        "~$risposta.xlsx": "file temporaneo",
        ".DS_Store": "file nascosto",
    }
    for name in skipped:
        (folder / name).write_text("x", encoding="utf-8")
    assert main(["valida", str(folder)]) == 1
    out = capsys.readouterr().out
    for name, why in skipped.items():
        assert re.search(rf"{re.escape(str(folder / name))} — {re.escape(why)}", out), (name, out)
    assert "File trovati: 6; esaminati: 1 (validi: 0; con errori: 1); non esaminati: 5." in out

    assert main(["valida", str(folder), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert len(data["files"]) + len(data["non_esaminati"]) == 6
    assert {Path(s["file"]).name for s in data["non_esaminati"]} == {Path(n).name for n in skipped}


def test_valida_of_files_only_keeps_the_short_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files named one by one skip nothing: no list, the usual summary."""
    f = tmp_path / "risposta.xlsx"
    f.write_text("non un xlsx", encoding="utf-8")
    assert main(["valida", str(f)]) == 1
    out = capsys.readouterr().out
    assert "non esaminati" not in out.lower()
    assert "File esaminati: 1; validi: 0; con errori: 1." in out


def test_stato_at_80_columns_never_splits_a_code_or_a_date_and_drops_empty_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At ``COLUMNS=80`` every code, date and ID of ``stato`` is whole on one line, no
    line is wider than 80, and "Sollecitato il", empty for every ente, is not shown."""
    from .mailraccolta import make_raccolta, workbook_of

    r = make_raccolta(tmp_path)
    folder = tmp_path / "cartella"
    folder.mkdir()
    (folder / "crema.xlsx").write_bytes(workbook_of(r, "019035", a_sap=300))
    assert main(["importa", str(r.path), "--da", str(folder)]) in (0, 1)
    capsys.readouterr()
    assert main(["stato", str(r.path), "--json"]) == 0
    enti = json.loads(capsys.readouterr().out)["enti"]
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["stato", str(r.path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    assert "Sollecit" not in out, out
    for e in enti:
        assert re.search(rf"^{re.escape(e['codice'])} ", out, re.MULTILINE), (e["codice"], out)
        if e.get("id"):
            assert e["id"] in out, (e["id"], out)
    dates = re.findall(r"\d\d/\d\d/\d{4}", out)
    assert dates, out
    assert not re.search(r"\d\d/\d\d/?\s*$", out, re.MULTILINE), out


def test_importa_of_a_folder_lists_the_files_it_skipped_and_the_counts_add_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``importa --da CARTELLA`` with a letter, a PDF and a note beside a return says
    what it left alone and why, and found = examined + not examined (before, the three
    vanished from the counts)."""
    monkeypatch.setenv("COLUMNS", "200")
    raccolta = tmp_path / "raccolta"
    assert main(["crea", str(raccolta), "--anno", "2026", "--scadenza", "15/12/2025"]) == 0
    folder = tmp_path / "arrivi"
    folder.mkdir()
    (folder / "risposta.xlsx").write_text("non un xlsx", encoding="utf-8")
    skipped = ["lettera.docx", "piano.pdf", "nota.txt", ".DS_Store"]
    for name in skipped:
        (folder / name).write_text("x", encoding="utf-8")
    capsys.readouterr()
    main(["importa", str(raccolta), "--da", str(folder)])
    out = capsys.readouterr().out
    assert "File non esaminati (4;" in out
    assert "lettera.docx: non è una cartella di lavoro né un messaggio (.docx)" in out
    assert ".DS_Store: file nascosto" in out
    assert "File trovati: 5; esaminati: 1; non esaminati: 4." in out

    main(["importa", str(raccolta), "--da", str(folder), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert len(data["file"]) + len(data["non_esaminati"]) == 5
    assert {Path(s["file"]).name for s in data["non_esaminati"]} == set(skipped)
