"""The shape of the code: layers without cycles, small modules, one style, strict types,
runtime dependencies that are exactly what the runtime imports."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "piano_abitativo"
MAX_MODULE_LINES = 600

#: runtime dependencies that no module imports by name, and why
NOT_IMPORTED = {
    # the time zone database for zoneinfo: Windows has none of its own
    "tzdata",
}


def _tool(name: str) -> str:
    """The path of a command installed beside this Python (the test extra's tools)."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        cand = Path(folder) / name
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required on CI (pip install -e '.[test]')", pytrace=False)
        pytest.skip(f"{name} not installed")
    return found


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, check=False)


def test_layers_and_independence_contracts_are_kept() -> None:
    """import-linter finds no import from a lower layer to an upper one (imports inside
    functions included) and none between independent siblings."""
    res = _run(_tool("lint-imports"), "--no-cache")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_the_layer_contract_names_every_subpackage() -> None:
    """Every subpackage of piano_abitativo is in the layers contract: none escapes it."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = cfg["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers" and "layers" in c)["layers"]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    packages = {f"piano_abitativo.{p.name}" for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert packages <= named, sorted(packages - named)
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules outside every layer: {loose}"


def test_no_module_is_longer_than_600_lines() -> None:
    """Each module of the package stays readable: at most 600 lines."""
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_ruff_check_and_format_are_clean() -> None:
    """`ruff check` and `ruff format --check` pass on src, tests and bench."""
    ruff = _tool("ruff")
    check = _run(ruff, "check", "src", "tests", "bench")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = _run(ruff, "format", "--check", "src", "tests", "bench")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict_is_clean() -> None:
    """`mypy --strict` (configured in pyproject.toml) finds no error in the package."""
    res = _run(sys.executable, "-m", "mypy")
    assert res.returncode == 0, res.stdout + res.stderr


def _imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for p in SRC.rglob("*.py"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"piano_abitativo", "__future__"}


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def test_runtime_dependencies_are_exactly_what_the_runtime_imports() -> None:
    """Every third-party module the package imports (inside functions too) comes from a
    declared runtime dependency, and every declared dependency is imported (or is listed
    in NOT_IMPORTED with the reason)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {_normalise(re.split(r"[=<>!~ \[]", d)[0]) for d in cfg["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    used: set[str] = set()
    unknown: list[str] = []
    for module in sorted(_imported_top_level_modules()):
        dists = providers.get(module)
        if not dists:
            unknown.append(module)
            continue
        used.update(_normalise(d) for d in dists)
    assert unknown == [], f"imported but installed by no distribution: {unknown}"
    assert used - declared == set(), "imported by the runtime but not declared"
    assert declared - used - NOT_IMPORTED == set(), "declared but never imported"
