"""Values changed by hand in the master's *Dati* sheet: never silently overwritten.

Each time the master is written (by `consolida` or by the *Consolida* button) the values
of *Dati* are kept in ``archivio/dati-cartella-di-lavoro.json``. Before writing again,
the values now in *Dati* (read from the file on disk, or from the open workbook) are
compared with them: every difference is a `Modifica` that the capofila either records as
a rettifica or discards, explicitly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piano_abitativo.archive.store import archive_dir
from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.core.atomic import atomic_writer
from piano_abitativo.core.schema import Field, Kind, Role, Schema
from piano_abitativo.master.model import SHEET_DATI, dati_header, master_path
from piano_abitativo.master.tables import DATI_FIRST_FIELD_COL, DATI_HEADER_ROW

SNAPSHOT_NAME = "dati-cartella-di-lavoro.json"
#: the form of the file: 2 keeps a list of values per ente (1, a dict per ente, is still read)
SNAPSHOT_FORMAT = 2


def snapshot_path(raccolta_path: Path) -> Path:
    return archive_dir(raccolta_path) / SNAPSHOT_NAME


def _norm(f: Field, v: Any) -> Any:
    """A cell value as compared: numbers as int when whole, blanks as None, text stripped."""
    if v is None or isinstance(v, dt.date | dt.time):
        return None if v is None else str(v)
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        if not math.isfinite(v):
            return str(v)
        return int(v) if float(v).is_integer() else float(v)
    text = str(v).strip()
    if not text:
        return None
    if f.kind in (Kind.COUNT, Kind.PERCENT):
        try:
            x = float(text.replace(",", "."))
        except ValueError:
            return text
        return int(x) if x.is_integer() else x
    if f.kind is Kind.YESNO:
        return text.upper().replace("SÌ", "SI")
    return text


@dataclass(frozen=True)
class Write:
    """The values of *Dati* as one write of the master put them: for each ente (by
    codice) one value per field of `campi`, in that order (compact: a list per ente; not
    a tuple: CPython keeps up to 2,000 freed tuples of each length for reuse, and the
    rows of the comparisons of one `consolida`, 1,500 of 20 values, stayed in memory
    while the master was written)."""

    campi: tuple[str, ...]
    enti: dict[str, list[Any]]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {c: i for i, c in enumerate(self.campi)})

    def to_json_chunks(self) -> Iterator[str]:
        """The write as JSON, one ente per line (the file stays readable and is written
        without building its whole text)."""
        yield '{"campi": ' + json.dumps(list(self.campi), ensure_ascii=False) + ', "enti": {'
        sep = "\n  "
        for codice, row in self.enti.items():
            yield sep + json.dumps(codice, ensure_ascii=False) + ": "
            yield json.dumps(list(row), ensure_ascii=False)
            sep = ",\n  "
        yield "}}"

    @classmethod
    def from_json(cls, data: Any) -> Write | None:
        """A write as saved (a list per ente), or as saved before (a dict field → value per
        ente, codice → dict); None when it is neither."""
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("campi"), list) and isinstance(data.get("enti"), dict):
            campi = tuple(str(c) for c in data["campi"])
            n = len(campi)
            # a row of another length (a damaged file) is cut or filled with blanks: a
            # value missing is then asked about, never taken as the program's own
            enti = {
                str(k): v if len(v) == n else v[:n] + [None] * (n - len(v))
                for k, v in data["enti"].items()
                if isinstance(v, list)
            }
            return cls(campi, enti)
        rows = [v for v in data.values() if isinstance(v, dict)]
        campi = tuple(dict.fromkeys(k for v in rows for k in v))
        return cls(
            campi,
            {str(k): [v.get(c) for c in campi] for k, v in data.items() if isinstance(v, dict)},
        )


def dati_values(cons: Consolidation) -> Write:
    """What the master's *Dati* shows for each ente (the values written), compared later."""
    fields = cons.schema.plan_fields
    enti: dict[str, list[Any]] = {}
    for s in cons.enti:
        vals = s.values
        enti[s.ente.codice] = (
            [_norm(f, vals.get(f.id)) for f in fields] if vals else [None] * len(fields)
        )
    return Write(tuple(f.id for f in fields), enti)


#: how many earlier writes are remembered: the file on disk and the workbook open in Excel
#: (refreshed by a button, maybe not saved) may each hold one of them
KEEP_WRITES = 3
#: how many writes begun and never finished (the program killed while writing) are kept
KEEP_PENDING = 16


def _entries(raccolta_path: Path) -> tuple[list[Write], list[Write]]:
    """(confirmed writes latest first, writes begun and not confirmed latest first)."""
    try:
        data = json.loads(snapshot_path(raccolta_path).read_bytes())
        confirmed = [data["valori"], *(data.get("precedenti") or [])]
        pending = list(data.get("in_sospeso") or [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [], []
    return (
        [w for w in map(Write.from_json, confirmed) if w is not None],
        [w for w in map(Write.from_json, pending) if w is not None],
    )


def _save(
    cons: Consolidation,
    raccolta_path: Path,
    confirmed: list[Write],
    pending: list[Write],
) -> None:
    def writes(ws: Sequence[Write]) -> Iterator[str]:
        yield "["
        for i, w in enumerate(ws):
            yield ",\n " if i else "\n "
            yield from w.to_json_chunks()
        yield "\n ]" if ws else "]"

    def chunks() -> Iterator[str]:
        head = {
            "anno": cons.anno,
            "formato": SNAPSHOT_FORMAT,
            "raccolta": cons.raccolta_id,
            "scritto_il": cons.generated_at.isoformat(),
        }
        yield json.dumps(head, ensure_ascii=False)[:-1] + ',\n "valori": '
        yield from confirmed[0].to_json_chunks()
        yield ',\n "precedenti": '
        yield from writes(confirmed[1:KEEP_WRITES])
        yield ',\n "in_sospeso": '
        yield from writes(pending[:KEEP_PENDING])
        yield "\n}\n"

    with atomic_writer(snapshot_path(raccolta_path)) as fh:
        buf: list[str] = []
        size = 0
        for piece in chunks():
            buf.append(piece)
            size += len(piece)
            if size >= 1 << 16:
                fh.write("".join(buf).encode("utf-8"))
                buf, size = [], 0
        fh.write("".join(buf).encode("utf-8"))


def begin_write(cons: Consolidation, raccolta_path: Path) -> None:
    """Note the values of *Dati* about to be written, before writing the master (or
    refreshing the open workbook): if the program is killed after the master is written
    and before `write_snapshot`, the new master's values are still known as written by
    the program, not taken for changes by hand."""
    confirmed, pending = _entries(raccolta_path)
    if not confirmed:
        return  # nothing written before: the first write has nothing to compare with
    new = dati_values(cons)
    if new in confirmed or new in pending:
        return  # already known as written by the program
    _save(cons, raccolta_path, confirmed, [new, *pending])


def write_snapshot(cons: Consolidation, raccolta_path: Path) -> None:
    """Keep the values of *Dati* as just written (call after writing the master, or after
    a button refreshed the open workbook), with those of the last few writes; the writes
    begun and never finished are forgotten (none of them is in a workbook any more)."""
    confirmed, pending = _entries(raccolta_path)
    new = dati_values(cons)
    if confirmed and confirmed[0] == new and not pending:
        return  # the same values as the last write, nothing begun since
    _save(cons, raccolta_path, [new, *(c for c in confirmed if c != new)], [])


def read_snapshot(raccolta_path: Path) -> list[Write] | None:
    """The values of *Dati* of the last writes, latest first, then those of writes begun
    and not finished; None when there is none (or it is unreadable: then nothing can be
    compared and nothing is reported)."""
    confirmed, pending = _entries(raccolta_path)
    if not confirmed:
        return None
    return [*confirmed, *pending]


def grid_values(rows: Iterable[Sequence[Any]], schema: Schema) -> Write:
    """The values of a *Dati* sheet given as rows of cells from A1 (read once, in
    order): for each ente by codice, the values of the fields whose column is found by
    its header (a column moved by hand is still found)."""
    by_header = {dati_header(f): f for f in schema.plan_fields}
    cols: list[tuple[int, Field]] = []
    enti: dict[str, list[Any]] = {}
    for r, row in enumerate(rows):
        if r < DATI_HEADER_ROW:
            continue
        if r == DATI_HEADER_ROW:
            header = [str(h or "").strip() for h in row]
            cols = [
                (c, by_header[h])
                for c, h in enumerate(header)
                if c >= DATI_FIRST_FIELD_COL - 1 and h in by_header
            ]
            continue
        if not row or row[0] in (None, ""):
            continue
        codice = row[0]
        if isinstance(codice, float) and codice.is_integer():
            codice = int(codice)
        n = len(row)
        enti[str(codice).strip()] = [_norm(f, row[c] if c < n else None) for c, f in cols]
    return Write(tuple(f.id for _, f in cols), enti)


def master_dati_values(path: Path, schema: Schema) -> Write | None:
    """The values of the *Dati* sheet of the master file at `path` (`grid_values`), its
    rows read one at a time; None when there is no such file or sheet."""
    import python_calamine as pc

    try:
        wb = pc.CalamineWorkbook.from_path(str(path))
        try:
            if SHEET_DATI not in wb.sheet_names:
                return None
            sheet = wb.get_sheet_by_name(SHEET_DATI)
            r0, c0 = sheet.start or (0, 0)  # the rows begin at the first cell used
            pad = [""] * c0
            rows = itertools.chain(
                itertools.repeat([], r0),
                (pad + row for row in sheet.iter_rows()) if c0 else sheet.iter_rows(),
            )
            return grid_values(rows, schema)
        finally:
            wb.close()
    except Exception:  # a damaged or foreign file: nothing to compare
        return None


def _same(f: Field, a: Any, b: Any) -> bool:
    return a == b or (f.kind is Kind.COUNT and {a, b} <= {0, None})


def find_edits(
    writes: Sequence[Write],
    current: Write,
    cons: Consolidation,
) -> list[tuple[str, Field, Any, Any]]:
    """(ente, field, value last written, value now) for every typed cell whose value is
    none of those written (`writes`, latest first). The computed columns (sums) follow
    the typed ones and are not compared."""
    edits: list[tuple[str, Field, Any, Any]] = []
    if not writes:
        return edits
    for s in cons.enti:
        codice = s.ente.codice
        now = current.enti.get(codice)
        was = [(w.index, row) for w in writes if (row := w.enti.get(codice)) is not None]
        if now is None or not was:
            continue
        last_index, last_row = was[0]
        for f in cons.schema.plan_fields:
            if f.role is Role.FORMULA or f.id not in current.index or f.id not in last_index:
                continue
            b = now[current.index[f.id]]
            if not any(
                _same(f, row[index[f.id]] if f.id in index else None, b) for index, row in was
            ):
                edits.append((codice, f, last_row[last_index[f.id]], b))
    return edits


def master_edits_on_disk(
    cons: Consolidation, raccolta_path: Path
) -> list[tuple[str, Field, Any, Any]]:
    """The values changed by hand in the master file of the raccolta since it was last
    written; [] when there is no master or nothing to compare with."""
    written = read_snapshot(raccolta_path)
    if not written:
        return []
    current = master_dati_values(master_path(raccolta_path, cons.anno, ".xlsm"), cons.schema)
    if current is None:
        return []
    return find_edits(written, current, cons)
