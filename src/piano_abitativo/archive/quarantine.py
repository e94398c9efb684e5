"""Crash quarantine: a file or message that makes the program die is never read again.

Before a returned file or a message is parsed, a ``lettura`` record is appended to the
ledger (sha256, name, where it came from, when). After it is processed the normal records
follow (a receipt, a message, a generated file…), or a ``letto`` record when processing
wrote none. A ``lettura`` with no later record for its sha256 can only mean that the
process died while reading it (readers hold the raccolta's lock, so no live reader can be
half way): the next writer appends ``lettura_non_riuscita`` once and, from then on, the
file is never read again automatically (folder import, orphan recovery, IMAP intake all
skip it and go on with the others). ``stato`` and the master's *Anomalie* list it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from collections.abc import Iterable, Iterator
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


_OPENING = (b'"tipo": "lettura"', b'"tipo": "lettura_non_riuscita"')


def failed_in_ledger(raccolta_path: Path) -> list[dict[str, Any]]:
    """`failed_readings` of the ledger in one pass over its bytes: only the lines of
    readings are parsed (a reading is closed by the next line naming its sha256). Without
    the lock, an open reading counts only when its process is surely gone."""
    opened: list[dict[str, Any]] = []
    pending: dict[bytes, dict[str, Any]] = {}
    try:
        fh = open(archive_dir(raccolta_path) / LEDGER_NAME, "rb")  # noqa: SIM115
    except OSError:
        return []
    with fh:
        for line in fh:
            if not line.endswith(b"\n"):
                continue
            rec: Any = None
            if any(n in line for n in _OPENING):
                with contextlib.suppress(ValueError):
                    rec = json.loads(line)
            if isinstance(rec, dict) and rec.get("tipo") in (TIPO_LETTURA, TIPO_NON_RIUSCITA):
                opened.append(rec)
                sha = rec.get("sha256")
                if isinstance(sha, str) and rec["tipo"] == TIPO_LETTURA:
                    pending[f'"sha256": "{sha}"'.encode()] = rec
                continue
            for needle in [n for n in pending if n in line]:
                del pending[needle]
    still = {id(r) for r in pending.values() if _surely_dead(r)}
    return failed_readings(r for r in opened if r["tipo"] == TIPO_NON_RIUSCITA or id(r) in still)


def settle(raccolta_path: Path, records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mark the readings a dead process left open; returns sha256 → record of every file
    never to be read again. Call with the lock held."""
    pending, marked = dead_readings(records)
    new = [
        {
            "tipo": TIPO_NON_RIUSCITA,
            "versione": 1,
            "sha256": r["sha256"],
            "nome": r.get("nome"),
            "origine": r.get("origine"),
            "inizio": r.get("inizio"),
            "segnalato_il": now().isoformat(),
            "motivo": MOTIVO,
        }
        for r in pending
    ]
    append_records(raccolta_path, new)
    marked.update((r["sha256"], r) for r in new)
    return marked


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


def _surely_dead(rec: dict[str, Any]) -> bool:
    """Whether the process of an open reading is gone, as far as one can tell without the
    lock: a process of this PC that no longer exists, or a reading over 15 minutes old."""
    pid = rec.get("pid")
    if os.name == "posix" and rec.get("pc") == socket.gethostname() and isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass
    try:
        started = dt.datetime.fromisoformat(str(rec.get("inizio")))
        return (now() - started).total_seconds() > 15 * 60
    except (TypeError, ValueError):
        return True
