"""The archive of a raccolta: every returned file, kept forever, and the ledger of receipts.

Layout, inside the raccolta folder::

    archivio/
      file/ab/ab12…ef.xlsx   one file per distinct content, named by its sha256;
                             written once (temp file + rename), never overwritten or deleted
      registro.jsonl         the ledger: one JSON object per line, append-only
      .lock                  locked (OS byte-range lock) while someone writes

Guarantees, also on a Windows network share used by two or three people at once:

* **Nothing received is lost.** A file is copied into the archive (and flushed to disk)
  before it is read, validated or recorded.
* **No half-written record.** A ledger line is written by one append and flushed; a line cut
  short by a crash has no newline and is not valid JSON, so readers skip it, and the next
  writer first ends it with a newline.
* **Idempotent.** A content already recorded is not recorded again: importing the same
  bytes twice changes nothing. A file archived but not yet recorded (crash in between) is
  recorded by the next import.
* **Serialised writers.** Writers hold an OS lock on ``archivio/.lock`` (``fcntl.lockf`` /
  ``msvcrt.locking``, both honoured by SMB servers across PCs); the OS releases it when a
  process dies, so a crash never leaves the raccolta locked.

History: every receipt stays. For consolidation the *latest* receipt of an ente (by time of
reception) supersedes the earlier ones; the earlier ones keep their reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import getpass
import hashlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.errors import ArchiveBusy as ArchiveBusy
from piano_abitativo.core.errors import ArchiveError as ArchiveError
from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.problems import Report
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.validation.validate import ValidationContext, validate_bytes

ARCHIVE_DIR = "archivio"
FILES_DIR = "file"
LEDGER_NAME = "registro.jsonl"
LOCK_NAME = ".lock"
LOCK_INFO_NAME = ".lock-chi"
LEDGER_VERSION = 1

#: Times are shown in the time of Italy, whatever the PC's setting.
TZ = ZoneInfo("Europe/Rome")

#: What a receipt's time is based on (``fonte_data``)
FONTE_FILE = "data di modifica del file"
FONTE_RECUPERO = "data di modifica del file (recuperato dall'archivio)"

#: How a file arrived (``canale``)
CANALE_CARTELLA = "cartella"

#: Files picked up when a folder is imported (others named explicitly are archived too)
RETURN_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
#: Messages (.eml, Outlook .msg) and signed files (.p7m): opened by `ingest`
MAIL_SUFFIXES = (".eml", ".msg", ".p7m")

#: Reading limit: a returned workbook is a few tens of KB; the reader refuses > 20 MB anyway
MAX_FILE_BYTES = 64 * 1024 * 1024


def now() -> dt.datetime:
    return dt.datetime.now(TZ)


def archive_dir(raccolta_path: Path) -> Path:
    return Path(raccolta_path) / ARCHIVE_DIR


# --------------------------------------------------------------------------- locking


def _try_lock(fh: IO[bytes]) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.lockf(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fh: IO[bytes]) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        fh.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.lockf(fh.fileno(), fcntl.LOCK_UN)


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # getuser raises various errors when there is no user name
        user = "?"
    return f"{user}@{socket.gethostname()}"


@contextlib.contextmanager
def locked(
    raccolta_path: Path, *, timeout: float = 60.0, waiting: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the raccolta's write lock; wait up to `timeout` seconds for another holder."""
    adir = archive_dir(raccolta_path)
    try:
        adir.mkdir(parents=True, exist_ok=True)
        fh = open(adir / LOCK_NAME, "a+b")  # noqa: SIM115 - closed in finally
    except OSError as exc:
        raise ArchiveError(
            f"Impossibile scrivere nella cartella {adir}: {os_reason(exc)}. "
            "Controllare di avere i permessi di scrittura."
        ) from exc
    try:
        deadline = time.monotonic() + timeout
        told = False
        while not _try_lock(fh):
            holder = _read_holder(adir)
            if time.monotonic() >= deadline:
                raise ArchiveBusy(
                    f"La raccolta {raccolta_path} è in uso{holder}. Riprovare fra qualche minuto."
                )
            if waiting is not None and not told:
                waiting(f"La raccolta è in uso{holder}: attendo…")
                told = True
            time.sleep(0.1)
        with contextlib.suppress(OSError):
            (adir / LOCK_INFO_NAME).write_text(
                f"{_who()} {now():%d/%m/%Y %H:%M:%S}\n", encoding="utf-8"
            )
        try:
            yield
        finally:
            _unlock(fh)
    finally:
        fh.close()


def _read_holder(adir: Path) -> str:
    try:
        text = (adir / LOCK_INFO_NAME).read_text(encoding="utf-8").split()
    except OSError:
        return ""
    if len(text) >= 3:
        return f" da {text[0]} (dalle {text[2]} del {text[1]})"
    return ""


# --------------------------------------------------------------------------- blobs


def blob_relpath(sha256: str, suffix: str, folder: str = FILES_DIR) -> str:
    suffix = suffix.lower() if suffix and len(suffix) <= 12 and suffix[1:].isalnum() else ""
    return f"{ARCHIVE_DIR}/{folder}/{sha256[:2]}/{sha256}{suffix}"


def store_blob(
    raccolta_path: Path,
    data: bytes,
    *,
    suffix: str,
    mtime: float | None = None,
    folder: str = FILES_DIR,
) -> tuple[str, str]:
    """Copy `data` into the archive (if not there yet); returns (sha256, relative path).
    An existing archived copy is checked against its name and rewritten only if damaged."""
    sha = hashlib.sha256(data).hexdigest()
    rel = blob_relpath(sha, suffix, folder)
    target = Path(raccolta_path) / rel
    if target.exists():
        try:
            if hashlib.sha256(target.read_bytes()).hexdigest() == sha:
                return sha, rel
        except OSError:
            pass
    atomic_write_bytes(target, data, mtime=mtime)
    return sha, rel


# --------------------------------------------------------------------------- ledger


@dataclass(frozen=True, slots=True)
class Receipt:
    """One received file as recorded in the ledger, with its validation report."""

    sha256: str
    nome: str
    blob: str
    dimensione: int
    ricevuto_il: dt.datetime
    fonte_data: str
    certificato: bool
    canale: str
    importato_il: dt.datetime
    origine: str
    utente: str
    contesto: str
    report: Report
    #: channel-specific facts (sender, PEC identificativo, …), for the mail cycle
    extra: dict[str, Any] = field(default_factory=dict)
    #: position in the ledger (0-based line order): ties on time are broken by it
    seq: int = 0

    @property
    def ente(self) -> str | None:
        return self.report.ente

    def to_record(self) -> dict[str, Any]:
        return {
            "tipo": "ricezione",
            "versione": LEDGER_VERSION,
            "sha256": self.sha256,
            "nome": self.nome,
            "blob": self.blob,
            "dimensione": self.dimensione,
            "ricevuto_il": self.ricevuto_il.isoformat(),
            "fonte_data": self.fonte_data,
            "certificato": self.certificato,
            "canale": self.canale,
            "importato_il": self.importato_il.isoformat(),
            "origine": self.origine,
            "utente": self.utente,
            "contesto": self.contesto,
            "extra": self.extra,
            "report": self.report.to_record(),
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], seq: int) -> Receipt:
        nome = rec["nome"]
        return cls(
            sha256=rec["sha256"],
            nome=nome,
            blob=rec["blob"],
            dimensione=int(rec["dimensione"]),
            ricevuto_il=dt.datetime.fromisoformat(rec["ricevuto_il"]),
            fonte_data=rec["fonte_data"],
            certificato=bool(rec["certificato"]),
            canale=rec["canale"],
            importato_il=dt.datetime.fromisoformat(rec["importato_il"]),
            origine=rec["origine"],
            utente=rec["utente"],
            contesto=rec["contesto"],
            report=Report.from_record(rec["report"], nome),
            extra=dict(rec.get("extra") or {}),
            seq=seq,
        )


@dataclass(frozen=True, slots=True)
class LedgerDamage:
    """A line of the ledger that cannot be used, or an archived file that is gone."""

    #: 1-based line number in registro.jsonl (0: not a line, e.g. a missing file)
    riga: int
    #: what is wrong, in Italian
    motivo: str
    #: the sha256 the damaged line names, when it can still be read from its bytes
    sha256: str | None = None
    #: the file it recorded was recorded again (recovered from the archive)
    recuperato: bool = False

    def __str__(self) -> str:
        where = f"riga {self.riga}" if self.riga else "archivio"
        done = (
            " — il file è stato recuperato dall'archivio, nessun dato perso"
            if self.recuperato
            else ""
        )
        return f"{where}: {self.motivo}{done}"

    def to_json(self) -> dict[str, Any]:
        return {"riga": self.riga or None, "motivo": self.motivo, "recuperato": self.recuperato}


@dataclass
class LedgerContents:
    records: list[dict[str, Any]]
    #: lines that are not complete records (a write cut by a crash, a damaged byte…)
    damage: list[LedgerDamage] = field(default_factory=list)

    @property
    def damaged_lines(self) -> int:
        return len(self.damage)


#: fields a reception record needs, and how each is checked
_TIMES = ("ricevuto_il", "importato_il")
_TEXTS = ("sha256", "nome", "blob", "fonte_data", "canale", "origine", "utente", "contesto")


def record_problem(rec: dict[str, Any]) -> str | None:
    """Why a record cannot be used (Italian), None when it can. Reception records are
    checked field by field: one with a bad date or a missing field is damage, so that its
    archived file is not counted as known and the next import recovers it."""
    tipo = rec.get("tipo")
    if not isinstance(tipo, str):
        return "non è un record del registro (manca il tipo)"
    if tipo != "ricezione":
        return None
    for key in _TEXTS:
        if not isinstance(rec.get(key), str):
            return f"registrazione di un file ricevuto senza il campo «{key}» valido"
    if len(rec["sha256"]) != 64:
        return "registrazione di un file ricevuto con un'impronta (sha256) non valida"
    for key in _TIMES:
        try:
            when = dt.datetime.fromisoformat(rec[key])
        except (KeyError, TypeError, ValueError):
            return (
                f"registrazione di {rec['nome']!r}: data non valida nel campo «{key}» "
                f"({str(rec.get(key))[:40]!r})"
            )
        if when.tzinfo is None:
            return f"registrazione di {rec['nome']!r}: data senza fuso orario nel campo «{key}»"
    if not isinstance(rec.get("report"), dict) or not isinstance(rec.get("dimensione"), int):
        return f"registrazione di {rec['nome']!r}: esito della validazione mancante o non valido"
    return None


_SHA_IN_LINE = re.compile(rb'"sha256": "([0-9a-f]{64})"')


def mark_recovered(damage: list[LedgerDamage], recorded: set[str]) -> None:
    """Mark the damaged lines whose file has a readable record (recovered) as such."""
    for i, d in enumerate(damage):
        if d.sha256 is not None and d.sha256 in recorded and not d.recuperato:
            damage[i] = dataclasses.replace(d, recuperato=True)


def iter_ledger(
    raccolta_path: Path, damage: list[LedgerDamage] | None = None
) -> Iterator[dict[str, Any]]:
    """The ledger's usable records in order, read a line at a time (memory does not grow
    with the ledger). Damaged lines (cut short by a crash, not UTF-8 or JSON, a reception
    record with a bad field) are skipped and described in `damage` when given."""
    path = archive_dir(raccolta_path) / LEDGER_NAME
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            why: str | None
            rec: Any = None
            if not line.endswith(b"\n"):  # an append cut short (the last line)
                why = "riga incompleta: la scrittura è stata interrotta"
            else:
                try:
                    rec = json.loads(line)
                except UnicodeDecodeError:
                    why = "riga non leggibile (caratteri non validi)"
                except ValueError:
                    why = "riga non leggibile (non è un record JSON completo)"
                else:
                    why = (
                        record_problem(rec)
                        if isinstance(rec, dict)
                        else "non è un record del registro"
                    )
            if why is None:
                yield rec
            elif damage is not None:
                found = _SHA_IN_LINE.search(line)
                sha = found.group(1).decode() if found else None
                damage.append(LedgerDamage(number, why, sha))


def read_ledger(raccolta_path: Path, *, letture: bool = False) -> LedgerContents:
    damage: list[LedgerDamage] = []  # readings (archive.quarantine) only with `letture`
    found = iter_ledger(raccolta_path, damage)
    records = [r for r in found if letture or r["tipo"] not in ("lettura", "letto")]
    recorded = {str(r["sha256"]) for r in records if r.get("tipo") == "ricezione"}
    mark_recovered(damage, recorded)
    return LedgerContents(records, damage)


def iter_ledger_of(
    raccolta_path: Path, tipi: frozenset[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, record) of the records of the given types only; lines that cannot
    hold one are not even parsed (a cheap byte test), so this pass is fast."""
    path = archive_dir(raccolta_path) / LEDGER_NAME
    needles = [f'"tipo": "{t}"'.encode() for t in tipi]
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for seq, line in enumerate(fh):
            if not line.endswith(b"\n") or not any(n in line for n in needles):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("tipo") in tipi:
                yield seq, rec


def append_records(raccolta_path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Append whole lines to the ledger and flush them to disk. Call with the lock held."""
    if not records:
        return
    path = archive_dir(raccolta_path) / LEDGER_NAME
    payload = b"".join(_line(r) for r in records)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            last = os.pread(fd, 1, size - 1) if hasattr(os, "pread") else _last_byte(path)
            if last != b"\n":  # a line cut by a crash: end it, readers skip it
                payload = b"\n" + payload
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _line(rec: dict[str, Any]) -> bytes:
    """One ledger line; text that is not valid Unicode is escaped: still UTF-8 JSON."""
    try:
        return json.dumps(rec, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(rec, ensure_ascii=True, sort_keys=True).encode("ascii") + b"\n"


def _last_byte(path: Path) -> bytes:  # pragma: no cover - Windows has no pread
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


def iter_receipts(
    r: Raccolta,
    *,
    fingerprint: str | None = None,
    context: Callable[[], ValidationContext] | None = None,
    damage: list[LedgerDamage] | None = None,
    corrections: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[Receipt]:
    """Every receipt of the raccolta in ledger order, read as they are consumed.

    With `fingerprint` and `context`, reports made under another registry or other rules
    (their fingerprint differs) are made again from the archived file under
    `context()`, so consolidation always reflects the current settings. A version with
    `corrections` (sha256 → field → value: the capofila's rettifiche) is validated again
    with those values in place of the ones typed. Damaged ledger lines and archived files
    that are gone are described in `damage` when given.
    """
    ctx: ValidationContext | None = None
    seen: set[str] = set()
    for seq, rec in enumerate(iter_ledger(r.path, damage)):
        if rec.get("tipo") != "ricezione" or rec.get("sha256") in seen:
            continue
        try:
            rc = Receipt.from_record(rec, seq)
        except (KeyError, TypeError, ValueError, AttributeError):
            if damage is not None:
                damage.append(
                    LedgerDamage(0, f"registrazione di {rec.get('nome')!r} non leggibile")
                )
            continue
        seen.add(rc.sha256)
        fixed = corrections.get(rc.sha256) if corrections else None
        stale = fingerprint is not None and context is not None and rc.contesto != fingerprint
        # a text: a Path's parts (a unique name per file) would grow Python's interned table
        path = os.path.join(r.path, rc.blob)
        if not (stale or fixed):
            if damage is not None and not os.path.isfile(path):
                damage.append(_missing(rc))
            yield rc
            continue
        ctx = ctx or (context() if context is not None else None)
        try:
            data = Path(path).read_bytes()  # (rare: a file validated again)
        except OSError:
            if damage is not None:
                damage.append(_missing(rc))
        else:
            rc = dataclasses.replace(
                rc,
                report=validate_bytes(data, rc.nome, ctx, overrides=fixed),
                contesto=fingerprint or rc.contesto,
            )
        yield rc
    if damage:
        mark_recovered(damage, seen)


def _missing(rc: Receipt) -> LedgerDamage:
    when = rc.ricevuto_il.astimezone(TZ).strftime("%d/%m/%Y %H:%M")
    return LedgerDamage(
        0,
        f"il file archiviato di {rc.nome!r} (ricevuto il {when}) non si trova più in "
        f"{rc.blob}: i suoi dati restano quelli registrati, ma il file non si può più rileggere",
    )


@dataclass(frozen=True)
class ImportOutcome:
    """What happened to one file given to `import_files`."""

    origine: str
    esito: str  # "importato" | "già importato" | "illeggibile"
    receipt: Receipt | None = None
    messaggio: str = ""


@dataclass
class ImportResult:
    outcomes: list[ImportOutcome] = field(default_factory=list)
    recovered: list[Receipt] = field(default_factory=list)
    #: files found in the folders and not examined, each with the Italian reason
    non_esaminati: list[tuple[str, str]] = field(default_factory=list)

    @property
    def imported(self) -> list[Receipt]:
        return [o.receipt for o in self.outcomes if o.esito == "importato" and o.receipt]


def _mtime(path: Path, st: os.stat_result) -> dt.datetime:
    return dt.datetime.fromtimestamp(st.st_mtime, TZ)


def make_receipt(
    r: Raccolta,
    data: bytes,
    *,
    nome: str,
    blob: str,
    sha: str,
    ricevuto_il: dt.datetime,
    fonte_data: str,
    canale: str,
    origine: str,
    certificato: bool = False,
    extra: dict[str, Any] | None = None,
    ctx: ValidationContext,
    fingerprint: str,
) -> Receipt:
    """Validate an archived file under `ctx` and make its ledger record."""
    report = validate_bytes(data, nome, ctx)
    return Receipt(
        sha256=sha,
        nome=nome,
        blob=blob,
        dimensione=len(data),
        ricevuto_il=ricevuto_il,
        fonte_data=fonte_data,
        certificato=certificato,
        canale=canale,
        importato_il=now(),
        origine=origine,
        utente=_who(),
        contesto=fingerprint,
        report=report,
        extra=extra or {},
    )
