"""How the application layer gets the raccolta and the paths it is given.

Every function of `piano_abitativo.app` accepts a raccolta as a loaded `Raccolta` or as
the path of its folder; a path that does not exist, or a file where a folder is needed,
is refused with a `PathError` in Italian before anything else happens.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TypeAlias

from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.errors import PathError
from piano_abitativo.core.raccolta import Raccolta

#: a raccolta as the faces give it: loaded, or the path of its folder
RaccoltaLike: TypeAlias = Raccolta | str | os.PathLike[str]
#: a file or folder given by the user
PathLike: TypeAlias = str | os.PathLike[str]


def folder(path: PathLike, what: str = "la cartella della raccolta") -> Path:
    """`path` as a Path, checked to be an existing folder (`what` names it in the error)."""
    p = Path(path)
    if not p.exists():
        raise PathError(f"La cartella {p} non esiste: indicare {what}.")
    if not p.is_dir():
        raise PathError(f"{p} è un file, non una cartella: indicare {what}.")
    return p


def load_raccolta(raccolta: RaccoltaLike) -> Raccolta:
    """The raccolta itself, or the one in the folder `raccolta` (checked to exist)."""
    if isinstance(raccolta, Raccolta):
        return raccolta
    return rc.load(
        folder(raccolta, f"la cartella della raccolta, quella che contiene {rc.CONFIG_NAME}")
    )


def existing_paths(paths: Iterable[PathLike]) -> list[Path]:
    """`paths` as Paths, each checked to exist (a file or a folder)."""
    out = [Path(p) for p in paths]
    for p in out:
        if not p.exists():
            raise PathError(f"{p} non esiste: indicare un file o una cartella esistente.")
    return out
