"""Making templates: each variant (COMUNE, ALER, blank) is written once with XlsxWriter,
then each ente's copy only replaces a few placeholder strings inside the zip, which keeps
generation of thousands of templates fast and the files byte-for-byte predictable."""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import xlsxwriter

from piano_abitativo.core.atomic import atomic_write_bytes, atomic_write_files
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente
from piano_abitativo.core.schema import TEMPLATE_MARK
from piano_abitativo.template.context import (
    PH_CODE,
    PH_FULLNAME,
    PH_NAME,
    TemplateContext,
    Variant,
    meta_values,
)
from piano_abitativo.template.sheets import Formats, write_istruzioni, write_meta, write_scheda


def build_variant(variant: Variant, ctx: TemplateContext) -> bytes:
    """The template workbook for a variant, with placeholders for the ente."""
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(
        buf,
        {
            "in_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    created = dt.datetime(ctx.anno - 1 if ctx.anno else 2026, 1, 1, tzinfo=dt.UTC)
    blank = variant == "VUOTO"
    wb.set_properties(
        {
            "title": f"Piano annuale offerta abitativa {ctx.anno or ''} - "
            f"{'' if blank else PH_FULLNAME}".strip(" -"),
            "subject": "Scheda di rilevazione dei dati dell'ente",
            "author": ctx.capofila or "Comune capofila",
            "company": ctx.ambito,
            "keywords": TEMPLATE_MARK,
            "created": created.replace(tzinfo=None),
            "comments": "Modello senza macro. Compilare solo le celle gialle del foglio Scheda.",
        }
    )
    for key, value in meta_values(variant, ctx).items():
        wb.set_custom_property(f"piano_abitativo_{key}", value or "-")
    fmt = Formats(wb)
    write_istruzioni(wb, fmt, variant, ctx)
    write_scheda(wb, fmt, variant, ctx)
    write_meta(wb, variant, ctx)
    wb.close()
    return _without_cached_results(buf.getvalue())


_CACHED_RESULT = re.compile(rb"(</f>)<v>[^<]*</v>")


def _without_cached_results(data: bytes) -> bytes:
    """Drop the cached results XlsxWriter writes for formulas (all 0).

    LibreOffice trusts cached results of files that claim to come from Excel, so the
    self-checks would show 0 until edited; a formula without a cached result is
    computed on load by LibreOffice, and Excel recalculates everything on load anyway
    (fullCalcOnLoad)."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            body = zin.read(info)
            if info.filename.startswith("xl/worksheets/"):
                body = _CACHED_RESULT.sub(rb"\1", body)
            zout.writestr(info, body)
    return out.getvalue()


_PERSONAL_MEMBERS = ("xl/sharedStrings.xml", "docProps/core.xml", "docProps/custom.xml")


@dataclass(frozen=True)
class _Member:
    """One zip member of a variant, compressed once (the ente's parts: per copy)."""

    name: bytes
    dos_time: int
    dos_date: int
    text: str | None  # the XML with placeholders, for the ente's parts
    deflated: bytes
    crc: int
    size: int


def _deflate(data: bytes) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    return z.compress(data) + z.flush()


def _member(info: zipfile.ZipInfo, data: bytes) -> _Member:
    y, mo, d, h, mi, sec = info.date_time
    personal = info.filename in _PERSONAL_MEMBERS
    return _Member(
        info.filename.encode("utf-8"),
        h << 11 | mi << 5 | sec // 2,
        (y - 1980) << 9 | mo << 5 | d,
        data.decode("utf-8") if personal else None,
        _deflate(data),
        zlib.crc32(data),
        len(data),
    )


_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")


def _zip(members: list[tuple[_Member, bytes, int, int]]) -> bytes:
    """A zip of deflated members (member, deflated data, crc, size), written directly so
    the unchanged parts of a variant are not compressed again for each ente."""
    out = io.BytesIO()
    central = io.BytesIO()
    for m, data, crc, size in members:
        offset = out.tell()
        out.write(
            _LOCAL.pack(
                b"PK\x03\x04",
                20,
                0,
                8,
                m.dos_time,
                m.dos_date,
                crc,
                len(data),
                size,
                len(m.name),
                0,
            )
        )
        out.write(m.name)
        out.write(data)
        central.write(
            _CENTRAL.pack(
                b"PK\x01\x02",
                0x0314,
                20,
                0,
                8,
                m.dos_time,
                m.dos_date,
                crc,
                len(data),
                size,
                len(m.name),
                0,
                0,
                0,
                0,
                0o600 << 16,
                offset,
            )
        )
        central.write(m.name)
    start = out.tell()
    cd = central.getvalue()
    out.write(cd)
    out.write(_END.pack(b"PK\x05\x06", 0, 0, len(members), len(members), len(cd), start, 0))
    return out.getvalue()


class TemplateFactory:
    """Makes personalised templates fast: each variant is built and compressed once,
    then each ente's copy only replaces the placeholder strings of three small parts."""

    def __init__(self, ctx: TemplateContext) -> None:
        self.ctx = ctx
        self._variants: dict[str, list[_Member]] = {}

    def _members(self, variant: Variant) -> list[_Member]:
        if variant not in self._variants:
            data = build_variant(variant, self.ctx)
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                self._variants[variant] = [_member(i, zf.read(i)) for i in zf.infolist()]
        return self._variants[variant]

    def render(self, ente: Ente) -> bytes:
        subs = {
            PH_CODE: escape(ente.codice),
            PH_NAME: escape(ente.denominazione),
            PH_FULLNAME: escape(ente.nome_completo),
        }
        parts: list[tuple[_Member, bytes, int, int]] = []
        for m in self._members("ALER" if ente.tipo == "ALER" else "COMUNE"):
            if m.text is None:
                parts.append((m, m.deflated, m.crc, m.size))
                continue
            body = _PLACEHOLDERS.sub(lambda g: subs[g.group(0)], m.text).encode("utf-8")
            parts.append((m, _deflate(body), zlib.crc32(body), len(body)))
        return _zip(parts)


_PLACEHOLDERS = re.compile("|".join(re.escape(k) for k in (PH_CODE, PH_NAME, PH_FULLNAME)))


def template_filename(ente: Ente, anno: int | None) -> str:
    """A name a clerk can read: 'Piano_abitativo_2026_Comune_di_Rivolta_d_Adda.xlsx'."""
    text = unicodedata.normalize("NFKD", ente.nome_completo)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    prefix = f"Piano_abitativo_{anno}_" if anno else "Piano_abitativo_"
    return f"{prefix}{text}.xlsx"


def write_templates(
    enti: Iterable[Ente],
    outdir: Path,
    ctx: TemplateContext,
    *,
    progress: Callable[[Ente], None] | None = None,
) -> list[Path]:
    """Write one personalised template per ente into `outdir` (atomically, all together:
    the files are put in place when every one has been written)."""
    factory = TemplateFactory(ctx)
    paths: list[Path] = []
    with atomic_write_files(outdir) as put:
        for ente in enti:
            paths.append(put(template_filename(ente, ctx.anno), factory.render(ente)))
            if progress:
                progress(ente)
    return paths


STANDARD_TEMPLATE_NAME = "modello_piano_abitativo.xlsx"


def build_standard_template() -> bytes:
    """The blank standard template committed under templates/ (no ente, no year)."""
    return build_variant("VUOTO", TemplateContext())


def write_standard_template(path: Path) -> Path:
    atomic_write_bytes(path, build_standard_template())
    return path


def context_for(r: Raccolta) -> TemplateContext:
    """The template context of a raccolta (its year, id, ambito, deadline, rules)."""
    return TemplateContext(
        anno=r.anno,
        raccolta_id=r.id,
        ambito=r.ambito,
        scadenza=r.scadenza,
        capofila=r.capofila,
        contatto=r.contatto,
        settings=r.settings,
        schema=r.schema,
    )


def generate_templates(
    r: Raccolta, *, progress: Callable[[Ente], None] | None = None
) -> list[Path]:
    """One personalised template per ente of the registry into RACCOLTA/modelli/."""
    return write_templates(r.registry, r.modelli_dir, context_for(r), progress=progress)
