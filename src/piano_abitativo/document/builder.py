"""The document of the Piano annuale built paragraph by paragraph: cover, texts,
the tables a)–k) from the consolidation's schema, the comparison with last year and the
annex."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import docx
from docx.document import Document as DocxDocument
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_TAB_ALIGNMENT, WD_TAB_LEADER
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from docx.table import Table
from docx.text.paragraph import Paragraph

from piano_abitativo.archive.store import TZ
from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.schema import Kind
from piano_abitativo.document.base import (
    A4_LONG,
    A4_SHORT,
    ANNEX_MARGIN,
    BLUE,
    FONT,
    HEADER_FILL,
    LEGAL_REFERENCES,
    MARGIN,
    TESTI_DIR,
    TEXT_WIDTH_CM,
    TITLE,
    TOTAL_FILL,
)
from piano_abitativo.document.comparison import write_comparison
from piano_abitativo.document.measure import (
    _ANNEX_CELL_MARGIN_CM,
    _annex_layout,
    _plan_widths,
    _table_row,
    _value_text,
    number_text,
)
from piano_abitativo.document.ooxml import (
    _ask_to_update_fields,
    _bookmark,
    _cell_margins,
    _copy_row,
    _field,
    _internal_link,
    _normalise_zip,
    _plain_fonts,
    _row_props,
    _set,
    _shade,
)
from piano_abitativo.document.texts import (
    BLOCK_BY_KEY,
    DEFAULT_NOTE,
    fill_placeholders,
    is_default,
    parse_block,
    placeholder_values,
)
from piano_abitativo.master.sheets import NESSUNA, TOTALE, report_columns, table_defs

if TYPE_CHECKING:
    from piano_abitativo.consolidation.changes import Confronto


# --------------------------------------------------------------------------- document

#: the colour of the note under a default text (dark red: seen at a glance, also printed)
DEFAULT_NOTE_COLOR = RGBColor(0xA0, 0x1C, 0x1C)


@dataclass
class _Heading:
    number: str  # "1", "1.1", "" for the annex
    title: str
    level: int
    bookmark: str


@dataclass
class _Builder:
    r: Raccolta
    cons: Consolidation
    texts: Mapping[str, str]
    confronto: Confronto | None
    #: the page of each heading (its text), from the PDF; None: not known
    pages: Mapping[str, int] | None = None
    doc: DocxDocument = field(init=False)
    notes: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    _bookmarks: int = 0
    _headings: list[_Heading] = field(default_factory=list)
    #: the files of the text blocks still in their default wording
    _defaults: list[str] = field(default_factory=list)
    #: position of the paragraph before which the index entries go
    _index_at: int = 0

    def __post_init__(self) -> None:
        self.doc = docx.Document()
        self.values = placeholder_values(self.r, self.cons)

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        doc = self.doc
        # theme fonts and language of the defaults: Arial, Italian (spelling, hyphenation)
        styles_el = doc.styles.element
        rpr_default = styles_el.find(qn("w:docDefaults")).find(qn("w:rPrDefault")).find(qn("w:rPr"))
        _plain_fonts(rpr_default)
        _set(rpr_default, "w:lang", val="it-IT", eastAsia="it-IT", bidi="ar-SA")
        normal = doc.styles["Normal"]
        normal.font.name = FONT
        normal.font.size = Pt(10.5)
        _plain_fonts(normal.element.get_or_add_rPr())
        pf = normal.paragraph_format
        pf.space_after = Pt(6)
        pf.line_spacing = 1.15
        for name, size, before, after in (("Heading 1", 13, 18, 8), ("Heading 2", 11.5, 14, 6)):
            st = doc.styles[name]
            st.font.name = FONT
            st.font.size = Pt(size)
            st.font.bold = True
            st.font.italic = False
            st.font.color.rgb = BLUE
            _plain_fonts(st.element.get_or_add_rPr())
            st.paragraph_format.space_before = Pt(before)
            st.paragraph_format.space_after = Pt(after)
            st.paragraph_format.keep_with_next = True
        lb = doc.styles["List Bullet"]
        lb.paragraph_format.space_after = Pt(3)
        for name in ("Header", "Footer"):
            doc.styles[name].font.size = Pt(8)
        # settings: Italian decimal symbol; Word updates the index page numbers on opening
        settings = doc.settings.element
        for tag, val in (("w:decimalSymbol", ","), ("w:listSeparator", ";")):
            _set(settings, tag, val=val)
        _set(settings, "w:themeFontLang", val="it-IT")
        zoom = settings.find(qn("w:zoom"))
        if zoom is not None:  # the schema requires w:percent, python-docx's template lacks it
            zoom.set(qn("w:percent"), "100")
        # no preview picture of python-docx's template in the file manager
        pkg_rels = doc.part.package.rels
        for rid, rel in list(pkg_rels.items()):
            if rel.reltype == RT.THUMBNAIL:
                del pkg_rels[rid]
        sec = doc.sections[0]
        self._page(sec, landscape=False)
        sec.different_first_page_header_footer = True
        self._footer(sec)
        props = doc.core_properties
        created = self.cons.generated_at
        if created.tzinfo is not None:
            created = created.astimezone(dt.UTC).replace(tzinfo=None)
        props.title = f"{TITLE} {self.cons.anno} — Ambito {self.cons.ambito}"[:255]
        props.subject = "Piano annuale dell'offerta abitativa (L.R. 16/2016, R.R. 4/2017)"
        props.author = (self.cons.capofila or "Ente capofila")[:255]
        props.last_modified_by = "piano-abitativo"
        props.keywords = "piano-abitativo, piano annuale, servizi abitativi"
        props.comments = (
            f"Generato da piano-abitativo il {self.values['data_documento']} con i dati "
            f"consolidati al {self.values['data_dati']}."
        )
        props.category = ""
        props.language = "it-IT"
        props.created = created
        props.modified = created
        props.revision = 1

    @staticmethod
    def _page(sec: Any, *, landscape: bool) -> None:
        if landscape:
            sec.orientation = WD_ORIENT.LANDSCAPE
            sec.page_width, sec.page_height = A4_LONG, A4_SHORT
            margin = ANNEX_MARGIN
        else:
            sec.orientation = WD_ORIENT.PORTRAIT
            sec.page_width, sec.page_height = A4_SHORT, A4_LONG
            margin = MARGIN
        sec.left_margin = sec.right_margin = margin
        sec.top_margin = sec.bottom_margin = Cm(1.5) if landscape else Cm(2.0)
        sec.header_distance = Cm(1.0)
        sec.footer_distance = Cm(1.0)

    def _footer(self, sec: Any) -> None:
        par = sec.footer.paragraphs[0]
        par.alignment = WD_ALIGN_PARAGRAPH.CENTER
        par.add_run(
            f"Piano annuale {self.cons.anno} — Ambito {self.cons.ambito} — dati "
            f"consolidati al {self.values['data_dati']} — pagina "
        )
        _field(par, "PAGE", "1")
        par.add_run(" di ")
        _field(par, "NUMPAGES", "1")

    # ------------------------------------------------------------------ blocks

    def para(
        self,
        text: str = "",
        *,
        bold: bool = False,
        italic: bool = False,
        size: float | None = None,
        align: WD_ALIGN_PARAGRAPH | None = None,
        before: float | None = None,
        after: float | None = None,
        color: RGBColor | None = None,
        keep: bool = False,
    ) -> Paragraph:
        p = self.doc.add_paragraph()
        if text:
            run = p.add_run(text)
            run.bold = bold or None
            run.italic = italic or None
            if size is not None:
                run.font.size = Pt(size)
            if color is not None:
                run.font.color.rgb = color
        if align is not None:
            p.alignment = align
        if before is not None:
            p.paragraph_format.space_before = Pt(before)
        if after is not None:
            p.paragraph_format.space_after = Pt(after)
        if keep:
            p.paragraph_format.keep_with_next = True
        return p

    def heading(self, number: str, title: str, level: int) -> Paragraph:
        text = (f"{number}. {title}" if level == 1 else f"{number} - {title}") if number else title
        p: Paragraph = self.doc.add_heading(text, level)
        self._bookmarks += 1
        name = f"_piano_{self._bookmarks}"
        _bookmark(p, name, self._bookmarks)
        self._headings.append(_Heading(number, text, level, name))
        return p

    def block(self, key: str) -> None:
        """The paragraphs of text block `key`, placeholders filled; below a text still
        in its default wording, a visible note that it is to be adapted."""
        raw = self.texts.get(key, BLOCK_BY_KEY[key].default)
        text, unknown = fill_placeholders(raw, self.values)
        if unknown:
            known = " ".join("{" + k + "}" for k in self.values)
            shown = ", ".join("{" + u + "}" for u in unknown)
            what = (
                "sconosciuto, lasciato com'è"
                if len(unknown) == 1
                else "sconosciuti, lasciati come sono scritti"
            )
            self.notes.append(
                f"{TESTI_DIR}/{BLOCK_BY_KEY[key].file}: segnaposto {shown} "
                f"{what} nel documento. Si possono usare: {known}."
            )
        for tp in parse_block(text):
            if tp.bullet:
                p = self.doc.add_paragraph(tp.text, style="List Bullet")
            else:
                p = self.doc.add_paragraph(tp.text)
            p.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
        if is_default(BLOCK_BY_KEY[key], raw):
            self._defaults.append(BLOCK_BY_KEY[key].file)
            self.para(
                f"[{DEFAULT_NOTE[0].upper()}{DEFAULT_NOTE[1:]}: modificare il file "
                f"{TESTI_DIR}/{BLOCK_BY_KEY[key].file} della raccolta.]",
                italic=True,
                size=9,
                color=DEFAULT_NOTE_COLOR,
                after=8,
            )

    # ------------------------------------------------------------------ title and index

    def title_page(self) -> None:
        c = self.cons
        center = WD_ALIGN_PARAGRAPH.CENTER
        self.para(c.capofila, bold=True, size=13, align=center, before=24, after=4)
        self.para(f"Ambito territoriale {c.ambito}", size=12, align=center, after=0)
        self.para(TITLE.upper(), bold=True, size=22, align=center, before=150, after=12, color=BLUE)
        self.para(f"Anno {c.anno}", bold=True, size=20, align=center, after=60, color=BLUE)
        self.para(LEGAL_REFERENCES, italic=True, size=10, align=center, after=6)
        self.para(
            "Documento predisposto dall'ente capofila per l'approvazione "
            "dell'Assemblea dei sindaci.",
            size=10,
            align=center,
            after=90,
        )
        self.para(
            f"Dati consolidati al {self.values['data_dati']}",
            bold=True,
            size=12,
            align=center,
            after=4,
        )
        n, answered = len(c.enti), len(c.answered)
        self.para(f"Enti che hanno trasmesso i dati: {answered} su {n}", size=10, align=center)
        self.para(
            f"Documento prodotto il {self.values['data_documento']}",
            size=9,
            align=center,
            before=4,
        )
        self.page_break()

    def index_page(self) -> None:
        self.para("Sommario", bold=True, size=14, color=BLUE, after=12)
        self._index_at = len(self.doc.paragraphs)
        self.page_break()

    def page_break(self) -> None:
        self.doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)

    def fill_index(self) -> None:
        """The index entries, with a PAGEREF field to each heading's bookmark: LibreOffice
        computes the page numbers when it makes the PDF; with `pages` (read back from that
        PDF) they are the fields' cached results, so Word shows them without asking to
        update the fields (without, the document asks Word to update them on opening)."""
        anchor = self.doc.paragraphs[self._index_at]  # the page break after "Sommario"
        for h in self._headings:
            p = anchor.insert_paragraph_before()
            pf = p.paragraph_format
            pf.tab_stops.add_tab_stop(Cm(TEXT_WIDTH_CM), WD_TAB_ALIGNMENT.RIGHT, WD_TAB_LEADER.DOTS)
            pf.space_after = Pt(4 if h.level > 1 else 6)
            pf.space_before = Pt(0 if h.level > 1 else 6)
            if h.level > 1:
                pf.left_indent = Cm(0.8)
            _internal_link(p, h.bookmark, h.title, bold=h.level == 1)
            p.add_run("\t")
            page = "" if self.pages is None else str(self.pages.get(h.title, ""))
            _field(p, f"PAGEREF {h.bookmark} \\h", page, bold=h.level == 1)

    # ------------------------------------------------------------------ tables

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths_cm: Sequence[float],
        *,
        numeric: Iterable[int] = (),
        total: Sequence[str] | None = None,
        font: float = 9.5,
        header_font: float | None = None,
        margins_cm: float | None = None,
        center: Iterable[int] = (),
        keep_together: bool = True,
        spacing_pt: float = 1.0,
    ) -> Table:
        """A table in the plan's form: shaded header row repeated on every page, rows never
        split, numbers aligned right, the total row in bold; kept on one page with its
        title when `keep_together` (a long table starts right below its title instead)."""
        numeric, center = set(numeric), set(center)
        n_rows = 1 + len(rows) + (1 if total is not None else 0)
        t: Table = self.doc.add_table(rows=n_rows, cols=len(headers))
        t.style = self.doc.styles["Table Grid"]
        t.alignment = WD_TABLE_ALIGNMENT.CENTER
        t.autofit = False
        if margins_cm is not None:
            _cell_margins(t, margins_cm)
        for col, w in zip(t.columns, widths_cm, strict=True):
            col.width = Cm(w)
        body = [list(headers), *(list(r) for r in rows)]
        if total is not None:
            body.append(list(total))
        last = len(body) - 1
        # rows of a kind differ only in texts: the first is formatted, the others copy it
        formatted: dict[tuple[bool, bool, bool], Any] = {}
        for i, (row, values) in enumerate(zip(t.rows, body, strict=True)):
            is_header = i == 0
            is_total = total is not None and i == last
            kind = (is_header, is_total, is_header or (keep_together and i < last))
            model = formatted.get(kind)
            if model is not None:
                _copy_row(model, row, values)
                continue
            formatted[kind] = row._tr
            _row_props(row, header=is_header)
            for j, (cell, value, w) in enumerate(zip(row.cells, values, widths_cm, strict=True)):
                cell.width = Cm(w)
                cell.vertical_alignment = (
                    WD_CELL_VERTICAL_ALIGNMENT.CENTER
                    if not is_header
                    else WD_CELL_VERTICAL_ALIGNMENT.BOTTOM
                )
                p = cell.paragraphs[0]
                pf = p.paragraph_format
                pf.space_before = Pt(spacing_pt)
                pf.space_after = Pt(spacing_pt)
                pf.line_spacing = 1.0
                if is_header or (keep_together and i < last):
                    pf.keep_with_next = True
                if is_header:
                    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
                elif j in numeric:
                    p.alignment = WD_ALIGN_PARAGRAPH.RIGHT
                elif j in center:
                    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
                run = p.add_run(value)
                run.font.size = Pt(header_font if is_header and header_font else font)
                if is_header or is_total:
                    run.bold = True
                if is_header:
                    _shade(cell, HEADER_FILL)
                elif is_total:
                    _shade(cell, TOTAL_FILL)
        return t

    def section_title(self, letter: str, empty: str | None = None) -> Paragraph:
        """The title of a section a)–k), as the plan prints it; with `empty`, the plan's
        one line for an empty section (``e) …: nessuna``)."""
        p = self.doc.add_paragraph()
        p.paragraph_format.space_before = Pt(12)
        p.paragraph_format.space_after = Pt(4)
        p.paragraph_format.keep_with_next = empty is None
        p.add_run(f"{letter}) ").bold = True
        title = self.cons.schema.sections[letter]
        if letter == "k":
            title += f" ({self.cons.anno - 1})"
        p.add_run(title + (":" if empty is None else ": ")).bold = True
        if empty is not None:
            r = p.add_run(empty)
            r.bold = True
            r.italic = True
        return p

    def plan_tables(self) -> None:
        c = self.cons
        by_id = c.schema.field_by_id
        for td in table_defs(c.anno, c.schema):
            rows_st = c.table(td.letter)
            if not rows_st:
                self.section_title(td.letter, td.empty)
                continue
            self.section_title(td.letter)
            rows = [_table_row(s, td.fields, td.comune_col) for s in rows_st]
            total = None
            if td.total:
                total = [
                    TOTALE,
                    *(
                        number_text(c.totals.get(fid, 0)) if by_id[fid].kind is Kind.COUNT else ""
                        for fid in td.fields
                    ),
                ]
                if td.comune_col:
                    total.append("")
            widths = _plan_widths(c.schema, td.headers, td.fields, td.comune_col)
            numeric = {i for i, fid in enumerate(td.fields, start=1) if by_id[fid].is_number}
            self.table(td.headers, rows, widths, numeric=numeric, total=total)

    # ------------------------------------------------------------------ year over year

    def comparison(self, number: str) -> None:
        write_comparison(self, number)

    # ------------------------------------------------------------------ annex

    def annex(self) -> None:
        c = self.cons
        sec = self.doc.add_section(WD_SECTION.NEW_PAGE)
        self._page(sec, landscape=True)
        sec.different_first_page_header_footer = False
        self.heading("", f"ALLEGATO - REPORT PROGRAMMAZIONE ANNUALE {c.anno}", 1)
        self.para(
            f"Enti che hanno trasmesso dati validi, in ordine di ricezione della versione "
            f"usata nel Piano; data e ora di ricezione nell'ora italiana. Dati consolidati "
            f"al {self.values['data_dati']}.",
            size=8.5,
            after=4,
        )
        columns = report_columns(c.schema)
        headers = [h for h, _ in columns]
        rows = []
        for s in c.answered:
            used = s.used
            if used is None:  # pragma: no cover - answered means a valid version exists
                continue
            when = used.ricevuto_il
            when = when.astimezone(TZ) if when.tzinfo is not None else when
            row = [s.ente.nome_completo, f"{when:%d-%m-%Y}", f"{when:%H:%M:%S}"]
            for _, fid in columns[3:-2]:
                row.append(_value_text(s.values.get(fid)) if fid else "")
            row += ["Sì" if used.certificato else "No", used.fonte_data]
            rows.append(row)
        if not rows:
            self.para(f"Nessun ente ha ancora trasmesso dati validi: {NESSUNA}.", italic=True)
            return
        widths, head_pt, body_pt = _annex_layout(headers, rows)
        # the values centred under their narrow headers, as in the plan's annex
        center = {j for j, (_, fid) in enumerate(columns) if j in (1, 2) or fid}
        center.add(len(headers) - 2)
        self.table(
            headers,
            rows,
            widths,
            center=center,
            font=body_pt,
            header_font=head_pt,
            margins_cm=_ANNEX_CELL_MARGIN_CM,
            keep_together=False,
            spacing_pt=0.5,
        )

    # ------------------------------------------------------------------ whole document

    def build(self) -> bytes:
        c = self.cons
        self.setup()
        self.title_page()
        self.index_page()
        self.heading("1", "PREMESSA", 1)
        self.block("premessa")
        self.heading("1.1", "PIANO ANNUALE E PIANO TRIENNALE", 2)
        self.block("piano_annuale_triennale")
        self.heading("1.2", f"L'AMBITO TERRITORIALE {c.ambito.upper()}".rstrip(), 2)
        self.block("ambito")
        self.heading("2", "I CONTENUTI DEL PIANO", 1)
        self.block("contenuti")
        self.heading("2.1", "I SERVIZI ABITATIVI", 2)
        self.block("servizi_abitativi")
        self.as_of_paragraph()
        self.plan_tables()
        self.rettifiche_note()
        sub = 2
        if self.confronto is not None:
            self.comparison(f"2.{sub}")
            sub += 1
        self.heading(f"2.{sub}", BLOCK_BY_KEY["misure"].section, 2)
        self.block("misure")
        self.heading("3", "CONCLUSIONI", 1)
        self.block("conclusioni")
        self.annex()
        self.fill_index()
        if self.pages is None or any(h.title not in self.pages for h in self._headings):
            _ask_to_update_fields(self.doc.settings.element)
        if self._defaults:
            files = ", ".join(f"{TESTI_DIR}/{f}" for f in self._defaults)
            self.notes.append(
                f"Testi ancora predefiniti, da adattare all'ambito ({len(self._defaults)}): "
                f"{files}. Nel documento ciascuno porta la nota «{DEFAULT_NOTE}» finché il "
                "file non viene modificato."
            )
        buf = io.BytesIO()
        self.doc.save(buf)
        return _normalise_zip(buf.getvalue(), c.generated_at)

    def rettifiche_note(self) -> None:
        """The capofila's corrections of the values printed (none: nothing is written)."""
        c = self.cons
        by_id = c.schema.field_by_id
        items = [(s, rt) for s in c.enti for rt in s.rettifiche]
        if not items:
            return
        self.para(
            "Nota — rettifiche del Comune capofila: i valori seguenti sono stati corretti "
            "dal Comune capofila rispetto a quanto trasmesso dall'ente, con la motivazione "
            "registrata.",
            italic=True,
            size=9.5,
            before=6,
            after=2,
            keep=True,
        )
        for s, rt in items:
            f = by_id.get(rt.campo)
            label = f"{f.section}) {f.label}" if f is not None and f.section else rt.campo
            text = (
                f"{s.ente.nome_completo}, {label}: "
                f"{_value_text(rt.valore_precedente) or 'vuoto'} → "
                f"{_value_text(rt.valore) or 'vuoto'} (motivo: {rt.motivo}; "
                f"{rt.il.astimezone(TZ):%d/%m/%Y})"
            )
            self.para(text, size=9.5, after=1).style = self.doc.styles["List Bullet"]

    def as_of_paragraph(self) -> None:
        c = self.cons
        n, answered = len(c.enti), len(c.answered)
        text = (
            f"Dati consolidati al {self.values['data_dati']}: per ogni ente è usata la "
            f"versione valida più recente ricevuta. Hanno trasmesso dati validi "
            f"{answered} enti su {n}; gli enti che non compaiono in una tabella non "
            f"hanno unità di quel tipo o non hanno trasmesso i dati (elenco nel Report "
            f"programmazione annuale allegato)."
        )
        self.para(
            text, italic=True, size=9.5, before=4, after=8
        ).alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
