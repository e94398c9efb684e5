"""Write a VBA project (``vbaProject.bin``) from VBA source text.

A ``vbaProject.bin`` is an OLE compound file ([MS-CFB]) holding the storages and
streams that [MS-OVBA] specifies:

* ``PROJECT`` (§2.3.1) - the project properties as cp1252 text with CRLF line ends:
  ``ID="{GUID}"``, one ``Document=``/``Module=``/``Class=`` line per module, the
  ``CMG``/``DPB``/``GC`` protection values encrypted per §2.4.3 (here: no protection,
  no password, visible), ``[Host Extender Info]`` and ``[Workspace]``;
* ``PROJECTwm`` (§2.3.3) - every module name in MBCS and in UTF-16;
* ``VBA/_VBA_PROJECT`` (§2.3.4.1) - seven bytes ``CC 61 FF FF 00 03 00``: version
  0xFFFF and no performance cache, so the host recompiles the project from source;
* ``VBA/dir`` (§2.3.4.2) - the compressed project information, references and module
  records (each module with MODULEOFFSET 0: its stream holds source only);
* ``VBA/<module>`` (§2.3.4.3) - each module's source, cp1252 with CRLF line ends,
  compressed per §2.4.1, including its ``Attribute VB_*`` lines.

The compound file is written by :mod:`.cfb` and the compression is
:mod:`.ovba_compression`.

Nothing here depends on time or randomness: the project GUID is a parameter with a
constant default, timestamps are zero and the "random" parts of §2.4.3 are fixed, so
the same modules always give byte-identical output.

References: [MS-OVBA] Office VBA File Format Structure, [MS-CFB] Compound File
Binary File Format (Microsoft Open Specifications).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from piano_abitativo.master.cfb import write_cfb
from piano_abitativo.master.ovba_compression import compress

__all__ = [
    "DEFAULT_PROJECT_GUID",
    "Decrypted",
    "ModuleKind",
    "VbaModule",
    "build_vba_project",
    "decrypt_data",
    "document_modules",
    "encrypt_data",
    "module_from_file",
    "normalize_source",
]

#: The project ID written when the caller gives none (any constant GUID will do).
DEFAULT_PROJECT_GUID = "{3A55DF14-2107-4958-BD5E-ADD703FD137C}"

CODEPAGE = 1252
_ENCODING = "cp1252"
_LCID_EN_US = 0x0409
#: PROJECTSYSKIND: 0x03 = 64-bit Windows, as in xlwings' quickstart_standalone.xlsm.
_SYSKIND_WIN64 = 0x00000003

#: _VBA_PROJECT stream (§2.3.4.1): Reserved1 0x61CC, Version 0xFFFF ("recompile"),
#: Reserved2 0x00, Reserved3 (undefined, ignored on read), no performance cache.
VBA_PROJECT_STREAM = b"\xcc\x61\xff\xff\x00\x03\x00"

#: Type libraries every Excel project references (the VBA and Excel libraries are
#: implicit).  Written as REFERENCENAME + REFERENCEREGISTERED, as Excel does.
_REFERENCES: tuple[tuple[str, str], ...] = (
    (
        "stdole",
        r"*\G{00020430-0000-0000-C000-000000000046}#2.0#0"
        r"#C:\Windows\System32\stdole2.tlb#OLE Automation",
    ),
    (
        "Office",
        r"*\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}#2.0#0"
        r"#C:\Program Files\Common Files\Microsoft Shared\OFFICE16\MSO.DLL"
        r"#Microsoft Office 16.0 Object Library",
    ),
)

#: Plain data of the PROJECT stream's protection values (§2.3.1.15-17) for a project
#: that is not locked, has no password and is visible.
CMG_UNPROTECTED = b"\x00\x00\x00\x00"
DPB_NO_PASSWORD = b"\x00"
GC_VISIBLE = b"\xff"

# Fixed values where Office would use arbitrary or random ones.
_PROJECT_VERSION_MAJOR = 1
_PROJECT_VERSION_MINOR = 0
_ENCRYPTION_SEED = 0x8D  # §2.4.3.2 "Seed": any byte; (0x8D & 6) // 2 = 2 ignored bytes
_ENCRYPTION_IGNORED_BYTE = 0x00  # §2.4.3.2 "TempValue": any value

_BASE_THISWORKBOOK = "0{00020819-0000-0000-C000-000000000046}"
_BASE_WORKSHEET = "0{00020820-0000-0000-C000-000000000046}"
#: VB_Base Excel stores for an ordinary class module (see module_from_file).
_BASE_CLASS = "0{FCFB3D2A-A0FA-1068-A738-08002B3371B5}"

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,30}")
_GUID = re.compile(r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}")
_VB_NAME_LINE = re.compile(r'Attribute\s+VB_Name\s*=\s*"([^"]*)"\s*', re.IGNORECASE)


class ModuleKind(enum.Enum):
    """What a module is; the value is only a label, see :attr:`type_id`."""

    PROCEDURAL = "procedural"  # a standard module (.bas)
    CLASS = "class"  # a class module (.cls)
    DOCUMENT = "document"  # ThisWorkbook and the sheets' modules

    @property
    def type_id(self) -> int:
        """MODULETYPE record id (§2.3.4.2.3.2.8): 0x21 procedural, 0x22 otherwise."""
        return 0x21 if self is ModuleKind.PROCEDURAL else 0x22


@dataclass(frozen=True)
class VbaModule:
    """One module: its name, its full source text (with its ``Attribute VB_*`` lines)
    and its kind.  Line ends may be LF or CRLF; they are written as CRLF."""

    name: str
    source: str
    kind: ModuleKind


# ---------------------------------------------------------------------------
# Modules from text


def normalize_source(text: str) -> str:
    """``text`` as it is stored: CRLF line ends (from LF, CRLF or CR), ending with CRLF."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    if lines and not lines.endswith("\n"):
        lines += "\n"
    return lines.replace("\n", "\r\n")


def _check_name(name: str, what: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a valid VBA name (a letter, then letters, digits "
            "or '_', at most 31 characters)"
        )


def _attribute_lines(lines: list[str]) -> int:
    """Number of leading ``Attribute`` lines."""
    count = 0
    for line in lines:
        if not line.lstrip().lower().startswith("attribute "):
            break
        count += 1
    return count


def _strip_class_header(lines: list[str]) -> list[str]:
    """Drop the ``VERSION 1.0 CLASS`` / ``BEGIN ... END`` header of an exported .cls."""
    if not lines or not lines[0].strip().upper().startswith("VERSION "):
        return lines
    rest = lines[1:]
    if rest and rest[0].strip().upper() == "BEGIN":
        for index, line in enumerate(rest):
            if line.strip().upper() == "END":
                return rest[index + 1 :]
        raise ValueError("class file: 'BEGIN' without a matching 'END' in its header")
    return rest


def _add_class_attributes(lines: list[str]) -> list[str]:
    """Give a class module the attributes Excel stores for it but does not export.

    Excel's own module stream for an imported class (xlwings' Dictionary in
    quickstart_standalone.xlsm) has ``VB_Base`` right after ``VB_Name`` and
    ``VB_TemplateDerived`` / ``VB_Customizable`` after ``VB_Exposed``; writing the
    same makes the source-only stream look like the one Excel itself saves.
    """
    head = _attribute_lines(lines)
    attributes, body = lines[:head], lines[head:]
    keys = [line.split("=", 1)[0].split()[-1].lower() for line in attributes]

    def insert_after(key: str, new: list[str]) -> None:
        missing = [line for line in new if line.split("=")[0].split()[-1].lower() not in keys]
        if not missing:
            return
        at = keys.index(key) + 1 if key in keys else len(attributes)
        attributes[at:at] = missing
        keys[at:at] = [line.split("=")[0].split()[-1].lower() for line in missing]

    insert_after("vb_name", [f'Attribute VB_Base = "{_BASE_CLASS}"'])
    insert_after(
        "vb_exposed",
        ["Attribute VB_TemplateDerived = False", "Attribute VB_Customizable = False"],
    )
    return attributes + body


def _with_vb_name(lines: list[str], name: str) -> list[str]:
    """``lines`` with ``Attribute VB_Name = "name"`` as the first line."""
    kept = [line for line in lines if not _VB_NAME_LINE.fullmatch(line)]
    return [f'Attribute VB_Name = "{name}"', *kept]


def module_from_file(path: Path, *, name: str | None = None) -> VbaModule:
    """Read an exported module: ``.bas`` (procedural) or ``.cls`` (class).

    The text is read as UTF-8 if it decodes so, else as cp1252.  A class file loses
    its ``VERSION 1.0 CLASS`` / ``BEGIN ... END`` header, keeps its ``Attribute
    VB_*`` lines and gains the ``VB_Base``/``VB_TemplateDerived``/``VB_Customizable``
    attributes Excel stores for classes.  The module name is ``name`` if given, else
    the file's ``Attribute VB_Name``, else the file name; the ``VB_Name`` line is
    (re)written to match it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bas":
        kind = ModuleKind.PROCEDURAL
    elif suffix == ".cls":
        kind = ModuleKind.CLASS
    else:
        raise ValueError(f"{path}: expected a .bas or .cls file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode(_ENCODING, errors="strict")
    text = text.removeprefix("\ufeff")
    lines = normalize_source(text).split("\r\n")[:-1]
    if kind is ModuleKind.CLASS:
        lines = _strip_class_header(lines)
    if name is None:
        found = [m.group(1) for line in lines if (m := _VB_NAME_LINE.fullmatch(line))]
        name = found[0] if found else path.stem
    _check_name(name, f"{path}: module name")
    lines = _with_vb_name(lines, name)
    if kind is ModuleKind.CLASS:
        lines = _add_class_attributes(lines)
    return VbaModule(name=name, source="\r\n".join(lines) + "\r\n", kind=kind)


def _document_source(name: str, base: str) -> str:
    return (
        f'Attribute VB_Name = "{name}"\r\n'
        f'Attribute VB_Base = "{base}"\r\n'
        "Attribute VB_GlobalNameSpace = False\r\n"
        "Attribute VB_Creatable = False\r\n"
        "Attribute VB_PredeclaredId = True\r\n"
        "Attribute VB_Exposed = True\r\n"
        "Attribute VB_TemplateDerived = False\r\n"
        "Attribute VB_Customizable = True\r\n"
    )


def document_modules(sheet_codenames: Sequence[str]) -> list[VbaModule]:
    """``ThisWorkbook`` and one empty document module per sheet codeName, with the
    attribute lines Excel stores for them."""
    modules = [
        VbaModule(
            "ThisWorkbook",
            _document_source("ThisWorkbook", _BASE_THISWORKBOOK),
            ModuleKind.DOCUMENT,
        )
    ]
    for codename in sheet_codenames:
        _check_name(codename, "sheet codeName")
        modules.append(
            VbaModule(codename, _document_source(codename, _BASE_WORKSHEET), ModuleKind.DOCUMENT)
        )
    _check_unique([m.name for m in modules])
    return modules


def _check_unique(names: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for name in names:
        if name.upper() in seen:
            raise ValueError(
                f"the name {name!r} is used twice ({seen[name.upper()]!r}); VBA names "
                "ignore case and a module may not share the project's name"
            )
        seen[name.upper()] = name


# Data encryption, [MS-OVBA] §2.4.3 (CMG, DPB, GC)


def _project_key(project_id: str) -> int:
    """§2.4.3.1 ProjKey: the byte sum of the project ID string (with braces)."""
    return sum(project_id.encode(_ENCODING)) & 0xFF


class Decrypted(NamedTuple):
    """The parts of a value encrypted per §2.4.3."""

    seed: int
    project_key: int
    ignored: bytes
    data: bytes


def encrypt_data(
    project_id: str,
    data: bytes,
    *,
    seed: int = _ENCRYPTION_SEED,
    ignored: bytes | None = None,
) -> str:
    """§2.4.3.2: ``data`` encrypted with the key of ``project_id``, as upper-case hex.

    ``seed`` and the ``ignored`` bytes ((seed & 6) // 2 of them) are random in
    Office; here they are fixed so that the output is reproducible."""
    if not 0 <= seed <= 0xFF:
        raise ValueError(f"seed must be a byte, got {seed}")
    count = (seed & 6) // 2
    if ignored is None:
        ignored = bytes([_ENCRYPTION_IGNORED_BYTE]) * count
    if len(ignored) != count:
        raise ValueError(f"seed 0x{seed:02X} needs {count} ignored bytes, got {len(ignored)}")
    version = 2
    project_key = _project_key(project_id)
    out = bytearray([seed, seed ^ version, seed ^ project_key])
    unencrypted_1, encrypted_1, encrypted_2 = project_key, out[2], out[1]
    for byte in (*ignored, *struct.pack("<I", len(data)), *data):
        encrypted = byte ^ ((encrypted_2 + unencrypted_1) & 0xFF)
        out.append(encrypted)
        encrypted_2, encrypted_1, unencrypted_1 = encrypted_1, encrypted, byte
    return out.hex().upper()


def decrypt_data(text: str) -> Decrypted:
    """§2.4.3.3: decrypt a hex value of the PROJECT stream (ValueError if malformed)."""
    raw = bytes.fromhex(text)
    if len(raw) < 7:
        raise ValueError(f"encrypted data too short: {text!r}")
    seed, version_enc, key_enc = raw[0], raw[1], raw[2]
    if seed ^ version_enc != 2:
        raise ValueError(f"unknown encryption version {seed ^ version_enc}")
    project_key = seed ^ key_enc
    unencrypted_1, encrypted_1, encrypted_2 = project_key, key_enc, version_enc
    plain = bytearray()
    for encrypted in raw[3:]:
        byte = encrypted ^ ((encrypted_2 + unencrypted_1) & 0xFF)
        plain.append(byte)
        encrypted_2, encrypted_1, unencrypted_1 = encrypted_1, encrypted, byte
    count = (seed & 6) // 2
    body = plain[count:]
    if len(body) < 4:
        raise ValueError(f"encrypted data too short: {text!r}")
    (length,) = struct.unpack_from("<I", body)
    if len(body) - 4 != length:
        raise ValueError(f"encrypted data length {len(body) - 4} is not the declared {length}")
    return Decrypted(seed, project_key, bytes(plain[:count]), bytes(body[4:]))


# The VBA project, [MS-OVBA] §2.3


def _mbcs(text: str, what: str) -> bytes:
    try:
        return text.encode(_ENCODING)
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise ValueError(
            f"{what}: character {text[exc.start]!r} (U+{ord(text[exc.start]):04X}) on line "
            f"{line} cannot be written in the VBA project's code page (Windows-1252)"
        ) from None


def _record(record_id: int, payload: bytes) -> bytes:
    return struct.pack("<HI", record_id, len(payload)) + payload


def _dual_record(record_id: int, mbcs: bytes, reserved: int, unicode: str) -> bytes:
    """A record with an MBCS string, a Reserved id and the UTF-16 string."""
    return _record(record_id, mbcs) + _record(reserved, unicode.encode("utf-16-le"))


def _dir_stream(project_name: str, modules: Sequence[VbaModule]) -> bytes:
    out = bytearray()
    # PROJECTINFORMATION (§2.3.4.2.1)
    out += _record(0x0001, struct.pack("<I", _SYSKIND_WIN64))  # PROJECTSYSKIND
    out += _record(0x0002, struct.pack("<I", _LCID_EN_US))  # PROJECTLCID
    out += _record(0x0014, struct.pack("<I", _LCID_EN_US))  # PROJECTLCIDINVOKE
    out += _record(0x0003, struct.pack("<H", CODEPAGE))  # PROJECTCODEPAGE
    out += _record(0x0004, project_name.encode(_ENCODING))  # PROJECTNAME
    out += _dual_record(0x0005, b"", 0x0040, "")  # PROJECTDOCSTRING
    out += _dual_record(0x0006, b"", 0x003D, "")  # PROJECTHELPFILEPATH
    out += _record(0x0007, struct.pack("<I", 0))  # PROJECTHELPCONTEXT
    out += _record(0x0008, struct.pack("<I", 0))  # PROJECTLIBFLAGS
    out += struct.pack(  # PROJECTVERSION: Reserved is 4, then major and minor
        "<HIIH", 0x0009, 4, _PROJECT_VERSION_MAJOR, _PROJECT_VERSION_MINOR
    )
    out += _dual_record(0x000C, b"", 0x003C, "")  # PROJECTCONSTANTS
    # PROJECTREFERENCES (§2.3.4.2.2): REFERENCENAME + REFERENCEREGISTERED
    for name, libid in _REFERENCES:
        out += _dual_record(0x0016, name.encode(_ENCODING), 0x003E, name)
        encoded = libid.encode(_ENCODING)
        out += _record(0x000D, struct.pack("<I", len(encoded)) + encoded + bytes(6))
    # PROJECTMODULES (§2.3.4.2.3)
    out += _record(0x000F, struct.pack("<H", len(modules)))
    out += _record(0x0013, struct.pack("<H", 0xFFFF))  # PROJECTCOOKIE
    for module in modules:
        mbcs_name = module.name.encode(_ENCODING)
        out += _record(0x0019, mbcs_name)  # MODULENAME
        out += _record(0x0047, module.name.encode("utf-16-le"))  # MODULENAMEUNICODE
        out += _dual_record(0x001A, mbcs_name, 0x0032, module.name)  # MODULESTREAMNAME
        out += _dual_record(0x001C, b"", 0x0048, "")  # MODULEDOCSTRING
        out += _record(0x0031, struct.pack("<I", 0))  # MODULEOFFSET: source only
        out += _record(0x001E, struct.pack("<I", 0))  # MODULEHELPCONTEXT
        out += _record(0x002C, struct.pack("<H", 0xFFFF))  # MODULECOOKIE
        out += _record(module.kind.type_id, b"")  # MODULETYPE
        out += _record(0x002B, b"")  # Terminator
    out += _record(0x0010, b"")  # dir stream Terminator
    return bytes(out)


def _project_stream(project_name: str, guid: str, modules: Sequence[VbaModule]) -> bytes:
    lines = [f'ID="{guid}"']
    for module in modules:
        if module.kind is ModuleKind.DOCUMENT:
            lines.append(f"Document={module.name}/&H00000000")
        elif module.kind is ModuleKind.PROCEDURAL:
            lines.append(f"Module={module.name}")
        else:
            lines.append(f"Class={module.name}")
    lines += [
        f'Name="{project_name}"',
        'HelpContextID="0"',
        'VersionCompatible32="393222000"',
        f'CMG="{encrypt_data(guid, CMG_UNPROTECTED)}"',
        f'DPB="{encrypt_data(guid, DPB_NO_PASSWORD)}"',
        f'GC="{encrypt_data(guid, GC_VISIBLE)}"',
        "",
        "[Host Extender Info]",
        "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
        "",
        "[Workspace]",
        *(f"{module.name}=0, 0, 0, 0, C" for module in modules),
    ]
    return ("\r\n".join(lines) + "\r\n").encode(_ENCODING)


def _projectwm_stream(modules: Sequence[VbaModule]) -> bytes:
    out = bytearray()
    for module in modules:
        out += module.name.encode(_ENCODING) + b"\x00"
        out += module.name.encode("utf-16-le") + b"\x00\x00"
    return bytes(out + b"\x00\x00")


def _module_bytes(module: VbaModule) -> bytes:
    source = normalize_source(module.source)
    first = source.split("\r\n", 1)[0]
    match = _VB_NAME_LINE.fullmatch(first)
    if match is None or match.group(1) != module.name:
        raise ValueError(
            f"module {module.name!r}: its source must start with the line "
            f'Attribute VB_Name = "{module.name}"'
        )
    return _mbcs(source, f"module {module.name!r}")


def build_vba_project(
    modules: Sequence[VbaModule],
    *,
    project_name: str = "VBAProject",
    guid: str = DEFAULT_PROJECT_GUID,
) -> bytes:
    """The bytes of a ``vbaProject.bin`` holding ``modules`` as source only.

    ``guid`` is the project ID (``{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}``, upper
    case).  Module names must be distinct VBA names and differ from the project
    name; every source must start with its ``Attribute VB_Name`` line and be
    writable in Windows-1252 (ValueError otherwise)."""
    _check_name(project_name, "project name")
    if not _GUID.fullmatch(guid):
        raise ValueError(f"project GUID must look like {DEFAULT_PROJECT_GUID}, got {guid!r}")
    for module in modules:
        _check_name(module.name, "module name")
        if not isinstance(module.kind, ModuleKind):
            raise ValueError(f"module {module.name!r}: kind must be a ModuleKind")
    _check_unique([project_name, *(m.name for m in modules)])
    streams: dict[str, bytes] = {
        "PROJECT": _project_stream(project_name, guid, modules),
        "PROJECTwm": _projectwm_stream(modules),
        "VBA/_VBA_PROJECT": VBA_PROJECT_STREAM,
        "VBA/dir": compress(_dir_stream(project_name, modules)),
    }
    for module in modules:
        streams[f"VBA/{module.name}"] = compress(_module_bytes(module))
    return write_cfb(streams)
