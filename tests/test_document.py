"""The document of the Piano annuale: the Cremasco 2025 returns imported the real way, the
.docx read back with python-docx (every printed number of the 2025 plan in its table, the
annex, the "as of" date, the comparison with a linked 2024 raccolta), the editable text
blocks, the CLI and the Excel button, and one LibreOffice conversion to PDF read back with
poppler (numbers, accents, index pages, nothing outside the page)."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docx
import pytest
from docx.document import Document as DocxDocument
from docx.enum.section import WD_ORIENT
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from piano_abitativo.app import commands as actions
from piano_abitativo.app.commands import crea
from piano_abitativo.archive import store as archive
from piano_abitativo.cli import commands as cli
from piano_abitativo.consolidation import consolidate
from piano_abitativo.consolidation.changes import Confronto
from piano_abitativo.consolidation.confronto import confronta
from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta
from piano_abitativo.core.registry import normalise_name
from piano_abitativo.document.docx import (
    BLOCKS,
    ENV_SOFFICE,
    TESTI_DIR,
    DocumentResult,
    build_document,
    document_path,
    write_document,
)
from piano_abitativo.document.pdf import outline_pages
from piano_abitativo.document.texts import fill_placeholders, with_da
from piano_abitativo.excel import buttons as excel
from piano_abitativo.mail.folder import import_files
from piano_abitativo.master.sheets import REPORT_COLUMNS, build_master
from piano_abitativo.simulation import demo

from .lo_runner import require_libreoffice
from .xlwings_payload import _remote_engine, alerts, click, payload_of  # noqa: F401

GENERATED_AT = dt.datetime(2024, 12, 20, 9, 30, tzinfo=archive.TZ)
#: the data are as of the last return used (Cremosano, 18/12/2024 16:47), not of the run
AS_OF = "Dati consolidati al 18/12/2024 16:47"
PRODUCED = "Documento prodotto il 20/12/2024 09:30"
ALER = "ALER Brescia-Cremona-Mantova"

#: the tables of the published 2025 plan, row by row as printed (names compared after
#: normalisation: the plan spells "Rivolta D'Adda" and "Casale Cremasco Vidolasco" too)
PLAN: dict[str, list[tuple[str, ...]]] = {
    "a": [
        (ALER, "1.008", "997", "11"),
        ("Comune di Bagnolo Cremasco", "17", "17", "0"),
        ("Comune di Casale Cremasco-Vidolasco", "8", "8", "0"),
        ("Comune di Casaletto Ceredano", "7", "7", "0"),
        ("Comune di Casaletto di Sopra", "2", "2", "0"),
        ("Comune di Castelleone", "42", "42", "0"),
        ("Comune di Crema", "358", "358", "0"),
        ("Comune di Cremosano", "6", "6", "0"),
        ("Comune di Gombito", "10", "10", "0"),
        ("Comune di Izano", "6", "6", "0"),
        ("Comune di Montodine", "2", "2", "0"),
        ("Comune di Offanengo", "2", "2", "0"),
        ("Comune di Pandino", "15", "15", "0"),
        ("Comune di Pianengo", "15", "15", "0"),
        ("Comune di Rivolta d'Adda", "43", "43", "0"),
        ("Comune di Romanengo", "22", "22", "0"),
        ("Comune di Sergnano", "6", "0", "6"),
        ("Comune di Soncino", "58", "58", "0"),
        ("Comune di Spino d'Adda", "15", "15", "0"),
        ("Comune di Torlino Vimercati", "3", "3", "0"),
        ("Comune di Trescore Cremasco", "21", "21", "0"),
        ("Comune di Trigolo", "5", "5", "0"),
        ("Comune di Vaiano Cremasco", "9", "9", "0"),
        ("Comune di Vailate", "17", "17", "0"),
        ("Totale", "1.697", "1.680", "17"),
    ],
    "b": [
        (ALER, "4", ""),
        ("Comune di Crema", "7", "Crema"),
        ("Comune di Rivolta D'Adda", "8", "Rivolta D'Adda"),
        ("Comune di Trescore Cremasco", "3", "Trescore Cremasco"),
        ("Totale", "22", ""),
    ],
    "c": [
        ("Comune di Crema", "2", "Crema"),
        ("Comune di Trescore Cremasco", "3", "Trescore Cremasco"),
        ("Totale", "5", ""),
    ],
    "d": [
        (ALER, "1", ""),
        ("Comune di Castelleone", "1", "Castelleone"),
        ("Comune di Crema", "1", "Crema"),
        ("Totale", "3", ""),
    ],
    "f": [
        (ALER, "5", ""),
        ("Comune di Castelleone", "1", "Castelleone"),
        ("Comune di Crema", "10", "Crema"),
        ("Comune di Rivolta D'Adda", "8", "Rivolta D'Adda"),
        ("Comune di Trescore Cremasco", "6", "Trescore Cremasco"),
        ("Totale", "30", ""),
    ],
    "i": [("Comune di Castelleone", "10")],
    "j": [
        (ALER, "1"),
        ("Comune di Bagnolo Cremasco", "1"),
        ("Comune di Casale Cremasco Vidolasco", "1"),
        ("Comune di Casaletto Ceredano", "1"),
        ("Comune di Pandino", "1"),
        ("Comune di Rivolta D'Adda", "1"),
        ("Comune di Trescore Cremasco", "1"),
        ("Comune di Vailate", "1"),
        ("Totale", "8"),
    ],
    "k": [
        (ALER, "33"),
        ("Comune di Bagnolo Cremasco", "2"),
        ("Comune di Casale Cremasco Vidolasco", "1"),
        ("Comune di Castelleone", "3"),
        ("Comune di Crema", "15"),
        ("Comune di Pandino", "2"),
        ("Comune di Pianengo", "1"),
        ("Comune di Rivolta D'Adda", "2"),
        ("Totale", "59"),
    ],
}
#: the sections the plan prints as one line
PLAN_EMPTY = {"e": "nessuna", "g": "nessun Comune", "h": "nessun Comune"}
HEADERS = {
    "a": [
        "Ragione Sociale Ente Proprietario",
        "Totale unità immobiliari",
        "N. alloggi SAP",
        "N. alloggi SAS",
    ],
    "b": ["Ragione Sociale Ente Proprietario", "Numero unità immobiliari", "Comune"],
    "i": ["Comune", "Percentuale (%)"],
    "j": ["Comune", "Numero unità immobiliari"],
    "k": ["Ragione Sociale Ente Proprietario", "Totale alloggi assegnati nell'anno 2024"],
}


@dataclass
class World:
    r: raccolta.Raccolta
    cons: Consolidation
    confronto: Confronto
    result: DocumentResult
    doc: DocxDocument


def _codice(nome: str) -> str:
    return next(x.codice for x in demo.cremasco_2025_returns() if x.nome == nome)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The Cremasco 2025 raccolta with the 26 returns of the plan, linked to a 2024 raccolta
    where Crema had 5 units in b) (7 in 2025) and Madignano did not answer; its document
    written as .docx only."""
    base = tmp_path_factory.mktemp("documento")
    everyone = {x.codice for x in demo.cremasco_2025_returns()}
    prev = crea(base / "raccolta-2024", anno=2024)
    import_files(
        prev,
        demo.write_returns(
            prev,
            base / "ritorni-2024",
            only=everyone - {_codice("Madignano")},
            changes={_codice("Crema"): {"b_carenza_manutentiva": 5}},
        ),
    )
    r = crea(
        base / "raccolta",
        anno=2025,
        scadenza=dt.date(2024, 12, 18),
        precedente=base / "raccolta-2024",
    )
    returns = demo.write_returns(r, base / "ritorni")
    # Cremosano's file has no time of its own in the plan: the demo's (last of all)
    (cremosano,) = [p for p in returns if "cremosano" in p.name.lower()]
    os.utime(cremosano, (demo.CREMOSANO_RICEVUTO.timestamp(),) * 2)
    import_files(r, returns)
    cons = consolidate.consolidate(r, receipts(r), generated_at=GENERATED_AT)
    confronto = confronta(r, cons)
    assert confronto is not None
    res = write_document(r, cons, confronto=confronto, pdf=False)
    return World(r, cons, confronto, res, docx.Document(str(res.docx)))


@pytest.fixture(scope="session")
def pdf(world: World) -> Path:
    """The one LibreOffice conversion of the session: the same document, as PDF."""
    require_libreoffice()
    res = write_document(world.r, world.cons, confronto=world.confronto, pdf=True)
    assert res.pdf == document_path(world.r.path, 2025, ".pdf"), res.note
    assert [n for n in res.note if not n.startswith("Testi ancora predefiniti")] == []
    return res.pdf


def _content(doc: DocxDocument) -> list[Paragraph | Table]:
    return list(doc.iter_inner_content())


def _rows(t: Table) -> list[list[str]]:
    return [[c.text for c in row.cells] for row in t.rows]


def _plan_tables(doc: DocxDocument) -> tuple[dict[str, Table], dict[str, str]]:
    """The table right after each section title "x) …:", and the one-line sections."""
    tables: dict[str, Table] = {}
    lines: dict[str, str] = {}
    items = _content(doc)
    for prev, item in itertools.pairwise(items):
        if isinstance(prev, Paragraph) and (m := re.match(r"([a-k])\) ", prev.text)):
            if isinstance(item, Table):
                tables[m.group(1)] = item
            else:
                lines[m.group(1)] = prev.text
    return tables, lines


def _key(row: list[str] | tuple[str, ...]) -> list[str]:
    """A row with the names normalised (first column, and the Comune column of b)–f))."""
    return [
        normalise_name(v) if i == 0 or (len(row) == 3 and i == 2) else v for i, v in enumerate(row)
    ]


def _paragraphs(doc: DocxDocument) -> list[str]:
    return [p.text for p in doc.paragraphs]


# --------------------------------------------------------------------------- the .docx


def test_tables_print_every_number_of_the_2025_plan(world: World) -> None:
    """Each table a)–k) has the plan's columns and exactly the plan's rows and numbers
    (1.008, totals 1.697 / 1.680 / 17, 22, 5, 3, 30, Castelleone 10, 8, 59); e) says
    "nessuna", g) and h) "nessun Comune"."""
    tables, lines = _plan_tables(world.doc)
    assert set(tables) == set(PLAN)
    for letter, expected in PLAN.items():
        rows = _rows(tables[letter])
        assert [_key(r) for r in rows[1:]] == [_key(r) for r in expected], letter
    for letter, header in HEADERS.items():
        assert _rows(tables[letter])[0] == header, letter
    assert set(lines) == set(PLAN_EMPTY)
    for letter, word in PLAN_EMPTY.items():
        assert lines[letter].endswith(f": {word}"), lines[letter]


def test_tables_repeat_their_header_and_never_split_a_row(world: World) -> None:
    """Every table's first row repeats on each page and no row may break across pages."""
    for t in world.doc.tables:
        trs = [row._tr for row in t.rows]
        assert trs[0].trPr.find(docx.oxml.ns.qn("w:tblHeader")) is not None
        assert all(tr.trPr.find(docx.oxml.ns.qn("w:cantSplit")) is not None for tr in trs)


def test_annex_lists_the_26_enti_with_date_and_time_of_reception(world: World) -> None:
    """The annex, in a landscape A4 section, has the columns of the master's Report and
    one row per ente that answered, in order of reception, with date and time in Italy
    (Crema: 05-12-2024 09:44:55, 0 SAS, 358 SAP, 10 disponibili)."""
    annex = world.doc.tables[-1]
    rows = _rows(annex)
    assert rows[0] == [h for h, _ in REPORT_COLUMNS]
    body = {normalise_name(r[0]): r for r in rows[1:]}
    assert len(rows) - 1 == len(body) == 26
    crema = body["crema"]
    assert crema[1:6] == ["05-12-2024", "09:44:55", "0", "358", "10"]
    assert crema[-2:] == ["No", archive.FONTE_FILE]
    assert body[normalise_name(ALER)][1:6] == ["28-11-2024", "15:29:41", "11", "997", "5"]
    for ret in demo.cremasco_2025_returns():
        if ret.ricevuto is not None:
            row = body[normalise_name(ret.nome)]
            assert (row[1], row[2]) == (f"{ret.ricevuto:%d-%m-%Y}", f"{ret.ricevuto:%H:%M:%S}")
    stamps = [
        dt.datetime.strptime(f"{r[1]} {r[2]}", "%d-%m-%Y %H:%M:%S").replace(tzinfo=archive.TZ)
        for r in rows[1:]
    ]
    assert stamps == sorted(stamps)
    last = world.doc.sections[-1]
    assert last.orientation == WD_ORIENT.LANDSCAPE
    assert (round(last.page_width.cm, 1), round(last.page_height.cm, 1)) == (29.7, 21.0)
    first = world.doc.sections[0]
    assert (round(first.page_width.cm, 1), round(first.page_height.cm, 1)) == (21.0, 29.7)


def test_the_document_says_as_of_when_and_follows_the_plans_structure(world: World) -> None:
    """The title page names the plan, the year, the ambito, the capofila, the laws and the
    date of the data; the headings are numbered as in the model; every page's footer and
    the file's properties carry the same date."""
    texts = _paragraphs(world.doc)
    for expected in (
        "PIANO ANNUALE DELL'OFFERTA ABITATIVA PUBBLICA E SOCIALE",
        "Anno 2025",
        "Ambito territoriale Cremasco",
        "Comune di Crema",
        AS_OF,
        PRODUCED,
        "Enti che hanno trasmesso i dati: 26 su 49",
        "Sommario",
    ):
        assert expected in texts, expected
    assert any("Legge Regionale Lombardia 8 luglio 2016, n. 16" in t for t in texts)
    headings = [p.text for p in world.doc.paragraphs if p.style.name.startswith("Heading")]
    assert headings == [
        "1. PREMESSA",
        "1.1 - PIANO ANNUALE E PIANO TRIENNALE",
        "1.2 - L'AMBITO TERRITORIALE CREMASCO",
        "2. I CONTENUTI DEL PIANO",
        "2.1 - I SERVIZI ABITATIVI",
        "2.2 - CONFRONTO CON IL PIANO 2024",
        "2.3 - MISURE PER SOSTENERE L'ACCESSO E IL MANTENIMENTO DELL'ABITAZIONE",
        "3. CONCLUSIONI",
        "ALLEGATO - REPORT PROGRAMMAZIONE ANNUALE 2025",
    ]
    index = texts[texts.index("Sommario") + 1 : texts.index("Sommario") + 1 + len(headings)]
    assert [t.split("\t")[0] for t in index] == headings
    footer = world.doc.sections[0].footer.paragraphs[0].text
    assert "dati consolidati al 18/12/2024 16:47" in footer
    last = max(s.used.ricevuto_il for s in world.cons.answered if s.used is not None)
    assert AS_OF.endswith(f"{last:%d/%m/%Y %H:%M}")
    props = world.doc.core_properties
    assert props.comments == (
        "Generato da piano-abitativo il 20/12/2024 09:30 con i dati consolidati al "
        "18/12/2024 16:47."
    )
    assert props.created == GENERATED_AT
    assert props.author == "Comune di Crema"


def test_the_capofila_takes_its_article_after_da(world: World) -> None:
    """ "predisposto dal Comune di Crema", never "da Comune di Crema"; the article follows
    the name (dall'ALER, dall'Unione, dalla Comunità) and a bare place name keeps "da"."""
    texts = " ".join(_paragraphs(world.doc))
    assert "predisposto dal Comune di Crema, ente capofila" in texts
    assert "da Comune di" not in texts
    assert [with_da(n) for n in ("ALER X", "Unione dei Comuni Y", "Comunità Z", "Crema")] == [
        "dall'ALER X",
        "dall'Unione dei Comuni Y",
        "dalla Comunità Z",
        "da Crema",
    ]
    # a text written by hand with "da {capofila}" gets the article as well
    filled, _ = fill_placeholders(
        "predisposto da {capofila}.",
        {"capofila": "Comune di Crema", "dal_capofila": "dal Comune di Crema"},
    )
    assert filled == "predisposto dal Comune di Crema."


def test_comparison_with_last_year_shows_totals_and_changes_per_ente(world: World) -> None:
    """With the 2024 raccolta linked, section 2.2 shows the totals of both years over the
    25 enti present in both, like with like (b 20 → 22, +2; Madignano, new in 2025, left
    out and counted), and per ente only what changed (Crema b 5 → 7 and f 8 → 10), and
    names Madignano as answering only in 2025."""
    items = _content(world.doc)
    start = next(
        i
        for i, x in enumerate(items)
        if isinstance(x, Paragraph)
        and x.style.name == "Heading 2"
        and x.text.startswith("2.2 - CONFRONTO")
    )
    totals, per_ente = [x for x in items[start:] if isinstance(x, Table)][:2]
    trows = {r[0]: r[1:] for r in _rows(totals)}
    assert trows["Voce"] == ["2024", "2025", "Variazione"]
    assert trows["b) Carenza manutentiva"] == ["20", "22", "+2"]
    assert trows["a) Totale unità immobiliari"] == ["1.697", "1.697", "0"]
    assert _rows(per_ente)[1:] == [
        ["Comune di Crema", "b) Carenza manutentiva", "5", "7", "+2"],
        ["", "f) Totale assegnabili", "8", "10", "+2"],
    ]
    texts = _paragraphs(world.doc)
    assert "Hanno trasmesso i dati nel 2025 ma non nel 2024: Comune di Madignano." in texts
    assert "Totali dei 25 enti presenti in entrambi gli anni" in texts
    assert (
        "Tutti gli enti che avevano risposto nel 2024 hanno risposto. 1 ente ha risposto "
        "solo nel 2025 (escluso dalla variazione)." in texts
    )


def test_the_rows_of_a_long_table_keep_their_own_texts_and_their_kinds_format(
    world: World,
) -> None:
    """The rows after the first of their kind are copies of its XML: each still has
    exactly its own text (spaces, a tab, a line break, an accent, nothing) and the format
    of its kind (the body rows alike, the header and the total each their own)."""
    import copy

    from lxml import etree

    from piano_abitativo.document.builder import _Builder

    b = _Builder(world.r, world.cons, {}, None)
    body = [["Crema", " 12 ", ""], ["Bagnolo\nCremasco", "a\tb", "è"], ["Ripalta", "0", "1"]]
    t = b.table(
        ["Ente", "A", "B"], body, [5.0, 3.0, 3.0], numeric=[1, 2], total=["Totale", "12", "1"]
    )
    assert [[c.text for c in row.cells] for row in t.rows] == [
        ["Ente", "A", "B"],
        *body,
        ["Totale", "12", "1"],
    ]

    def shape(tr: Any) -> bytes:
        bare = copy.deepcopy(tr)
        for el in list(bare.iter(qn("w:t"), qn("w:br"), qn("w:tab"))):
            el.getparent().remove(el)
        return etree.tostring(bare)

    shapes = [shape(row._tr) for row in t.rows]
    assert shapes[1] == shapes[2] == shapes[3]
    assert len({shapes[0], shapes[1], shapes[4]}) == 3
    # a text is kept as typed (xml:space="preserve") exactly when it starts or ends with a
    # space, also in a copy of a row whose text needed it ("0" copies " 12 "'s run)
    texts = list(t._tbl.iter(qn("w:t")))
    assert [x.text for x in texts if x.get(qn("xml:space")) == "preserve"] == [" 12 "]


def test_the_same_data_give_the_same_bytes(world: World) -> None:
    """Two builds of the same consolidation and texts are byte-identical; another "as of"
    time changes the document."""
    one = build_document(world.r, world.cons, confronto=world.confronto)
    assert one == build_document(world.r, world.cons, confronto=world.confronto)
    later = consolidate.consolidate(
        world.r, receipts(world.r), generated_at=GENERATED_AT + dt.timedelta(hours=1)
    )
    assert build_document(world.r, later, confronto=world.confronto) != one


# --------------------------------------------------------------------------- text blocks


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[tuple[raccolta.Raccolta, Consolidation]]:
    """A 2025 raccolta of the Ambito Cremasco before any return."""
    r = crea(tmp_path / "vuota", anno=2025)
    yield r, consolidate.consolidate(r, [], generated_at=GENERATED_AT)


def test_text_blocks_are_created_once_and_an_edit_changes_the_document(
    empty: tuple[raccolta.Raccolta, Consolidation],
) -> None:
    """The first document writes the 7 text blocks with neutral wording; an edited block
    (placeholders, a bullet list, an unknown {sindaco}) goes into the next document, is
    never overwritten, and the unknown placeholder is left as written with a note."""
    r, cons = empty
    first = write_document(r, cons, pdf=False)
    testi = r.path / TESTI_DIR
    assert sorted(p.name for p in first.testi_creati) == sorted(b.file for b in BLOCKS)
    assert any("Creati i testi modificabili" in n for n in first.note)
    premessa = testi / "01_premessa.txt"
    assert "\nCon la Legge Regionale 8 luglio 2016" in premessa.read_text(encoding="utf-8")
    edited = (
        "# commento che non va nel documento\n"
        "Il {capofila} approva il Piano {anno}; firma {sindaco}.\n\n"
        "- prima voce\n- seconda voce\n  che continua\n"
    )
    premessa.write_text(edited, encoding="utf-8")
    second = write_document(r, cons, pdf=False)
    assert second.testi_creati == ()
    assert premessa.read_text(encoding="utf-8") == edited
    texts = [(p.text, p.style.name) for p in docx.Document(str(second.docx)).paragraphs]
    assert ("Il Comune di Crema approva il Piano 2025; firma {sindaco}.", "Normal") in texts
    assert ("prima voce", "List Bullet") in texts
    assert ("seconda voce che continua", "List Bullet") in texts
    assert not any("commento" in t or t.startswith("Con la Legge Regionale") for t, _ in texts)
    (note,) = [n for n in second.note if "{sindaco}" in n]
    assert note.startswith(f"{TESTI_DIR}/01_premessa.txt: segnaposto {{sindaco}} sconosciuto")
    premessa.unlink()
    third = write_document(r, cons, pdf=False)
    assert third.testi_creati == (premessa,)


def test_a_default_text_is_marked_until_its_file_is_edited(
    empty: tuple[raccolta.Raccolta, Consolidation],
) -> None:
    """Every section whose text is still the default one has the italic note "testo
    predefinito da adattare" right below it and the notes name the files; editing only
    the comments changes nothing, editing the text removes that section's note."""
    r, cons = empty
    first = write_document(r, cons, pdf=False)
    mark = "[Testo predefinito da adattare: modificare il file testi/"

    def marked(res: DocumentResult) -> list[str]:
        paras = docx.Document(str(res.docx)).paragraphs
        out = []
        for before, p in itertools.pairwise(paras):
            if p.text.startswith(mark):
                assert all(run.italic for run in p.runs) and before.text, p.text
                out.append(p.text.removeprefix(mark).split(" ")[0])
        return out

    files = [b.file for b in BLOCKS]
    assert marked(first) == files
    (note,) = [n for n in first.note if n.startswith("Testi ancora predefiniti")]
    assert all(f"{TESTI_DIR}/{f}" in note for f in files)
    premessa = r.path / TESTI_DIR / "01_premessa.txt"
    premessa.write_text("# solo un commento in più\n" + premessa.read_text("utf-8"), "utf-8")
    assert marked(write_document(r, cons, pdf=False)) == files
    premessa.write_text("Premessa scritta dall'ambito.\n", encoding="utf-8")
    edited = write_document(r, cons, pdf=False)
    assert marked(edited) == files[1:]
    (note,) = [n for n in edited.note if n.startswith("Testi ancora predefiniti")]
    assert "01_premessa.txt" not in note and "(6)" in note


def test_a_block_not_in_utf8_is_read_with_a_note(
    empty: tuple[raccolta.Raccolta, Consolidation],
) -> None:
    """A block saved as Windows-1252 (Notepad of old) keeps its accents, with a note."""
    r, cons = empty
    write_document(r, cons, pdf=False)
    (r.path / TESTI_DIR / "07_conclusioni.txt").write_bytes("Città e più.".encode("cp1252"))
    res = write_document(r, cons, pdf=False)
    assert "Città e più." in _paragraphs(docx.Document(str(res.docx)))
    assert any("non è in UTF-8" in n for n in res.note)


def test_before_any_return_every_section_says_none(
    empty: tuple[raccolta.Raccolta, Consolidation],
) -> None:
    """With no return, no table is printed: each section is one line ending "nessuna" or
    "nessun Comune", and the annex says that no ente has sent data."""
    r, cons = empty
    doc = docx.Document(str(write_document(r, cons, pdf=False).docx))
    tables, lines = _plan_tables(doc)
    assert tables == {}
    assert sorted(lines) == list("abcdefghijk")
    for letter, text in lines.items():
        assert text.endswith("nessun Comune" if letter in "ghi" else "nessuna"), text
    assert doc.tables == []
    # no data yet: "as of" is when the consolidation was made
    assert "Dati consolidati al 20/12/2024 09:30" in _paragraphs(doc)
    assert any(
        t.startswith("Nessun ente ha ancora trasmesso dati validi") for t in _paragraphs(doc)
    )


# --------------------------------------------------------------------------- LibreOffice


def _fake_soffice(tmp_path: Path, body: str) -> Path:
    exe = tmp_path / "soffice"
    exe.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    exe.chmod(0o755)
    return exe


@pytest.mark.skipif(os.name == "nt", reason="the stand-in soffice is a shell script")
def test_libreoffice_failing_or_hanging_gives_the_docx_and_an_italian_note(
    empty: tuple[raccolta.Raccolta, Consolidation], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A soffice that exits without a PDF, or that hangs past the time limit (and is then
    stopped with its children), leaves the .docx and a one-line note, never a traceback."""
    r, cons = empty
    monkeypatch.setenv(ENV_SOFFICE, str(_fake_soffice(tmp_path, "echo rotto >&2; exit 3")))
    res = write_document(r, cons)
    assert res.docx.is_file() and res.pdf is None
    assert any(
        n.startswith("LibreOffice non ha prodotto il PDF (codice di uscita 3: rotto)")
        for n in res.note
    )
    child = tmp_path / "child.pid"
    monkeypatch.setenv(
        ENV_SOFFICE, str(_fake_soffice(tmp_path, f"sleep 60 & echo $! > {child}; wait"))
    )
    res = write_document(r, cons, timeout=1.0)
    assert res.pdf is None
    assert any("non ha finito la conversione in PDF entro 1 secondi" in n for n in res.note)
    assert _stops(int(child.read_text()))


def _stops(pid: int, within: float = 10.0) -> bool:
    """Whether process `pid` has stopped or stops within `within` seconds: a SIGKILL sent
    to its group is delivered asynchronously (on a loaded machine the child was seen
    running a moment after the group was killed)."""
    deadline = time.monotonic() + within
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie left to an init that does not reap, as
    in some containers, has stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_cli_documento_without_libreoffice_prints_json(
    empty: tuple[raccolta.Raccolta, Consolidation],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`documento RACCOLTA --json` with soffice missing writes the .docx and prints its
    path, "pdf": null and the note; --senza-pdf does not look for LibreOffice at all."""
    r, _ = empty
    missing = tmp_path / "non-installato" / "soffice"
    monkeypatch.setenv(ENV_SOFFICE, str(missing))
    assert cli.main(["documento", str(r.path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["docx"] == str(document_path(r.path, 2025)) and out["pdf"] is None
    assert any(n.startswith(f"LibreOffice non trovato in {missing}") for n in out["note"])
    assert cli.main(["documento", str(r.path), "--senza-pdf"]) == 0
    text = capsys.readouterr().out
    assert "Documento del Piano annuale 2025 scritto:" in text
    assert "LibreOffice" not in text


def test_excel_button_documento_writes_the_document_and_says_where(
    empty: tuple[raccolta.Raccolta, Consolidation], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Documento button of the master writes the document of the raccolta and shows
    one alert with its path and the notes (here: LibreOffice not found)."""
    r, cons = empty
    monkeypatch.setenv(excel.ENV_RACCOLTA, str(r.path))
    monkeypatch.setenv(ENV_SOFFICE, str(tmp_path / "manca" / "soffice"))
    acts = click(excel.documento, payload_of(build_master(cons)))
    (text,) = alerts(acts)
    assert text.startswith(
        f"Documento del Piano annuale 2025 scritto:\n{document_path(r.path, 2025)}\n\n- "
    )
    assert "LibreOffice non trovato" in text
    assert document_path(r.path, 2025).is_file()


def test_actions_documento_notes_a_previous_raccolta_that_is_gone(
    empty: tuple[raccolta.Raccolta, Consolidation], tmp_path: Path
) -> None:
    """A raccolta linked to a previous one that no longer exists still gets its document,
    without the comparison, and the first note says why."""
    r, _ = empty
    config = r.config_path.read_text(encoding="utf-8")
    r.config_path.write_text(
        config.replace('# precedente = "../raccolta-2024"', 'precedente = "../sparita"'),
        encoding="utf-8",
    )
    res = actions.documento(raccolta.load(r.path), pdf=False)
    assert res.note[0].startswith("La raccolta dell'anno precedente non si trova")
    heads = [
        p.text
        for p in docx.Document(str(res.docx)).paragraphs
        if p.style.name.startswith("Heading")
    ]
    assert not any("CONFRONTO" in h for h in heads)


# --------------------------------------------------------------------------- the PDF


def _index_pages(doc: DocxDocument) -> dict[str, int | None]:
    """Index entry → the cached result of its PAGEREF field (None when empty)."""
    out: dict[str, int | None] = {}
    for p in doc.paragraphs:
        if "PAGEREF" not in "".join(x.text or "" for x in p._p.iter(qn("w:instrText"))):
            continue
        title, _, page = p.text.partition("\t")
        out[title] = int(page) if page.strip() else None
    return out


def test_docx_without_pdf_asks_word_for_the_index_pages_and_has_a_valid_zoom(
    world: World,
) -> None:
    """Without a PDF pass the page numbers are unknown: the index's fields are empty and
    Word is asked to update them; the zoom carries the w:percent the schema requires."""
    settings = world.doc.settings.element
    assert settings.find(qn("w:updateFields")) is not None
    zoom = settings.find(qn("w:zoom"))
    assert zoom is not None and zoom.get(qn("w:percent")) == "100"
    pages = _index_pages(world.doc)
    assert len(pages) == 9 and set(pages.values()) == {None}


def test_index_page_numbers_come_from_the_pdf_outline(world: World) -> None:
    """Given the pages of the headings, the index shows them as the fields' results and
    Word is not asked to update; a heading missing from the pages keeps the request."""
    titles = list(_index_pages(world.doc))
    pages = {t: i for i, t in enumerate(titles, start=3)}
    built = build_document(world.r, world.cons, confronto=world.confronto, pages=pages)
    doc = docx.Document(io.BytesIO(built))
    assert _index_pages(doc) == pages
    assert doc.settings.element.find(qn("w:updateFields")) is None
    partial = dict(itertools.islice(pages.items(), 3))
    doc = docx.Document(io.BytesIO(build_document(world.r, world.cons, pages=partial)))
    assert doc.settings.element.find(qn("w:updateFields")) is not None
    # the outline LibreOffice writes: one flat page tree, UTF-16 titles, /Dest to a page
    title = "2.1 - Unità".encode("utf-16-be").hex().upper()
    pdf = (
        b"%PDF-1.6\n1 0 obj\n<</Type/Pages/Kids[ 4 0 R 7 0 R ]/Count 2>>\nendobj\n"
        b"9 0 obj\n<</Count 0/Title<FEFF" + title.encode() + b">\n"
        b"/Dest[7 0 R/XYZ 56.7 767.189 0]/Parent 8 0 R>>\nendobj\n"
    )
    assert outline_pages(pdf) == {"2.1 - Unità": 2}
    assert outline_pages(b"%PDF-1.6 nothing") == {}


def _pdftotext(pdf: Path, *args: str) -> str:
    return subprocess.run(
        ["pdftotext", *args, str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.mark.libreoffice
def test_pdf_has_the_plans_numbers_accents_and_index_pages(pdf: Path) -> None:
    """Read back with pdftotext, the PDF has the plan's numbers, the "as of" date, the
    annex's date and time, the accents (Unità, più, è) and page numbers in the index."""
    text = _pdftotext(pdf, "-layout")
    for s in (
        "1.008",
        "1.697",
        "1.680",
        "Totale",
        "nessuna",
        "nessun Comune",
        AS_OF,
        "05-12-2024",
        "09:44:55",
        "Unità abitative",
        "più recente",
        "è usata",
        "REPORT PROGRAMMAZIONE ANNUALE 2025",
    ):
        assert s in text, s
    index = re.findall(r"^\s*(\S.*?)\.{5,}\s*(\d+)\s*$", text, re.MULTILINE)
    pages = {title.strip(): int(n) for title, n in index}
    assert pages["1. PREMESSA"] == 3
    assert pages["ALLEGATO - REPORT PROGRAMMAZIONE ANNUALE 2025"] > pages["3. CONCLUSIONI"]
    # the .docx written with the PDF carries the same numbers as the index fields' cached
    # results, and no longer asks Word to update the fields on opening
    written = docx.Document(str(pdf.with_suffix(".docx")))
    assert _index_pages(written) == pages
    assert written.settings.element.find(qn("w:updateFields")) is None


@pytest.mark.libreoffice
def test_pdf_pages_are_a4_nothing_outside_the_margins_and_render(pdf: Path, tmp_path: Path) -> None:
    """Every word of every page lies inside the page with at least 0.5 cm to spare, the
    annex page is A4 landscape, and every page renders to an image (pdftoppm, 60 dpi)."""
    bbox = _pdftotext(pdf, "-bbox")
    pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', bbox, re.DOTALL)
    assert len(pages) >= 7
    spare = 0.5 / 2.54 * 72
    for n, (w, h, body) in enumerate(pages, start=1):
        width, height = float(w), float(h)
        assert sorted((round(width), round(height))) == [595, 842], n
        for x0, y0, x1, y1 in re.findall(
            r'xMin="([\d.]+)" yMin="([\d.]+)" '
            r'xMax="([\d.]+)" yMax="([\d.]+)"',
            body,
        ):
            assert spare <= float(x0) and float(x1) <= width - spare, (n, x0, x1)
            assert spare <= float(y0) and float(y1) <= height - spare, (n, y0, y1)
    annex = [(w, h) for w, h, body in pages if ">Ricezione<" in body]
    assert annex and all(float(w) > float(h) for w, h in annex)
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "pagina")],
        check=True,
        timeout=120,
        capture_output=True,
    )
    images = sorted(tmp_path.glob("pagina-*.png"))
    assert len(images) == len(pages)
    assert all(p.stat().st_size > 2_000 for p in images)
