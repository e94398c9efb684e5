"""Making templates: each variant (COMUNE, ALER, blank) is written once with XlsxWriter,
then each ente's copy only replaces a few placeholder strings inside the zip, which keeps
generation of thousands of templates fast and the files byte-for-byte predictable."""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from xml.sax.saxutils import escape

import xlsxwriter

from piano_abitativo.core.atomic import atomic_write_bytes
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


class TemplateFactory:
    """Makes personalised templates fast: each variant is built once, then each ente's
    copy only replaces the placeholder strings."""

    def __init__(self, ctx: TemplateContext) -> None:
        self.ctx = ctx
        self._variants: dict[str, list[tuple[zipfile.ZipInfo, bytes]]] = {}

    def _members(self, variant: Variant) -> list[tuple[zipfile.ZipInfo, bytes]]:
        if variant not in self._variants:
            data = build_variant(variant, self.ctx)
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                self._variants[variant] = [(i, zf.read(i)) for i in zf.infolist()]
        return self._variants[variant]

    def render(self, ente: Ente) -> bytes:
        subs = {
            PH_CODE: escape(ente.codice),
            PH_NAME: escape(ente.denominazione),
            PH_FULLNAME: escape(ente.nome_completo),
        }
        pattern = re.compile("|".join(re.escape(k) for k in subs))

        def replace(m: re.Match[str]) -> str:
            return subs[m.group(0)]

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in self._members("ALER" if ente.tipo == "ALER" else "COMUNE"):
                if info.filename in _PERSONAL_MEMBERS:
                    data = pattern.sub(replace, data.decode("utf-8")).encode("utf-8")
                zi = zipfile.ZipInfo(info.filename, info.date_time)
                zi.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(zi, data, compresslevel=6)
        return out.getvalue()


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
    """Write one personalised template per ente into `outdir` (atomically, each file)."""
    outdir.mkdir(parents=True, exist_ok=True)
    factory = TemplateFactory(ctx)
    paths: list[Path] = []
    for ente in enti:
        path = outdir / template_filename(ente, ctx.anno)
        atomic_write_bytes(path, factory.render(ente))
        paths.append(path)
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
