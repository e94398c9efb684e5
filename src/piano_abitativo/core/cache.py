"""The user's cache folder: what the program can always rebuild, kept between runs so that
a command starts faster. Today it holds the compiled rules (`code`): the generated
function of a rule program compiles in ~50 ms, paid by every process on its first return.

Nothing depends on the cache: a file that is missing, damaged, from another Python or
another version of the rules is ignored and written again; a folder that cannot be
written is left alone. A file is read only when its digest matches its content, and it
is found by the digest of the source it was compiled from (a changed rule is a new file).
Nothing is written when Python is asked not to write bytecode (``PYTHONDONTWRITEBYTECODE``).

Where: ``%LOCALAPPDATA%\\piano-abitativo\\cache`` on Windows,
``~/Library/Caches/piano-abitativo`` on macOS, ``$XDG_CACHE_HOME/piano-abitativo`` (by
default ``~/.cache/piano-abitativo``) elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import CodeType

from piano_abitativo.core.atomic import atomic_writer

APP = "piano-abitativo"
#: the first bytes of a cached code file: what the bytes after the digest are
_MAGIC = b"piano-abitativo codice 1\n"


def cache_dir() -> Path | None:
    """The program's cache folder for this user (not created here); None when the
    system does not say where a user's caches go."""
    try:
        home: Path | None = Path.home()
    except (RuntimeError, KeyError):
        home = None
    return cache_dir_for("nt" if os.name == "nt" else sys.platform, os.environ, home)


def cache_dir_for(system: str, environ: Mapping[str, str], home: Path | None) -> Path | None:
    """`cache_dir` on `system` ("nt", "darwin" or another `sys.platform`)."""
    if system == "nt":
        base = environ.get("LOCALAPPDATA")
        return Path(base) / APP / "cache" if base else None
    if system == "darwin":
        return home / "Library" / "Caches" / APP if home else None
    xdg = environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # a relative one is ignored (the XDG rule)
        return Path(xdg) / APP
    return home / ".cache" / APP if home else None


def _path(source: str) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    key = hashlib.sha256()
    for part in (sys.implementation.cache_tag or "", sys.version, source):
        key.update(part.encode("utf-8"))
    return folder / f"regole-{key.hexdigest()[:40]}.bin"


def compiled(source: str, filename: str) -> CodeType:
    """`compile(source, filename, "exec")`, from the cache when it holds it."""
    path = _path(source)
    code = _load(path) if path is not None else None
    if code is not None and code.co_filename == filename:
        return code
    code = compile(source, filename, "exec")
    if path is not None and not sys.dont_write_bytecode:
        _store(path, code)
    return code


def _load(path: Path) -> CodeType | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC)
    body = data[head + 32 :]
    if data[:head] != _MAGIC or hashlib.sha256(body).digest() != data[head : head + 32]:
        return None
    try:
        # the user's own cache folder, as trusted as the __pycache__ Python reads
        code = marshal.loads(body)  # noqa: S302
    except (ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def _store(path: Path, code: CodeType) -> None:
    """Write the file whole or not at all (`atomic_writer`); any failure is ignored: the
    cache only saves time."""
    body = marshal.dumps(code)
    with contextlib.suppress(OSError), atomic_writer(path) as fh:
        fh.write(_MAGIC + hashlib.sha256(body).digest() + body)
