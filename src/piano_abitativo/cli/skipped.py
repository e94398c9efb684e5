"""The files of the folders given to ``valida`` that are not validated, with the reason in
Italian: pure Python, so ``valida --json`` does not import rich to list them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from piano_abitativo.core.files import skip_reason

#: why a file of another kind found in a folder given to ``valida`` is not validated
_SKIP_KIND = "non è una cartella di lavoro"
#: at most this many skipped files are named one by one
MAX_SKIPPED_SHOWN = 30


def skipped_files(paths: Sequence[Path], validated: Sequence[Path]) -> list[tuple[Path, str]]:
    """The files inside the folders of `paths` that are not among `validated`, each with
    the reason in Italian (hidden, temporary lock file, not a workbook)."""
    done = set(validated)
    out: list[tuple[Path, str]] = []
    for folder in paths:
        if not folder.is_dir():
            continue
        for f in sorted(folder.rglob("*")):
            if f in done or not f.is_file():
                continue
            # nothing is accepted here: every file not validated gets its reason
            out.append((f, skip_reason(f, (), _SKIP_KIND) or _SKIP_KIND))
    return out
