"""The vbaProject.bin writer against the specs, oletools/olefile and real LibreOffice.

Reference material comes from the installed xlwings wheel: ``xlwings.bas``,
``addin/Dictionary.cls`` and ``quickstart_standalone.xlsm`` / ``quickstart.xlsm``,
whose ``vbaProject.bin`` files were saved by Excel.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import olefile
import pytest
import xlsxwriter
import xlwings
from hypothesis import given, settings
from hypothesis import strategies as st
from oletools.olevba import VBA_Parser, decompress_stream  # type: ignore[import-untyped]

from piano_abitativo.master.cfb import write_cfb
from piano_abitativo.master.ovba_compression import compress, decompress
from piano_abitativo.master.vba import (
    CMG_UNPROTECTED,
    DEFAULT_PROJECT_GUID,
    DPB_NO_PASSWORD,
    GC_VISIBLE,
    ModuleKind,
    VbaModule,
    build_vba_project,
    decrypt_data,
    document_modules,
    encrypt_data,
    module_from_file,
    normalize_source,
)

from .lo_runner import UNO_PYTHON, _run_group, find_soffice, require_libreoffice

XLWINGS = Path(xlwings.__file__).resolve().parent
XLWINGS_BAS = XLWINGS / "xlwings.bas"
DICTIONARY_CLS = XLWINGS / "addin" / "Dictionary.cls"
VBA_DRIVER = Path(__file__).resolve().parent / "lo" / "vba_driver.py"

PULSANTI = VbaModule(
    "Pulsanti",
    'Attribute VB_Name = "Pulsanti"\n'
    "' Città, perché: à è é ì ò ù\n"
    "Sub Consolida()\n"
    '    RunPython "import piano_abitativo.excel as x; x.consolida()"\n'
    "End Sub\n"
    "Sub Valida()\n"
    '    RunPython "import piano_abitativo.excel as x; x.valida()"\n'
    "End Sub\n",
    ModuleKind.PROCEDURAL,
)


def _rng_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _reference_bin(name: str = "quickstart_standalone.xlsm") -> bytes:
    with zipfile.ZipFile(XLWINGS / name) as zf:
        return zf.read("xl/vbaProject.bin")


def _records(dir_stream: bytes) -> Iterator[tuple[int, bytes]]:
    """(id, payload) of each dir stream record; PROJECTVERSION's size field is fixed 4
    although 6 more bytes follow (§2.3.4.2.1.11)."""
    pos = 0
    while pos < len(dir_stream):
        record_id, size = struct.unpack_from("<HI", dir_stream, pos)
        if record_id == 0x0009:
            size = 6
        yield record_id, dir_stream[pos + 6 : pos + 6 + size]
        pos += 6 + size


def _module_offsets(ole: olefile.OleFileIO) -> dict[str, int]:
    """MODULESTREAMNAME -> MODULEOFFSET from a project's dir stream."""
    out: dict[str, int] = {}
    name = ""
    for record_id, payload in _records(decompress(ole.openstream("VBA/dir").read())):
        if record_id == 0x001A:
            name = payload.decode("cp1252")
        elif record_id == 0x0031:
            out[name] = struct.unpack("<I", payload)[0]
    return out


def _module_text(ole: olefile.OleFileIO, name: str) -> str:
    raw = ole.openstream(f"VBA/{name}").read()
    return decompress(raw[_module_offsets(ole)[name] :]).decode("cp1252")


# ---------------------------------------------------------------------------
# Compression (§2.4.1)

COMPRESSION_CASES = {
    "empty": b"",
    "one byte": b"x",
    "random 10 KB": _rng_bytes(1, 10 * 1024),
    "repetitive 46 KB": b"Sub A()\r\nEnd Sub\r\n" * 2600,
    "xlwings.bas": XLWINGS_BAS.read_bytes(),
    "4096 bytes": _rng_bytes(2, 4096),
    "4097 bytes": _rng_bytes(3, 4097),
    "incompressible 3700-byte tail": _rng_bytes(4, 8192 + 3700),
}


@pytest.mark.parametrize("data", COMPRESSION_CASES.values(), ids=COMPRESSION_CASES.keys())
def test_compress_round_trips_through_ours_and_oletools(data: bytes) -> None:
    """Compressed data decompresses to the original with our decoder and with oletools'."""
    packed = compress(data)
    assert decompress(packed) == data
    assert bytes(decompress_stream(bytearray(packed))) == data


def test_compress_reproduces_the_spec_examples() -> None:
    """The output equals the compressed arrays of MS-OVBA §3.2.1 and §3.2.2 byte for byte."""
    no_compression = bytes.fromhex(
        "01 19 B0 00 61 62 63 64 65 66 67 68 00 69 6A 6B 6C 6D 6E 6F 70 00 71 72 73 74 75 76 2E"
    )
    normal = bytes.fromhex(
        "01 2F B0 00 23 61 61 61 62 63 64 65 82 66 00 70 61 67 68 69 6A 01 38 08 61 6B 6C 00 "
        "20 6D 6E 6F 70 06 71 02 70 04 00 72 73 74 75 76 10 77 78 79 7A 00 2C"
    )
    assert compress(b"abcdefghijklmnopqrstuv.") == no_compression
    assert compress(b"#aaabcdefaaaaghijaaaaaklaaamnopqaaaaaaaaaaaarstuvwxyzaaa") == normal


def test_incompressible_full_chunks_are_stored_raw() -> None:
    """Random 4096-byte chunks become raw chunks (header 0x3FFF followed by the bytes)."""
    data = _rng_bytes(5, 8192)
    packed = compress(data)
    assert packed == b"\x01" + b"\xff\x3f" + data[:4096] + b"\xff\x3f" + data[4096:]


def test_repetitive_text_uses_copy_tokens() -> None:
    """46 KB of repeated source lines shrink to under 7% (copy tokens, not only literals,
    which would grow them by 1/8; late in a chunk a token copies at most 18 bytes)."""
    data = COMPRESSION_CASES["repetitive 46 KB"]
    assert len(compress(data)) < len(data) * 7 // 100


def test_decompress_rejects_garbage() -> None:
    """A container without the 0x01 signature or with a bad chunk signature is refused."""
    with pytest.raises(ValueError, match="signature"):
        decompress(b"\x02\x00")
    with pytest.raises(ValueError, match="chunk signature"):
        decompress(b"\x01\x00\x00")


@settings(max_examples=50, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=12_000),
        st.lists(st.sampled_from([b"a", b"b", b"Sub ", b"\r\n", b"End Sub"]), max_size=3000).map(
            b"".join
        ),
    )
)
def test_compress_round_trip_property(data: bytes) -> None:
    """For arbitrary and for repetitive bytes, both decoders give back the input."""
    packed = compress(data)
    assert decompress(packed) == data
    assert bytes(decompress_stream(bytearray(packed))) == data


# ---------------------------------------------------------------------------
# Data encryption (§2.4.3)


@pytest.mark.parametrize("workbook", ["quickstart_standalone.xlsm", "quickstart.xlsm"])
def test_excel_protection_values_decrypt_and_reencrypt(workbook: str) -> None:
    """Excel's CMG/DPB/GC decrypt, with key = byte sum of the ID, to 00000000/00/FF,
    and encrypting that plain data with Excel's seed and ignored bytes gives Excel's text."""
    ole = olefile.OleFileIO(_reference_bin(workbook))
    text = ole.openstream("PROJECT").read().decode("cp1252")
    values = dict(line.split("=", 1) for line in text.split("\r\n") if "=" in line)
    project_id = values["ID"].strip('"')
    expected_plain = {"CMG": CMG_UNPROTECTED, "DPB": DPB_NO_PASSWORD, "GC": GC_VISIBLE}
    for key, plain in expected_plain.items():
        hex_text = values[key].strip('"')
        found = decrypt_data(hex_text)
        assert found.project_key == sum(project_id.encode("ascii")) % 256
        assert found.data == plain
        assert len(found.ignored) == (found.seed & 6) // 2
        assert encrypt_data(project_id, plain, seed=found.seed, ignored=found.ignored) == hex_text


def test_our_protection_values_decrypt_back() -> None:
    """The CMG/DPB/GC we write decrypt to the unprotected plain data with our GUID's key."""
    for plain in (CMG_UNPROTECTED, DPB_NO_PASSWORD, GC_VISIBLE):
        found = decrypt_data(encrypt_data(DEFAULT_PROJECT_GUID, plain))
        assert found.data == plain
        assert found.project_key == sum(DEFAULT_PROJECT_GUID.encode()) % 256


# ---------------------------------------------------------------------------
# Modules from files


def test_xlwings_bas_is_read_verbatim() -> None:
    """module_from_file on xlwings.bas gives a procedural module whose source is the file."""
    module = module_from_file(XLWINGS_BAS)
    assert module.name == "xlwings"
    assert module.kind is ModuleKind.PROCEDURAL
    assert module.source == XLWINGS_BAS.read_bytes().decode("cp1252")


def test_class_file_becomes_what_excel_stores() -> None:
    """Dictionary.cls loses its VERSION/BEGIN..END header and gains VB_Base etc., giving the
    text Excel stored for it in quickstart_standalone.xlsm except for identifier case,
    which the VBA editor normalises (Err/err)."""
    module = module_from_file(DICTIONARY_CLS)
    assert module.kind is ModuleKind.CLASS
    assert module.name == "Dictionary"
    assert "VERSION 1.0 CLASS" not in module.source and "MultiUse" not in module.source
    stored = _module_text(olefile.OleFileIO(_reference_bin()), "Dictionary")
    assert module.source.lower() == stored.lower()
    assert module.source.splitlines()[:9] == stored.splitlines()[:9]


def test_document_modules_match_excel() -> None:
    """ThisWorkbook and SheetN sources are exactly the text Excel stores for them."""
    ole = olefile.OleFileIO(_reference_bin())
    modules = document_modules(["Sheet1", "Sheet2"])
    assert [m.name for m in modules] == ["ThisWorkbook", "Sheet1", "Sheet2"]
    assert all(m.kind is ModuleKind.DOCUMENT for m in modules)
    for module in modules:
        assert module.source == _module_text(ole, module.name)


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_module_files_with_accents_in_either_encoding(tmp_path: Path, encoding: str) -> None:
    """A .bas saved as UTF-8 or as cp1252 reads back with the same Italian accents; a name
    given explicitly replaces the file's VB_Name."""
    path = tmp_path / "Modulo.bas"
    path.write_bytes('Attribute VB_Name = "Vecchio"\n\' Città àèéìòù\n'.encode(encoding))
    module = module_from_file(path, name="Pulsanti")
    assert module.source == 'Attribute VB_Name = "Pulsanti"\r\n\' Città àèéìòù\r\n'


def test_module_from_file_refuses_other_files(tmp_path: Path) -> None:
    """Only .bas and .cls files are modules."""
    path = tmp_path / "x.txt"
    path.write_text('Attribute VB_Name = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"\.bas or \.cls"):
        module_from_file(path)


# ---------------------------------------------------------------------------
# The whole project


def _modules() -> list[VbaModule]:
    return [
        *document_modules(["Sheet1", "Sheet2", "Sheet3"]),
        PULSANTI,
        module_from_file(XLWINGS_BAS),
        module_from_file(DICTIONARY_CLS),
    ]


@pytest.fixture(scope="module")
def project() -> bytes:
    return build_vba_project(_modules())


def test_project_parses_strictly_with_the_expected_streams(project: bytes) -> None:
    """olefile, refusing any incorrect structure, lists exactly the streams of the project."""
    ole = olefile.OleFileIO(project, raise_defects=olefile.DEFECT_INCORRECT)
    names = sorted("/".join(p) for p in ole.listdir())
    modules = ["Dictionary", "Pulsanti", "Sheet1", "Sheet2", "Sheet3", "ThisWorkbook", "xlwings"]
    assert names == sorted(
        ["PROJECT", "PROJECTwm", "VBA/_VBA_PROJECT", "VBA/dir", *(f"VBA/{m}" for m in modules)]
    )
    assert ole.openstream("VBA/_VBA_PROJECT").read() == b"\xcc\x61\xff\xff\x00\x03\x00"


def test_olevba_returns_every_module_exactly(project: bytes) -> None:
    """olevba's code for each module (which, as for Excel's own quickstart file, is the
    full stored text including the Attribute lines) equals the CRLF-normalised source."""
    reference = {
        vba_name: code
        for _f, _s, vba_name, code in VBA_Parser(
            filename="q.bin", data=_reference_bin()
        ).extract_macros()
    }
    assert reference["Module1.bas"].startswith('Attribute VB_Name = "Module1"\r\nSub SampleCall')

    extension = {
        ModuleKind.PROCEDURAL: ".bas",
        ModuleKind.CLASS: ".cls",
        ModuleKind.DOCUMENT: ".cls",
    }
    found = {
        vba_name: (stream, code)
        for _f, stream, vba_name, code in VBA_Parser(
            filename="x.bin", data=project
        ).extract_macros()
    }
    modules = _modules()
    assert len(found) == len(modules)
    for module in modules:
        stream, code = found[module.name + extension[module.kind]]
        assert stream == f"VBA/{module.name}"
        assert code == normalize_source(module.source)
    assert "' Città, perché: à è é ì ò ù\r\n" in found["Pulsanti.bas"][1]


def test_dir_stream_mirrors_excel(project: bytes) -> None:
    """The dir stream has Excel's record sequence (project information, per-module
    records) and our values: Win64, LCID 0x409, code page 1252, stdole + Office
    references, source-only modules (offset 0) of the right type, in order."""
    ours = list(_records(decompress(olefile.OleFileIO(project).openstream("VBA/dir").read())))
    excel = list(
        _records(decompress(olefile.OleFileIO(_reference_bin()).openstream("VBA/dir").read()))
    )

    def info(records: list[tuple[int, bytes]]) -> list[int]:
        ids = [r for r, _ in records]
        return ids[: ids.index(0x0016)]

    def module_ids(records: list[tuple[int, bytes]]) -> list[list[int]]:
        ids = [r for r, _ in records]
        start = ids.index(0x0013) + 1
        return [
            ids[i : ids.index(0x002B, i) + 1]
            for i, r in enumerate(ids)
            if r == 0x0019 and i >= start
        ]

    assert info(ours) == info(excel)
    assert module_ids(ours)[0] == module_ids(excel)[0]
    assert ours[-1] == (0x0010, b"")
    values = dict(ours[: len(info(ours))])
    assert values[0x0001] == struct.pack("<I", 3) == dict(excel)[0x0001]
    assert values[0x0002] == values[0x0014] == struct.pack("<I", 0x409)
    assert values[0x0003] == struct.pack("<H", 1252)
    assert values[0x0004] == b"VBAProject"
    references = [p for r, p in ours if r == 0x000D]
    assert [p[4:].split(b"#")[0] for p in references] == [
        rb"*\G{00020430-0000-0000-C000-000000000046}",
        rb"*\G{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}",
    ]
    assert references[1] == next(p for r, p in excel if r == 0x000D)  # Office as Excel writes it
    modules = _modules()
    assert [p for r, p in ours if r == 0x000F] == [struct.pack("<H", len(modules))]
    assert [p.decode() for r, p in ours if r == 0x0019] == [m.name for m in modules]
    assert [p for r, p in ours if r == 0x0031] == [bytes(4)] * len(modules)
    assert [r for r, _ in ours if r in (0x0021, 0x0022)] == [
        0x21 if m.kind is ModuleKind.PROCEDURAL else 0x22 for m in modules
    ]


def test_project_and_projectwm_streams(project: bytes) -> None:
    """PROJECT lists the modules by kind with Excel's properties; PROJECTwm pairs the names."""
    ole = olefile.OleFileIO(project)
    text = ole.openstream("PROJECT").read().decode("cp1252")
    lines = text.split("\r\n")
    assert lines[:8] == [
        f'ID="{DEFAULT_PROJECT_GUID}"',
        "Document=ThisWorkbook/&H00000000",
        "Document=Sheet1/&H00000000",
        "Document=Sheet2/&H00000000",
        "Document=Sheet3/&H00000000",
        "Module=Pulsanti",
        "Module=xlwings",
        "Class=Dictionary",
    ]
    assert lines[8:11] == [
        'Name="VBAProject"',
        'HelpContextID="0"',
        'VersionCompatible32="393222000"',
    ]
    assert [line.split("=")[0] for line in lines[11:14]] == ["CMG", "DPB", "GC"]
    assert lines[14:] == [
        "",
        "[Host Extender Info]",
        "&H00000001={3832D640-CF90-11CF-8E43-00A0C911005A};VBE;&H00000000",
        "",
        "[Workspace]",
        *(f"{m.name}=0, 0, 0, 0, C" for m in _modules()),
        "",
    ]
    wm = ole.openstream("PROJECTwm").read()
    expected = b"".join(
        m.name.encode() + b"\x00" + m.name.encode("utf-16-le") + b"\x00\x00" for m in _modules()
    )
    assert wm == expected + b"\x00\x00"


def test_builds_are_deterministic(project: bytes) -> None:
    """Building again gives the same bytes; changing one line or the GUID changes them."""
    assert build_vba_project(_modules()) == project
    changed = [
        *_modules()[:4],
        VbaModule("Pulsanti", PULSANTI.source.replace("Valida", "Vali"), ModuleKind.PROCEDURAL),
        *_modules()[5:],
    ]
    assert build_vba_project(changed) != project
    other_guid = "{00000000-1111-2222-3333-444444444444}"
    assert build_vba_project(_modules(), guid=other_guid) != project


def test_text_outside_cp1252_is_refused() -> None:
    """A character Windows-1252 cannot hold is a ValueError naming the module and line."""
    bad = VbaModule(
        "Pulsanti", "Attribute VB_Name = \"Pulsanti\"\n' ok\n' Ω\n", ModuleKind.PROCEDURAL
    )
    with pytest.raises(ValueError, match=r"'Pulsanti'.*U\+03A9.*line 3"):
        build_vba_project([bad])


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ([VbaModule("Pulsanti", "Sub A()\nEnd Sub\n", ModuleKind.PROCEDURAL)], "VB_Name"),
        (
            [VbaModule("Pulsanti", 'Attribute VB_Name = "Altro"\n', ModuleKind.PROCEDURAL)],
            "VB_Name",
        ),
        (
            [
                PULSANTI,
                VbaModule("PULSANTI", 'Attribute VB_Name = "PULSANTI"\n', ModuleKind.PROCEDURAL),
            ],
            "used twice",
        ),
        (
            [VbaModule("VBAProject", 'Attribute VB_Name = "VBAProject"\n', ModuleKind.PROCEDURAL)],
            "used twice",
        ),
        (
            [VbaModule("Modulo 1", 'Attribute VB_Name = "Modulo 1"\n', ModuleKind.PROCEDURAL)],
            "not a valid VBA name",
        ),
    ],
    ids=["no VB_Name", "other VB_Name", "same name", "project name", "space in name"],
)
def test_inconsistent_modules_are_refused(modules: list[VbaModule], message: str) -> None:
    """Sources without their own VB_Name line and clashing or invalid names are ValueErrors."""
    with pytest.raises(ValueError, match=message):
        build_vba_project(modules)


def test_bad_guid_is_refused() -> None:
    """The project ID must be an upper-case braced GUID."""
    with pytest.raises(ValueError, match="GUID"):
        build_vba_project([PULSANTI], guid="3a55df14-2107-4958-bd5e-add703fd137c")


def test_large_project_parses_strictly() -> None:
    """300 KB of modules need several FAT sectors and still parse strictly and round-trip."""
    rng = random.Random(7)
    modules = [
        VbaModule(
            f"Modulo{i}",
            f'Attribute VB_Name = "Modulo{i}"\r\n'
            + "".join(
                f"' {rng.randbytes(12).hex()}\r\nSub S{i}_{j}()\r\nEnd Sub\r\n" for j in range(1200)
            ),
            ModuleKind.PROCEDURAL,
        )
        for i in range(5)
    ]
    assert sum(len(m.source) for m in modules) > 300_000
    data = build_vba_project(modules)
    ole = olefile.OleFileIO(data, raise_defects=olefile.DEFECT_INCORRECT)
    assert ole.num_fat_sectors >= 2
    codes = [code for *_, code in VBA_Parser(filename="x.bin", data=data).extract_macros()]
    assert codes == [m.source for m in modules]


# ---------------------------------------------------------------------------
# Compound file (MS-CFB)


def test_small_streams_go_to_the_mini_stream_large_ones_to_the_fat() -> None:
    """Streams under 4096 bytes live in the mini stream, from 4096 bytes in regular sectors,
    and every stream reads back exactly."""
    streams = {
        "tiny": b"x",
        "Dir/just_below": _rng_bytes(8, 4095),
        "Dir/at_cutoff": _rng_bytes(9, 4096),
        "Dir/Sub/big": _rng_bytes(10, 70_000),
        "empty": b"",
    }
    ole = olefile.OleFileIO(write_cfb(streams), raise_defects=olefile.DEFECT_INCORRECT)
    for path, data in streams.items():
        assert ole.openstream(path).read() == data
    mini = {"/".join(p): ole.direntries[ole._find(p)].is_minifat for p in ole.listdir()}
    assert mini == {
        "tiny": True,
        "Dir/just_below": True,
        "Dir/at_cutoff": False,
        "Dir/Sub/big": False,
        "empty": False,
    }


def test_directory_is_an_ordered_all_black_tree() -> None:
    """Each storage's children form a binary search tree ordered by name length, then
    upper-cased name, all nodes black; the output does not depend on the input order."""
    names = ["b", "A", "aa", "Zz", "_VBA_PROJECT", "dir", "Module1", "c", "PROJECTwm", "PROJECT"]
    streams = {name: name.encode() for name in names}
    data = write_cfb(streams)
    assert write_cfb(dict(reversed(streams.items()))) == data
    ole = olefile.OleFileIO(data, raise_defects=olefile.DEFECT_INCORRECT)
    entries: dict[int, Any] = {e.sid: e for e in ole.direntries if e is not None}

    def in_order(sid: int) -> list[str]:
        if sid == olefile.NOSTREAM:
            return []
        entry = entries[sid]
        return [*in_order(entry.sid_left), entry.name, *in_order(entry.sid_right)]

    assert in_order(entries[0].sid_child) == sorted(names, key=lambda n: (len(n), n.upper()))
    assert {e.color for e in entries.values()} == {1}  # MS-CFB §2.6.1: 0x01 is black


@pytest.mark.parametrize("sectors", [126, 127], ids=["FAT exactly full", "one sector more"])
def test_fat_sector_count_at_its_boundary(sectors: int) -> None:
    """One FAT sector maps 128 sectors (itself, the directory and 126 of data); one data
    sector more needs a second FAT sector, and both files parse strictly."""
    data = _rng_bytes(sectors, sectors * 512)
    ole = olefile.OleFileIO(write_cfb({"s": data}), raise_defects=olefile.DEFECT_INCORRECT)
    assert ole.num_fat_sectors == (1 if sectors == 126 else 2)
    assert ole.openstream("s").read() == data


def test_cfb_refuses_bad_names() -> None:
    """Names longer than 31 characters, with forbidden characters, or that clash are errors."""
    with pytest.raises(ValueError, match="31"):
        write_cfb({"x" * 32: b""})
    with pytest.raises(ValueError, match="does not allow"):
        write_cfb({"a:b": b""})
    with pytest.raises(ValueError, match="clashes"):
        write_cfb({"VBA": b"", "VBA/dir": b""})


# ---------------------------------------------------------------------------
# LibreOffice runs the macro and binds the button


@pytest.mark.libreoffice
def test_libreoffice_runs_the_macro_bound_to_the_button(tmp_path: Path) -> None:
    """LibreOffice opens an .xlsm carrying our project, lists its modules (one stored in
    the mini stream, one in regular sectors), runs
    Pulsanti.Scrivi (which writes an accented string into A1) and shows the form
    button bound to that macro."""
    require_libreoffice()
    source = (
        'Attribute VB_Name = "Pulsanti"\r\n'
        "Sub Scrivi()\r\n"
        '    ThisWorkbook.Worksheets(1).Range("A1").Value = "ciao àè"\r\n'
        "End Sub\r\n"
    )
    # A module of comments larger than 4096 bytes puts its stream in regular sectors.
    comments = 'Attribute VB_Name = "Note"\r\n' + "".join(
        f"' nota {i}: là, più, perché\r\n" for i in range(400)
    )
    modules = [
        *document_modules(["Sheet1"]),
        VbaModule("Pulsanti", source, ModuleKind.PROCEDURAL),
        VbaModule("Note", comments, ModuleKind.PROCEDURAL),
    ]
    path = tmp_path / "pulsanti.xlsm"
    workbook = xlsxwriter.Workbook(str(path))
    worksheet = workbook.add_worksheet()
    workbook.set_vba_name()
    workbook.add_vba_project(io.BytesIO(build_vba_project(modules)), is_stream=True)
    worksheet.insert_button("B2", {"macro": "Scrivi", "caption": "Prova"})
    workbook.close()

    script = "vnd.sun.star.script:VBAProject.Pulsanti.Scrivi?language=Basic&location=document"
    job = {
        "soffice": find_soffice(),
        "jobs": [{"input": str(path), "run": [script], "read": ["Sheet1.A1"]}],
    }
    with tempfile.TemporaryDirectory(prefix="lo-vba-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        # The driver's soffice profile goes under tmp too, so it is removed even if
        # the driver has to be killed.
        proc = _run_group(
            [UNO_PYTHON, str(VBA_DRIVER), str(job_file), str(result_file)],
            timeout=180,
            env=dict(os.environ, TMPDIR=tmp),
        )
        assert proc.returncode == 0, proc.stderr
        (result,) = json.loads(result_file.read_text(encoding="utf-8"))["results"]
    assert result["error"] is None, result["error"]
    library = result["libraries"]["VBAProject"]
    assert sorted(library) == ["Note", "Pulsanti", "Sheet1", "ThisWorkbook"]
    assert '"ciao àè"' in library["Pulsanti"]
    assert [line for line in library["Note"].split("\n") if line.startswith("'")] == [
        f"' nota {i}: là, più, perché" for i in range(400)
    ]
    assert result["reads"] == {"Sheet1.A1": "ciao àè"}
    assert [(b["label"], [e["script"] for e in b["events"]]) for b in result["buttons"]] == [
        ("Prova", [script])
    ]
