"""The workbooks of a message: attachments sorted into workbooks and other files.

Signed files (``.p7m``, also nested) are opened with their signatures kept; ``.zip`` archives
are opened up to :data:`MAX_ZIP_DEPTH` levels, within size limits (:data:`MAX_ZIP_MEMBER`,
:data:`MAX_ZIP_TOTAL`, the reader's zip-bomb ratio); a signed content without a workbook
extension is recognised by its bytes.

One message is never expanded beyond its caps: more than :data:`MAX_WORKBOOKS` workbooks, more
than :data:`MAX_EXTRACTED` bytes extracted, zips nested deeper than :data:`MAX_ZIP_DEPTH`, a zip
with more than :data:`MAX_ZIP_MEMBERS` members or messages nested deeper than
:data:`~piano_abitativo.mail.mime.MAX_DEPTH`: then no workbook is returned at all and
:attr:`Collector.limit` says why (the message is archived as received and reported, to be looked
at by hand).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from email.message import Message

from piano_abitativo.mail import p7m
from piano_abitativo.mail.mime import (
    MAX_DEPTH,
    OLE_MAGIC,
    as_message,
    iter_leaves,
    part_name,
    sanitise,
)
from piano_abitativo.mail.p7m import Signature
from piano_abitativo.reading import safety

#: extensions (lower case) of the files we extract
WORKBOOK_EXTENSIONS = (".xlsx", ".xlsm", ".xls", ".ods")
#: a zip member larger than this (uncompressed) is skipped
MAX_ZIP_MEMBER = 20 * 1024 * 1024
#: members of one zip are read until their total passes this
MAX_ZIP_TOTAL = 50 * 1024 * 1024
#: a zip member above this size that inflates more than the reader allows is a zip bomb
ZIP_BOMB_ABOVE = 1024 * 1024
#: caps per message: beyond any of them the message is not expanded
MAX_WORKBOOKS = 50
MAX_EXTRACTED = 100 * 1024 * 1024
MAX_ZIP_DEPTH = 3
MAX_ZIP_MEMBERS = safety.MAX_MEMBERS
#: names of non-workbook files kept per message (the rest are counted)
MAX_OTHER_NAMES = 200

_CHECK = "non aperto; verificare a mano"


def italian_count(n: int) -> str:
    """``5000`` → ``5.000``."""
    return f"{n:,}".replace(",", ".")


class OverLimit(Exception):
    """A message past one of its caps; the argument is the Italian note."""


@dataclass(frozen=True)
class Attachment:
    """A workbook found in a message.

    ``signatures`` holds one :class:`~piano_abitativo.p7m.Signature` per signer when the file
    came as a ``.p7m``, outermost layer first (a ``.p7m.p7m`` gives two); ``signature`` is the
    outermost one, for the common single-signature case.
    """

    #: as declared (RFC 2231/2047 decoded), without directories, ``.p7m`` removed
    filename: str
    #: the workbook bytes (the content inside a ``.p7m``)
    data: bytes
    #: where it came from, e.g. ``("postacert.eml", "risposta.zip", "Crema.xlsx.p7m")``
    path: tuple[str, ...]
    signatures: tuple[Signature, ...] = ()

    @property
    def signature(self) -> Signature | None:
        """The outermost signature, or None when the file was not signed."""
        return self.signatures[0] if self.signatures else None


class Collector:
    """Walks a message and sorts its files into workbooks and others, within the caps."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.attachments: list[Attachment] = []
        self.others: list[str] = []
        #: bytes extracted so far (zip members read, workbooks found)
        self.extracted = 0
        #: the Italian note of the cap that stopped the message; None when within the caps
        self.limit: str | None = None

    def other_names(self) -> tuple[str, ...]:
        """The names of the other files, at most :data:`MAX_OTHER_NAMES` and a count."""
        if len(self.others) <= MAX_OTHER_NAMES:
            return tuple(self.others)
        rest = len(self.others) - MAX_OTHER_NAMES
        return (*self.others[:MAX_OTHER_NAMES], f"… e altri {italian_count(rest)} file")

    def list_names(self, msg: Message, *, skip: Message | None) -> None:
        """Record the names of the files of an envelope without opening anything."""
        for part in iter_leaves(msg, include_messages=True):
            if part is skip:
                continue
            name = part_name(part, "")
            if name:
                self.others.append(name)

    def walk(self, msg: Message, path: tuple[str, ...], *, depth: int) -> None:
        """Collect the files of a message; past a cap, none of its workbooks is kept."""
        if self.limit is not None:
            return
        try:
            self._walk(msg, path, depth=depth)
        except OverLimit as exc:
            self.limit = str(exc)
            self.notes.append(self.limit)
            self.attachments.clear()

    def _walk(self, msg: Message, path: tuple[str, ...], *, depth: int) -> None:
        for part in iter_leaves(msg, include_messages=True):
            nested = as_message(part)
            if nested is not None:
                name = part_name(part, "messaggio.eml")
                if depth + 1 > MAX_DEPTH:
                    raise OverLimit(
                        f"{name}: messaggi allegati uno dentro l'altro oltre il limite di "
                        f"{MAX_DEPTH} livelli, messaggio {_CHECK}"
                    )
                self._walk(nested, (*path, name), depth=depth + 1)
                continue
            name = part_name(part, "")
            if not name:
                continue  # the text of the message
            try:
                payload = part.get_payload(decode=True)
            except Exception:
                payload = None
            if not isinstance(payload, bytes):
                self.notes.append(f"{name}: allegato non leggibile")
                self.others.append(name)
                continue
            self.add_file(name, payload, path, zip_depth=0)

    def _count(self, size: int) -> None:
        self.extracted += size
        if self.extracted > MAX_EXTRACTED:
            raise OverLimit(
                f"messaggio con più di {MAX_EXTRACTED // 2**20} MB di file da estrarre: "
                f"oltre il limite, {_CHECK}"
            )

    def _workbook_count(self, n: int) -> None:
        if n > MAX_WORKBOOKS:
            raise OverLimit(
                f"messaggio con {italian_count(n)} file: oltre il limite di {MAX_WORKBOOKS}, "
                f"{_CHECK}"
            )

    def add_file(self, name: str, data: bytes, path: tuple[str, ...], *, zip_depth: int) -> None:
        where = (*path, name)
        lower = name.lower()
        signatures: tuple[Signature, ...] = ()
        if lower.endswith(".p7m"):
            try:
                data, found = p7m.unwrap(data)
            except p7m.P7mError as exc:
                self.notes.append(f"{name}: file firmato non leggibile: {exc}")
                self.others.append(name)
                return
            signatures = tuple(found)
            for sig in signatures:
                if sig.valid is not True:
                    self.notes.append(f"{name}: {sig.detail}")
            signed_name, name = name, p7m.strip_p7m_suffix(name)
            if not is_workbook_name(name) and (ext := _sniff_workbook(data)):
                self.notes.append(
                    f"{signed_name}: il contenuto firmato è un foglio di calcolo "
                    f"({ext}) anche se il nome non lo dice"
                )
                name += ext
            lower = name.lower()
        if is_workbook_name(name):
            self._workbook_count(len(self.attachments) + 1)
            if zip_depth == 0:  # zip members are counted as they are read
                self._count(len(data))
            self.attachments.append(Attachment(name, data, where, signatures))
        elif lower.endswith(".zip"):
            if zip_depth >= MAX_ZIP_DEPTH:
                raise OverLimit(
                    f"{name}: archivi zip uno dentro l'altro oltre il limite di "
                    f"{MAX_ZIP_DEPTH} livelli, messaggio {_CHECK}"
                )
            self.add_zip(name, data, where, zip_depth=zip_depth + 1)
        else:
            if lower == "winmail.dat":
                self.notes.append(
                    "winmail.dat (formato Outlook TNEF) non supportato: chiedere "
                    "di reinviare gli allegati come file normali"
                )
            self.others.append(where[-1])

    def add_zip(self, name: str, data: bytes, path: tuple[str, ...], *, zip_depth: int = 1) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
            self.notes.append(f"{name}: archivio zip non leggibile")
            self.others.append(name)
            return
        # the caps are checked on the zip's directory, before anything is inflated
        self._workbook_count(len(self.attachments) + sum(1 for m in members if _holds_book(m)))
        if len(members) > MAX_ZIP_MEMBERS:
            raise OverLimit(
                f"{name}: zip con {italian_count(len(members))} file: oltre il limite di "
                f"{italian_count(MAX_ZIP_MEMBERS)}, messaggio {_CHECK}"
            )
        if any(m.flag_bits & 0x1 for m in members):
            self.notes.append(f"{name}: zip protetto da password ignorato")
            self.others.append(name)
            return
        total = 0
        for member in members:
            if member.is_dir():
                continue
            member_name = sanitise(_zip_member_name(member))
            if member.filename.startswith("__MACOSX/") or member_name.startswith(("._", "~$")):
                continue  # macOS resource forks, Office lock files
            if member.file_size > MAX_ZIP_MEMBER:
                self.notes.append(
                    f"{name}/{member_name}: file troppo grande (oltre "
                    f"{MAX_ZIP_MEMBER // 2**20} MB), ignorato"
                )
                self.others.append(member_name)
                continue
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > ZIP_BOMB_ABOVE and ratio > safety.MAX_RATIO:
                self.notes.append(
                    f"{name}/{member_name}: compresso in modo anomalo (possibile «zip bomb»), "
                    "ignorato"
                )
                self.others.append(member_name)
                continue
            if total + member.file_size > MAX_ZIP_TOTAL:
                self.notes.append(
                    f"{name}: contenuto oltre {MAX_ZIP_TOTAL // 2**20} MB, "
                    f"{member_name} e i file successivi ignorati"
                )
                break
            self._count(member.file_size)  # the declared size bounds what is inflated
            try:
                with archive.open(member) as stream:
                    content = stream.read(MAX_ZIP_MEMBER + 1)
            except (
                zipfile.BadZipFile,
                NotImplementedError,
                RuntimeError,
                ValueError,
                EOFError,
                OSError,
                RecursionError,
                MemoryError,
            ) as exc:
                self.notes.append(f"{name}/{member_name}: non estraibile ({type(exc).__name__})")
                self.others.append(member_name)
                continue
            if len(content) > MAX_ZIP_MEMBER:
                self.notes.append(f"{name}/{member_name}: file troppo grande, ignorato")
                self.others.append(member_name)
                continue
            total += len(content)
            self.add_file(member_name, content, path, zip_depth=zip_depth)


def _holds_book(member: zipfile.ZipInfo) -> bool:
    """A zip member named as a workbook (also signed)."""
    name = member.filename.lower()
    while name.endswith(".p7m"):
        name = name[:-4]
    return not member.is_dir() and name.endswith(WORKBOOK_EXTENSIONS)


def _zip_member_name(member: zipfile.ZipInfo) -> str:
    """Names not flagged UTF-8 come from Windows in the OEM code page (cp850 in Italy)."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("cp850")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return member.filename


def _sniff_workbook(data: bytes) -> str | None:
    """The extension of a workbook recognised by its content (for names like ``scheda.p7m``)."""
    head = data[:4096]
    if data.startswith(b"PK\x03\x04"):
        if b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet" in head:
            return ".ods"
        if b"xl/workbook.xml" in data or b"xl/_rels/workbook.xml.rels" in data:
            return ".xlsm" if b"xl/vbaProject.bin" in data else ".xlsx"
    if data.startswith(OLE_MAGIC) and "Workbook".encode("utf-16-le") in data:
        return ".xls"
    return None


def is_workbook_name(name: str) -> bool:
    return name.lower().endswith(WORKBOOK_EXTENSIONS)
