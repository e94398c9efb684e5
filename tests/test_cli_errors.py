"""Every command of the CLI, given what a user gets wrong, answers in Italian and exits 2.

Each case runs twice, through the real entry point: ``python -m piano_abitativo …`` in a
subprocess, and ``main([...])`` in this process; both must give the same exit code and
the same message, with no traceback and no English word of argparse or of the system.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import piano_abitativo
from piano_abitativo.app import commands as app_commands
from piano_abitativo.app.commands import crea
from piano_abitativo.cli import main
from piano_abitativo.cli.parser import (
    BLANK_MASTER_NAME,
    STANDARD_TEMPLATE_NAME,
    build_parser,
    subcommands,
    translate,
)
from piano_abitativo.core.errors import LOG_NAME, unexpected_message

SRC = Path(piano_abitativo.__file__).resolve().parents[1]
#: what must never reach the user
ENGLISH = (
    "Traceback",
    "usage:",
    "positional arguments",
    "options:",
    "optional arguments",
    "No such file or directory",
    "Not a directory",
    "Is a directory",
    "Permission denied",
    "invalid int value",
    "invalid choice",
    "the following arguments are required",
    "unrecognized arguments",
    "expected one argument",
    "show this help",
    "error:",
)
COMMANDS = sorted(subcommands())
UNEXPECTED = (
    "Errore imprevisto: l'operazione non è stata completata per un guasto del "
    "programma, da segnalare all'assistenza. Dettagli in {log}"
)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIANO_ABITATIVO_")}
    env.update(PYTHONPATH=str(SRC), COLUMNS="100", HOME=str(home), PYTHONIOENCODING="utf-8")
    return env


def run_subprocess(args: list[str], cwd: Path) -> Run:
    """``python -m piano_abitativo ARGS`` in `cwd`."""
    p = subprocess.run(
        [sys.executable, "-m", "piano_abitativo", *args],
        cwd=cwd,
        env=_env(cwd),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    return Run(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[list[str]], Run]:
    """Run the CLI with ARGS in tmp_path both ways; check they agree; the run."""
    for k in [k for k in os.environ if k.startswith("PIANO_ABITATIVO_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def run(args: list[str]) -> Run:
        sub = run_subprocess(args, tmp_path)
        capsys.readouterr()
        code = main(args)
        got = capsys.readouterr()
        here = Run(code, got.out, got.err)
        assert (here.code, here.err) == (sub.code, sub.err), args
        return sub

    return run


def assert_italian_error(run: Run, *fragments: str) -> None:
    """Exit code 2, something said on stderr, nothing English, the fragments present."""
    text = run.out + run.err
    assert run.code == 2, text
    assert run.err.strip(), "an error must say something"
    for word in ENGLISH:
        assert word.lower() not in text.lower(), (word, text)
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.fixture
def raccolta_2026(tmp_path: Path) -> Path:
    """A new raccolta of 2026 (the Ambito Cremasco), nothing received."""
    return crea(tmp_path / "r2026", anno=2026).path


def _needs_folder(name: str) -> bool:
    """Whether the subcommand's first positional is the folder of an existing raccolta."""
    return name not in ("crea", "valida", "demo", "master-vuoto", "modello-vuoto")


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_option_is_refused_in_italian(
    name: str, both: Callable[[list[str]], Run]
) -> None:
    """Every subcommand with an option it does not know says so in Italian, under the
    Italian usage, with exit code 2."""
    run = both([name, "--sconosciuta"])
    assert_italian_error(run, "uso: piano-abitativo ")
    assert re.search(r"Errore: (argomenti non riconosciuti|mancano gli argomenti)", run.err)


@pytest.mark.parametrize("name", [n for n in COMMANDS if n not in ("demo",)])
def test_missing_arguments_are_named_in_italian(
    name: str, both: Callable[[list[str]], Run]
) -> None:
    """Every subcommand without its required arguments names them in Italian (those that
    need none are given an option without its value)."""
    needs = [
        a
        for a in subcommands()[name]._actions
        if a.required or (not a.option_strings and a.nargs != "?")
    ]
    args = [name] if needs else [name, "--output"]
    run = both(args)
    assert_italian_error(run, "Errore: ")
    assert ("mancano gli argomenti obbligatori" in run.err) == bool(needs)
    if not needs:
        assert "argomento --output: serve un valore" in run.err


def test_no_command_at_all(both: Callable[[list[str]], Run]) -> None:
    """Without a command the CLI asks for one, in Italian."""
    assert_italian_error(both([]), "mancano gli argomenti obbligatori: COMANDO")


def test_an_unknown_command(both: Callable[[list[str]], Run]) -> None:
    """An unknown command is an invalid choice, said in Italian with the choices."""
    assert_italian_error(both(["consolidare"]), "scelta non valida: 'consolidare'", "'consolida'")


@pytest.mark.parametrize(
    "args",
    [
        ["crea", "x", "--anno", "duemila"],
        ["invia", "x", "--limite", "tre"],
        ["solleciti", "x", "--limite", ""],
    ],
    ids=["anno", "limite", "vuoto"],
)
def test_a_number_that_is_not_one(args: list[str], both: Callable[[list[str]], Run]) -> None:
    """A number option given text is refused naming the option and the value."""
    opt = args[2]
    assert_italian_error(both(args), f"argomento {opt}: numero intero non valido: «{args[3]}»")


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_is_italian(name: str, both: Callable[[list[str]], Run]) -> None:
    """The help of the CLI and of every subcommand is Italian and exits 0."""
    run = both([name, "-h"] if name else ["--help"])
    assert run.code == 0
    assert run.out.startswith("uso: piano-abitativo")
    assert "opzioni:" in run.out and "mostra questo aiuto ed esce" in run.out
    for word in ENGLISH:
        assert word.lower() not in run.out.lower(), (word, run.out)


# --------------------------------------------------------------------------- paths


#: what the commands need besides the folder, to reach the check of the folder
_REQUIRED: dict[str, list[str]] = {
    "accetta": ["abcdef12", "--motivo", "prova"],
    "scarta": ["abcdef12", "--motivo", "prova"],
    "ripristina": ["abcdef12"],
    "rettifica": ["--ente", "019035", "--campo", "a_sap", "--valore", "1", "--motivo", "prova"],
}


@pytest.mark.parametrize("name", [n for n in COMMANDS if _needs_folder(n)])
def test_a_missing_raccolta_folder(
    name: str, both: Callable[[list[str]], Run], tmp_path: Path
) -> None:
    """Every command on a raccolta, given a folder that does not exist, says so."""
    missing = tmp_path / "non-esiste"
    args = [name, str(missing)] + (["--precedente", str(tmp_path)] if name == "collega" else [])
    assert_italian_error(
        both([*args, *_REQUIRED.get(name, [])]), f"La cartella {missing} non esiste"
    )


@pytest.mark.parametrize("name", [n for n in COMMANDS if _needs_folder(n) or n in ("crea", "demo")])
def test_a_file_instead_of_the_folder(
    name: str, both: Callable[[list[str]], Run], tmp_path: Path
) -> None:
    """Every command that takes a folder, given a file, says it is not a folder."""
    f = tmp_path / "appunti.txt"
    f.write_text("non una raccolta", encoding="utf-8")
    extra = {"collega": ["--precedente", str(tmp_path)], "crea": ["--anno", "2026"], **_REQUIRED}
    run = both([name, str(f), *extra.get(name, [])])
    assert_italian_error(run, str(f))
    assert re.search(r"non è una cartella|è un file", run.err), run.err


def test_a_folder_that_is_not_a_raccolta(both: Callable[[list[str]], Run], tmp_path: Path) -> None:
    """An existing folder without raccolta.toml is not a raccolta, and the message says
    how to create one."""
    (tmp_path / "vuota").mkdir()
    assert_italian_error(
        both(["consolida", str(tmp_path / "vuota")]), "non è una raccolta", "piano-abitativo crea"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["valida", "non-esiste.xlsx"],
        ["valida", "non-esiste.xlsx", "--raccolta", "r2026"],
        ["crea", "nuova", "--anno", "2026", "--enti", "non-esiste.csv"],
        ["importa", "r2026", "--da", "non-esiste"],
        ["master-vuoto", "--output", "appunti.txt/master.xlsm"],
        ["modello-vuoto", "--output", "."],
    ],
    ids=["valida", "valida-raccolta", "crea-enti", "importa-da", "master-file", "modello-dir"],
)
def test_missing_or_wrong_paths_of_files(
    args: list[str], both: Callable[[list[str]], Run], raccolta_2026: Path, tmp_path: Path
) -> None:
    """A file to read that does not exist, or a file to write whose place is wrong, is
    one Italian error."""
    (tmp_path / "appunti.txt").write_text("x", encoding="utf-8")
    run = both(args)
    assert_italian_error(run, "Errore: ")
    assert not (tmp_path / "nuova" / "raccolta.toml").exists()


def test_importa_without_a_source(both: Callable[[list[str]], Run], raccolta_2026: Path) -> None:
    """importa without --da or --imap says what to give it; --sposta needs --imap."""
    assert_italian_error(both(["importa", str(raccolta_2026)]), "indicare cosa importare")
    run = both(["importa", str(raccolta_2026), "--da", str(raccolta_2026), "--sposta"])
    assert_italian_error(run, "--sposta vale solo con --imap")


# --------------------------------------------------------------------------- another year


def test_collega_a_raccolta_of_the_same_or_a_later_year(
    both: Callable[[list[str]], Run], raccolta_2026: Path, tmp_path: Path
) -> None:
    """Linking as last year's a raccolta of 2027, or of the same year, is refused naming
    its year; the raccolta's configuration is left as it was."""
    later = crea(tmp_path / "r2027", anno=2027).path
    same = crea(tmp_path / "altra2026", anno=2026).path
    before = (raccolta_2026 / "raccolta.toml").read_bytes()
    for other, year in ((later, 2027), (same, 2026)):
        run = both(["collega", str(raccolta_2026), "--precedente", str(other)])
        assert_italian_error(run, f"è dell'anno {year}", "un anno prima del 2026")
    assert (raccolta_2026 / "raccolta.toml").read_bytes() == before


def test_crea_linked_to_a_raccolta_of_a_later_year(
    both: Callable[[list[str]], Run], tmp_path: Path
) -> None:
    """crea --precedente with a raccolta of a later year is refused before anything is
    written."""
    later = crea(tmp_path / "r2027", anno=2027).path
    run = both(["crea", str(tmp_path / "nuova"), "--anno", "2026", "--precedente", str(later)])
    assert_italian_error(run, "è dell'anno 2027")
    assert not (tmp_path / "nuova").exists()


def test_valida_against_a_raccolta_of_another_year(
    both: Callable[[list[str]], Run], raccolta_2026: Path, tmp_path: Path
) -> None:
    """A template of 2027 checked against the raccolta of 2026 is a file with errors (exit
    1, in Italian), not a crash."""
    later = crea(tmp_path / "r2027", anno=2027)
    (path,) = app_commands.modelli(later)[:1]
    run = both(["valida", str(path), "--raccolta", str(raccolta_2026)])
    assert run.code == 1
    for word in ENGLISH:
        assert word.lower() not in (run.out + run.err).lower(), word


# --------------------------------------------------------------------------- the system, bugs


def test_an_error_of_the_system_is_one_line_without_log(
    both: Callable[[list[str]], Run], raccolta_2026: Path
) -> None:
    """A file where modelli wants its folder is an error of the system: one Italian line
    naming the path, exit 2, and no log (it is not a bug)."""
    (raccolta_2026 / "modelli").write_text("non una cartella", encoding="utf-8")
    run = both(["modelli", str(raccolta_2026)])
    assert_italian_error(run, f"Operazione non riuscita su {raccolta_2026 / 'modelli'}")
    assert len(run.err.strip().splitlines()) == 1
    assert not (raccolta_2026 / LOG_NAME).exists()


def test_an_unexpected_error_is_one_line_and_a_log_in_the_raccolta(
    raccolta_2026: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception in a command on a raccolta is one line «Errore imprevisto»
    naming piano-abitativo.log in the raccolta, where the traceback is; exit code 2."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk\nfailure")

    monkeypatch.setattr(app_commands, "consolidation", broken)
    code = main(["consolida", str(raccolta_2026)])
    err = capsys.readouterr().err
    log = raccolta_2026 / LOG_NAME
    assert code == 2
    assert err == UNEXPECTED.format(log=log) + "\n"  # the English text only in the log
    details = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in details and "comando consolida" in details
    assert "RuntimeError: disk\nfailure" in details


def test_an_unexpected_error_without_a_log_leaves_only_its_type() -> None:
    """When no log could be written, the line says so and keeps the exception's type
    (the one trace left for the assistance), never its English text."""
    text = unexpected_message(KeyError("missing key"), None)
    assert text == (
        "Errore imprevisto: l'operazione non è stata completata per un guasto del "
        "programma, da segnalare all'assistenza. Non è stato possibile scrivere i "
        "dettagli (tipo KeyError)."
    )


def test_an_unexpected_error_outside_a_raccolta_is_logged_for_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a raccolta, the traceback of an unexpected exception goes to
    ~/.piano-abitativo/piano-abitativo.log, named in the one line shown."""
    monkeypatch.setenv("HOME", str(tmp_path))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("manca")

    monkeypatch.setattr(app_commands, "modello_vuoto", broken)
    assert main(["modello-vuoto", "--output", str(tmp_path / "m.xlsx")]) == 2
    err = capsys.readouterr().err
    log = tmp_path / ".piano-abitativo" / LOG_NAME
    assert err == UNEXPECTED.format(log=log) + "\n" and "manca" not in err
    assert "KeyError: 'manca'" in log.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the parser


def test_every_argparse_message_has_its_italian() -> None:
    """Each message argparse can give a user is translated, nested argument prefix
    included; an unknown English message becomes a generic Italian one."""
    cases = {
        "argument --anno: invalid int value: 'x'": (
            "argomento --anno: numero intero non valido: 'x'"
        ),
        "argument COMANDO: invalid choice: 'x' (choose from 'a', 'b')": (
            "argomento COMANDO: scelta non valida: 'x' (possibili: 'a', 'b')"
        ),
        "the following arguments are required: cartella": (
            "mancano gli argomenti obbligatori: cartella"
        ),
        "unrecognized arguments: --x": "argomenti non riconosciuti: --x",
        "argument --da: expected at least one argument": "argomento --da: serve almeno un valore",
        "ambiguous option: --s could match --sposta, --senza": (
            "opzione ambigua: --s può indicare --sposta, --senza"
        ),
        "argument --json: ignored explicit argument 'x'": (
            "argomento --json: non accetta un valore ('x')"
        ),
        "something is broken in the parser": "argomenti non validi",
    }
    for english, italian in cases.items():
        assert translate(english) == italian


def test_an_ambiguous_abbreviation_is_italian(both: Callable[[list[str]], Run]) -> None:
    """An abbreviated option matching two options is refused in Italian."""
    assert_italian_error(both(["crea", "x", "--a", "1"]), "opzione ambigua: --a")


def test_the_parser_defaults_name_the_real_files() -> None:
    """The default file names of master-vuoto and modello-vuoto (kept in the parser so
    that parsing imports nothing heavy) are those the writers use."""
    from piano_abitativo.master import xlsm
    from piano_abitativo.template import workbook

    assert BLANK_MASTER_NAME == xlsm.BLANK_MASTER_NAME
    assert STANDARD_TEMPLATE_NAME == workbook.STANDARD_TEMPLATE_NAME
    assert build_parser().prog == "piano-abitativo"


def test_parsing_imports_no_command_module() -> None:
    """``--version`` and a wrong argument are answered before any module of a command
    (app, openpyxl, rich, pandas) is imported."""
    code = (
        "import sys\n"
        "from piano_abitativo.cli import main\n"
        "assert main(['--version']) == 0\n"
        "assert main(['crea']) == 2\n"
        "heavy = [m for m in ('piano_abitativo.app.commands', 'openpyxl', 'rich', 'pandas')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(Path.cwd()),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert p.stdout.strip().splitlines()[-1] == "[]"
