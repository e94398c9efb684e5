"""What the terminal shows a person: Italian words and numbers, counts that add up, and
tables that never split a code or a date."""

from __future__ import annotations

import io
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
