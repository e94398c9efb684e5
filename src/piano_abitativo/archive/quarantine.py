"""Crash quarantine: a file or message that makes the program die is never read again.

Before a returned file or a message is parsed, a ``lettura`` record is appended to the
ledger (sha256, name, where it came from, when). After it is processed the normal records
follow (a receipt, a message, a generated file…), or a ``letto`` record when processing
wrote none. A ``lettura`` with no later record for its sha256 can only mean that the
process died while reading it (readers hold the raccolta's lock, so no live reader can be
half way). The next writer that meets that content reads it first in a child process
(`mail.probe`): if the child dies too, the content is the cause — ``lettura_non_riuscita``
is appended once and, from then on, the file is never read again automatically (folder
import, orphan recovery, IMAP intake all skip it and go on with the others); if the
child survives, the first run was merely interrupted and the file is read as usual.
``stato`` and the master's *Anomalie* list the files never to be read again.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from piano_abitativo.archive.store import LEDGER_NAME, append_records, archive_dir, now

TIPO_LETTURA = "lettura"
TIPO_LETTO = "letto"
TIPO_NON_RIUSCITA = "lettura_non_riuscita"
#: what the capofila reads about such a file
MOTIVO = "lettura non riuscita (il programma si è interrotto leggendo questo file)"
#: test hook: a reading of a file or message with this name makes the process die at once
#: (as a parser that aborts would); without the variable it does nothing
CRASH_ENV = "PIANO_ABITATIVO_TEST_CRASH"


def dead_readings(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(readings with no later record — their process died —, sha256 → the
    ``lettura_non_riuscita`` records already written)."""
    pending: dict[str, dict[str, Any]] = {}
    marked: dict[str, dict[str, Any]] = {}
    for rec in records:
        sha = rec.get("sha256")
        if not isinstance(sha, str):
            continue
        tipo = rec.get("tipo")
        if tipo == TIPO_LETTURA:
            pending[sha] = rec
        elif tipo == TIPO_NON_RIUSCITA:
            marked.setdefault(sha, rec)
            pending.pop(sha, None)
        else:
            pending.pop(sha, None)
    return [r for s, r in pending.items() if s not in marked], marked


def failed_readings(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every file or message whose reading killed the program (marked or not yet)."""
    pending, marked = dead_readings(records)
    out = [*marked.values(), *({**r, "tipo": TIPO_NON_RIUSCITA} for r in pending)]
    return sorted(out, key=lambda r: str(r.get("inizio") or ""))


def failed_in_ledger(raccolta_path: Path) -> list[dict[str, Any]]:
    """The ``lettura_non_riuscita`` records of the ledger (what `stato` and the master
    show), in one pass over its bytes: only their lines are parsed."""
    out: list[dict[str, Any]] = []
    needle = f'"tipo": "{TIPO_NON_RIUSCITA}"'.encode()
    try:
        fh = open(archive_dir(raccolta_path) / LEDGER_NAME, "rb")  # noqa: SIM115
    except OSError:
        return out
    with fh:
        for line in fh:
            if needle not in line or not line.endswith(b"\n"):
                continue
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("tipo") == TIPO_NON_RIUSCITA:
                    out.append(rec)
    return failed_readings(out)


def triage(
    records: Iterable[dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(sha256 → record of the files never to be read again, sha256 → open reading of a
    process that died: a suspect, to be read again first in a child process, see
    `may_read`). Call with the lock held: then no open reading is a live one."""
    pending, marked = dead_readings(records)
    return dict(marked), {r["sha256"]: r for r in pending}


def mark(raccolta_path: Path, rec: dict[str, Any]) -> dict[str, Any]:
    """Record, once, that reading `rec`'s content kills the program."""
    out = {
        "tipo": TIPO_NON_RIUSCITA,
        "versione": 1,
        "sha256": rec["sha256"],
        "nome": rec.get("nome"),
        "origine": rec.get("origine"),
        "inizio": rec.get("inizio"),
        "segnalato_il": now().isoformat(),
        "motivo": MOTIVO,
    }
    append_records(raccolta_path, [out])
    return out


def may_read(
    raccolta_path: Path,
    sha: str,
    marked: dict[str, dict[str, Any]],
    suspects: dict[str, dict[str, Any]],
    survives: Callable[[], bool],
) -> bool:
    """Whether the content `sha` may be read in this process: not when it is marked; a
    suspect is read first by `survives` (a child process): if the child dies too, the
    content is marked now. Call with the lock held."""
    if sha in marked:
        return False
    rec = suspects.pop(sha, None)
    if rec is None or survives():
        return True
    marked[sha] = mark(raccolta_path, rec)
    return False


#: the note of a file skipped for that reason
SKIPPED = f"{MOTIVO}: non viene riletto (esaminarlo a mano)"


def skipped_note(nome: str) -> str:
    return f"{nome}: {SKIPPED}"


def _ledger_size(raccolta_path: Path) -> int:
    try:
        return os.stat(archive_dir(raccolta_path) / LEDGER_NAME).st_size
    except OSError:
        return 0


def _recorded_since(raccolta_path: Path, offset: int, sha: str) -> bool:
    """Whether a whole record about `sha` (its own sha256) was appended after `offset`."""
    try:
        with open(archive_dir(raccolta_path) / LEDGER_NAME, "rb") as fh:
            fh.seek(offset)
            tail = fh.read()
    except OSError:
        return False
    needle = f'"sha256": "{sha}"'.encode()
    for line in tail.split(b"\n")[:-1]:
        if needle in line:
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("sha256") == sha:
                    return True
    return False


def known_shas(records: Iterable[dict[str, Any]]) -> set[Any]:
    """The sha256 of every content the ledger has dealt with: an open or closed reading
    does not count (the content may be read again), a failed one does (never again)."""
    return {r.get("sha256") for r in records if r.get("tipo") not in (TIPO_LETTURA, TIPO_LETTO)}


@contextlib.contextmanager
def reading(raccolta_path: Path, sha: str, nome: str, origine: str) -> Iterator[None]:
    """Record that `sha` is being read; when the block ends and it wrote no record for
    it, a ``letto`` record closes the reading. Call with the lock held."""
    start = _ledger_size(raccolta_path)
    append_records(
        raccolta_path,
        [
            {
                "tipo": TIPO_LETTURA,
                "sha256": sha,
                "nome": nome,
                "origine": origine,
                "inizio": now().isoformat(),
                "pc": socket.gethostname(),
                "pid": os.getpid(),
            }
        ],
    )
    offset = _ledger_size(raccolta_path)
    crash = os.environ.get(CRASH_ENV)
    if crash and crash == nome:  # pragma: no cover - the process ends here
        os._exit(134)
    ok = False
    try:
        yield
        ok = True
    finally:
        if not ok or not _recorded_since(raccolta_path, offset, sha):
            try:
                append_records(
                    raccolta_path,
                    [{"tipo": TIPO_LETTO, "sha256": sha, "esito": "ok" if ok else "errore"}],
                )
            except OSError:
                # a Python error (disk full…) is no crash: take the reading back, so that
                # a rerun reads the file (a truncation needs no free space); never when
                # the block recorded something (it would be lost)
                if not ok or _ledger_size(raccolta_path) == offset:
                    with contextlib.suppress(OSError):
                        os.truncate(archive_dir(raccolta_path) / LEDGER_NAME, start)
                if ok:
                    raise
