"""Low-level OOXML helpers for python-docx: fields, bookmarks, links, shading, row
and cell properties."""

from __future__ import annotations

import copy
import datetime as dt
import io
import re
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Length
from docx.table import Table
from docx.text.paragraph import Paragraph

from piano_abitativo.archive.store import TZ
from piano_abitativo.document.base import (
    FONT,
)

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------- OOXML helpers


def _set(el: Any, tag: str, **attrs: str) -> Any:
    """Get or add the child `tag` of `el` and set its w: attributes."""
    child = el.find(qn(tag))
    if child is None:
        child = OxmlElement(tag)
        el.append(child)
    for k, v in attrs.items():
        child.set(qn(f"w:{k}"), v)
    return child


def _plain_fonts(rpr: Any) -> None:
    """Arial everywhere in an rPr, without the theme fonts that would override it."""
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for a in ("asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"):
        fonts.attrib.pop(qn(f"w:{a}"), None)
    for a in ("ascii", "hAnsi", "cs"):
        fonts.set(qn(f"w:{a}"), FONT)


def _field(
    par: Paragraph, instr: str, cached: str = "", *, size: Length | None = None, bold: bool = False
) -> None:
    """A Word field (PAGE, NUMPAGES, PAGEREF …) with its cached result."""

    def run(kind: str) -> None:
        r = par.add_run()
        if size is not None:
            r.font.size = size
        r.bold = bold or None
        el = OxmlElement(kind)
        r._r.append(el)
        if kind == "w:instrText":
            el.set(qn("xml:space"), "preserve")
            el.text = f" {instr} "

    def char(kind: str) -> None:
        r = par.add_run()
        if size is not None:
            r.font.size = size
        fc = OxmlElement("w:fldChar")
        fc.set(qn("w:fldCharType"), kind)
        r._r.append(fc)

    char("begin")
    run("w:instrText")
    char("separate")
    r = par.add_run(cached)
    if size is not None:
        r.font.size = size
    r.bold = bold or None
    char("end")


def _bookmark(par: Paragraph, name: str, ident: int) -> None:
    start = OxmlElement("w:bookmarkStart")
    start.set(qn("w:id"), str(ident))
    start.set(qn("w:name"), name)
    end = OxmlElement("w:bookmarkEnd")
    end.set(qn("w:id"), str(ident))
    ppr = par._p.pPr
    par._p.insert(1 if ppr is not None else 0, start)
    par._p.append(end)


def _internal_link(par: Paragraph, anchor: str, text: str, *, bold: bool = False) -> None:
    """`text` as a link to the bookmark `anchor` (a clickable index in Word and the PDF)."""
    link = OxmlElement("w:hyperlink")
    link.set(qn("w:anchor"), anchor)
    link.set(qn("w:history"), "1")
    run = par.add_run(text)
    run.bold = bold or None
    link.append(run._r)
    par._p.append(link)


def _insert_before(parent: Any, child: Any, successors: Sequence[str]) -> None:
    """Add `child` to `parent` before the first of `successors` present: Word wants the
    children of a property element in the schema's order."""
    for tag in successors:
        found = parent.find(qn(tag))
        if found is not None:
            found.addprevious(child)
            return
    parent.append(child)


def _shade(cell: Any, fill: str) -> None:
    tcpr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    _insert_before(
        tcpr,
        shd,
        (
            "w:noWrap",
            "w:tcMar",
            "w:textDirection",
            "w:tcFitText",
            "w:vAlign",
            "w:hideMark",
            "w:headers",
            "w:cellIns",
            "w:cellDel",
            "w:cellMerge",
            "w:tcPrChange",
        ),
    )


def _row_props(row: Any, *, header: bool) -> None:
    """No row split across pages; header rows repeat on every page."""
    trpr = row._tr.get_or_add_trPr()
    trpr.append(OxmlElement("w:cantSplit"))
    if header:
        trpr.append(OxmlElement("w:tblHeader"))


_W_TC, _W_P, _W_R, _W_T = qn("w:tc"), qn("w:p"), qn("w:r"), qn("w:t")
#: what python-docx writes as other elements than text (w:tab, w:br, w:cr)
_SPECIAL = re.compile(r"[\t\n\r]")
_XML_SPACE = qn("xml:space")


def _copy_row(model: Any, row: Any, values: Sequence[str]) -> None:
    """Replace `row` with a copy of the formatted row element `model`, each cell's one
    run holding its value of `values` as ``add_run(value)`` writes it: a plain text in
    the run's one w:t (kept as typed when it starts or ends with a space), anything else
    (a tab, a line break, nothing) through python-docx's own setter."""
    tr = copy.deepcopy(model)
    row._tr.getparent().replace(row._tr, tr)
    for tc, value in zip(tr.iterchildren(_W_TC), values, strict=True):
        r = tc.find(_W_P).find(_W_R)
        t = r[-1]
        if t.tag == _W_T and len(r) == 2 and value and not _SPECIAL.search(value):
            t.text = value
            if value.strip() != value:
                t.set(_XML_SPACE, "preserve")
            elif _XML_SPACE in t.attrib:
                del t.attrib[_XML_SPACE]
        else:
            r.text = value


def _cell_margins(table: Table, left_right_cm: float) -> None:
    tblpr = table._tbl.tblPr
    mar = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        el = OxmlElement(f"w:{side}")
        el.set(qn("w:w"), str(round(left_right_cm * 567)))
        el.set(qn("w:type"), "dxa")
        mar.append(el)
    _insert_before(tblpr, mar, ("w:tblLook", "w:tblCaption", "w:tblDescription", "w:tblPrChange"))


def _normalise_zip(data: bytes, when: dt.datetime) -> bytes:
    """The same package with every member dated `when` (python-docx stamps the time of
    saving): the same data give the same bytes."""
    local = when.astimezone(TZ) if when.tzinfo is not None else when
    stamp: tuple[int, int, int, int, int, int] = max(
        (local.year, local.month, local.day, local.hour, local.minute, local.second),
        (1980, 1, 1, 0, 0, 0),
    )
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=stamp)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, src.read(info.filename))
    return out.getvalue()


def _ask_to_update_fields(settings: Any) -> None:
    """Word is asked to update the fields on opening (``w:updateFields``), in its place in
    the settings' sequence: for an index whose page numbers are not known."""
    upd = OxmlElement("w:updateFields")
    upd.set(qn("w:val"), "true")
    successors = ("w:hdrShapeDefaults", "w:footnotePr", "w:endnotePr", "w:compat")
    nxt = next((el for t in successors if (el := settings.find(qn(t))) is not None), None)
    if nxt is not None:
        nxt.addprevious(upd)
    else:  # pragma: no cover - the default template has w:compat
        settings.append(upd)
