"""The real messages and signed files of ``../shared/real_mail/`` (origins in its README).

They are read where they are, never copied into the repository. The folder is looked up
beside the project (``../shared/real_mail``) and in its parents, then beside the checkout
this one was cloned from (a clean clone for CI may sit in a temporary folder), or given by
``PIANO_ABITATIVO_REAL_MAIL``. When it is missing the tests that need it are skipped on a
developer's machine and **fail** under ``CI=true``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

_ENV = "PIANO_ABITATIVO_REAL_MAIL"


def _origin() -> Path | None:
    """The folder this checkout was cloned from, when it is a local path (a clean clone
    made for CI sits elsewhere, but its origin is beside ../shared)."""
    try:
        url = subprocess.run(
            ["git", "config", "--get", "remote.origin.url"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not url or "://" in url or url.startswith("git@"):
        return None
    path = Path(url.removeprefix("file:"))
    return path.resolve() if path.is_dir() else None


def _find() -> Path | None:
    given = os.environ.get(_ENV)
    if given:
        return Path(given)
    here = Path(__file__).resolve().parent
    origin = _origin()
    starts = [here, *([origin] if origin is not None else [])]
    for start in starts:
        for parent in (start, *start.parents):
            candidate = parent / "shared" / "real_mail"
            if candidate.is_dir():
                return candidate
    return None


def real_mail_dir() -> Path:
    """The folder of the real files; skip (fail under CI=true) when it is missing."""
    found = _find()
    if found is None or not found.is_dir():
        why = "../shared/real_mail not found (set PIANO_ABITATIVO_REAL_MAIL to its path)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return found


def real_file(relpath: str) -> Path:
    """One real file, e.g. ``real_file("p7m/dss_DER_reordered_prova.txt.p7m")``."""
    path = real_mail_dir() / relpath
    if not path.is_file():
        pytest.fail(f"{path} is missing from the real_mail folder")
    return path
