"""The library face: ``import piano_abitativo`` exposes one documented function per
command, loaded lazily, doing what the CLI does."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import piano_abitativo
from piano_abitativo.cli import main
from piano_abitativo.cli.parser import subcommands
from piano_abitativo.core import raccolta as rc

from .mailraccolta import ENTI_CSV, workbook_of

SRC = Path(piano_abitativo.__file__).resolve().parents[1]
CREMA, AGNADELLO = "019035", "019002"
#: parameters after the raccolta (or output) that are positional on purpose
#: what a function acts on, given positionally after the raccolta
POSITIONAL = {
    "importa": {"paths"},
    "stato": {"cons"},
    "demo": set(),
    "accetta": {"ident"},
    "scarta": {"idents"},
    "ripristina": {"ident"},
}


def test_every_public_name_is_a_documented_callable() -> None:
    """Every name in piano_abitativo.__all__ resolves to a callable with a docstring, and
    is listed by dir()."""
    assert piano_abitativo.__all__
    for name in piano_abitativo.__all__:
        obj = getattr(piano_abitativo, name)
        assert callable(obj), name
        assert (inspect.getdoc(obj) or "").strip(), name
        assert name in dir(piano_abitativo)
    with pytest.raises(AttributeError):
        _ = piano_abitativo.non_esiste  # type: ignore[attr-defined]


def test_every_command_of_the_cli_has_its_function() -> None:
    """Each subcommand of the CLI is a function of the library (dashes as underscores)."""
    names = {n.replace("-", "_") for n in subcommands()}
    assert names <= set(piano_abitativo.__all__), names - set(piano_abitativo.__all__)


def test_options_are_keyword_only_and_typed() -> None:
    """After the raccolta (or the folder, or the output), every option of every function
    is keyword-only and every parameter has a type annotation."""
    for name in piano_abitativo.__all__:
        obj = getattr(piano_abitativo, name)
        if inspect.isclass(obj):
            continue
        params = list(inspect.signature(obj).parameters.values())
        assert params, name
        assert "return" in obj.__annotations__, name
        for p in params:
            assert p.annotation is not inspect.Parameter.empty, (name, p.name)
        for p in params[1:]:
            if p.name not in POSITIONAL.get(name, set()):
                assert p.kind is inspect.Parameter.KEYWORD_ONLY, (name, p.name)


def test_no_subpackage_shadows_a_function() -> None:
    """After every module of the package is imported, each public name is still the
    function (importing a subpackage sets an attribute of the package)."""
    for mod in pkgutil.walk_packages(piano_abitativo.__path__, "piano_abitativo."):
        if mod.name != "piano_abitativo.__main__":
            importlib.import_module(mod.name)
    for name in piano_abitativo.__all__:
        obj = getattr(piano_abitativo, name)
        assert not inspect.ismodule(obj), name
        assert callable(obj), name


def test_import_is_cheap() -> None:
    """``import piano_abitativo`` in a fresh interpreter loads no command module and no
    heavy dependency; the first use of a function loads it."""
    code = (
        "import sys, piano_abitativo as pa\n"
        "heavy = ('piano_abitativo.app', 'openpyxl', 'pandas', 'rich', 'xlsxwriter', 'docx')\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "pa.consolida\n"
        "print('piano_abitativo.app.commands' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[:2] == ["[]", "True"]


def _drafts(raccolta: Path) -> list[str]:
    """The replies in the outbox, by kind and ente (the name's hash is per raccolta)."""
    outbox = raccolta / "posta" / "uscita"
    return sorted(re.sub(r"_[0-9a-f]+\.eml$", "", p.name) for p in outbox.glob("*.eml"))


def test_the_library_does_what_the_cli_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """crea → modelli → importa → consolida through the library and through the CLI give
    the same templates, the same archive, the same replies prepared and the same totals."""
    (tmp_path / "enti.csv").write_text(ENTI_CSV, encoding="utf-8")
    common = ["--anno", "2026", "--scadenza", "15/12/2025", "--enti", str(tmp_path / "enti.csv")]
    lib = piano_abitativo.crea(
        tmp_path / "lib", anno=2026, scadenza="15/12/2025", registry_csv=tmp_path / "enti.csv"
    )
    assert main(["crea", str(tmp_path / "cli"), *common]) == 0
    cli = tmp_path / "cli"

    lib_models = piano_abitativo.modelli(lib)
    assert main(["modelli", str(cli)]) == 0
    assert len(lib_models) == 5
    assert sorted(p.name for p in lib_models) == sorted(p.name for p in (cli / "modelli").iterdir())

    def returns(r: rc.Raccolta, folder: Path) -> list[Path]:
        """Crema's return as filled, Agnadello's with a mistake (each raccolta's own
        templates: they carry its id)."""
        folder.mkdir()
        (folder / "crema.xlsx").write_bytes(workbook_of(r, CREMA))
        (folder / "agnadello.xlsx").write_bytes(workbook_of(r, AGNADELLO, a_sap=-1))
        return sorted(folder.iterdir())

    res = piano_abitativo.importa(lib.path, returns(lib, tmp_path / "ritorni-lib"))
    capsys.readouterr()
    code = main(
        ["importa", str(cli), "--json", "--da", *map(str, returns(rc.load(cli), tmp_path / "r"))]
    )
    cli_res = json.loads(capsys.readouterr().out)
    assert (res.valid, code) == (False, 1)
    assert [
        (o.esito, o.receipt.ente, o.receipt.report.valid, len(o.receipt.report.errors))
        for o in res.outcomes
        if o.receipt is not None
    ] == [(f["esito"], f["ente"], f["valido"], f["errori"]) for f in cli_res["file"]]
    assert sorted(x.report.valid for x in res.imported) == [False, True]
    lib_drafts = _drafts(lib.path)
    cli_drafts = _drafts(cli)
    assert lib_drafts == cli_drafts
    assert len(lib_drafts) == res.esiti_preparati == cli_res["esiti_preparati"] >= 2

    done = piano_abitativo.consolida(lib)
    out = tmp_path / "consolida.json"
    with out.open("w", encoding="utf-8") as fh:
        p = subprocess.run(
            [sys.executable, "-m", "piano_abitativo", "consolida", str(cli), "--json"],
            env={**os.environ, "PYTHONPATH": str(SRC)},
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert p.returncode == 0, p.stderr
    cli_done = json.loads(out.read_text(encoding="utf-8"))
    assert done.master.is_file() and Path(cli_done["master"]).is_file()
    assert done.master.name == Path(cli_done["master"]).name
    assert cli_done["totali"] == done.consolidation.totals
    assert done.consolidation.totals["b_carenza_manutentiva"] > 0

    st = piano_abitativo.stato(lib)
    assert sum(1 for e in st.enti if e.ricevuto) == 2


def test_a_library_error_is_a_piano_error_in_italian(tmp_path: Path) -> None:
    """A library function given a folder that is not a raccolta raises PianoError with
    the same Italian sentence the CLI shows."""
    (tmp_path / "vuota").mkdir()
    with pytest.raises(piano_abitativo.PianoError, match="non è una raccolta"):
        piano_abitativo.consolida(tmp_path / "vuota")
    with pytest.raises(piano_abitativo.PianoError, match="non esiste"):
        piano_abitativo.stato(tmp_path / "non-esiste")
