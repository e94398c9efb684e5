"""Who has the master open: the owner files Excel and LibreOffice write beside it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from piano_abitativo.master.model import MasterLocked


def _excel_owner(path: Path) -> str | None:
    """The user name in Excel's owner file "~$<name>" next to `path`, or None.

    Excel writes the name's length in byte 0 and the name in the next bytes (up to 54);
    some versions replace the first two characters of a long name instead of prefixing."""
    for cand in (path.with_name("~$" + path.name), path.with_name("~$" + path.name[2:])):
        try:
            data = cand.read_bytes()
        except OSError:
            continue
        n = data[0] if data else 0
        name = data[1 : 1 + min(n, 54)].decode("cp1252", "replace").strip("\x00 ").strip()
        return name or "un altro utente"
    return None


def _libreoffice_owner(path: Path) -> str | None:
    """The user name in LibreOffice's lock file ".~lock.<name>#" (CSV, user first)."""
    lock = path.with_name(f".~lock.{path.name}#")
    try:
        text = lock.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    first = next(csv.reader(io.StringIO(text)), [])
    name = first[0].strip() if first else ""
    return name or "un altro utente"


def check_not_open(path: Path) -> None:
    """Refuse (`MasterLocked`, in Italian) to replace a master Excel or LibreOffice has
    open, naming who and the lock file to delete when nobody has."""
    for owner, program, lockname in (
        (_excel_owner(path), "Excel", f"~${path.name}"),
        (_libreoffice_owner(path), "LibreOffice", f".~lock.{path.name}#"),
    ):
        if owner is not None:
            raise MasterLocked(
                f"Il file {path.name} è aperto da {owner} in {program}: chiuderlo e ripetere. "
                f"Se nessuno lo ha aperto (ad esempio dopo un arresto del programma), "
                f"eliminare il file di blocco «{lockname}» nella cartella {path.parent}."
            )
