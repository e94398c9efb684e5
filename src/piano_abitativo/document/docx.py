"""The Piano annuale as a Word document (.docx) and, through LibreOffice, as PDF.

The document follows the structure of the published plan of the Ambito Cremasco 2025:
title page, index, premessa and narrative sections, the tables a)–k) in the plan's form
(same columns, only the rows the plan shows, totals, Italian number formats, "nessuna"
where a section is empty), the comparison with the previous year when there is one, and
the annex *Report programmazione annuale* in a landscape section.

* Every number comes from a `Consolidation` (the same one the master workbook shows) and
  the document says as of when (``Dati consolidati al …``).
* The narrative sections come from editable text blocks, one UTF-8 file per block in
  ``<raccolta>/testi/``: written with neutral wording the first time and never overwritten.
  Markup: a blank line starts a new paragraph, a line starting with ``- `` is a bullet,
  lines starting with ``#`` are comments; placeholders such as ``{anno}`` are replaced, an
  unknown one is left as it is and reported in the notes.
* `build_document` is pure (bytes in memory, deterministic for the same data and texts);
  `write_document` writes ``<raccolta>/documento/Piano_annuale_offerta_abitativa_<anno>.docx``
  atomically and converts it to PDF with LibreOffice headless when it is installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import shutil
import signal
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docx
from docx.document import Document as DocxDocument
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_TAB_ALIGNMENT, WD_TAB_LEADER
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Length, Pt, RGBColor
from docx.table import Table
from docx.text.paragraph import Paragraph

from piano_abitativo.archive.store import TZ
from piano_abitativo.consolidation.consolidate import Consolidation, EnteStatus
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.formatting import it_number
from piano_abitativo.core.raccolta import Raccolta, RaccoltaError
from piano_abitativo.core.schema import Kind, Schema
from piano_abitativo.master.sheets import NESSUNA, TOTALE, dati_header, report_columns, table_defs

if TYPE_CHECKING:
    from piano_abitativo.consolidation.confronto import YearOverYear

__all__ = [
    "BLOCKS",
    "DOCUMENT_DIR",
    "DOCUMENT_STEM",
    "ENV_SOFFICE",
    "TESTI_DIR",
    "DocumentLocked",
    "DocumentResult",
    "PdfError",
    "TextBlock",
    "build_document",
    "convert_to_pdf",
    "document_path",
    "fill_placeholders",
    "find_soffice",
    "parse_block",
    "placeholder_values",
    "read_text_blocks",
    "write_document",
    "write_text_blocks",
]

DOCUMENT_DIR = "documento"
TESTI_DIR = "testi"
DOCUMENT_STEM = "Piano_annuale_offerta_abitativa_{anno}"
#: the path of soffice (soffice.exe) when it is not found by itself
ENV_SOFFICE = "PIANO_ABITATIVO_SOFFICE"
#: seconds LibreOffice may take to convert the document (the first start is the slowest)
PDF_TIMEOUT = 240.0

TITLE = "Piano annuale dell'offerta abitativa pubblica e sociale"
LEGAL_REFERENCES = (
    "Predisposto ai sensi della Legge Regionale Lombardia 8 luglio 2016, n. 16 «Disciplina "
    "regionale dei servizi abitativi» e dell'art. 4 del Regolamento Regionale 4 agosto "
    "2017, n. 4 «Disciplina della programmazione dell'offerta abitativa pubblica e sociale "
    "e dell'accesso e della permanenza nei servizi abitativi pubblici», e successive "
    "modifiche e integrazioni."
)


class DocumentLocked(RaccoltaError):
    """The .docx or .pdf cannot be replaced because it is open in Word, LibreOffice or a
    PDF viewer; the old file is left as it was."""


class PdfError(Exception):
    """LibreOffice could not convert the document; the message says why, in Italian."""


@dataclass(frozen=True)
class DocumentResult:
    """What `write_document` wrote, and what the clerk should know (Italian notes)."""

    docx: Path
    pdf: Path | None
    note: tuple[str, ...] = ()
    #: text blocks created now with their neutral wording (first run of the raccolta)
    testi_creati: tuple[Path, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "docx": str(self.docx),
            "pdf": str(self.pdf) if self.pdf else None,
            "note": list(self.note),
        }


def document_path(raccolta_path: Path, anno: int, suffix: str = ".docx") -> Path:
    """Where the document of a raccolta goes: ``<raccolta>/documento/<stem><suffix>``."""
    return Path(raccolta_path) / DOCUMENT_DIR / (DOCUMENT_STEM.format(anno=anno) + suffix)


# --------------------------------------------------------------------------- text blocks


@dataclass(frozen=True)
class TextBlock:
    """One editable narrative block: ``testi/<file>``, the section it fills, its default."""

    key: str
    file: str
    section: str
    default: str


_PLACEHOLDER_HELP = {
    "anno": "anno del Piano, es. 2025",
    "anno_precedente": "anno precedente, es. 2024",
    "ambito": "nome dell'ambito territoriale",
    "capofila": "ente capofila, es. Comune di Crema",
    "data_dati": "data e ora dei dati consolidati, es. 20/12/2024 09:30",
    "scadenza": "termine per la risposta degli enti (GG/MM/AAAA)",
    "n_comuni": "numero dei Comuni dell'ambito",
    "n_enti": "numero degli enti dell'elenco (Comuni e ALER)",
    "enti_risposto": "numero degli enti che hanno trasmesso dati validi",
    "aler": "denominazione dell'ALER territorialmente competente",
}

BLOCKS: tuple[TextBlock, ...] = (
    TextBlock(
        "premessa",
        "01_premessa.txt",
        "1. PREMESSA",
        """\
Con la Legge Regionale 8 luglio 2016, n. 16 «Disciplina regionale dei servizi abitativi» \
e il Regolamento Regionale 4 agosto 2017, n. 4 «Disciplina della programmazione \
dell'offerta abitativa pubblica e sociale e dell'accesso e della permanenza nei servizi \
abitativi pubblici», e successive modifiche e integrazioni, Regione Lombardia ha integrato \
le politiche abitative con le politiche sociali, al fine di soddisfare il fabbisogno \
abitativo primario e di ridurre il disagio abitativo dei nuclei familiari e di particolari \
categorie sociali in condizioni di svantaggio.

Si passa così dall'«edilizia residenziale pubblica» al «servizio abitativo»: l'offerta \
abitativa pubblica e sociale è programmata in modo coordinato e integrato con la rete dei \
servizi alla persona, su scala sovracomunale (l'ambito territoriale del Piano di Zona), \
con un ruolo significativo dei Comuni e degli enti proprietari.
""",
    ),
    TextBlock(
        "piano_annuale_triennale",
        "02_piano_annuale_e_triennale.txt",
        "1.1 - PIANO ANNUALE E PIANO TRIENNALE",
        """\
La norma regionale prevede due strumenti per la programmazione dell'offerta abitativa: il \
Piano triennale e il Piano annuale.

Il Piano triennale integra le politiche abitative con quelle territoriali, sociali, \
dell'istruzione e del lavoro attraverso:

- le strategie e gli obiettivi di sviluppo dell'offerta abitativa;
- le linee d'azione per il contrasto del disagio abitativo e dell'emergenza abitativa;
- le linee d'azione per l'accesso e il mantenimento dell'abitazione principale.

Il Piano annuale aggiorna il Piano triennale per l'anno di riferimento: in particolare \
effettua la ricognizione delle unità abitative destinate ai servizi abitativi pubblici e \
sociali che si prevede di assegnare nel corso dell'anno {anno}.

Entrambi i Piani sono predisposti dall'ente capofila, {capofila}, e approvati \
dall'Assemblea dei sindaci dell'Ambito territoriale {ambito}.
""",
    ),
    TextBlock(
        "ambito",
        "03_ambito_territoriale.txt",
        "1.2 - L'AMBITO TERRITORIALE",
        """\
# Descrivere qui l'ambito: Piano di Zona in vigore, tavoli e coordinamenti sulle
# politiche abitative, iniziative in corso e previste per l'anno.
L'Ambito territoriale {ambito} comprende {n_comuni} Comuni. La programmazione \
dell'offerta abitativa è coordinata con il Piano di Zona e con la rete dei servizi \
sociali dell'ambito, con l'obiettivo di un sistema territoriale dei servizi abitativi \
coordinato, efficiente ed efficace.

L'ente capofila, {capofila}, cura la ricognizione annuale presso i Comuni dell'ambito e \
l'ALER territorialmente competente e predispone il Piano annuale.
""",
    ),
    TextBlock(
        "contenuti",
        "04_contenuti_del_piano.txt",
        "2. I CONTENUTI DEL PIANO",
        """\
All'ente capofila per la programmazione dell'offerta dei servizi abitativi dell'Ambito \
territoriale {ambito}, {capofila}, è affidata la redazione del Piano annuale dell'offerta \
abitativa per l'anno {anno}, attraverso la ricognizione, presso i Comuni dell'ambito e \
l'ALER territorialmente competente, delle unità abitative destinate ai servizi abitativi \
pubblici che si prevede di assegnare entro il 31 dicembre {anno}, e lo svolgimento delle \
altre attività previste dal piano (art. 4 R.R. 4/2017 e s.m.i.).
""",
    ),
    TextBlock(
        "servizi_abitativi",
        "05_servizi_abitativi.txt",
        "2.1 - I SERVIZI ABITATIVI",
        """\
La ricognizione ha riguardato complessivamente {n_comuni} Comuni e {aler}, ALER \
territorialmente competente, che partecipa come ente proprietario di patrimonio abitativo \
pubblico.

I dati trasmessi dagli enti, ai fini della redazione del Piano annuale, sono illustrati \
di seguito.
""",
    ),
    TextBlock(
        "misure",
        "06_misure_accesso_abitazione.txt",
        "MISURE PER SOSTENERE L'ACCESSO E IL MANTENIMENTO DELL'ABITAZIONE",
        """\
# Indicare le misure effettivamente attive nell'ambito per l'anno, con le risorse e i
# tempi (art. 4 R.R. 4/2017: misure per sostenere l'accesso e il mantenimento
# dell'abitazione).
Oltre all'offerta di servizi abitativi pubblici e sociali, nell'anno {anno} l'Ambito \
territoriale {ambito} sostiene l'accesso e il mantenimento dell'abitazione principale con \
le misure previste dal Piano triennale e finanziate dalle risorse regionali e locali \
disponibili, quali:

- contributi per il sostegno al pagamento del canone di locazione sul mercato privato;
- interventi per la prevenzione degli sfratti e il contrasto della morosità incolpevole;
- servizi di informazione, accompagnamento e mediazione abitativa.
""",
    ),
    TextBlock(
        "conclusioni",
        "07_conclusioni.txt",
        "3. CONCLUSIONI",
        """\
Il presente Piano annuale è predisposto da {capofila}, ente capofila, sulla base dei dati \
trasmessi dai Comuni e dall'ALER e consolidati al {data_dati}, ed è sottoposto \
all'approvazione dell'Assemblea dei sindaci dell'Ambito territoriale {ambito}.

Dopo l'approvazione il Piano è pubblicato e trasmesso a Regione Lombardia secondo le \
modalità previste dalla normativa regionale.
""",
    ),
)
BLOCK_BY_KEY: dict[str, TextBlock] = {b.key: b for b in BLOCKS}


def _block_file_text(block: TextBlock) -> str:
    names = "\n".join(f"#   {{{k}}}  {v}" for k, v in _PLACEHOLDER_HELP.items())
    return (
        f"# Testo della sezione «{block.section}» del Piano annuale (comando «documento»).\n"
        "# Si può modificare liberamente: il programma non lo sovrascrive mai. Cancellando\n"
        "# il file, al prossimo documento si torna al testo predefinito.\n"
        "# Una riga vuota separa i paragrafi; una riga che inizia con «- » è una voce di\n"
        "# elenco puntato; le righe che iniziano con # sono commenti (non vanno nel\n"
        "# documento). Segnaposto sostituiti con i dati della raccolta:\n"
        f"{names}\n\n{block.default}"
    )


def write_text_blocks(raccolta_path: Path) -> list[Path]:
    """Write the text blocks that do not exist yet in ``<raccolta>/testi/`` (never
    overwrites an existing one); the paths written."""
    written = []
    for block in BLOCKS:
        path = Path(raccolta_path) / TESTI_DIR / block.file
        if path.exists():
            continue
        atomic_write_bytes(path, _block_file_text(block).encode("utf-8"))
        written.append(path)
    return written


def read_text_blocks(raccolta_path: Path, notes: list[str] | None = None) -> dict[str, str]:
    """The text of each block (key → text) from ``<raccolta>/testi/``; a missing file gives
    the default, a file that is not UTF-8 is read as Windows-1252 (with a note)."""
    out: dict[str, str] = {}
    for block in BLOCKS:
        path = Path(raccolta_path) / TESTI_DIR / block.file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            out[block.key] = block.default
            continue
        except OSError as exc:
            if notes is not None:
                notes.append(
                    f"{TESTI_DIR}/{block.file}: impossibile leggerlo "
                    f"({exc.strerror or exc}); usato il testo predefinito."
                )
            out[block.key] = block.default
            continue
        try:
            out[block.key] = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            out[block.key] = data.decode("cp1252", "replace")
            if notes is not None:
                notes.append(
                    f"{TESTI_DIR}/{block.file}: il file non è in UTF-8, letto come "
                    "Windows-1252. Salvarlo in UTF-8 per essere certi delle lettere "
                    "accentate."
                )
    return out


@dataclass(frozen=True)
class TextParagraph:
    """A paragraph of a text block: plain or a bullet item."""

    text: str
    bullet: bool = False


_BULLET = re.compile(r"^\s*[-•*]\s+")


def parse_block(text: str) -> list[TextParagraph]:
    """Paragraphs of a block: blank line = new paragraph, ``- `` = bullet item (lines
    below it continue the item), ``#`` at the start of a line = comment."""
    paras: list[TextParagraph] = []
    words: list[str] = []
    bullet = False

    def flush() -> None:
        nonlocal words, bullet
        if words:
            paras.append(TextParagraph(" ".join(words), bullet))
        words, bullet = [], False

    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw.lstrip().startswith("#"):
            continue
        line = raw.strip()
        if not line:
            flush()
            continue
        m = _BULLET.match(raw)
        if m:
            flush()
            bullet = True
            line = raw[m.end() :].strip()
        words.append(line)
    flush()
    return paras


_TOKEN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_placeholders(text: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace each known ``{name}``; unknown ones stay as written. (text, unknown names)."""
    unknown: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values:
            return values[name]
        if name not in unknown:
            unknown.append(name)
        return m.group(0)

    return _TOKEN.sub(sub, text), unknown


def _as_of(cons: Consolidation) -> dt.datetime:
    t = cons.generated_at
    return t.astimezone(TZ) if t.tzinfo is not None else t


def placeholder_values(r: Raccolta, cons: Consolidation) -> dict[str, str]:
    """The values of the placeholders of the text blocks."""
    enti = [s.ente for s in cons.enti]
    aler = [e.denominazione for e in enti if not e.is_comune]
    return {
        "anno": str(cons.anno),
        "anno_precedente": str(cons.anno - 1),
        "ambito": cons.ambito,
        "capofila": cons.capofila or "l'ente capofila",
        "data_dati": f"{_as_of(cons):%d/%m/%Y %H:%M}",
        "scadenza": f"{cons.scadenza:%d/%m/%Y}" if cons.scadenza else "",
        "n_comuni": str(sum(1 for e in enti if e.is_comune)),
        "n_enti": str(len(enti)),
        "enti_risposto": str(len(cons.answered)),
        "aler": " e ".join(aler) or "l'ALER territorialmente competente",
    }


# --------------------------------------------------------------------------- page geometry

A4_SHORT, A4_LONG = Cm(21.0), Cm(29.7)
MARGIN = Cm(2.0)
ANNEX_MARGIN = Cm(1.2)
TEXT_WIDTH_CM = 21.0 - 2 * 2.0
ANNEX_WIDTH_CM = 29.7 - 2 * 1.2

FONT = "Arial"  # LibreOffice draws it with the metric-compatible Liberation Sans
BLUE = RGBColor(0x1F, 0x38, 0x64)
HEADER_FILL = "D9E2F3"
TOTAL_FILL = "EDF1F9"


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


def _cell_margins(table: Table, left_right_cm: float) -> None:
    tblpr = table._tbl.tblPr
    mar = OxmlElement("w:tblCellMar")
    for side in ("left", "right"):
        el = OxmlElement(f"w:{side}")
        el.set(qn("w:w"), str(round(left_right_cm * 567)))
        el.set(qn("w:type"), "dxa")
        mar.append(el)
    _insert_before(tblpr, mar, ("w:tblLook", "w:tblCaption", "w:tblDescription", "w:tblPrChange"))


# --------------------------------------------------------------------------- document


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
    confronto: YearOverYear | None
    doc: DocxDocument = field(init=False)
    notes: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    _bookmarks: int = 0
    _headings: list[_Heading] = field(default_factory=list)
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
        upd = OxmlElement("w:updateFields")
        upd.set(qn("w:val"), "true")
        successors = ("w:hdrShapeDefaults", "w:footnotePr", "w:endnotePr", "w:compat")
        nxt = next((el for t in successors if (el := settings.find(qn(t))) is not None), None)
        if nxt is not None:
            nxt.addprevious(upd)
        else:  # pragma: no cover - the default template has w:compat
            settings.append(upd)
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
            f"Generato da piano-abitativo con i dati consolidati al {self.values['data_dati']}."
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
        """The paragraphs of text block `key`, placeholders filled."""
        text, unknown = fill_placeholders(
            self.texts.get(key, BLOCK_BY_KEY[key].default), self.values
        )
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
        self.page_break()

    def index_page(self) -> None:
        self.para("Sommario", bold=True, size=14, color=BLUE, after=12)
        self._index_at = len(self.doc.paragraphs)
        self.page_break()

    def page_break(self) -> None:
        self.doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)

    def fill_index(self) -> None:
        """The index entries, with a PAGEREF field to each heading's bookmark: LibreOffice
        computes the page numbers when it makes the PDF, Word when it updates the fields
        (it asks when opening the document)."""
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
            _field(p, f"PAGEREF {h.bookmark} \\h", "", bold=h.level == 1)

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
        for i, (row, values) in enumerate(zip(t.rows, body, strict=True)):
            is_header = i == 0
            is_total = total is not None and i == last
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
                        it_number(c.totals.get(fid, 0)) if by_id[fid].kind is Kind.COUNT else ""
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
        yoy = self.confronto
        if yoy is None:  # pragma: no cover - called only with a comparison
            return
        prev, cur = yoy.anno_precedente, self.cons.anno
        self.heading(number, f"CONFRONTO CON IL PIANO {prev}", 2)
        where = (
            f" (raccolta nella cartella «{yoy.raccolta_precedente.name}»)"
            if yoy.raccolta_precedente.name
            else ""
        )
        self.para(
            f"Variazioni rispetto ai dati del Piano {prev}{where}. Una variazione "
            f"positiva è un aumento nel {cur}.",
            after=6,
        ).alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
        rows = []
        for fid, (before, after) in yoy.totals.items():
            f = self.cons.schema.field_by_id.get(fid)
            if f is None:
                continue
            rows.append(
                [dati_header(f), it_number(before), it_number(after), _signed(after - before)]
            )
        if rows:
            self.para("Totali dell'ambito", bold=True, keep=True, before=6, after=4)
            self.table(
                ("Voce", str(prev), str(cur), "Variazione"),
                rows,
                (8.5, 2.5, 2.5, 3.0),
                numeric={1, 2, 3},
            )
        only_now = [
            e.ente.nome_completo for e in yoy.enti if e.answered_current and not e.answered_previous
        ]
        only_before = [
            e.ente.nome_completo for e in yoy.enti if e.answered_previous and not e.answered_current
        ]
        gone = [e.ente.nome_completo for e in yoy.solo_precedente]
        changes: list[list[str]] = []
        for e in yoy.enti:
            if not (e.answered_current and e.answered_previous):
                continue
            first = True
            for fc in e.fields:
                f = self.cons.schema.field_by_id.get(fc.field_id)
                if f is None or fc.previous == fc.current or f.kind is Kind.TEXT:
                    continue
                delta = fc.delta
                changes.append(
                    [
                        e.ente.nome_completo if first else "",
                        dati_header(f),
                        _value_text(fc.previous),
                        _value_text(fc.current),
                        _signed(delta) if delta is not None else "",
                    ]
                )
                first = False
        self.para("Variazioni per ente", bold=True, keep=True, before=10, after=4)
        if changes:
            self.table(
                ("Ente", "Voce", str(prev), str(cur), "Variazione"),
                changes,
                (5.4, 5.6, 2.0, 2.0, 2.0),
                numeric={2, 3, 4},
                font=9,
            )
        else:
            self.para(
                "Nessuna variazione dei dati degli enti che hanno risposto in entrambi gli anni.",
                italic=True,
            )
        if only_now:
            self.para(
                f"Hanno trasmesso i dati nel {cur} ma non nel {prev}: " + ", ".join(only_now) + ".",
                before=6,
            )
        if only_before:
            self.para(
                f"Hanno trasmesso i dati nel {prev} ma non (ancora) nel {cur}: "
                + ", ".join(only_before)
                + ".",
                before=6,
            )
        if gone:
            self.para(
                f"Enti del Piano {prev} che non sono più nell'elenco degli enti del "
                f"{cur} (i loro dati sono compresi nei totali del {prev}): "
                + ", ".join(gone)
                + ".",
                before=6,
            )

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
        buf = io.BytesIO()
        self.doc.save(buf)
        return _normalise_zip(buf.getvalue(), c.generated_at)

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


def _table_row(s: EnteStatus, fields: Sequence[str], comune_col: bool) -> list[str]:
    row = [s.ente.nome_completo]
    row += [_value_text(s.values.get(fid)) for fid in fields]
    if comune_col:
        row.append(s.ente.denominazione if s.ente.is_comune else "")
    return row


def _value_text(v: Any) -> str:
    """A value as the plan prints it: 1.008, 12,5, NO, empty for none."""
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return "SI" if v else "NO"
    if isinstance(v, int | float):
        return it_number(v)
    return str(v)


def _signed(n: float) -> str:
    if n > 0:
        return "+" + it_number(n)
    if n < 0:
        return "−" + it_number(-n)
    return "0"


def _plan_widths(
    schema: Schema, headers: Sequence[str], fields: Sequence[str], comune_col: bool
) -> list[float]:
    """Column widths (cm) of a table a)–k) on the portrait page, from its columns: the
    name, 3.2 cm per number (less when they would not fit), the text columns share the
    rest."""
    name, comune = 7.2, (4.6 if comune_col else 0.0)
    numbers = [schema.field_by_id[fid].is_number for fid in fields]
    n_num, n_text = sum(numbers), len(numbers) - sum(numbers)
    room = TEXT_WIDTH_CM - name - comune
    num = min(3.2, room / n_num) if n_num and not n_text else 3.2
    text = (room - n_num * num) / n_text if n_text else 0.0
    widths = [name, *(num if is_num else text for is_num in numbers)]
    if comune_col:
        widths.append(comune)
    if len(headers) == 2 and numbers[0]:
        widths[1] = 4.4 if len(headers[1]) > 24 else 3.4
    return widths


#: advance widths of Arial (= Liberation Sans) in thousandths of the font size, by glyph
_WIDTHS: dict[bool, dict[str, int]] = {
    bold: {ch: w for w, chars in table.items() for ch in chars}
    for bold, table in (
        (
            False,
            {
                190: "'",
                222: "ijl’",
                277: " !,./:;Iftì",
                333: "()-r",
                354: '"',
                500: "Jcksvxyz",
                556: "0123456789?Labdeghnopquàèéòù«»–",
                583: "+",
                610: "FTZ",
                666: "ABEKPSVXY",
                722: "CDHNRUw",
                777: "GOQ",
                833: "Mm",
                889: "%",
                943: "W",
                1000: "—…",
            },
        ),
        (
            True,
            {
                237: "'",
                277: " ,./Iijlì’",
                333: "!()-:;ft",
                389: "r",
                474: '"',
                500: "z",
                556: "0123456789Jaceksvxyàèé«»–",
                583: "+",
                610: "?FLTZbdghnopquòù",
                666: "EPSVXY",
                722: "ABCDHKNRU",
                777: "GOQw",
                833: "M",
                889: "%m",
                943: "W",
                1000: "—…",
            },
        ),
    )
}


def text_width_cm(text: str, size_pt: float, *, bold: bool = False) -> float:
    """Printed width of `text` in Arial at `size_pt` points, in cm."""
    table = _WIDTHS[bold]
    return sum(table.get(ch, 667) for ch in text) / 1000 * size_pt * 2.54 / 72


#: the annex's (header, body) font sizes, largest first: the first that fits the page wins
_ANNEX_FONTS = ((6.5, 7.0), (6.0, 6.5), (5.5, 6.0), (5.0, 5.5))
_ANNEX_CELL_MARGIN_CM = 0.06
#: room a cell needs besides its text (margins both sides and Word's rounding)
_CELL_SLACK_CM = 2 * _ANNEX_CELL_MARGIN_CM + 0.1
_OWNER_MIN_CM = 3.6
_WRAP_MAX_CM = 3.2  # long texts (the owner, the source of the time) wrap beyond this


def _annex_layout(
    headers: Sequence[str], rows: Sequence[Sequence[str]]
) -> tuple[list[float], float, float]:
    """Column widths (cm) and (header, body) font sizes of the annex: every header word
    and every value on one line, the owner's name and the source of the time wrapping when
    they must; the owner column takes what is left of the landscape page."""
    widths: list[float] = []
    for head_pt, body_pt in _ANNEX_FONTS:
        widths = []
        for j, h in enumerate(headers):
            word = max(text_width_cm(w, head_pt, bold=True) for w in h.split())
            value = max((text_width_cm(r[j], body_pt) for r in rows), default=0.0)
            if j == 0 or j == len(headers) - 1:
                value = min(value, _WRAP_MAX_CM)
            widths.append(max(word, value, 0.6) + _CELL_SLACK_CM)
        owner_room = ANNEX_WIDTH_CM - sum(widths[1:])
        if owner_room >= min(widths[0], _OWNER_MIN_CM):
            widths[0] = min(max(widths[0], _OWNER_MIN_CM), owner_room)
            spare = ANNEX_WIDTH_CM - sum(widths)
            widths[0] += spare  # the owner's name wraps less
            return [round(w, 2) for w in widths], head_pt, body_pt
    # even the smallest font does not fit: scale the columns (words may break)
    scale = ANNEX_WIDTH_CM / sum(widths)
    head_pt, body_pt = _ANNEX_FONTS[-1]
    return [round(w * scale, 2) for w in widths], head_pt, body_pt


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


def build_document(
    r: Raccolta,
    cons: Consolidation,
    *,
    texts: Mapping[str, str] | None = None,
    confronto: YearOverYear | None = None,
    notes: list[str] | None = None,
) -> bytes:
    """The .docx of the Piano annuale as bytes (pure, deterministic). `texts` maps a block
    key to its text (missing keys: the default wording); problems with the texts, such as
    unknown placeholders, are appended to `notes`."""
    b = _Builder(r, cons, texts or {}, confronto)
    data = b.build()
    if notes is not None:
        notes.extend(b.notes)
    return data


# --------------------------------------------------------------------------- LibreOffice


def _soffice_candidates() -> list[Path]:
    cands = [
        Path("/usr/bin/soffice"),
        Path("/usr/lib/libreoffice/program/soffice"),
        Path("/usr/local/bin/soffice"),
        Path("/snap/bin/libreoffice"),
        Path("/Applications/LibreOffice.app/Contents/MacOS/soffice"),
    ]
    cands += sorted(Path("/opt").glob("libreoffice*/program/soffice"), reverse=True)
    for env in ("ProgramFiles", "ProgramFiles(x86)", "ProgramW6432"):
        base = os.environ.get(env)
        if base:
            cands.append(Path(base) / "LibreOffice" / "program" / "soffice.exe")
    cands += [
        Path(r"C:\Program Files\LibreOffice\program\soffice.exe"),
        Path(r"C:\Program Files (x86)\LibreOffice\program\soffice.exe"),
    ]
    return cands


def _windows_console(path: Path) -> Path:
    """On Windows soffice.com waits for the conversion to end (soffice.exe may not)."""
    com = path.with_suffix(".com")
    return com if path.suffix.lower() == ".exe" and com.is_file() else path


def find_soffice() -> Path | None:
    """LibreOffice's soffice: ``$PIANO_ABITATIVO_SOFFICE`` if set (the program, or the
    folder that holds it; returned even when wrong, so that the note names it), else the
    PATH, else the usual install folders."""
    env = os.environ.get(ENV_SOFFICE, "").strip().strip('"')
    if env:
        given = Path(env)
        if given.is_dir():
            for name in ("soffice.exe", "soffice"):
                if (given / name).is_file():
                    return _windows_console(given / name)
        return _windows_console(given)
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return _windows_console(Path(found))
    for cand in _soffice_candidates():
        if cand.is_file() and os.access(cand, os.X_OK):
            return _windows_console(cand)
    return None


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    if os.name == "nt":  # pragma: no cover - Windows only
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(proc.pid)],
            capture_output=True,
            check=False,
            timeout=30,
        )
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.kill()
        proc.wait(timeout=10)


def convert_to_pdf(
    source: Path, target: Path, *, soffice: Path, timeout: float = PDF_TIMEOUT
) -> Path:
    """Convert the .docx `source` to the PDF `target` (written atomically) with LibreOffice
    headless and a private temporary profile, so that a LibreOffice already open on the PC
    is neither used nor disturbed. Raises `PdfError` with an Italian message."""
    if not soffice.is_file():
        raise PdfError(
            f"LibreOffice non trovato in {soffice} (variabile {ENV_SOFFICE}): "
            "scritto solo il .docx. Correggere il percorso di soffice."
        )
    with tempfile.TemporaryDirectory(prefix="piano-abitativo-pdf-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "documento.docx"
        shutil.copyfile(source, src)
        outdir = tmp / "pdf"
        profile = tmp / "profilo"
        cmd = [
            str(soffice),
            "--headless",
            "--invisible",
            "--nologo",
            "--norestore",
            "--nodefault",
            "--nolockcheck",
            "--nofirststartwizard",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            "pdf:writer_pdf_Export",
            "--outdir",
            str(outdir),
            str(src),
        ]
        env = dict(os.environ, TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp))
        kw: dict[str, Any] = {}
        if os.name == "nt":  # pragma: no cover - Windows only
            kw["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kw["start_new_session"] = True
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=tmp,
                **kw,
            )
        except OSError as exc:
            raise PdfError(
                f"Impossibile avviare LibreOffice ({soffice}): "
                f"{exc.strerror or exc}. Scritto solo il .docx."
            ) from exc
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(proc)
            raise PdfError(
                f"LibreOffice non ha finito la conversione in PDF entro "
                f"{timeout:.0f} secondi ed è stato fermato: scritto solo il .docx. "
                "Riprovare, oppure aprire il .docx e salvarlo in PDF."
            ) from None
        if os.name != "nt":  # soffice.bin may outlive its launcher: the group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        produced = outdir / "documento.pdf"
        if not produced.is_file() or produced.stat().st_size == 0:
            detail = (err or out or b"").decode("utf-8", "replace").strip().splitlines()
            last = next((ln for ln in reversed(detail) if "javaldx" not in ln), "")
            raise PdfError(
                f"LibreOffice non ha prodotto il PDF (codice di uscita "
                f"{proc.returncode}{': ' + last[:200] if last else ''}): scritto "
                "solo il .docx. Aprire il .docx e salvarlo in PDF."
            )
        data = produced.read_bytes()
    _write(target, data)
    return target


# --------------------------------------------------------------------------- writing


def _open_by(path: Path) -> str | None:
    """The program whose lock file says `path` is open, or None."""
    for lock, program in (
        (path.with_name("~$" + path.name), "Word"),
        (path.with_name("~$" + path.name[2:]), "Word"),
        (path.with_name(f".~lock.{path.name}#"), "LibreOffice"),
    ):
        if lock.exists():
            return f"{program} (file di blocco «{lock.name}»)"
    return None


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except PermissionError as exc:
        raise DocumentLocked(
            f"Impossibile sostituire {path.name}: probabilmente è aperto in Word, in "
            "LibreOffice o in un lettore PDF (anche da un altro PC). Chiuderlo e ripetere; "
            "il file precedente non è stato modificato."
        ) from exc
    except OSError as exc:
        raise RaccoltaError(
            f"Impossibile scrivere {path}: {exc.strerror or exc}. Il file "
            "precedente non è stato modificato."
        ) from exc


def write_document(
    r: Raccolta,
    cons: Consolidation,
    *,
    confronto: YearOverYear | None = None,
    pdf: bool = True,
    progress: Callable[[str], None] | None = None,
    timeout: float = PDF_TIMEOUT,
) -> DocumentResult:
    """Write the Piano annuale into ``<raccolta>/documento/``: the .docx always, the .pdf
    through LibreOffice when `pdf` and LibreOffice is found. Creates the missing text
    blocks in ``<raccolta>/testi/`` first (never overwrites them). Refuses with
    `DocumentLocked` when the .docx is open; every other PDF problem is a note."""

    def say(text: str) -> None:
        if progress is not None:
            progress(text)

    target = document_path(r.path, cons.anno)
    target_pdf = target.with_suffix(".pdf")
    notes: list[str] = []
    owner = _open_by(target)
    if owner is not None:
        raise DocumentLocked(
            f"Il file {target.name} è aperto in {owner}: chiuderlo e ripetere. Se nessuno lo "
            f"ha aperto (ad esempio dopo un arresto del programma), eliminare il file di "
            f"blocco nella cartella {target.parent}."
        )
    created = write_text_blocks(r.path)
    if created:
        notes.append(
            f"Creati i testi modificabili del documento nella cartella "
            f"{r.path / TESTI_DIR} ({len(created)} file): modificarli e rigenerare "
            "il documento; non vengono mai sovrascritti."
        )
    texts = read_text_blocks(r.path, notes)
    say("Scrittura del documento…")
    data = build_document(r, cons, texts=texts, confronto=confronto, notes=notes)
    _write(target, data)
    errors = cons.count("da correggere")
    if errors:
        notes.append(
            f"{errors} enti hanno l'ultima versione da correggere: nel documento ci "
            "sono i dati della loro ultima versione valida."
        )
    if cons.non_attribuiti:
        notes.append(
            f"{len(cons.non_attribuiti)} file ricevuti non sono attribuiti a un ente "
            "dell'elenco e non sono nel documento (vedere il Cruscotto)."
        )
    pdf_path: Path | None = None
    stale = target_pdf.exists()
    if pdf:
        soffice = find_soffice()
        if soffice is None:
            notes.append(
                f"LibreOffice non trovato: scritto solo il .docx. Per il PDF "
                f"installare LibreOffice, oppure indicare il percorso di soffice "
                f"nella variabile d'ambiente {ENV_SOFFICE}, oppure aprire il .docx "
                "e salvarlo in PDF."
            )
        else:
            say("Conversione in PDF con LibreOffice…")
            try:
                pdf_path = convert_to_pdf(target, target_pdf, soffice=soffice, timeout=timeout)
            except PdfError as exc:
                notes.append(str(exc))
            except DocumentLocked as exc:
                notes.append(str(exc))
    if pdf_path is None and stale:
        notes.append(
            f"Il PDF {target_pdf.name} già presente nella cartella è di una versione "
            "precedente del documento e non è stato aggiornato."
        )
    return DocumentResult(target, pdf_path, tuple(notes), tuple(created))
