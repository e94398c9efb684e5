"""Reading the IMAP mailbox: new messages fetched in batches, read-only, optionally moved.

The folder is opened **read-only** (EXAMINE, ``BODY.PEEK``): nothing is flagged, moved or
deleted, unless ``sposta=True``, which moves the recorded messages to the configured folder.
A message already recorded (by its UIDVALIDITY and UID, or by its bytes) is not fetched
again; each new one goes through :func:`piano_abitativo.mail.ingest.ingest_message`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import imaplib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from piano_abitativo.archive import quarantine
from piano_abitativo.archive import store as archive
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.mail import probe
from piano_abitativo.mail.ingest import (
    FONTE_IMAP,
    IngestState,
    MessageOutcome,
    Provenance,
    ingest_message,
    location_key,
    recover_originals,
)
from piano_abitativo.mail.mailbox import connect_imap, imap_mailbox
from piano_abitativo.mail.settings import MailError, load_settings

#: a message larger than this is not downloaded (PEC providers cap messages at 100 MB)
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
#: messages fetched per IMAP command, and their total size at most
FETCH_BATCH = 25
FETCH_BATCH_BYTES = 16 * 1024 * 1024

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_INTERNALDATE = re.compile(
    rb'INTERNALDATE "\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"'
)
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


@dataclass
class IngestResult:
    """The outcome of reading a mailbox folder."""

    cartella: str = ""
    #: messages in the folder
    totale: int = 0
    #: messages skipped because already recorded by an earlier run
    gia_visti: int = 0
    messages: list[MessageOutcome] = field(default_factory=list)
    #: messages archived by an interrupted run and recorded now
    recuperati: list[MessageOutcome] = field(default_factory=list)
    spostati: int = 0
    note: list[str] = field(default_factory=list)

    @property
    def receipts(self) -> list[archive.Receipt]:
        return [rc for m in [*self.messages, *self.recuperati] for rc in m.receipts]

    def to_json(self) -> dict[str, Any]:
        return {
            "cartella": self.cartella,
            "totale": self.totale,
            "gia_visti": self.gia_visti,
            "messaggi": [m.to_json() for m in self.messages],
            "recuperati": [m.to_json() for m in self.recuperati],
            "spostati": self.spostati,
            "note": self.note,
        }


def _parse_internaldate(meta: bytes) -> dt.datetime | None:
    m = _INTERNALDATE.search(meta)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTHS.get(mon.decode().lower())
    if month is None:
        return None
    offset = dt.timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == b"+" else -1)
    try:
        return dt.datetime(
            int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=dt.timezone(offset)
        )
    except ValueError:
        return None


def _fetch_items(data: Sequence[Any]) -> Iterator[tuple[bytes, bytes | None]]:
    """(metadata, literal) of each message of an imaplib FETCH response."""
    meta: bytes | None = None
    literal: bytes | None = None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            if meta is not None:
                yield meta, literal
            meta, literal = bytes(item[0]), bytes(item[1])
        elif isinstance(item, bytes):
            if meta is not None:  # the rest of the item after its literal
                yield meta + b" " + item, literal
                meta, literal = None, None
            elif item[:1].isdigit():
                yield item, None
    if meta is not None:
        yield meta, literal


def _uid_set(uids: Sequence[int]) -> str:
    """``1:5,7,9:10`` — consecutive UIDs as ranges (short commands for big folders)."""
    parts: list[str] = []
    start = prev = None
    for uid in sorted(uids):
        if start is None:
            start = prev = uid
        elif prev is not None and uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if start != prev else f"{start}")
            start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else f"{start}")
    return ",".join(parts)


def _batches(items: Sequence[tuple[int, int]], count: int, size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    total = 0
    for uid, length in items:
        if batch and (len(batch) >= count or total + length > size):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += length
    if batch:
        yield batch


def _check(typ: str, data: Sequence[Any], what: str) -> None:
    if typ != "OK":
        detail = data[0].decode("utf-8", "replace") if data and isinstance(data[0], bytes) else ""
        raise MailError(f"La casella ha risposto con un errore a {what}: {detail}")


def import_imap(
    r: Raccolta,
    *,
    sposta: bool = False,
    env: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    waiting: Callable[[str], None] | None = None,
    batch: int = FETCH_BATCH,
) -> IngestResult:
    """Read the configured IMAP folder and record every new message (read-only by default).

    With ``sposta`` the messages recorded (now or before) are moved to the folder
    ``cartella_importati`` of the settings; nothing is ever deleted.
    """
    s = load_settings(r, env)
    if sposta and not s.cartella_importati:
        raise MailError(
            f"Per spostare i messaggi importati indicare cartella_importati "
            f"nella sezione [posta] di {r.config_path}."
        )
    result = IngestResult(cartella=s.cartella)
    conn = connect_imap(s, env)
    try:
        typ, data = conn.select(imap_mailbox(s.cartella), readonly=not sposta)
        _check(typ, data, f"apertura della cartella «{s.cartella}»")
        _, uv = conn.response("UIDVALIDITY")
        uidvalidity = int(uv[0]) if uv and uv[0] else 0
        typ, data = conn.uid("SEARCH", "ALL")
        _check(typ, data, "ricerca dei messaggi")
        uids = [int(x) for x in b" ".join(d for d in data if isinstance(d, bytes)).split()]
        result.totale = len(uids)
        where = {
            "server": f"{s.imap_host}:{s.imap_port}",
            "utente": s.utente,
            "cartella": s.cartella,
            "uidvalidity": uidvalidity,
        }
        with archive.locked(r.path, waiting=waiting):
            state = IngestState.from_ledger(r)
            marked, suspects = quarantine.triage(archive.read_ledger(r.path, letture=True).records)
            state.known |= set(marked)

            def key(uid: int) -> tuple[Any, ...] | None:
                return location_key({**where, "uid": uid})

            new = [u for u in uids if key(u) not in state.locations]
            result.gia_visti = len(uids) - len(new)
            sizes = _sizes(conn, new)
            wanted: list[tuple[int, int]] = []
            for uid in new:
                size = sizes.get(uid, 0)
                if size > MAX_MESSAGE_BYTES:
                    result.note.append(
                        f"messaggio UID {uid}: {size // 2**20} MB, oltre il "
                        f"limite di {MAX_MESSAGE_BYTES // 2**20} MB: non "
                        "scaricato, da esaminare a mano"
                    )
                    continue
                wanted.append((uid, size))
            done = 0
            for chunk in _batches(wanted, batch, FETCH_BATCH_BYTES):
                typ, data = conn.uid("FETCH", _uid_set(chunk), "(UID INTERNALDATE BODY.PEEK[])")
                _check(typ, data, "lettura dei messaggi")
                for meta, raw in _fetch_items(data):
                    uid_m = _UID.search(meta)
                    if uid_m is None or raw is None:
                        continue
                    uid = int(uid_m.group(1))
                    idate = _parse_internaldate(meta)
                    loc = {**where, "uid": uid}
                    prov = Provenance(
                        f"imap://{s.utente}@{s.imap_host}/{s.cartella};"
                        f"UIDVALIDITY={uidvalidity};UID={uid}",
                        imap=loc,
                        internaldate=idate,
                        arrival=idate,
                        arrival_fonte=FONTE_IMAP,
                    )
                    sha = hashlib.sha256(raw).hexdigest()
                    child = partial(probe.survives, r, raw, f"UID {uid}", probe.KIND_MESSAGE)
                    if sha not in marked and sha in state.known:
                        result.messages.append(ingest_message(state, raw, prov))
                    elif not quarantine.may_read(r.path, sha, marked, suspects, child):
                        # it killed an earlier run: go on with the others
                        result.note.append(quarantine.skipped_note(f"messaggio UID {uid}"))
                    else:
                        with quarantine.reading(r.path, sha, f"UID {uid}", prov.origine):
                            result.messages.append(ingest_message(state, raw, prov))
                    done += 1
                    if progress is not None:
                        progress(done, len(wanted))
                del data
            state.known |= set(suspects)  # never re-read in this process: see probe
            result.recuperati = recover_originals(state)
            if sposta:
                recorded = [u for u in uids if key(u) in state.locations]
                result.spostati = _move(conn, recorded, s.cartella_importati, result.note)
    finally:
        with contextlib.suppress(Exception):
            conn.logout()
    return result


def _sizes(conn: imaplib.IMAP4, uids: Sequence[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for start in range(0, len(uids), 500):
        part = uids[start : start + 500]
        typ, data = conn.uid("FETCH", _uid_set(part), "(UID RFC822.SIZE)")
        _check(typ, data, "lettura delle dimensioni dei messaggi")
        for meta, _ in _fetch_items(data):
            uid_m, size_m = _UID.search(meta), _SIZE.search(meta)
            if uid_m and size_m:
                out[int(uid_m.group(1))] = int(size_m.group(1))
    return out


def _move(conn: imaplib.IMAP4, uids: Iterable[int], folder: str, notes: list[str]) -> int:
    """Move messages (UID MOVE; else copy, flag and expunge only those, with UIDPLUS)."""
    todo = sorted(uids)
    if not todo:
        return 0
    target = imap_mailbox(folder)
    caps = {c.upper() for c in conn.capabilities}
    moved = 0
    for start in range(0, len(todo), 200):
        uid_set = _uid_set(todo[start : start + 200])
        if "MOVE" in caps:
            typ, data = conn.uid("MOVE", uid_set, target)
            if (
                typ != "OK"
                and b"TRYCREATE" in b" ".join(d for d in data if isinstance(d, bytes)).upper()
            ):
                conn.create(target)
                typ, data = conn.uid("MOVE", uid_set, target)
            _check(typ, data, f"spostamento nella cartella «{folder}»")
        else:
            typ, data = conn.uid("COPY", uid_set, target)
            if typ != "OK":
                conn.create(target)
                typ, data = conn.uid("COPY", uid_set, target)
            _check(typ, data, f"copia nella cartella «{folder}»")
            conn.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)")
            if "UIDPLUS" in caps:
                conn.uid("EXPUNGE", uid_set)
            else:
                notes.append(
                    "il server non permette di togliere solo i messaggi importati: "
                    "sono stati copiati e segnati come da cancellare, non rimossi"
                )
        moved += len(todo[start : start + 200])
    return moved
