"""Writing many files at once (the templates of an ambito): all or none put in place."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl
import pytest

from piano_abitativo.core.atomic import atomic_write_files
from piano_abitativo.core.registry import Registry
from piano_abitativo.template.workbook import TemplateContext, template_filename, write_templates


def test_batched_files_appear_only_when_the_block_ends_and_replace_old_ones(
    tmp_path: Path,
) -> None:
    """Inside the block nothing is in place yet; after it, both files hold the new bytes
    (the old a.txt replaced) and no temp file is left; a leftover temp of an earlier,
    interrupted write of a.txt is removed."""
    (tmp_path / "a.txt").write_bytes(b"old")
    (tmp_path / ".a.txt.abc123.tmp").write_bytes(b"half")
    with atomic_write_files(tmp_path) as put:
        put("a.txt", b"new a")
        put("b.txt", b"new b")
        assert (tmp_path / "a.txt").read_bytes() == b"old"
        assert not (tmp_path / "b.txt").exists()
    assert (tmp_path / "a.txt").read_bytes() == b"new a"
    assert (tmp_path / "b.txt").read_bytes() == b"new b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_a_failure_in_the_middle_leaves_every_old_file_and_no_temp_file(tmp_path: Path) -> None:
    """An exception after one put: a.txt keeps its old content, b.txt never appears."""
    (tmp_path / "a.txt").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write_files(tmp_path) as put:
        put("a.txt", b"new a")
        raise RuntimeError("disco pieno")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    assert (tmp_path / "a.txt").read_bytes() == b"old"


def test_write_templates_gives_valid_personalised_workbooks(
    tmp_path: Path, registry: Registry, template_ctx: TemplateContext
) -> None:
    """The hand-assembled zips of the fast path are sound and carry each ente's name."""
    enti = [e for e in registry if e.codice in ("019035", "ALER-BCM")]
    paths = write_templates(enti, tmp_path / "modelli", template_ctx)
    assert [p.name for p in paths] == [template_filename(e, template_ctx.anno) for e in enti]
    for ente, path in zip(enti, paths, strict=True):
        data = path.read_bytes()
        assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
        ws = openpyxl.load_workbook(io.BytesIO(data))["Scheda"]
        assert ente.denominazione in [c.value for row in ws.iter_rows() for c in row]


def test_many_files_are_flushed_together_and_all_put_in_place(tmp_path: Path) -> None:
    """Forty files (past the one-sync threshold) all land with their content."""
    with atomic_write_files(tmp_path) as put:
        for i in range(40):
            put(f"f{i:02d}.txt", f"contenuto {i}".encode())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"f{i:02d}.txt" for i in range(40)]
    assert (tmp_path / "f39.txt").read_text() == "contenuto 39"
