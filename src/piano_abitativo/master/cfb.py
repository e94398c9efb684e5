"""A writer of OLE compound files ([MS-CFB]), as the container of ``vbaProject.bin``.

Version 3 (512-byte sectors); streams under 4096 bytes live in the mini stream (64-byte
mini sectors, §2.4); the siblings of every storage form a balanced binary tree whose nodes
are all black (§2.6.4 allows it), ordered by name length and then by upper-cased name.
Timestamps are zero, so the same streams always give byte-identical output.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

__all__ = ["write_cfb"]

_SECTOR = 512
_MINI_SECTOR = 64
_MINI_CUTOFF = 4096
_FAT_PER_SECTOR = _SECTOR // 4
_HEADER_DIFAT = 109
_FREESECT = 0xFFFFFFFF
_ENDOFCHAIN = 0xFFFFFFFE
_FATSECT = 0xFFFFFFFD
_NOSTREAM = 0xFFFFFFFF
_TYPE_STORAGE, _TYPE_STREAM, _TYPE_ROOT = 1, 2, 5
_BLACK = 1
_FORBIDDEN_IN_NAMES = set("/\\:!")


class _Entry:
    """A directory entry being laid out."""

    def __init__(self, name: str, kind: int, data: bytes = b"") -> None:
        self.name = name
        self.kind = kind
        self.data = data
        self.children: dict[str, _Entry] = {}
        self.sid = 0
        self.left = self.right = self.child = _NOSTREAM
        self.start = _ENDOFCHAIN


def _cfb_key(name: str) -> tuple[int, str]:
    """Sibling order (§2.6.4): shorter names first, then by upper-cased name."""
    return (len(name.encode("utf-16-le")), name.upper())


def _check_cfb_name(name: str, path: str) -> None:
    if not name or len(name.encode("utf-16-le")) > 62:
        raise ValueError(f"{path!r}: a name must have 1 to 31 characters, got {name!r}")
    if _FORBIDDEN_IN_NAMES & set(name) or any(ord(ch) < 0x20 for ch in name):
        raise ValueError(f"{path!r}: {name!r} contains a character CFB does not allow")


def _tree(streams: Mapping[str, bytes]) -> _Entry:
    root = _Entry("Root Entry", _TYPE_ROOT)
    for path, data in streams.items():
        parts = path.split("/")
        for part in parts:
            _check_cfb_name(part, path)
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            existing = node.children.get(part.upper())
            if existing is None:
                existing = _Entry(
                    part, _TYPE_STREAM if last else _TYPE_STORAGE, bytes(data) if last else b""
                )
                node.children[part.upper()] = existing
            elif last or existing.kind != _TYPE_STORAGE or existing.name != part:
                raise ValueError(f"{path!r} clashes with another stream or storage")
            node = existing
    return root


def _number(root: _Entry) -> list[_Entry]:
    """Give every entry its stream ID (pre-order, siblings in CFB order) and link
    each storage's children as a balanced binary search tree."""
    entries: list[_Entry] = []

    def visit(entry: _Entry) -> None:
        entry.sid = len(entries)
        entries.append(entry)
        children = sorted(entry.children.values(), key=lambda e: _cfb_key(e.name))
        for child in children:
            visit(child)
        entry.child = _link(children)

    visit(root)
    return entries


def _link(ordered: list[_Entry]) -> int:
    """Root ID of a balanced tree over ``ordered`` (all nodes black, §2.6.4)."""
    if not ordered:
        return _NOSTREAM
    middle = len(ordered) // 2
    node = ordered[middle]
    node.left = _link(ordered[:middle])
    node.right = _link(ordered[middle + 1 :])
    return node.sid


def _directory_entry(entry: _Entry | None) -> bytes:
    if entry is None:  # unused slot
        return (
            bytes(64)
            + struct.pack("<HBBIII", 0, 0, 0, _NOSTREAM, _NOSTREAM, _NOSTREAM)
            + bytes(16 + 4 + 8 + 8 + 4 + 8)
        )
    name = entry.name.encode("utf-16-le") + b"\x00\x00"
    size = len(entry.data) if entry.kind == _TYPE_STREAM else 0
    if entry.kind == _TYPE_ROOT:
        size = len(entry.data)  # the mini stream
    start = entry.start if entry.kind != _TYPE_STORAGE else 0
    return (
        name.ljust(64, b"\x00")
        + struct.pack(
            "<HBBIII", len(name), entry.kind, _BLACK, entry.left, entry.right, entry.child
        )
        + bytes(16)  # CLSID
        + bytes(4)  # state bits
        + bytes(8)  # creation time
        + bytes(8)  # modified time
        + struct.pack("<IQ", start, size)
    )


def _sectors(size: int, unit: int) -> int:
    return -(-size // unit)


def write_cfb(streams: Mapping[str, bytes]) -> bytes:
    """A version 3 compound file holding ``streams``.

    Keys are paths such as ``"PROJECT"`` or ``"VBA/dir"``; the storages on the way
    are created.  Names compare without regard to case, as in CFB.  The layout only
    depends on the names and contents, not on the order of ``streams``."""
    root = _tree(streams)
    entries = _number(root)
    files = [e for e in entries if e.kind == _TYPE_STREAM]
    small = [e for e in files if 0 < len(e.data) < _MINI_CUTOFF]
    large = [e for e in files if len(e.data) >= _MINI_CUTOFF]

    # Mini stream: the small streams back to back in 64-byte mini sectors.
    mini_fat: list[int] = []
    mini_stream = bytearray()
    for entry in small:
        count = _sectors(len(entry.data), _MINI_SECTOR)
        entry.start = len(mini_fat)
        mini_fat += [len(mini_fat) + i + 1 for i in range(count - 1)] + [_ENDOFCHAIN]
        mini_stream += entry.data.ljust(count * _MINI_SECTOR, b"\x00")
    root.data = bytes(mini_stream)

    n_dir = _sectors(len(entries), _SECTOR // 128)
    n_mini_fat = _sectors(len(mini_fat) * 4, _SECTOR)
    n_mini_stream = _sectors(len(mini_stream), _SECTOR)
    n_large = sum(_sectors(len(e.data), _SECTOR) for e in large)
    others = n_dir + n_mini_fat + n_mini_stream + n_large
    n_fat = 1
    while n_fat * _FAT_PER_SECTOR < n_fat + others:
        n_fat += 1
    if n_fat > _HEADER_DIFAT:
        raise ValueError("compound file too large for a FAT without DIFAT sectors (~7 MB)")

    fat: list[int] = [_FATSECT] * n_fat
    body = bytearray()

    def place(data: bytes) -> int:
        """Append ``data`` as a chain of sectors; return its first sector."""
        count = _sectors(len(data), _SECTOR)
        if count == 0:
            return _ENDOFCHAIN
        first = len(fat)
        fat.extend(first + i + 1 for i in range(count - 1))
        fat.append(_ENDOFCHAIN)
        body.extend(data.ljust(count * _SECTOR, b"\x00"))
        return first

    # Directory entries are only final once every start sector is known, so the
    # directory sectors are reserved first and filled in at the end.
    dir_start = place(bytes(n_dir * _SECTOR))
    mini_fat_bytes = struct.pack(f"<{len(mini_fat)}I", *mini_fat)
    mini_fat_bytes += struct.pack("<I", _FREESECT) * (
        (n_mini_fat * _FAT_PER_SECTOR) - len(mini_fat)
    )
    mini_fat_start = place(mini_fat_bytes)
    root.start = place(bytes(mini_stream))
    for entry in large:
        entry.start = place(entry.data)

    directory = b"".join(_directory_entry(e) for e in entries)
    directory += b"".join(_directory_entry(None) for _ in range(n_dir * 4 - len(entries)))
    offset = (dir_start - n_fat) * _SECTOR
    body[offset : offset + len(directory)] = directory

    fat += [_FREESECT] * (n_fat * _FAT_PER_SECTOR - len(fat))
    difat = list(range(n_fat)) + [_FREESECT] * (_HEADER_DIFAT - n_fat)
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(16)  # CLSID
        + struct.pack("<HHHHH", 0x003E, 0x0003, 0xFFFE, 9, 6)
        + bytes(6)
        + struct.pack(
            "<IIIIIIIII",
            0,  # directory sectors: always 0 in version 3
            n_fat,
            dir_start,
            0,  # transaction signature
            _MINI_CUTOFF,
            mini_fat_start,
            n_mini_fat,
            _ENDOFCHAIN,  # first DIFAT sector
            0,  # DIFAT sectors
        )
        + struct.pack(f"<{_HEADER_DIFAT}I", *difat)
    )
    assert len(header) == _SECTOR  # noqa: S101 - internal invariant
    return header + struct.pack(f"<{len(fat)}I", *fat) + bytes(body)
