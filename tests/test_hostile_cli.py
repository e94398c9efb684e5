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


# --------------------------------------------------------------------------- configuration

#: what must never reach the user (as in test_cli_errors)
NOT_ITALIAN = ("Traceback", "Errore imprevisto", "Error:", "error:")


def _italian_error(capsys: pytest.CaptureFixture[str], args: list[str], *fragments: str) -> str:
    """Run the CLI: exit 2, one line «Errore: …» on stderr holding the fragments."""
    code = main(args)
    got = capsys.readouterr()
    text = got.out + got.err
    assert code == 2, text
    for word in NOT_ITALIAN:
        assert word not in text, text
    assert got.err.startswith("Errore: ") and len(got.err.strip().splitlines()) == 1, got.err
    for fragment in fragments:
        assert fragment in got.err, (fragment, got.err)
    return got.err


def _edit(r: rc.Raccolta, old: str, new: str) -> None:
    text = r.config_path.read_text(encoding="utf-8")
    assert old in text, old
    r.config_path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_percentage_written_in_words_names_the_key(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(racc, "sat_percentuale = 10\n", 'sat_percentuale = "dieci"\n')
    _italian_error(
        capsys,
        ["consolida", str(racc.path)],
        str(racc.config_path),
        "[regole] sat_percentuale = 'dieci' non valido: serve un numero tra 0 e 100",
    )


def test_a_section_written_as_a_value_names_the_section(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """``regole = 5`` at the top of the file, before [raccolta]."""
    text = racc.config_path.read_text(encoding="utf-8").replace("[regole]\n", "[regole_vecchie]\n")
    racc.config_path.write_text("regole = 5\n" + text, encoding="utf-8")
    _italian_error(
        capsys,
        ["stato", str(racc.path)],
        str(racc.config_path),
        "«regole» deve essere una sezione [regole], non un valore (regole = 5)",
    )


@pytest.mark.parametrize("anno", ["99999", "1999", "true", "2026.5", '"duemila"'])
def test_a_year_out_of_range_is_refused_by_modelli(
    anno: str, racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(racc, "anno = 2026\n", f"anno = {anno}\n")
    _italian_error(
        capsys,
        ["modelli", str(racc.path)],
        str(racc.config_path),
        "[raccolta] anno = ",
        "serve un numero intero tra 2000 e 2100",
    )
    assert not list(racc.modelli_dir.glob("*.xlsx"))


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('ambito = "Cremasco"', "ambito = 5", "[raccolta] ambito = 5 non valido: serve un testo"),
        ('sat_base = "a_sap"', "sat_base = [1]", "[regole] sat_base = [1] non valido"),
        ('enti = "enti.csv"', "enti = {a = 1}", "[raccolta] enti = {'a': 1} non valido"),
    ],
)
def test_a_value_of_the_wrong_type_names_key_and_type(
    old: str, new: str, fragment: str, racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    text = racc.config_path.read_text(encoding="utf-8")
    if old not in text:  # the ambito of the mail raccolta
        old = next(ln for ln in text.splitlines() if ln.startswith(old.split(" =")[0] + " ="))
    _edit(racc, old, new)
    _italian_error(capsys, ["stato", str(racc.path)], str(racc.config_path), fragment)


def test_a_line_break_inside_a_pec_address_names_the_line(
    racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quoted CR/LF in the pec of enti.csv (a header injection in every message to that
    ente): refused with the line where the ente starts, before anything is sent."""
    csv_path = racc.path / "enti.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ',"comune.camisano@pec.example\r\nBcc: x@y.example"'
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    _italian_error(
        capsys,
        ["invia", str(racc.path)],
        str(csv_path),
        "riga 4: la colonna pec contiene un a capo",
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("raccolta", "password"),
        ("posta", "smtp_password"),
        ("posta", "Password_IMAP"),
        ("regole", "segreto"),
        ("confronto", "pwd"),
    ],
)
@pytest.mark.parametrize("command", ["modelli", "importa", "invia", "stato", "consolida"])
def test_a_password_in_the_file_is_refused_by_every_command(
    section: str,
    key: str,
    command: str,
    racc: rc.Raccolta,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Wherever a password-like key is written, every command that loads the raccolta
    stops and says where the password goes."""
    if section == "posta":  # commented out by crea: the section at the end of the file
        with racc.config_path.open("a", encoding="utf-8") as fh:
            fh.write(f'\n[posta]\n{key} = "segreta"\n')
    else:
        _edit(racc, f"\n[{section}]\n", f'\n[{section}]\n{key} = "segreta"\n')
    extra = ["--da", str(tmp_path)] if command == "importa" else []
    err = _italian_error(
        capsys,
        [command, str(racc.path), *extra],
        str(racc.config_path),
        f"«{section}.{key}»",
        "PIANO_ABITATIVO_PASSWORD",
        "portachiavi di sistema",
    )
    assert "segreta" not in err


def test_valida_against_a_raccolta_with_a_password_is_refused(
    hostile: Path, racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(racc, "[raccolta]\n", '[raccolta]\npassword = "segreta"\n')
    _italian_error(
        capsys, ["valida", str(hostile), "--raccolta", str(racc.path)], "«raccolta.password»"
    )


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("smtp_host = 5", "[posta] smtp_host = 5 non valido: serve un testo"),
        ("utente = [1, 2]", "[posta] utente = [1, 2] non valido"),
        ("smtp_sicurezza = true", "[posta] smtp_sicurezza = True non valido"),
        ('smtp_port = "cinque"', "[posta] smtp_port: «cinque» non valido"),
        ("tentativi = 2.5", "[posta] tentativi: «2.5» non valido"),
        ("pausa = true", "[posta] pausa: «True» non valido"),
    ],
)
def test_a_wrong_type_in_posta_names_the_key(
    line: str, fragment: str, racc: rc.Raccolta, capsys: pytest.CaptureFixture[str]
) -> None:
    text = racc.config_path.read_text(encoding="utf-8")
    key = line.split(" =")[0]
    lines = [ln for ln in text.splitlines() if not ln.startswith(key + " =")]
    if "[posta]" not in lines:
        lines.append("[posta]")
    racc.config_path.write_text("\n".join([*lines, line]) + "\n", encoding="utf-8")
    _italian_error(capsys, ["invia", str(racc.path)], str(racc.config_path), fragment)
