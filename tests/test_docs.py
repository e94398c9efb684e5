"""Docs that cannot drift: problem codes, README commands, CI command."""

from __future__ import annotations

import re
from pathlib import Path

from piano_abitativo.core.docs import problem_catalogue_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_problem_catalogue_doc_is_generated_from_the_code() -> None:
    """docs/problemi.md lists exactly the codes of the catalogue, as generated."""
    assert (ROOT / "docs" / "problemi.md").read_text(encoding="utf-8") == (
        problem_catalogue_markdown()
    ), "Rigenerare con: python -m piano_abitativo.core.docs"


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.DOTALL)
    assert block, "README.md must open with a code block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_opens_with_the_demo_and_the_test_command() -> None:
    """The first block of README.md holds exactly two commands: demo, then tests."""
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert "piano-abitativo demo" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run ends with the README's test command, character for character."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1].strip() == _readme_commands()[1]


def test_lock_file_pins_every_runtime_dependency() -> None:
    """requirements.lock has an exact pin for each dependency declared in pyproject."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "dependencies"
    ]
    lock = {
        ln.split("==")[0].lower().replace("_", "-"): ln.split("==")[1]
        for ln in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
        if "==" in ln and not ln.startswith("#")
    }
    for dep in deps:
        name, version = dep.split("==")
        assert lock[name.lower().replace("_", "-")] == version, dep


def test_readme_names_the_master_with_the_suffix_consolida_writes() -> None:
    """Every `Consolidato_piano_abitativo_<anno>` the README names ends as the real file."""
    from piano_abitativo.master.xlsm import BLANK_MASTER_NAME

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    suffix = Path(BLANK_MASTER_NAME).suffix
    named = re.findall(r"Consolidato_piano_abitativo_[<>\w]+(\.\w+)", text)
    assert named and set(named) == {suffix}, named
    assert "`consolida` scrive `Consolidato_piano_abitativo_<anno>.xlsm`" in text


def test_readme_says_where_the_importa_button_reads_and_build_is_ignored() -> None:
    """The *Importa* button's `arrivi/` folder is in README; `pip install .`'s build/ is ignored."""
    from piano_abitativo.excel.buttons import ARRIVI_DIR

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`RACCOLTA/{ARRIVI_DIR}/`" in text
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "build/" in ignored
