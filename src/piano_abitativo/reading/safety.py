"""File safety: what is refused before anything is decompressed or parsed (not a
workbook, encrypted, macro-bearing, oversized or a zip bomb)."""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from piano_abitativo.core.schema import SCHEMA, SHEET_META, SHEET_SCHEDA, Schema
from piano_abitativo.reading.bounds import (
    WORKBOOK_RELS,
    check_sheets,
    workbook_part,
    workbook_sheets,
    xlsx_sheet_parts,
)
from piano_abitativo.reading.cells import Reading
from piano_abitativo.reading.parts import (
    ods_names_formulas,
    xlsx_defined_names,
    xlsx_names_formulas,
)
from piano_abitativo.reading.xlsx_fast import FastBook, fast_book

#: Limits that make hostile files harmless (a filled template is ~20 KB).
MAX_FILE_BYTES = 15 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 60 * 1024 * 1024
MAX_RATIO = 150  # a member that inflates more than this (and beyond 1 MB) is a bomb
MAX_MEMBERS = 2000

#: members whose compressed size could hide more than a few MB are inflated once,
#: in bounded chunks, to check they are no larger than they declare
_VERIFY_ABOVE = 4096
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"


def not_a_workbook(data: bytes, rd: Reading) -> None:
    kinds = {
        b"%PDF": "un documento PDF",
        b"\x89PNG": "un'immagine PNG",
        b"\xff\xd8\xff": "un'immagine JPEG",
        b"{\\rtf": "un documento RTF",
        b"<html": "una pagina web",
        b"<!DOC": "una pagina web",
    }
    what = next((v for k, v in kinds.items() if data.startswith(k)), None)
    if what is None and b"," in data[:2000] and b"\x00" not in data[:2000]:
        what = "un file di testo (forse CSV)"
    msg = (
        f"Il file è {what}, non una cartella di lavoro"
        if what
        else ("Il file non è una cartella di lavoro Excel o LibreOffice")
    )
    rd.add("F02", msg)


def inspect_ole(data: bytes, rd: Reading, schema: Schema = SCHEMA) -> bool:
    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception:
        rd.add("F03", "Il file (formato Office binario) è danneggiato")
        return False
    try:
        streams = {"/".join(s) for s in ole.listdir(streams=True, storages=True)}
        if "EncryptionInfo" in streams or "EncryptedPackage" in streams:
            rd.add("F04")
            return False
        book = "Workbook" if "Workbook" in streams else "Book" if "Book" in streams else None
        if book is None:
            if "WordDocument" in streams:
                rd.add("F02", "Il file è un documento Word, non una cartella di lavoro")
            else:
                rd.add("F02")
            return False
        if any(s.startswith("_VBA_PROJECT_CUR") for s in streams):
            rd.add("F05", "Il file .xls contiene macro (non vengono eseguite)")
        stream = ole.openstream(book).read(MAX_FILE_BYTES)
        if _xls_has_filepass(stream[:4096]):
            rd.add("F04")
            return False
        return check_sheets(rd, [("xls", book, stream)], schema)
    finally:
        ole.close()


def _xls_has_filepass(stream: bytes) -> bool:
    """True when the BIFF globals declare encryption (FILEPASS record, 0x002F)."""
    pos = 0
    for _ in range(64):
        if pos + 4 > len(stream):
            return False
        rtype = int.from_bytes(stream[pos : pos + 2], "little")
        size = int.from_bytes(stream[pos + 2 : pos + 4], "little")
        if rtype == 0x002F:
            return True
        if rtype == 0x0085:  # BOUNDSHEET: past the point where FILEPASS can be
            return False
        pos += 4 + size
    return False


@dataclass(frozen=True)
class Opened:
    """What the checks of an archive found: its defined names, the cells of the Scheda
    that hold a formula, and the sheets the reader needs when read here (`xlsx_fast`)."""

    names: dict[str, str]
    formulas: set[str]
    book: FastBook | None = None


#: what `_fast_xlsx` returns for a plain file refused by the area check (F06 added)
REFUSED = Opened({}, set())


@functools.lru_cache(maxsize=32)
def _workbook_facts(
    wb: bytes, rels: bytes
) -> tuple[str | None, str | None, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] | None:
    """(shared strings part, styles part, (sheet, part) in order, defined names) of a
    workbook part and its relationships, or None when they are not of the plain shape.
    Cached: the returns of a raccolta share them (the bytes are the key)."""
    shared, styles = workbook_part(rels, "sharedStrings"), workbook_part(rels, "styles")
    if shared is False or styles is False:
        return None
    sheets = workbook_sheets(wb, rels)
    if len(dict(sheets)) != len(sheets) or wb.count(b"<sheet ") != len(sheets):
        return None
    return (
        shared if isinstance(shared, str) else None,
        styles if isinstance(styles, str) else None,
        tuple(sheets),
        tuple(xlsx_defined_names(wb).items()),
    )


def _fast_xlsx(rd: Reading, member: Callable[[str], bytes | None], schema: Schema) -> Opened | None:
    """The fast path of a plain .xlsx (`xlsx_fast`): the Scheda and _meta read from their
    XML, their cells checked against the area, the defined names. None when the file is
    not plain: the caller checks and reads it as any other.

    The area check protects what parses a sheet: here only the two sheets read are
    parsed (by `xlsx_fast`, into cells, never a grid sized by the file), so the other
    sheets need only be present, as calamine would require."""
    wb, rels = member("xl/workbook.xml"), member(WORKBOOK_RELS)
    if wb is None or rels is None:
        return None
    facts = _workbook_facts(wb, rels)
    if facts is None:
        return None
    shared, styles, sheets, names = facts
    parts = dict(sheets)
    book = fast_book(
        [name for name, _ in sheets], parts, (SHEET_SCHEDA, SHEET_META), member, shared, styles
    )
    if book is None:
        return None
    scans: list[tuple[str, str, bytes | Sequence[tuple[int, int]]]] = []
    for name, part in sheets:
        if name in book.sheets:
            scans.append(("cells", name, list(book.sheets[name].cells)))
        elif member(part) is None:
            return None
    if not check_sheets(rd, scans, schema):
        return REFUSED
    scheda = book.sheets.get(SHEET_SCHEDA)
    return Opened(dict(names), scheda.formulas if scheda else set(), book)


def inspect_zip(data: bytes, rd: Reading, schema: Schema = SCHEMA) -> Opened | None:
    """Check the archive is a sane spreadsheet; return its defined names and formula
    cells (and the sheets, when read here)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, NotImplementedError):
        # (NotImplementedError: a "version needed to extract" zipfile does not know)
        rd.add("F03", "Il file è danneggiato o incompleto (archivio compresso non valido)")
        return None
    if len(infos) > MAX_MEMBERS:
        rd.add("F06", f"L'archivio contiene {len(infos)} parti", value=len(infos))
        return None
    total = 0
    inflated: dict[str, bytes] = {}
    small: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if total > MAX_UNCOMPRESSED_BYTES or (info.file_size > 1_048_576 and ratio > MAX_RATIO):
            rd.add(
                "F06",
                "Il file decompresso sarebbe enorme (possibile «zip bomb»): "
                "rifiutato senza aprirlo",
                value=info.filename,
            )
            return None
        if info.flag_bits & 0x1:
            rd.add("F04", "Il file contiene parti cifrate")
            return None
        if info.compress_size > _VERIFY_ABOVE:
            body = _inflate_bounded(data, info)
            if body is None:
                rd.add(
                    "F06",
                    "Una parte del file non si decomprime nella dimensione "
                    "dichiarata (possibile «zip bomb» o file alterato): rifiutato",
                    value=info.filename,
                )
                return None
            inflated[info.filename] = body
        elif info.filename.endswith((".xml", ".rels")):
            # small parts, inflated when needed without zipfile's per-member machinery
            # (of a name given twice, the last entry: the one zipfile reads)
            small[info.filename] = info
    members = {i.filename for i in infos}

    def member(name: str) -> bytes | None:
        """A part inflated directly (None when it is missing or unusual)."""
        if name not in inflated and name in small:
            body = _inflate_plain(data, small.pop(name))
            if body is not None:
                inflated[name] = body
        return inflated.get(name)

    try:
        if "xl/workbook.xml" in members:
            rd.format = "xlsm" if "xl/vbaProject.bin" in members else "xlsx"
            if "xl/vbaProject.bin" in members:
                rd.add("F05")
            fast = _fast_xlsx(rd, member, schema)
            if fast is REFUSED:
                return None
            if fast is not None:
                return fast
            for name in list(small):
                member(name)
            parts = xlsx_sheet_parts(zf, members, inflated)
            if not check_sheets(rd, parts, schema):
                return None
            names, formulas = xlsx_names_formulas(zf, members, inflated)
            return Opened(names, formulas)
        if "mimetype" in members and zf.read("mimetype").strip().startswith(_ODS_MIME):
            rd.format = "ods"
            manifest = (
                zf.read("META-INF/manifest.xml") if ("META-INF/manifest.xml" in members) else b""
            )
            if b"encryption-data" in manifest:
                rd.add("F04")
                return None
            if any(
                m.startswith("Basic/")
                and m.endswith(".xml")
                and not m.endswith(
                    ("script-lc.xml", "script-lb.xml", "dialog-lc.xml", "dialog-lb.xml")
                )
                for m in members
            ):
                rd.add("F05", "Il file .ods contiene macro (non vengono eseguite)")
            content = inflated.get("content.xml") or zf.read("content.xml")
            if not check_sheets(rd, [("ods", "content.xml", content)], schema):
                return None
            return Opened(*ods_names_formulas(content))
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        KeyError,
        ET.ParseError,
        ValueError,
        RuntimeError,
    ) as exc:
        rd.add("F03", "Il file è danneggiato o incompleto", value=str(exc)[:200])
        return None
    if "word/document.xml" in members:
        rd.add("F02", "Il file è un documento Word, non una cartella di lavoro")
    elif any(m.startswith("ppt/") for m in members):
        rd.add("F02", "Il file è una presentazione, non una cartella di lavoro")
    elif "mimetype" in members:
        rd.add("F02", "Il file è un documento OpenDocument ma non un foglio di calcolo")
    else:
        rd.add("F02", "Il file è un archivio .zip, non una cartella di lavoro")
    return None


def _inflate_bounded(data: bytes, info: zipfile.ZipInfo) -> bytes | None:
    """The member's bytes, or None when it does not inflate to exactly its declared size
    (with the declared CRC). Reads the raw stream itself, with output bounded by the
    declared size: zipfile would silently stop at the declared size."""
    off = info.header_offset
    if data[off : off + 4] != ZIP_MAGIC:
        return None
    name_len, extra_len = struct.unpack_from("<HH", data, off + 26)
    start = off + 30 + name_len + extra_len
    raw = data[start : start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        out = raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            out = zlib.decompressobj(-15).decompress(raw, info.file_size + 1)
        except zlib.error:
            return None
    else:
        return None
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        return None
    return out


#: general-purpose flags that leave a member's bytes as they are stored (deflate
#: options, data descriptor, UTF-8 names): with any other flag zipfile reads it
_PLAIN_FLAGS = 0x2 | 0x4 | 0x8 | 0x800


def _inflate_plain(data: bytes, info: zipfile.ZipInfo) -> bytes | None:
    """The member's bytes exactly as `zipfile.ZipFile.read` would return them, or None
    when anything is unusual (a flag, a name that differs in the local header, a size or
    CRC that does not match): then zipfile reads it, and fails as it always did."""
    if info.flag_bits & ~_PLAIN_FLAGS:
        return None
    off = info.header_offset
    if data[off : off + 4] != ZIP_MAGIC or len(data) < off + 30:
        return None
    name_len = struct.unpack_from("<H", data, off + 26)[0]
    raw_name = data[off + 30 : off + 30 + name_len]
    try:
        name = raw_name.decode("utf-8" if info.flag_bits & 0x800 else "cp437")
    except UnicodeDecodeError:
        return None
    if name != info.orig_filename:
        return None
    return _inflate_bounded(data, info)
