"""The errors of piano-abitativo: one base, `PianoError`, and what each face shows.

Every error the package raises on purpose derives from `PianoError`; its message is one
Italian sentence for the clerk (what went wrong and, where possible, what to do), never a
Python detail. The faces (command line, Excel buttons) show that sentence and nothing
else. Anything else that reaches a face is *unexpected*: the face shows one Italian line
("Errore imprevisto: …") and writes the traceback to a log file (`log_unexpected`).

Errors of the operating system (an `OSError` with its errno: a file open in another
program, a folder without write permission, a full disk, a share that cannot be reached)
are not bugs: the faces describe them in Italian with `os_error_message` and write no
log.

Hierarchy::

    PianoError
    ├── RaccoltaError
    │   ├── PathError
    │   ├── ArchiveBusy
    │   ├── ArchiveError
    │   ├── MailError
    │   ├── MasterLocked
    │   └── DocumentLocked
    ├── RegistryError      (also a ValueError, as it always was)
    ├── P7mError           (also a ValueError, as it always was)
    └── PdfError
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "LOG_NAME",
    "USER_LOG_DIR",
    "ArchiveBusy",
    "ArchiveError",
    "DocumentLocked",
    "MailError",
    "MasterLocked",
    "P7mError",
    "PathError",
    "PdfError",
    "PianoError",
    "RaccoltaError",
    "RegistryError",
    "expected_message",
    "log_unexpected",
    "os_error_message",
    "os_reason",
    "unexpected_message",
]

#: the log of unexpected errors, in the raccolta folder when it is known
LOG_NAME = "piano-abitativo.log"
#: the per-user folder of the log when no raccolta is known (under the home folder)
USER_LOG_DIR = ".piano-abitativo"


class PianoError(Exception):
    """Base of every error piano-abitativo raises on purpose.

    Raised never by itself but through a subclass; its message is one Italian sentence for
    the clerk, shown as it is by the command line (exit code 2) and the Excel buttons.
    """


class RaccoltaError(PianoError):
    """Raised when a raccolta cannot be created, loaded or used: a missing folder or
    ``raccolta.toml``, a wrong value in the configuration, an option that does not apply,
    a date that cannot be read, a raccolta of another year where one was expected."""


class PathError(RaccoltaError):
    """Raised when a file or folder given by the user does not exist, or is a file where a
    folder is needed (the folder of a raccolta, of a demo) or the other way round."""


class RegistryError(PianoError, ValueError):
    """Raised when the registry of the enti (``enti.csv``) cannot be used: a missing
    column, a duplicate or malformed codice, an unknown tipo; the message names file and
    line."""


class ArchiveBusy(RaccoltaError):
    """Raised when another user (or process) holds the raccolta's lock for longer than the
    timeout, so the archive cannot be written now."""


class ArchiveError(RaccoltaError):
    """Raised when the archive of the raccolta cannot be written (disk full, no
    permission, …)."""


class MailError(RaccoltaError):
    """Raised when the mail settings (``[posta]``) or a message template are wrong, or the
    server refused the login; the message names the file or the variable to fix."""


class MasterLocked(RaccoltaError):
    """Raised when the master workbook cannot be replaced because it is open (in Excel or
    LibreOffice, here or on another PC of the share); the old file is left as it was."""


class MasterEdited(RaccoltaError):
    """Values were changed by hand in the master's Dati: `consolida` does not overwrite
    them without an explicit choice (record them as rettifiche, or discard them)."""


class DocumentLocked(RaccoltaError):
    """Raised when the .docx or .pdf of the Piano cannot be replaced because it is open in
    Word, LibreOffice or a PDF viewer; the old file is left as it was."""


class P7mError(PianoError, ValueError):
    """Raised when a signed file (.p7m) is not a CMS SignedData with its content embedded,
    so the signed workbook cannot be taken out of it."""


class PdfError(PianoError):
    """Raised when LibreOffice is missing or cannot convert the document to PDF; the .docx
    is written anyway and the reason becomes a note."""


_OS_REASONS = {
    errno.ENOSPC: "lo spazio su disco è esaurito",
    errno.EDQUOT: "lo spazio disponibile per l'utente è esaurito",
    errno.EFBIG: "il file supera la dimensione consentita (spazio o quota esauriti)",
    errno.EROFS: "il disco o la cartella è di sola lettura",
    errno.EACCES: "manca il permesso (o il file è aperto in un altro programma)",
    errno.EPERM: "manca il permesso",
    errno.ENOENT: "non esiste",
    errno.ENOTDIR: "non è una cartella",
    errno.EISDIR: "è una cartella, non un file",
    errno.EEXIST: "esiste già",
    errno.ENAMETOOLONG: "il nome è troppo lungo",
    errno.EBUSY: "è in uso da un altro programma",
    errno.EIO: "il disco non risponde (errore di lettura o scrittura)",
    errno.ETIMEDOUT: "la cartella condivisa o il server non risponde",
    errno.ECONNREFUSED: "il server ha rifiutato la connessione",
    errno.ENETUNREACH: "la rete non è raggiungibile",
    errno.EHOSTUNREACH: "il server non è raggiungibile",
}


def os_reason(exc: OSError) -> str:
    """Why the operating system refused, in Italian (``exc.strerror`` is English on most
    systems): for the messages that name the file themselves."""
    if isinstance(exc, PermissionError):
        return _OS_REASONS[errno.EACCES]
    if isinstance(exc, FileNotFoundError):
        return _OS_REASONS[errno.ENOENT]
    return _OS_REASONS.get(exc.errno or -1, "il sistema ha rifiutato l'operazione")


def os_error_message(exc: OSError) -> str:
    """The Italian sentence for an error of the operating system: which file and why."""
    what = f" su {exc.filename}" if exc.filename else ""
    return f"Operazione non riuscita{what}: {os_reason(exc)}. Risolvere e ripetere."


def expected_message(exc: BaseException) -> str | None:
    """What a face shows for an error it expects (a `PianoError` or an `OSError`), in
    Italian (one sentence; a few carry lines to copy into a file); None for an unexpected
    one (a bug, to be logged)."""
    if isinstance(exc, PianoError):
        return str(exc).strip() or "operazione non riuscita"
    if isinstance(exc, OSError) and exc.errno is not None:  # a real answer of the system
        return os_error_message(exc)
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "nessun dettaglio"
    if len(text) > 200:
        text = text[:197] + "…"
    return f"{type(exc).__name__}: {text}"


def unexpected_message(exc: BaseException, log: Path | None) -> str:
    """The one Italian line a face shows for an unexpected error, with the log's path.

    The exception's own text (English, a programmer's words) goes only to the log, for
    whoever gives assistance; when no log could be written, its type is the one trace
    left, in brackets."""
    if log is not None:
        where = f"Dettagli in {log}"
    else:
        where = f"Non è stato possibile scrivere i dettagli (tipo {type(exc).__name__})."
    return (
        "Errore imprevisto: l'operazione non è stata completata per un guasto del "
        f"programma, da segnalare all'assistenza. {where}"
    )


def _log_folders(folder: Path | None) -> Iterable[Path]:
    import tempfile  # only when something went wrong: the start-up of every command pays

    if folder is not None:
        yield folder
    with contextlib.suppress(RuntimeError, KeyError):  # no home folder (a service user)
        yield Path.home() / USER_LOG_DIR
    yield Path(tempfile.gettempdir())


def log_unexpected(
    exc: BaseException, *, what: str, folder: Path | None = None, version: str = ""
) -> Path | None:
    """Append the traceback of `exc` to ``piano-abitativo.log`` in `folder` (the
    raccolta's, when known), else in the per-user folder ``~/.piano-abitativo/``, else in
    the temp folder; the log's path, None when none of them can be written. `what` names
    the operation (the command, the button) in the log's header."""
    import traceback  # only when something went wrong: the start-up of every command pays

    now = dt.datetime.now(dt.UTC).astimezone()
    header = (
        f"--- {now:%Y-%m-%d %H:%M:%S %z} {what} "
        f"(piano-abitativo {version or '?'}, Python {sys.version.split()[0]}, "
        f"{sys.platform}, pid {os.getpid()})\n"
    )
    entry = header + "".join(traceback.format_exception(exc)) + "\n"
    for dir_ in _log_folders(folder):
        path = dir_ / LOG_NAME
        try:
            if dir_.name == USER_LOG_DIR:
                dir_.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(entry)
        except OSError:
            continue
        return path
    return None
