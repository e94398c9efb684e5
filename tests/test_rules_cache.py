"""The compiled rules kept in the user's cache folder: a second process reads them instead
of compiling (~50 ms on its first return) and finds exactly the same; a damaged file, a
folder that cannot be written or Python asked not to write bytecode never stop anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

from piano_abitativo.core import cache

from .sample_returns import MakeReturn

SOURCE = "def run(env, s):\n    s[0] = env + 1\n    return None\n"
NAME = "<compiled rules>"


@pytest.fixture
def writable(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache folder of the test's own home, with bytecode writing allowed."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    folder = cache.cache_dir()
    assert folder is not None and not folder.exists()
    return folder


def _run(code: CodeType) -> Any:
    names: dict[str, Any] = {}
    exec(code, names)  # noqa: S102 - the code compiled from SOURCE
    slots = [None]
    names["run"](41, slots)
    return slots[0]


def test_a_second_call_reads_the_code_from_the_cache_without_compiling(
    writable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(cache.compiled(SOURCE, NAME)) == 42
    (path,) = writable.iterdir()
    assert path.name.startswith("regole-") and path.suffix == ".bin"

    def no_compile(*args: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(cache, "compile", no_compile, raising=False)
    assert _run(cache.compiled(SOURCE, NAME)) == 42
    with pytest.raises(AssertionError, match="compiled again"):
        cache.compiled(SOURCE + "\n", NAME)  # another source is another file


@pytest.mark.parametrize("damage", ["troncato", "byte cambiato", "vuoto", "altro contenuto"])
def test_a_damaged_cache_file_is_ignored_and_written_again(writable: Path, damage: str) -> None:
    cache.compiled(SOURCE, NAME)
    (path,) = writable.iterdir()
    good = path.read_bytes()
    bad = {
        "troncato": good[: len(good) // 2],
        "byte cambiato": good[:-5] + bytes([good[-5] ^ 0x40]) + good[-4:],
        "vuoto": b"",
        "altro contenuto": b"piano-abitativo codice 1\n" + b"\0" * 64,
    }[damage]
    path.write_bytes(bad)
    assert _run(cache.compiled(SOURCE, NAME)) == 42
    assert path.read_bytes() == good


def test_nothing_is_written_when_python_is_asked_not_to_write_bytecode(
    writable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert _run(cache.compiled(SOURCE, NAME)) == 42
    assert not writable.exists()


def test_a_cache_folder_that_cannot_be_made_is_left_alone(writable: Path) -> None:
    writable.parent.mkdir(parents=True)
    writable.write_bytes(b"un file al posto della cartella")
    assert _run(cache.compiled(SOURCE, NAME)) == 42
    assert writable.read_bytes() == b"un file al posto della cartella"


def test_the_cache_folder_is_where_each_system_keeps_a_users_caches(tmp_path: Path) -> None:
    home = tmp_path / "casa"
    local = str(tmp_path / "AppData" / "Local")
    assert cache.cache_dir_for("nt", {"LOCALAPPDATA": local}, home) == (
        Path(local) / "piano-abitativo" / "cache"
    )
    assert cache.cache_dir_for("nt", {}, home) is None
    assert cache.cache_dir_for("darwin", {}, home) == home / "Library/Caches/piano-abitativo"
    xdg = str(tmp_path / "xdg")
    assert cache.cache_dir_for("linux", {"XDG_CACHE_HOME": xdg}, home) == (
        Path(xdg) / "piano-abitativo"
    )
    # a relative XDG_CACHE_HOME is ignored, as the XDG rule says
    assert cache.cache_dir_for("linux", {"XDG_CACHE_HOME": "rel"}, home) == (
        home / ".cache" / "piano-abitativo"
    )
    assert cache.cache_dir_for("linux", {}, None) is None


def test_valida_in_a_new_process_gives_the_same_reports_from_the_cache(
    make_return: MakeReturn, crema_values: dict[str, Any], tmp_path: Path
) -> None:
    """Two processes validate the same returns (a clean one, one with errors, one with
    numbers as text): the first compiles and writes the cache, the second reads it; the
    reports are identical."""
    folder = tmp_path / "risposte"
    folder.mkdir()
    for name, values in {
        "pulito": crema_values,
        "errori": {**crema_values, "a_sap": -3, "j_sat": "circa 10"},
        "testo": {**crema_values, "k_assegnate_anno_precedente": " 4 "},
    }.items():
        (folder / f"{name}.xlsx").write_bytes(make_return(values).read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def valida() -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "piano_abitativo", "valida", "--json", str(folder)],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stderr.decode("utf-8", "replace")
        return json.loads(done.stdout)

    first = valida()
    written = sorted((tmp_path / "cache" / "piano-abitativo").iterdir())
    assert written, "the first process wrote no compiled rules"
    stamps = [p.stat().st_mtime_ns for p in written]
    second = valida()
    assert second == first
    assert [p.stat().st_mtime_ns for p in written] == stamps  # read, not written again
    assert {f["valido"] for f in first["files"]} == {True, False}
