"""Which files found in a folder a command looks at, and why it leaves the others: one
answer for `valida` and `importa`, so the two say the same thing of the same file."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

#: why a file found in a folder is not examined
SKIP_HIDDEN = "file nascosto"
SKIP_LOCK = "file temporaneo (di un documento aperto in Excel, Word o LibreOffice)"


def skip_reason(path: Path, accepted: Collection[str], not_accepted: str) -> str | None:
    """None when `path` (found inside a folder) is to be examined, else the Italian
    reason: a lock file of an open document, a hidden file, or a kind not among the
    `accepted` suffixes (`not_accepted` says what those are, e.g. "non è una cartella di
    lavoro"), followed by the file's own suffix."""
    if path.name.startswith("~$"):
        return SKIP_LOCK
    if path.name.startswith("."):
        return SKIP_HIDDEN
    if path.suffix.lower() in accepted:
        return None
    return f"{not_accepted} ({path.suffix.lower() or 'senza estensione'})"
