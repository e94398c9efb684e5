"""Shared fixtures: templates and returns built inline, no test touches the real home."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from piano_abitativo.core.registry import Registry, default_registry
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateContext, TemplateFactory
from piano_abitativo.validation.validate import ValidationContext

from .sample_returns import CREMA, MakeReturn

ANNO = 2026
RACCOLTA_ID = "2026-test"


@pytest.fixture
def crema_values() -> dict[str, Any]:
    """A fresh copy of `CREMA`: a complete, valid return of a comune."""
    return dict(CREMA)


@pytest.fixture(scope="session")
def crema_reference() -> Mapping[str, Any]:
    """`CREMA` read-only, for module- and session-scoped fixtures."""
    return MappingProxyType(CREMA)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads or writes the real user's home (keyring, xlwings config, the cache
    of compiled rules...)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("LOCALAPPDATA", str(home / "AppData" / "Local"))


@pytest.fixture(scope="session")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="session")
def template_ctx() -> TemplateContext:
    return TemplateContext(
        anno=ANNO, raccolta_id=RACCOLTA_ID, ambito="Cremasco", capofila="Comune di Crema"
    )


@pytest.fixture(scope="session")
def factory(template_ctx: TemplateContext) -> TemplateFactory:
    return TemplateFactory(template_ctx)


@pytest.fixture
def vctx(registry: Registry) -> ValidationContext:
    return ValidationContext(anno=ANNO, raccolta_id=RACCOLTA_ID, registry=registry)


@pytest.fixture
def make_return(tmp_path: Path, factory: TemplateFactory, registry: Registry) -> MakeReturn:
    """make_return({"a_sap": 3}, ente="019035", name="x.xlsx") -> path of a filled return."""
    counter = iter(range(10_000))

    def make(
        values: dict[str, Any] | None = None, *, ente: str = "019035", name: str | None = None
    ) -> Path:
        found = registry.get(ente)
        assert found is not None
        data = fill_template(factory.render(found), values or {})
        path = tmp_path / (name or f"ritorno_{next(counter)}.xlsx")
        path.write_bytes(data)
        return path

    return make
