"""The fields of the Piano annuale: the single source of truth.

The template, the reader, the validator, the master workbook, the document and the demo
are all driven by a `Schema` value, by default `SCHEMA`, made of `FIELDS` and `SECTIONS`.
Adding a field is one entry in `FIELDS`: its place on the template, its defined name, its
column in the master and its row in the document's tables follow from its position and its
section. A test (or another ambito) can build its own `Schema` and give it to the pipeline.

Field ids are a public contract: the template exposes each field as a workbook-level
defined name with exactly its id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property


class Kind(StrEnum):
    """What a field holds, and so how it is read and checked."""

    CODE = "codice"  # text, keeps leading zeros (ISTAT 019036)
    TEXT = "testo"
    YEAR = "anno"
    COUNT = "conteggio"  # integer >= 0
    PERCENT = "percentuale"  # percentage points: 10 means 10%
    YESNO = "si_no"  # "SI" / "NO"
    EMAIL = "email"
    PHONE = "telefono"


class Role(StrEnum):
    """Who writes the cell in the template."""

    IDENT = "identificazione"  # pre-filled by the capofila, locked
    INPUT = "input"  # typed by the clerk
    FORMULA = "formula"  # computed in the workbook, locked


_COUNT_HELP = "Numero intero maggiore o uguale a 0. Se non ci sono unità scrivere 0."
MAX_COUNT = 100_000


@dataclass(frozen=True)
class Field:
    """One datum of the plan, as the template shows it and the validator checks it."""

    id: str
    section: str | None
    label: str
    kind: Kind
    role: Role = Role.INPUT
    minimum: float | None = None
    maximum: float | None = None
    comuni_only: bool = False
    #: the field is the sum of these fields (R1, R2)
    sum_of: tuple[str, ...] = ()
    #: short column header for tables (master workbook, document)
    short: str = ""
    #: the help shown when the clerk selects the cell (data-validation input message)
    help: str = ""
    max_length: int | None = None
    #: empty means "not chosen" (no avviso); for counts empty is read as 0 with an avviso
    optional: bool = False

    def __post_init__(self) -> None:
        if self.kind is Kind.COUNT:
            # a count is an integer >= 0 unless the entry says otherwise
            if self.minimum is None:
                object.__setattr__(self, "minimum", 0)
            if self.maximum is None:
                object.__setattr__(self, "maximum", MAX_COUNT)
            if not self.help and self.role is Role.INPUT:
                object.__setattr__(self, "help", _COUNT_HELP)

    @property
    def is_number(self) -> bool:
        return self.kind in (Kind.COUNT, Kind.PERCENT, Kind.YEAR)

    @property
    def header(self) -> str:
        return self.short or self.label


#: Titles of the sections a)–k), in the wording of the published plan.
SECTIONS: dict[str, str] = {
    "a": "Consistenza del patrimonio abitativo pubblico e sociale",
    "b": "Unità abitative destinate a SAP in carenza manutentiva assegnabili nello stato di fatto",
    "c": "Unità abitative destinate a SAP per nuova edificazione, in ristrutturazione, "
    "recupero, riqualificazione",
    "d": "Unità abitative destinate a SAP libere e che si libereranno per effetto del "
    "normale avvicendamento (turnover), incluse quelle rilasciate da Forze di Polizia "
    "e Vigili del Fuoco",
    "e": "Unità abitative conferite da soggetti privati e destinate a SAP "
    "(art. 23 c. 2 L.R. 16/2016)",
    "f": "Numero complessivo delle unità abitative destinate a SAP che prevedibilmente "
    "saranno assegnabili nell'anno (somma delle lettere da b a e)",
    "g": "Soglia percentuale eccedente il 20% per l'assegnazione ai nuclei familiari in "
    "condizione di indigenza (solo Comuni)",
    "h": "Categoria aggiuntiva di particolare e motivata rilevanza sociale (solo Comuni)",
    "i": "Quota percentuale fino al 10% delle unità destinata ai nuclei familiari "
    "appartenenti alle Forze di Polizia e al Corpo Nazionale dei Vigili del Fuoco "
    "(solo Comuni)",
    "j": "Unità abitative da destinare ai servizi abitativi transitori (SAT)",
    "k": "Numero delle unità abitative destinate a SAP assegnate nel corso dell'anno precedente",
}


FIELDS: tuple[Field, ...] = (
    Field("ente_codice", None, "Codice ente (ISTAT)", Kind.CODE, Role.IDENT, short="Codice"),
    Field(
        "ente_denominazione", None, "Denominazione dell'ente", Kind.TEXT, Role.IDENT, short="Ente"
    ),
    Field("anno", None, "Anno del Piano", Kind.YEAR, Role.IDENT, 2000, 2100, short="Anno"),
    Field(
        "a_totale",
        "a",
        "Totale unità immobiliari",
        Kind.COUNT,
        Role.FORMULA,
        0,
        MAX_COUNT,
        sum_of=("a_sap", "a_sas"),
        short="Totale unità immobiliari",
    ),
    Field(
        "a_sap",
        "a",
        "di cui alloggi SAP (servizi abitativi pubblici)",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="N. alloggi SAP",
        help="Alloggi di proprietà dell'ente destinati a servizi abitativi pubblici. "
        + _COUNT_HELP,
    ),
    Field(
        "a_sas",
        "a",
        "di cui alloggi SAS (servizi abitativi sociali)",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="N. alloggi SAS",
        help="Alloggi di proprietà dell'ente destinati a servizi abitativi sociali. " + _COUNT_HELP,
    ),
    Field(
        "b_carenza_manutentiva",
        "b",
        "Numero unità immobiliari",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="b) Carenza manutentiva",
        help="Unità SAP in carenza manutentiva assegnabili nello stato di fatto. " + _COUNT_HELP,
    ),
    Field(
        "c_nuova_edificazione",
        "c",
        "Numero unità immobiliari",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="c) Nuova edificazione/ristrutturazione",
        help="Unità SAP per nuova edificazione, ristrutturazione, recupero, "
        "riqualificazione. " + _COUNT_HELP,
    ),
    Field(
        "d_turnover",
        "d",
        "Numero unità immobiliari",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="d) Turnover",
        help="Unità SAP libere o che si libereranno per normale avvicendamento. " + _COUNT_HELP,
    ),
    Field(
        "e_conferite_privati",
        "e",
        "Numero unità immobiliari",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="e) Conferite da privati",
        help="Unità conferite da soggetti privati e destinate a SAP. " + _COUNT_HELP,
    ),
    Field(
        "f_totale_assegnabili",
        "f",
        "Totale unità assegnabili nell'anno (b + c + d + e)",
        Kind.COUNT,
        Role.FORMULA,
        0,
        MAX_COUNT,
        sum_of=(
            "b_carenza_manutentiva",
            "c_nuova_edificazione",
            "d_turnover",
            "e_conferite_privati",
        ),
        short="f) Totale assegnabili",
    ),
    Field(
        "g_soglia_indigenti",
        "g",
        "Soglia percentuale per nuclei indigenti (%)",
        Kind.PERCENT,
        minimum=0,
        maximum=100,
        comuni_only=True,
        optional=True,
        short="g) Soglia indigenti (%)",
        help="Solo se il Comune fissa una soglia superiore al 20%: scrivere i punti "
        "percentuali, es. 25. Altrimenti lasciare vuoto.",
    ),
    Field(
        "h_categoria_aggiuntiva",
        "h",
        "Il Comune individua una categoria aggiuntiva?",
        Kind.YESNO,
        comuni_only=True,
        optional=True,
        short="h) Categoria aggiuntiva",
        help="Scegliere SI o NO. Con SI descrivere la categoria e la motivazione "
        "nella cella sotto.",
    ),
    Field(
        "h_motivazione",
        "h",
        "Categoria e motivazione",
        Kind.TEXT,
        comuni_only=True,
        optional=True,
        short="h) Motivazione",
        max_length=2000,
        help="Obbligatoria se si è risposto SI: descrivere la categoria e perché è "
        "di particolare rilevanza sociale.",
    ),
    Field(
        "i_forze_polizia",
        "i",
        "Quota per Forze di Polizia e Vigili del Fuoco (%)",
        Kind.PERCENT,
        minimum=0,
        maximum=10,
        comuni_only=True,
        optional=True,
        short="i) Forze di Polizia (%)",
        help="Punti percentuali da 0 a 10, es. 10 per 10%. Se nessuna quota scrivere 0.",
    ),
    Field(
        "j_sat",
        "j",
        "Numero unità immobiliari",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="j) SAT",
        help="Unità da destinare ai servizi abitativi transitori. " + _COUNT_HELP,
    ),
    Field(
        "k_assegnate_anno_precedente",
        "k",
        "Alloggi SAP assegnati nell'anno precedente",
        Kind.COUNT,
        minimum=0,
        maximum=MAX_COUNT,
        short="k) Assegnate anno precedente",
        help="Alloggi SAP assegnati nel corso dell'anno precedente. " + _COUNT_HELP,
    ),
    Field(
        "referente_nome",
        None,
        "Nome e cognome",
        Kind.TEXT,
        optional=True,
        short="Referente",
        max_length=200,
        help="Persona da contattare per chiarimenti sui dati.",
    ),
    Field(
        "referente_email",
        None,
        "E-mail",
        Kind.EMAIL,
        optional=True,
        short="E-mail referente",
        max_length=200,
        help="Es. nome.cognome@comune.it",
    ),
    Field(
        "referente_telefono",
        None,
        "Telefono",
        Kind.PHONE,
        optional=True,
        short="Telefono referente",
        max_length=50,
        help="Es. 0373 123456",
    ),
    Field(
        "note",
        None,
        "Note",
        Kind.TEXT,
        optional=True,
        short="Note",
        max_length=4000,
        help="Eventuali precisazioni sui dati inseriti.",
    ),
)


OWNER = "Ragione Sociale Ente Proprietario"
UNITS = "Numero unità immobiliari"


@dataclass(frozen=True)
class SectionTable:
    """How the plan's table of one section is shown (master sheet, document): data, so
    that a new field of a section needs no code. Every field of the section is a column
    (in schema order) unless it is in `hidden`; an ente is a row when one of its columns'
    values is non-zero (or SI), or, with `selector`, when that field's value is."""

    #: the master's sheet name (≤ 31 characters)
    sheet: str
    #: the header of the first column (the ente's name)
    owner: str = OWNER
    #: field id -> column header (``{anno_precedente}`` is replaced); else the field's header
    headers: Mapping[str, str] = field(default_factory=dict)
    #: fields of the section not shown as columns
    hidden: tuple[str, ...] = ()
    #: the field whose value alone puts an ente in the table
    selector: str | None = None
    #: a last column with the name of the comune (empty for the ALER)
    comune_col: bool = False
    #: a table of comuni only: a row "Numero di Comuni", "nessun Comune" when empty
    comuni: bool = False
    #: the section's count fields are compared with last year on the master
    confronto: bool = False


#: The tables of the plan, one per section.
TABLES: dict[str, SectionTable] = {
    "a": SectionTable("a) Patrimonio", confronto=True),
    "b": SectionTable(
        "b) Carenza manutentiva", headers={"b_carenza_manutentiva": UNITS}, comune_col=True
    ),
    "c": SectionTable(
        "c) Nuova edificazione", headers={"c_nuova_edificazione": UNITS}, comune_col=True
    ),
    "d": SectionTable("d) Turnover", headers={"d_turnover": UNITS}, comune_col=True),
    "e": SectionTable(
        "e) Conferite da privati", headers={"e_conferite_privati": UNITS}, comune_col=True
    ),
    "f": SectionTable(
        "f) Assegnabili",
        headers={"f_totale_assegnabili": UNITS},
        comune_col=True,
        confronto=True,
    ),
    "g": SectionTable(
        "g) Soglia indigenti",
        owner="Comune",
        headers={"g_soglia_indigenti": "Soglia %"},
        comuni=True,
    ),
    "h": SectionTable(
        "h) Categorie aggiuntive",
        owner="Comune",
        headers={"h_motivazione": "Motivazione"},
        hidden=("h_categoria_aggiuntiva",),
        selector="h_categoria_aggiuntiva",
        comuni=True,
    ),
    "i": SectionTable(
        "i) Forze di Polizia",
        owner="Comune",
        headers={"i_forze_polizia": "Percentuale (%)"},
        comuni=True,
    ),
    "j": SectionTable("j) SAT", owner="Comune", headers={"j_sat": UNITS}, confronto=True),
    "k": SectionTable(
        "k) Assegnate anno prec.",
        headers={
            "k_assegnate_anno_precedente": "Totale alloggi assegnati nell'anno {anno_precedente}"
        },
        confronto=True,
    ),
}

#: The columns of the annex (Report programmazione), in its order: field id -> header.
#: A plan field not named here nor in `ANNEX_OMITTED` follows them with its own header.
ANNEX_HEADERS: dict[str, str] = {
    "a_sas": "Numero U.I. per Servizi Abitativi Sociali (SAS)",
    "a_sap": "Numero U.I. per Servizi Abitativi Pubblici (SAP)",
    "f_totale_assegnabili": "Numero complessivo U.I. disponibili nell'anno",
    "d_turnover": "Numero U.I. libere e che si libereranno per effetto del turn-over",
    "b_carenza_manutentiva": "Numero U.I. in carenza manutentiva assegnabili nello stato di fatto",
    "c_nuova_edificazione": "Numero U.I. disponibili per nuova edificazione, "
    "ristrutturazione, recupero, riqualificazione",
    "j_sat": "Numero U.I. per servizi abitativi transitori",
    "k_assegnate_anno_precedente": "Numero U.I. assegnate l'anno precedente",
    "e_conferite_privati": "Numero U.I. conferite da privati",
    "h_categoria_aggiuntiva": "Altra categoria di particolare rilevanza sociale",
    "g_soglia_indigenti": "Soglia % eccedente il 20% per indigenti",
    "i_forze_polizia": "% U.I. destinate a Forze di Polizia e Corpo nazionale dei Vigili del Fuoco",
}
#: plan fields the annex does not show
ANNEX_OMITTED: tuple[str, ...] = ("a_totale", "h_motivazione")


class SchemaError(ValueError):
    """A schema whose entries contradict each other (a programming error, never the user's)."""


@dataclass(frozen=True, eq=False)
class Schema:
    """The fields of the plan and the titles of its sections, as one value.

    Everything derived from the fields (which are typed, which are counts, which belong to
    a section) is computed here once, so no stage keeps its own list.
    """

    fields: tuple[Field, ...]
    sections: Mapping[str, str]
    #: how each section's table is shown (a section not named gets a plain table)
    tables: Mapping[str, SectionTable] = field(default_factory=lambda: dict(TABLES))
    #: the annex's columns (see `ANNEX_HEADERS`, `ANNEX_OMITTED`)
    annex_headers: Mapping[str, str] = field(default_factory=lambda: dict(ANNEX_HEADERS))
    annex_omitted: tuple[str, ...] = ANNEX_OMITTED

    def __post_init__(self) -> None:
        ids = [f.id for f in self.fields]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise SchemaError(f"campi ripetuti nello schema: {', '.join(dupes)}")
        for f in self.fields:
            if f.section is not None and f.section not in self.sections:
                raise SchemaError(f"{f.id}: sezione {f.section!r} sconosciuta")
            missing = [k for k in f.sum_of if k not in ids]
            if missing:
                raise SchemaError(f"{f.id}: somma di campi sconosciuti {missing}")

    @cached_property
    def digest(self) -> str:
        """Changes whenever a field or a section changes: stored reports made under
        another schema are made again (see `consolidation.context.context_fingerprint`)."""
        text = repr((self.fields, sorted(self.sections.items())))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @cached_property
    def field_by_id(self) -> dict[str, Field]:
        return {f.id: f for f in self.fields}

    @cached_property
    def field_ids(self) -> tuple[str, ...]:
        return tuple(f.id for f in self.fields)

    @cached_property
    def input_fields(self) -> tuple[Field, ...]:
        """The fields whose value the clerk types (unlocked cells)."""
        return tuple(f for f in self.fields if f.role is Role.INPUT)

    @cached_property
    def count_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.kind is Kind.COUNT)

    @cached_property
    def plan_fields(self) -> tuple[Field, ...]:
        """The fields of the plan's sections a)–k), in order."""
        return tuple(f for f in self.fields if f.section)

    def fields_of_section(self, letter: str) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.section == letter)

    @cached_property
    def total_fields(self) -> tuple[Field, ...]:
        """The plan's count fields: each has a total (`totale_<id>` in the master)."""
        return tuple(f for f in self.plan_fields if f.kind is Kind.COUNT)

    @cached_property
    def table_letters(self) -> tuple[str, ...]:
        """The sections with at least one field: one table each, in order."""
        return tuple(s for s in self.sections if self.fields_of_section(s))

    def table(self, letter: str) -> SectionTable:
        """How the table of section `letter` is shown."""
        got = self.tables.get(letter)
        if got is not None:
            return got
        return SectionTable(f"{letter}) {self.sections.get(letter, '')}"[:31])

    def table_fields(self, letter: str) -> tuple[Field, ...]:
        """The value columns of section `letter`'s table, in order."""
        hidden = self.table(letter).hidden
        return tuple(f for f in self.fields_of_section(letter) if f.id not in hidden)

    def column_header(self, f: Field, anno: int) -> str:
        """The header of `f`'s column in its section's table."""
        text = self.table(f.section or "").headers.get(f.id, f.header)
        return text.replace("{anno_precedente}", str(anno - 1))

    @cached_property
    def annex_fields(self) -> tuple[Field, ...]:
        """The fields of the annex's columns, in its order."""
        named = [self.field_by_id[i] for i in self.annex_headers if i in self.field_by_id]
        rest = [
            f
            for f in self.plan_fields
            if f.id not in self.annex_headers and f.id not in self.annex_omitted
        ]
        return (*named, *rest)

    @cached_property
    def confronto_fields(self) -> tuple[Field, ...]:
        """The count fields compared with last year on the master: those of the sections
        marked `confronto`, less the sums of fields of the same section (a) total)."""
        out = []
        for f in self.total_fields:
            if f.section is None or not self.table(f.section).confronto:
                continue
            own = {g.id for g in self.fields_of_section(f.section)}
            if f.sum_of and set(f.sum_of) <= own:
                continue
            out.append(f)
        return tuple(out)

    def with_field(self, new: Field) -> Schema:
        """This schema with one more field, placed after the last field of its section
        (after the plan's fields when it has none)."""
        fields = list(self.fields)
        at = max(
            (i for i, f in enumerate(fields) if f.section == new.section and new.section),
            default=max(i for i, f in enumerate(fields) if f.section),
        )
        fields.insert(at + 1, new)
        return Schema(
            tuple(fields), self.sections, self.tables, self.annex_headers, self.annex_omitted
        )


#: The schema of the Piano annuale (R.R. 4/2017 art. 4): what every stage uses by default.
SCHEMA = Schema(FIELDS, SECTIONS)

FIELD_BY_ID: dict[str, Field] = SCHEMA.field_by_id
FIELD_IDS: tuple[str, ...] = SCHEMA.field_ids

#: fields whose value the clerk types (unlocked cells)
INPUT_FIELDS: tuple[Field, ...] = SCHEMA.input_fields
COUNT_FIELDS: tuple[Field, ...] = SCHEMA.count_fields
#: the fields of the plan's sections a)–k), in order
PLAN_FIELDS: tuple[Field, ...] = SCHEMA.plan_fields


def fields_of_section(letter: str) -> tuple[Field, ...]:
    return SCHEMA.fields_of_section(letter)


#: The version of the template layout. Bump the minor part for compatible changes
#: (wording, styles), the major part when cells move. The reader accepts every
#: version in `SUPPORTED_TEMPLATE_VERSIONS` (older ones with an avviso).
TEMPLATE_VERSION = "1.0"
SUPPORTED_TEMPLATE_VERSIONS: tuple[str, ...] = ("1.0",)

#: Sheet names (Italian, what the clerk sees).
SHEET_ISTRUZIONI = "Istruzioni"
SHEET_SCHEDA = "Scheda"
SHEET_META = "_meta"

#: Keys of the hidden metadata sheet (column A) and their meaning.
META_KEYS: dict[str, str] = {
    "modello": "Identificativo del modello (sempre 'piano-abitativo')",
    "versione_modello": "Versione del layout del modello",
    "raccolta_id": "Identificativo della raccolta dati",
    "anno": "Anno del Piano",
    "ente_codice": "Codice dell'ente",
    "ente_tipo": "Tipo di ente (COMUNE o ALER)",
    "ambito": "Ambito territoriale",
}
TEMPLATE_MARK = "piano-abitativo"
