"""Hostile text and broken configuration never reach the terminal as a traceback.

What a return or a message holds is printed as written (no rich markup read, the control
characters escaped) by `valida` and `importa`; a wrong raccolta.toml, enti.csv or [posta]
is one Italian line naming the file, the key and what is expected, exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from piano_abitativo.cli import main
from piano_abitativo.cli.safe import safe
from piano_abitativo.core import raccolta as rc
from piano_abitativo.mail import settings

from . import mailfactory as mf
from .mailraccolta import make_raccolta, workbook_of

if TYPE_CHECKING:
    from .mailservers import Mailbox

pytest_plugins = ("tests.mailservers",)

#: what a cell can hold once calamine decodes ``_xHHHH_``: cursor up, erase line, OSC 52
#: (write the clipboard), a bell and a right-to-left override
CURSOR = "_x001B_[2A_x001B_[2K"
OSC52 = "_x001B_]52;c;ZXZpbA==_x0007_"
BIDI = "\u202eabc"
MARKUP_CLOSE = "[/x] 40"
MARKUP_LINK = "[link=http://x]y[/link]"


@pytest.fixture
def racc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> rc.Raccolta:
    monkeypatch.setenv("COLUMNS", "400")  # no folding inside the escapes
    return make_raccolta(tmp_path)


@pytest.fixture
def hostile(racc: rc.Raccolta, tmp_path: Path) -> Path:
    """Crema's return with terminal sequences and markup in three number cells."""
    path = tmp_path / "in" / "Crema.xlsx"
    path.parent.mkdir()
    path.write_bytes(
        workbook_of(
            racc,
            "019035",
            a_sap=MARKUP_CLOSE,
            b_carenza_manutentiva=CURSOR + OSC52 + BIDI,
            c_nuova_edificazione=MARKUP_LINK,
        )
    )
    return path


def _no_escape_reaches_the_terminal(text: str) -> None:
    assert "Traceback" not in text and "Errore imprevisto" not in text, text
    for ch in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert ch not in text, repr(ch)


def _shown_literally(text: str) -> None:
    assert "\\x1b[2A\\x1b[2K" in text, text
    assert "\\x1b]52;c;ZXZpbA==\\x07" in text, text
    assert "\\u202eabc" in text, text
    assert MARKUP_CLOSE in text, text
    assert MARKUP_LINK in text, text


# --------------------------------------------------------------------------- safe()


def test_safe_escapes_every_character_that_drives_a_terminal() -> None:
    """C0 (but newline and tab), DEL, C1, bidi overrides and isolates, zero-width, BOM and
    lone surrogates become visible escapes; ordinary Italian text is left alone."""
    drivers = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
    drivers += [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
    drivers += ["\u200b", "\u200e", "\ufeff", "\u2028", "\udcff"]
    for ch in drivers:
        if ch in "\n\t":
            continue
        out = safe(f"a{ch}b")
        assert ch not in out and out.startswith("a\\") and out.endswith("b"), repr(ch)
    assert safe("Unità già «ricevute»: 1.008 — ok [x]\n\tfine") == (
        "Unità già «ricevute»: 1.008 — ok [x]\n\tfine"
    )
    assert safe("riga\nriga", newlines=False) == "riga\\x0ariga"
    assert safe(None) == "" and safe(12) == "12"


# --------------------------------------------------------------------------- cells


def test_valida_prints_hostile_cells_literally(
    hostile: Path, racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """Escape sequences and markup in cells: valida ends (exit 1, the cells are not
    numbers), no traceback, no raw ESC, BEL or override on stdout, each one visible."""
    code = main(["valida", str(hostile), "--raccolta", str(racc.path)])
    got = capsys.readouterr()
    assert code == 1, got.out + got.err
    _no_escape_reaches_the_terminal(got.out + got.err)
    _shown_literally(got.out)
    assert "NON VALIDO" in got.out


def test_valida_json_keeps_the_values_as_read(
    hostile: Path, racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json is data for a program: the values exactly as read (ESC included, which JSON
    escapes itself)."""
    assert main(["valida", str(hostile), "--raccolta", str(racc.path), "--json"]) == 1
    out = capsys.readouterr().out
    values = {p["valore"] for f in json.loads(out)["files"] for p in f["problemi"]}
    assert "\x1b[2A\x1b[2K\x1b]52;c;ZXZpbA==\x07\u202eabc" in values
    assert {MARKUP_CLOSE, MARKUP_LINK} <= values
    assert "\x1b" not in out


def test_importa_prints_hostile_cells_and_file_names_literally(
    hostile: Path, racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same return imported, next to a valid one whose name holds ESC and markup:
    both archived (exit 1), no traceback, every name and value shown escaped."""
    odd = hostile.parent / "Bagnolo\x1b[2K[b].xlsx"
    odd.write_bytes(workbook_of(racc, "019005"))
    code = main(["importa", str(racc.path), "--da", str(hostile.parent)])
    got = capsys.readouterr()
    assert code == 1, got.out + got.err
    _no_escape_reaches_the_terminal(got.out + got.err)
    _shown_literally(got.out)
    assert "Bagnolo\\x1b[2K[b].xlsx" in got.out
    assert main(["importa", str(racc.path), "--da", str(hostile.parent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["file"]
    assert sorted(r["esito"] for r in rows) == ["già importato", "già importato"]


def test_importa_of_a_message_with_markup_in_a_header_prepares_the_replies(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An .eml with ``X-Trasporto: [/x]`` and a subject with ESC: imported, its note
    printed as written, and the reply drafts are prepared (they used to be lost after the
    ledger was written)."""
    raw = mf.make_plain(
        sender="protocollo@pec.comune.crema.example",
        subject="Piano \x1b[2A[bold]x",
        attachments=[("Crema.xlsx", workbook_of(racc, "019035"))],
        headers=[("X-Trasporto", "[/x]")],
    )
    path = tmp_path / "risposta.eml"
    path.write_bytes(raw)
    code = main(["importa", str(racc.path), "--da", str(path)])
    got = capsys.readouterr()
    assert code == 0, got.out + got.err
    _no_escape_reaches_the_terminal(got.out + got.err)
    assert "X-Trasporto sconosciuta ([/x])" in got.out
    assert "Risposte agli enti preparate, non inviate: 1" in got.out


def test_importa_imap_of_a_message_with_markup_in_a_header_prepares_the_replies(
    tmp_path: Path,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same message read from the mailbox: the sender, the note of the header and the
    subject printed as written, the reply drafts prepared."""
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv(settings.PASSWORD_ENV, "segreta-di-prova")
    racc = make_raccolta(tmp_path, **mailbox.server.settings(mailbox))
    mailbox.append(
        mf.make_plain(
            sender="[/x] <protocollo@pec.comune.crema.example>",
            subject="Piano \x1b[2A[bold]x",
            attachments=[("Crema.xlsx", workbook_of(racc, "019035"))],
            headers=[("X-Trasporto", "[/x]")],
        )
    )
    code = main(["importa", str(racc.path), "--imap"])
    got = capsys.readouterr()
    assert code == 0, got.out + got.err
    _no_escape_reaches_the_terminal(got.out + got.err)
    assert "X-Trasporto sconosciuta ([/x])" in got.out
    assert "Risposte agli enti preparate, non inviate: 1" in got.out
