#!/usr/bin/python3
"""Batch driver for LibreOffice Calc through UNO.

Run with the interpreter that can ``import uno`` (Debian: ``/usr/bin/python3``)::

    /usr/bin/python3 driver.py JOB.json RESULT.json

It starts ONE headless ``soffice`` with a private, temporary profile, runs every
job of ``JOB.json`` in that instance, writes ``RESULT.json`` and shuts
LibreOffice down (killing it if it does not go away, and removing the profile).

``JOB.json``::

    {"jobs": [job, ...],
     "soffice": "/usr/bin/soffice",    # optional, default: soffice on PATH
     "job_timeout": 180}               # optional, seconds per job (watchdog)

A job::

    {"input": "/abs/path.xlsx",
     "input_password": "optional, to open an encrypted input",
     "insert_rows": [{"sheet": "Scheda", "before_row": 5, "count": 1}],
     "insert_columns": [{"sheet": "Scheda", "before_column": "B", "count": 1}],
     "unprotect": ["Scheda"],
     "respect_protection": false,
     "set": [{"name": "a_sap", "value": 5}, {"cell": "Scheda.D12", "string": "5"},
             {"name": "x", "formula": "=SUM(1;2)"}, {"name": "y", "clear": true},
             {"name": "z", "excel_formula": "=SUM(Scheda!A1,2)"}],
     "read": ["a_totale", "Scheda.E40", "Scheda.E30:E45"],
     "read_text": ["controllo_R1", "controllo_R2"],
     "save": [{"path": "/abs/out.xlsx", "filter": "Calc MS Excel 2007 XML",
               "password": "optional"}],
     "timeout": 180}                   # optional, overrides job_timeout

"value" -> setValue (number), "string" -> setString (text exactly as typed, not
parsed), "formula" -> setFormula (LibreOffice API syntax: English function
names, ";" between arguments, "$Sheet.A1" references), "excel_formula" -> the
same formula written as in Excel ("," separators, "Sheet!A1"), "clear" -> clear
the content (formatting stays).  A name referring to a merged area sets its
top-left cell.  Locked cells of protected sheets are written anyway (the sheet is
unprotected for the moment and protected again, without password) unless the
job has "respect_protection": true, in which case writing a locked cell of a
protected sheet is an error of the job.  A "password" on a save encrypts the file
(ODF: ODF encryption; xls: RC4; xlsx: ECMA-376 Standard encryption).

Order of operations: load (hidden, macros never executed, links not updated),
insert rows/columns (each protected sheet is unprotected for the insertion and
protected again), unprotect the listed sheets (they stay unprotected), set the
cells, ``calculateAll()``, read, save, close.

A read value is ``{"type": "VALUE"|"TEXT"|"FORMULA"|"EMPTY", "value": number or
null, "string": ..., "formula": ...}``; formula cells add ``"result"``
(``"VALUE"``, ``"TEXT"`` or ``"ERROR"``) and ``"error_code"`` (``getError()``).
A single cell reads as one value, a range as a list of rows of values.

"read_text" is for many single cells whose result is a text (the check rows): each
name reads as the value ``getDataArray`` gives for its cell (its text, or its number
when it holds one), in ``"texts"`` of the result. The cells of each sheet are read
together, in one call, and a name costs two calls instead of the ten of a "read": every
call to LibreOffice takes milliseconds. For the same reason the sets and "read_text" of
a job on an .xlsx input that inserts no rows or columns locate a workbook-level name of
one cell from the file's own workbook.xml, once LibreOffice has listed it among the
names it loaded (one call for all); any other name is asked of LibreOffice.

``RESULT.json``: ``{"results": [{"reads": {...}, "texts": {...}, "saved": [...], "error": null
or "message"}, ...]}`` in job order.  Any exception of a job (corrupt file,
unknown name, timeout, LibreOffice crash, ...) is recorded in that job's
``error`` and the batch goes on; if LibreOffice died it is restarted.

Exit status: 0 when RESULT.json was written (even if some jobs failed), 2 on a
usage error, 3 when LibreOffice could not be started at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from html import unescape
from pathlib import Path

import uno
from com.sun.star.beans import NamedValue, PropertyValue

CONNECT_TIMEOUT = 60.0
DEFAULT_JOB_TIMEOUT = 180.0

# com.sun.star.document.MacroExecMode.NEVER_EXECUTE / UpdateDocMode.NO_UPDATE
MACRO_NEVER_EXECUTE = 0
UPDATE_NO_UPDATE = 0
# com.sun.star.sheet.CellFlags VALUE | DATETIME | STRING | FORMULA
CLEAR_CONTENT_FLAGS = 1 | 2 | 4 | 16
# com.sun.star.sheet.FormulaLanguage.OOXML / AddressConvention.XL_OOX
FORMULA_LANGUAGE_OOXML = 5
ADDRESS_CONVENTION_XL_OOX = 3
# com.sun.star.sheet.FormulaMapGroup.SPECIAL / ALL_EXCEPT_SPECIAL
MAP_GROUP_SPECIAL = 0
MAP_GROUP_ALL_EXCEPT_SPECIAL = 0x7FFFFFFF
# OOXML export filters: "Password" is ignored by them, they need EncryptionData.
OOXML_FILTERS = {
    "Calc MS Excel 2007 XML",
    "Calc MS Excel 2007 VBA XML",
    "Calc MS Excel 2007 XML Template",
    "Calc Office Open XML",
    "Calc Office Open XML Template",
}
# com.sun.star.sheet.FormulaResult
FORMULA_RESULT_VALUE = 1
FORMULA_RESULT_STRING = 2
FORMULA_RESULT_ERROR = 4

FILTER_BY_EXTENSION = {
    ".xlsx": "Calc MS Excel 2007 XML",
    ".xlsm": "Calc MS Excel 2007 VBA XML",
    ".ods": "calc8",
    ".xls": "MS Excel 97",
    ".csv": "Text - txt - csv (StarCalc)",
    ".pdf": "calc_pdf_Export",
}

# The private profile: recalculate everything on load, macros disabled (shared with
# lo_runner.py, which runs under the project's interpreter).
REGISTRY_XCU = (Path(__file__).with_name("profile.xcu")).read_text(encoding="utf-8")


def log(msg):
    sys.stderr.write(f"lo-driver: {msg}\n")
    sys.stderr.flush()


def props(**kwargs):
    out = []
    for key, value in kwargs.items():
        p = PropertyValue()
        p.Name = key
        p.Value = value
        out.append(p)
    return tuple(out)


def named_values(**kwargs):
    out = []
    for key, value in kwargs.items():
        nv = NamedValue()
        nv.Name = key
        nv.Value = value
        out.append(nv)
    return uno.Any("[]com.sun.star.beans.NamedValue", tuple(out))


def error_text(exc):
    message = getattr(exc, "Message", None)
    if not message:
        message = str(exc)
    return f"{type(exc).__name__}: {message.strip() or repr(exc)}"


# ---------------------------------------------------------------------------
# soffice process


def _descendants(pid):
    """All live descendants of ``pid`` (Linux /proc); empty list elsewhere."""
    children = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                line = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        # pid (comm) state ppid ...  -- comm may contain spaces and parentheses
        try:
            ppid = int(line.rsplit(")", 1)[1].split()[1])
        except (IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _unblock_sigterm():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


class Office:
    """One headless soffice with a private profile, reached over a named pipe."""

    def __init__(self, soffice):
        self.soffice = soffice
        self.proc = None
        self.profile = None
        self.desktop = None
        self.pipe = None

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        self.profile = tempfile.mkdtemp(prefix="lo-driver-profile-")
        user = os.path.join(self.profile, "user")
        os.makedirs(user)
        with open(os.path.join(user, "registrymodifications.xcu"), "w", encoding="utf-8") as fh:
            fh.write(REGISTRY_XCU)
        self.pipe = f"lo_driver_{os.getpid()}_{uuid.uuid4().hex}"
        profile_url = uno.systemPathToFileUrl(self.profile)
        cmd = [
            self.soffice,
            "--headless",
            "--invisible",
            "--nologo",
            "--norestore",
            "--nodefault",
            "--nolockcheck",
            "--nofirststartwizard",
            f"-env:UserInstallation={profile_url}",
            f"--accept=pipe,name={self.pipe};urp;",
        ]
        env = dict(os.environ)
        env.setdefault("SAL_USE_VCLPLUGIN", "svp")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            # main() blocks SIGTERM in this thread; soffice must not inherit that.
            preexec_fn=_unblock_sigterm,
        )
        self._connect()

    def _connect(self):
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext(
            "com.sun.star.bridge.UnoUrlResolver", local
        )
        url = f"uno:pipe,name={self.pipe};urp;StarOffice.ComponentContext"
        deadline = time.monotonic() + CONNECT_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                ctx = resolver.resolve(url)
                smgr = ctx.ServiceManager
                self.desktop = smgr.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
                return
            except Exception as exc:  # NoConnectException while starting up
                last = exc
            rc = self.proc.poll()
            # Give up early when soffice (the launcher and whatever it started) is gone.
            if rc is not None and not _descendants(self.proc.pid):
                raise RuntimeError(f"soffice exited with status {rc} while starting")
            time.sleep(0.25)
        raise RuntimeError(
            f"could not connect to soffice within {CONNECT_TIMEOUT:.0f} s: "
            + (error_text(last) if last else "no answer")
        )

    def alive(self):
        if self.desktop is None:
            return False
        try:
            self.desktop.getCurrentComponent()
            return True
        except Exception:
            return False

    def kill(self):
        """Kill soffice and everything it spawned (only our own processes)."""
        if self.proc is None:
            return
        pids = _descendants(self.proc.pid)
        for pid in [self.proc.pid, *pids]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def _remove_pipe_files(self):
        """A killed soffice leaves its two pipe sockets in /tmp: remove ours."""
        names = []
        if self.pipe:
            names.append(self.pipe)
        if self.profile:
            # desktop/source/app/officeipcthread.cxx: MD5 of the UTF-16 profile URL,
            # each byte in hex without padding.
            digest = hashlib.md5(  # noqa: S324 - not security, LibreOffice's naming
                uno.systemPathToFileUrl(self.profile).encode("utf-16-le")
            ).digest()
            names.append("SingleOfficeIPC_" + "".join(f"{b:x}" for b in digest))
        for name in names:
            for folder in {"/tmp", tempfile.gettempdir()}:
                path = os.path.join(folder, f"OSL_PIPE_{os.getuid()}_{name}")
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        os.unlink(path)
        self.pipe = None

    def abandon(self):
        """Kill everything and clean up at once (used on SIGTERM)."""
        self.kill()
        self._remove_pipe_files()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def stop(self):
        if self.proc is not None:
            if self.desktop is not None:
                # The bridge goes away while terminating: an exception is expected.
                with contextlib.suppress(Exception):
                    self.desktop.terminate()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not _descendants(self.proc.pid):
                    break
                time.sleep(0.1)
            else:
                log("soffice did not exit in time, killing it")
            self.kill()  # no-op for processes already gone; reaps the child
        self.desktop = None
        self.proc = None
        self._remove_pipe_files()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None


# ---------------------------------------------------------------------------
# addresses and names

_SHEET_QUOTED = re.compile(r"^\$?'((?:[^']|'')*)'[.!](.+)$")
_COLUMN = re.compile(r"^[A-Za-z]{1,3}$")
_CELL_REF = re.compile(r"^([A-Za-z]{1,3})([0-9]{1,7})$")
_DEFINED_NAME = re.compile(r"<definedName\b([^>]*)>([^<]*)</definedName>")
_NAME_ATTR = re.compile(r'\bname="([^"]+)"')
_SHEET_CELL = re.compile(r"^(?:'((?:[^']|'')+)'|([^'!]+))!\$?([A-Z]{1,3})\$?([0-9]{1,7})$")


def file_cells(path):
    """name -> (sheet, 0-based row, 0-based column) of the workbook-level names of an
    .xlsx/.xlsm file that refer to one cell, read from its workbook.xml (no call to
    LibreOffice); {} for any other file or one that cannot be read."""
    if not str(path).lower().endswith((".xlsx", ".xlsm")):
        return {}
    try:
        with zipfile.ZipFile(path) as zf:
            wb = zf.read("xl/workbook.xml").decode("utf-8")
    except Exception:
        return {}
    out = {}
    for attrs, ref in _DEFINED_NAME.findall(wb):
        name = _NAME_ATTR.search(attrs)
        cell = _SHEET_CELL.match(unescape(ref).strip())
        if "localSheetId" in attrs or name is None or cell is None:
            continue
        sheet = cell.group(1).replace("''", "'") if cell.group(1) else cell.group(2)
        out[unescape(name.group(1))] = (sheet, int(cell.group(4)) - 1, column_index(cell.group(3)))
    return out


def split_address(address):
    """``"Scheda.E30:E45"`` -> ``("Scheda", "E30:E45")``; also ``'A b'!E3``."""
    address = address.strip()
    m = _SHEET_QUOTED.match(address)
    if m:
        return m.group(1).replace("''", "'"), m.group(2)
    cut = max(address.rfind("."), address.rfind("!"))
    if cut <= 0:
        raise ValueError(f"not a sheet address (expected Sheet.A1): {address!r}")
    return address[:cut].lstrip("$"), address[cut + 1 :]


def get_sheet(doc, name):
    sheets = doc.Sheets
    if not sheets.hasByName(name):
        raise ValueError(f"no sheet {name!r} (sheets: {', '.join(sheets.getElementNames())})")
    return sheets.getByName(name)


def range_by_address(doc, address):
    sheet_name, ref = split_address(address)
    sheet = get_sheet(doc, sheet_name)
    ref = ref.replace("$", "")
    # A range that repeats the sheet name ("Sheet.A1:Sheet.B2" / "A1:$Sheet.B2").
    if ":" in ref:
        left, right = ref.split(":", 1)
        if "." in right or "!" in right:
            right = split_address(right)[1]
        ref = f"{left}:{right}"
    return sheet.getCellRangeByName(ref)


def _named_range_object(doc, name):
    named = doc.NamedRanges
    if named.hasByName(name):
        return named.getByName(name)
    # Sheet-scoped names (xlsx localSheetId) live on the sheet.
    for sheet_name in doc.Sheets.getElementNames():
        sheet = doc.Sheets.getByName(sheet_name)
        local = getattr(sheet, "NamedRanges", None)
        if local is not None and local.hasByName(name):
            return local.getByName(name)
    return None


def range_by_name(doc, name):
    nr = _named_range_object(doc, name)
    if nr is None:
        return None
    cells = None
    try:
        cells = nr.getReferredCells()
    except Exception:
        cells = None
    if cells is not None:
        return cells
    content = nr.getContent()
    try:
        return range_by_address(doc, content.lstrip("="))
    except Exception as exc:
        raise ValueError(
            f"name {name!r} does not refer to cells (content {content!r}): {exc}"
        ) from exc


def resolve(doc, key):
    """A defined name or a ``Sheet.A1[:B2]`` address -> XCellRange."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"bad cell reference {key!r}")
    rng = range_by_name(doc, key)
    if rng is not None:
        return rng
    try:
        return range_by_address(doc, key)
    except Exception as exc:
        raise ValueError(
            f"{key!r} is neither a defined name nor a Sheet.A1 address ({error_text(exc)})"
        ) from exc


def read_texts(doc, names, lookup):
    """name -> the value of its single cell as ``getDataArray`` gives it (see "read_text"):
    the names located first (`_Cells.place`), then one block per sheet in one call."""
    places = {}
    for name in names:
        try:
            places[name] = lookup.place(name)
        except Exception as exc:
            raise ValueError(f"read_text: {error_text(exc)}") from exc
    out = {}
    for sheet_name in dict.fromkeys(s for s, _, _ in places.values()):
        cells = [(n, r, c) for n, (s, r, c) in places.items() if s == sheet_name]
        r0, c0 = min(r for _, r, _ in cells), min(c for _, _, c in cells)
        r1, c1 = max(r for _, r, _ in cells), max(c for _, _, c in cells)
        block = lookup.sheet(sheet_name).getCellRangeByPosition(c0, r0, c1, r1).getDataArray()
        for name, r, c in cells:
            out[name] = block[r - r0][c - c0]
    return out


def range_size(rng):
    a = rng.getRangeAddress()
    return a.EndRow - a.StartRow + 1, a.EndColumn - a.StartColumn + 1


def describe(rng):
    try:
        return rng.AbsoluteName
    except Exception:
        return "?"


def column_index(col):
    if isinstance(col, int):
        if col < 1:
            raise ValueError(f"column numbers are 1-based: {col!r}")
        return col - 1
    col = str(col).strip().lstrip("$")
    if col.isdigit():
        return column_index(int(col))
    if not _COLUMN.match(col):
        raise ValueError(f"bad column {col!r}")
    n = 0
    for ch in col.upper():
        n = n * 26 + (ord(ch) - 64)
    return n - 1


# ---------------------------------------------------------------------------
# cells


def cell_type_name(cell):
    return cell.getType().value  # "EMPTY" | "VALUE" | "TEXT" | "FORMULA"


def read_cell(cell):
    kind = cell_type_name(cell)
    out = {"type": kind, "value": None, "string": cell.getString(), "formula": cell.getFormula()}
    if kind == "VALUE":
        out["value"] = cell.getValue()
    elif kind == "FORMULA":
        err = cell.getError()
        out["error_code"] = err
        try:
            res = cell.FormulaResultType2
        except Exception:
            res = None
        if err:
            out["result"] = "ERROR"
        elif res == FORMULA_RESULT_STRING:
            out["result"] = "TEXT"
        elif res == FORMULA_RESULT_ERROR:
            out["result"] = "ERROR"
        else:
            out["result"] = "VALUE"
            out["value"] = cell.getValue()
    return out


def read_range(rng):
    rows, cols = range_size(rng)
    if rows == 1 and cols == 1:
        return read_cell(rng.getCellByPosition(0, 0))
    return [[read_cell(rng.getCellByPosition(c, r)) for c in range(cols)] for r in range(rows)]


def target_cell(rng, key):
    rows, cols = range_size(rng)
    if rows == 1 and cols == 1:
        return rng.getCellByPosition(0, 0)
    # A name on a merged area refers to the whole area: write its top-left cell.
    try:
        merged = rng.getIsMerged()
    except Exception:
        merged = False
    if merged:
        return rng.getCellByPosition(0, 0)
    raise ValueError(f"{key!r} refers to {describe(rng)}, not to a single cell")


def excel_formula_tokens(doc, cell, formula):
    """Parse a formula written as in Excel/OOXML (``,`` separators, ``Sheet!A1``)."""
    parser = doc.createInstance("com.sun.star.sheet.FormulaParser")
    mapper = doc.createInstance("com.sun.star.sheet.FormulaOpCodeMapper")
    entries = mapper.getAvailableMappings(
        FORMULA_LANGUAGE_OOXML, MAP_GROUP_ALL_EXCEPT_SPECIAL
    ) + mapper.getAvailableMappings(FORMULA_LANGUAGE_OOXML, MAP_GROUP_SPECIAL)
    parser.OpCodeMap = uno.Any("[]com.sun.star.sheet.FormulaOpCodeMapEntry", entries)
    parser.FormulaConvention = ADDRESS_CONVENTION_XL_OOX
    return parser.parseFormula(formula, cell.getCellAddress())


def apply_set(doc, cell, item):
    if item.get("clear"):
        cell.clearContents(CLEAR_CONTENT_FLAGS)
    elif "value" in item:
        value = item["value"]
        if value is None:
            cell.clearContents(CLEAR_CONTENT_FLAGS)
        elif isinstance(value, bool):
            cell.setValue(1.0 if value else 0.0)
        elif isinstance(value, (int, float)):
            cell.setValue(float(value))
        else:
            raise ValueError(f"'value' must be a number, got {value!r} (use 'string' for text)")
    elif "string" in item:
        cell.setString("" if item["string"] is None else str(item["string"]))
    elif "formula" in item:
        cell.setFormula(str(item["formula"]))
    elif "excel_formula" in item:
        cell.setTokens(excel_formula_tokens(doc, cell, str(item["excel_formula"])))
    else:
        raise ValueError(
            f"set entry needs one of value/string/formula/excel_formula/clear: {item!r}"
        )


# ---------------------------------------------------------------------------
# jobs


class Protection:
    """Unprotect sheets for a while and protect them again afterwards."""

    def __init__(self):
        self.sheets = []  # sheets we unprotected and must protect again

    def open(self, sheet):
        if sheet.isProtected():
            try:
                sheet.unprotect("")
            except Exception as exc:
                raise PermissionError(
                    f"cannot unprotect sheet {sheet.getName()!r} "
                    f"(protected with a password?): {error_text(exc)}"
                ) from exc
            if sheet.isProtected():
                raise PermissionError(f"could not unprotect sheet {sheet.getName()!r}")
            self.sheets.append(sheet)

    def close(self):
        while self.sheets:
            self.sheets.pop().protect("")


def do_inserts(doc, job):
    for item in job.get("insert_rows") or []:
        sheet = get_sheet(doc, item["sheet"])
        before = int(item["before_row"])
        count = int(item.get("count", 1))
        if before < 1 or count < 1:
            raise ValueError(f"bad insert_rows entry {item!r}")
        prot = Protection()
        prot.open(sheet)
        try:
            sheet.getRows().insertByIndex(before - 1, count)
        finally:
            prot.close()
    for item in job.get("insert_columns") or []:
        sheet = get_sheet(doc, item["sheet"])
        before = column_index(item["before_column"])
        count = int(item.get("count", 1))
        if count < 1:
            raise ValueError(f"bad insert_columns entry {item!r}")
        prot = Protection()
        prot.open(sheet)
        try:
            sheet.getColumns().insertByIndex(before, count)
        finally:
            prot.close()


class _Cells:
    """The lookups of one job, each UNO call made once: every call to LibreOffice costs
    milliseconds, and a set made a dozen of them. The single-cell names of an .xlsx input
    (when the job inserts no rows or columns) are located from the file itself, once
    LibreOffice has said it knows them (one call for all)."""

    def __init__(self, doc, job):
        self.doc = doc
        self._named = None
        self._sheets = {}
        self._protected = {}
        moved = job.get("insert_rows") or job.get("insert_columns")
        self._file = {} if moved else file_cells(job["input"])
        self._known = None

    def _in_file(self, key):
        """(sheet, row, col) of a name located from the file, or None."""
        place = self._file.get(key)
        if place is None:
            return None
        if self._known is None:
            self._known = set(self.doc.NamedRanges.getElementNames())
        return place if key in self._known else None

    def resolve(self, key):
        """As `resolve`, a workbook-level name in two calls (the usual case)."""
        if self._named is None:
            self._named = self.doc.NamedRanges
        try:
            cells = self._named.getByName(key).getReferredCells()
        except Exception:
            cells = None
        return cells if cells is not None else resolve(self.doc, key)

    def target(self, key):
        """(the cell a set writes, the key of its sheet for `sheet`): as `target_cell`."""
        place = self._in_file(key)
        if place is not None:
            sheet, row, col = place
            return self.sheet(sheet).getCellByPosition(col, row), sheet
        rng = self.resolve(key)
        a = rng.getRangeAddress()
        if a.EndRow == a.StartRow and a.EndColumn == a.StartColumn:
            return rng.getCellByPosition(0, 0), a.Sheet
        return target_cell(rng, key), a.Sheet

    def place(self, key):
        """(sheet, row, col) of a name of one cell (see "read_text")."""
        found = self._in_file(key)
        if found is not None:
            return found
        content = self.doc.NamedRanges.getByName(key).getContent()
        sheet, ref = split_address(content.lstrip("="))
        if ":" in ref:
            raise ValueError(f"{key!r} refers to a range ({content!r}), not to a cell")
        m = _CELL_REF.match(ref.replace("$", ""))
        if m is None:
            raise ValueError(f"{key!r} does not refer to a cell ({content!r})")
        return sheet, int(m.group(2)) - 1, column_index(m.group(1))

    def sheet(self, key):
        """A sheet by name or by index, fetched once."""
        if key not in self._sheets:
            sheets = self.doc.Sheets
            self._sheets[key] = (
                sheets.getByIndex(key) if isinstance(key, int) else get_sheet(self.doc, key)
            )
        return self._sheets[key]

    def protected(self, key):
        """Whether the sheet is protected (asked once: only for sets that respect it)."""
        if key not in self._protected:
            self._protected[key] = self.sheet(key).isProtected()
        return self._protected[key]


def do_sets(doc, job, lookup):
    items = job.get("set") or []
    respect = bool(job.get("respect_protection"))
    targets = []
    for item in items:
        key = item.get("name") or item.get("cell")
        if not key:
            raise ValueError(f"set entry needs 'name' or 'cell': {item!r}")
        targets.append((key, item, *lookup.target(key)))
    prot = Protection()
    try:
        for key, item, cell, index in targets:
            if respect:
                if lookup.protected(index) and cell.CellProtection.IsLocked:
                    raise PermissionError(
                        f"{key!r} ({describe(cell)}) is a locked cell "
                        f"of protected sheet {lookup.sheet(index).getName()!r}"
                    )
            else:
                prot.open(lookup.sheet(index))
            apply_set(doc, cell, item)
    finally:
        prot.close()


def do_save(doc, job):
    saved = []
    for item in job.get("save") or []:
        path = os.path.abspath(item["path"])
        filt = item.get("filter") or FILTER_BY_EXTENSION.get(os.path.splitext(path)[1].lower())
        if not filt:
            raise ValueError(f"no filter given and none known for {path!r}")
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        kwargs = {"FilterName": filt, "Overwrite": True}
        if item.get("password"):
            password = str(item["password"])
            if filt in OOXML_FILTERS:
                # ECMA-376 "Standard" encryption; LibreOffice 7.4 cannot write Agile.
                kwargs["EncryptionData"] = named_values(OOXPassword=password, CryptoType="Standard")
            else:
                kwargs["Password"] = password
        if item.get("filter_options"):
            kwargs["FilterOptions"] = str(item["filter_options"])
        doc.storeToURL(uno.systemPathToFileUrl(path), props(**kwargs))
        if not os.path.exists(path):
            raise RuntimeError(f"LibreOffice reported success but {path} was not written")
        saved.append(path)
    return saved


def load(office, path, password=None):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    kwargs = {
        "Hidden": True,
        "ReadOnly": False,
        "MacroExecutionMode": MACRO_NEVER_EXECUTE,
        "UpdateDocMode": UPDATE_NO_UPDATE,
        "Silent": True,
    }
    if password:
        kwargs["Password"] = str(password)
    doc = office.desktop.loadComponentFromURL(
        uno.systemPathToFileUrl(path), "_blank", 0, props(**kwargs)
    )
    if doc is None:
        raise RuntimeError(f"LibreOffice could not load {path}")
    if not doc.supportsService("com.sun.star.sheet.SpreadsheetDocument"):
        close(doc)
        raise RuntimeError(f"{path} is not a spreadsheet")
    return doc


def close(doc):
    try:
        doc.close(True)
    except Exception:
        with contextlib.suppress(Exception):
            doc.dispose()


def run_job(office, job, result):
    doc = load(office, job["input"], job.get("input_password"))
    try:
        do_inserts(doc, job)
        for name in job.get("unprotect") or []:
            Protection().open(get_sheet(doc, name))  # never closed: stays unprotected
        lookup = _Cells(doc, job)
        do_sets(doc, job, lookup)
        doc.calculateAll()
        for key in job.get("read") or []:
            result["reads"][key] = read_range(resolve(doc, key))
        if job.get("read_text"):
            result["texts"] = read_texts(doc, job["read_text"], lookup)
        result["saved"] = do_save(doc, job)
    finally:
        close(doc)


CURRENT = {}  # the Office in use, for the SIGTERM handler
LIFECYCLE = threading.Lock()  # held while an Office is being started
TERMINATING = threading.Event()


def _handle_sigterm():
    """Wait for SIGTERM in a thread of its own: a Python signal handler would only
    run once the main thread comes back from a (possibly hung) UNO call."""
    signal.sigwait({signal.SIGTERM})
    log("SIGTERM: killing soffice")
    TERMINATING.set()
    with LIFECYCLE:  # let a start in progress finish, so its soffice is known
        office = CURRENT.get("office")
        if office is not None:
            office.abandon()
        os._exit(128 + signal.SIGTERM)


def start_office(soffice):
    with LIFECYCLE:
        if TERMINATING.is_set():
            raise RuntimeError("terminating")
        office = CURRENT["office"] = Office(soffice)
        office.start()
    return office


class Watchdog:
    """Kill soffice if a job takes longer than its timeout."""

    def __init__(self, office, seconds):
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire, args=(office,))
        self._timer.daemon = True

    def _fire(self, office):
        self.fired = True
        log("job timed out, killing soffice")
        office.kill()

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return False


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(f"usage: {argv[0]} JOB.json RESULT.json\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    jobs = spec.get("jobs") if isinstance(spec, dict) else None
    if not isinstance(jobs, list):
        sys.stderr.write(f'{argv[1]}: expected {{"jobs": [...]}}\n')
        return 2
    soffice = spec.get("soffice") or os.environ.get("SOFFICE") or shutil.which("soffice")
    if not soffice:
        sys.stderr.write("soffice not found\n")
        return 3
    default_timeout = float(spec.get("job_timeout") or DEFAULT_JOB_TIMEOUT)

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(target=_handle_sigterm, daemon=True).start()
    results = []
    try:
        try:
            start_office(soffice)
        except Exception as exc:
            log(f"cannot start LibreOffice: {error_text(exc)}")
            return 3
        office = CURRENT["office"]
        for index, job in enumerate(jobs):
            result = {"reads": {}, "texts": {}, "saved": [], "error": None}
            results.append(result)
            if not office.alive():
                log(f"soffice is gone, restarting it before job {index}")
                office.stop()
                try:
                    office = start_office(soffice)
                except Exception as exc:
                    office = CURRENT["office"]
                    result["error"] = f"LibreOffice could not be restarted: {error_text(exc)}"
                    continue
            seconds = float(job.get("timeout") or default_timeout) if isinstance(job, dict) else 1
            watchdog = Watchdog(office, seconds)
            try:
                if not isinstance(job, dict) or "input" not in job:
                    raise ValueError("a job must be an object with an 'input' path")
                with watchdog:
                    run_job(office, job, result)
            except Exception as exc:
                if watchdog.fired:
                    result["error"] = (
                        f"timeout: job took longer than {seconds:g} s ({error_text(exc)})"
                    )
                else:
                    result["error"] = error_text(exc)
                if os.environ.get("LO_DRIVER_DEBUG"):
                    traceback.print_exc()
    finally:
        if "office" in CURRENT:
            CURRENT["office"].stop()
    tmp = argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"results": results}, fh, ensure_ascii=False, indent=1)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
