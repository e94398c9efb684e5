"""Filling a generated .xlsx template with values, as a clerk would, without a spreadsheet
program: used by the demo, the benchmarks and the tests.

It writes straight into the Scheda sheet's XML of a template made by this package (where
every field cell exists, empty), and keeps the cached results of the totals (a, f)
consistent, like a file saved by Excel.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from piano_abitativo.core.layout import layout_for
from piano_abitativo.core.schema import SCHEMA, Role, Schema

_SCHEDA_XML = "xl/worksheets/sheet2.xml"


def _cell_xml(ref: str, style: str, value: Any) -> str:
    if value is None or value == "":
        return f'<c r="{ref}"{style}/>'
    if isinstance(value, bool):
        return f'<c r="{ref}"{style} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"{style}><v>{value!r}</v></c>'
    text = escape(str(value))
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c r="{ref}"{style} t="inlineStr"><is><t{space}>{text}</t></is></c>'


def fill_template(template: bytes, values: Mapping[str, Any], schema: Schema = SCHEMA) -> bytes:
    """A copy of `template` (made for `schema`) with the given field values typed in.

    Numbers are written as numbers, strings as text exactly as given (so "5" is a number
    stored as text, as when a clerk types it in a text cell)."""
    by_id = schema.field_by_id
    lay = layout_for(schema)
    unknown = set(values) - set(by_id)
    if unknown:
        raise KeyError(f"campi sconosciuti: {', '.join(sorted(unknown))}")
    zin = zipfile.ZipFile(io.BytesIO(template))
    xml = zin.read(_SCHEDA_XML).decode("utf-8")
    numeric = {k: v for k, v in values.items() if isinstance(v, int | float)}
    for fid, value in values.items():
        if by_id[fid].role is Role.FORMULA:
            continue
        xml = _replace_cell(xml, lay.cell(fid), value)
    for total_field in schema.fields:
        if total_field.role is not Role.FORMULA or not total_field.sum_of:
            continue
        total = sum(numeric.get(k, 0) for k in total_field.sum_of)
        ref = lay.cell(total_field.id)
        xml = re.sub(
            rf'(<c r="{ref}"[^>]*>\s*<f>[^<]*</f>)(?:<v>[^<]*</v>)?', rf"\g<1><v>{total!r}</v>", xml
        )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = xml.encode("utf-8") if info.filename == _SCHEDA_XML else zin.read(info)
            zi = zipfile.ZipInfo(info.filename, info.date_time)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(zi, data)
    return out.getvalue()


def _replace_cell(xml: str, ref: str, value: Any) -> str:
    pat = re.compile(rf'<c r="{ref}"( s="\d+")?(?: t="\w+")?\s*(?:/>|>.*?</c>)', re.DOTALL)
    m = pat.search(xml)
    if m is None:
        raise ValueError(f"cella {ref} non trovata nel modello")
    return xml[: m.start()] + _cell_xml(ref, m.group(1) or "", value) + xml[m.end() :]
