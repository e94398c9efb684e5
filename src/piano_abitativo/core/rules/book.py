"""The rule book: every rule of the Piano annuale written once.

A `Rule` has its stable code, severity, Italian title and hint (the catalogue and
docs/problemi.md are made from them), the fields it is reported on, where it applies
and ONE condition as an expression tree (`core.rules.expr`). The validator evaluates
the tree in Python; the template renders the same tree as the formula of its live check
rows (`Check`). The reader's codes L01–L06 are written here too: the reader reports them
while reading, and the template's rows show the same conditions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from piano_abitativo.core.rules.codes import ProblemType, Severity
from piano_abitativo.core.rules.conditions import (
    STOCK_BOUNDED,
    Condition,
    Scope,
    email_ok,
    not_a_number,
    number_as_text,
    out_of_bounds,
    over_sap,
    over_sap_sum,
    over_sat,
    over_stock,
    percent_interpreted,
    stock_jump,
    total_mismatch,
    valid,
    yes,
)
from piano_abitativo.core.rules.expr import (
    Cell,
    Expr,
    IsAler,
    IsBlank,
    IsWholeCount,
    Not,
    Text,
    all_of,
    any_of,
    cmp,
)
from piano_abitativo.core.rules.functions import (
    Add,
    Exact,
    Trim,
)
from piano_abitativo.core.rules.reads import (
    Previous,
    Read,
    ReadsAsNumber,
    ReadYesNo,
    Value,
)
from piano_abitativo.core.schema import Field, Kind, Role, Schema
from piano_abitativo.core.settings import Settings

E, A = Severity.ERRORE, Severity.AVVISO
OK, WARN, BAD, NA = "✔", "!", "✖", "–"
#: a check that cannot be verified: a number it depends on cannot be read
UNKNOWN = "?"


class Stage(StrEnum):
    """Who reports a rule: the reader while reading, the validator, or the validator
    against last year's values (no template row)."""

    READER = "lettura"
    VALIDATOR = "validazione"
    PREVIOUS = "anno precedente"


class Applies(StrEnum):
    ALL = "tutti gli enti"
    COMUNI = "solo Comuni"
    ALER = "solo ALER"


Targets = Callable[[Schema], tuple[Field, ...]]
RowText = Callable[[Field, Settings], str]


@dataclass(frozen=True)
class Rule:
    """One rule: what it means, where it is reported, and when it holds."""

    code: str
    severity: Severity
    title: str
    hint: str
    stage: Stage
    #: the fields it is reported on (the problem's cell)
    targets: Targets
    #: the condition, for one target field: the problem is reported when it holds
    when: Condition
    #: the template row's text when the condition holds (static: no values)
    row_text: RowText
    applies: Applies = Applies.ALL

    @property
    def type(self) -> ProblemType:
        return ProblemType(self.code, self.severity, self.title, self.hint)

    def applies_to(self, aler: bool) -> bool:
        return self.applies is Applies.ALL or (self.applies is Applies.ALER) == aler


# --- targets ----------------------------------------------------------------------


def count_inputs(schema: Schema) -> tuple[Field, ...]:
    return tuple(f for f in schema.fields if f.role is Role.INPUT and f.kind is Kind.COUNT)


def percents(schema: Schema) -> tuple[Field, ...]:
    return tuple(f for f in schema.fields if f.role is Role.INPUT and f.kind is Kind.PERCENT)


def numbers(schema: Schema) -> tuple[Field, ...]:
    """Typed numbers: counts and percentages (not computed, not identification)."""
    return tuple(
        f for f in schema.fields if f.role is Role.INPUT and f.kind in (Kind.COUNT, Kind.PERCENT)
    )


def yes_no(schema: Schema) -> tuple[Field, ...]:
    return tuple(f for f in schema.fields if f.role is Role.INPUT and f.kind is Kind.YESNO)


def only(*ids: str) -> Targets:
    def pick(schema: Schema) -> tuple[Field, ...]:
        return tuple(schema.field_by_id[i] for i in ids if i in schema.field_by_id)

    return pick


def fixed(text: str) -> RowText:
    return lambda _f, _s: text


def _letter(f: Field) -> str:
    return f"{f.section}) " if f.section else ""


def _sat_text(f: Field, s: Settings) -> str:
    base = "degli alloggi SAP" if s.sat_base == "a_sap" else "del totale assegnabile"
    return f"{_letter(f)}unità SAT oltre il {s.sat_percentuale:g}% {base}: verificare"


_PCT_WARN = "valore scritto come testo o in frazione: verrà interpretato, verificare"


def _warn_text(f: Field, _s: Settings) -> str:
    if f.kind is Kind.PERCENT:
        return _letter(f) + _PCT_WARN
    return f"{f.header}: numero scritto come testo, verrà letto come numero"


# --- the book ---------------------------------------------------------------------

_V, _R, _P = Stage.VALIDATOR, Stage.READER, Stage.PREVIOUS

RULES: tuple[Rule, ...] = (
    # --- how values are read (reported by the reader) --------------------------------
    Rule(
        "L01",
        A,
        "Numero scritto come testo",
        "Il valore è stato interpretato come numero: scrivere solo cifre, senza spazi.",
        _R,
        numbers,
        number_as_text,
        _warn_text,
    ),
    Rule(
        "L02",
        A,
        "Risposta SI/NO interpretata",
        "Scegliere SI o NO dall'elenco a tendina della cella.",
        _R,
        yes_no,
        lambda f, _s: all_of(
            Not(IsBlank(Cell(f.id))),
            cmp(ReadYesNo(f.id), "<>", Text("")),
            Not(any_of(Exact(Trim(Cell(f.id)), "SI"), Exact(Trim(Cell(f.id)), "NO"))),
        ),
        lambda f, _s: f"{_letter(f)}risposta scritta a mano: scegliere SI o NO dall'elenco",
    ),
    Rule(
        "L03",
        A,
        "Percentuale interpretata",
        "Scrivere il numero di punti percentuali senza simbolo, es. 10 per indicare 10%.",
        _R,
        percents,
        lambda f, _s: percent_interpreted(f),
        _warn_text,
    ),
    Rule(
        "L04",
        A,
        "Cella vuota: considerata 0",
        "Se il valore è zero scrivere 0, così è chiaro che il dato è stato verificato.",
        _R,
        count_inputs,
        lambda f, _s: IsBlank(Cell(f.id)),
        lambda f, _s: f"{f.header}: cella vuota, scrivere 0 se non ci sono unità",
    ),
    Rule(
        "L05",
        E,
        "Valore non numerico",
        "Scrivere solo cifre, es. 3. Se il dato è zero scrivere 0.",
        _R,
        numbers,
        not_a_number,
        lambda f, _s: f"{f.header}: non è un numero, scrivere solo cifre",
    ),
    Rule(
        "L06",
        E,
        "Risposta non valida: attesi SI o NO",
        "Scegliere SI o NO dall'elenco a tendina della cella.",
        _R,
        yes_no,
        lambda f, _s: all_of(Not(IsBlank(Cell(f.id))), cmp(ReadYesNo(f.id), "=", Text(""))),
        lambda f, _s: f"{_letter(f)}scegliere SI oppure NO dall'elenco",
    ),
    # --- the rules of regole.md ------------------------------------------------------
    Rule(
        "R0",
        E,
        "Valore fuori dai limiti",
        "I conteggi sono numeri interi maggiori o uguali a 0; le percentuali sono "
        "comprese tra 0 e 100.",
        _V,
        numbers,
        lambda f, _s: out_of_bounds(f),
        lambda f, _s: (
            f"{f.header}: scrivere un numero intero maggiore o uguale a 0"
            if f.kind is Kind.COUNT
            else f"{f.header}: una percentuale tra 0 e 100"
        ),
    ),
    Rule(
        "R1",
        E,
        "a) Totale unità diverso da SAP + SAS",
        "Il totale delle unità immobiliari è la somma di alloggi SAP e SAS.",
        _V,
        only("a_totale"),
        total_mismatch,
        fixed("a) il totale è stato modificato: deve essere SAP + SAS"),
    ),
    Rule(
        "R2",
        E,
        "f) Totale assegnabili diverso da b + c + d + e",
        "Il totale delle unità assegnabili è la somma delle lettere b, c, d ed e.",
        _V,
        only("f_totale_assegnabili"),
        total_mismatch,
        fixed("f) il totale è stato modificato: deve essere b + c + d + e"),
    ),
    Rule(
        "R3",
        E,
        "g) Soglia indigenti non valida",
        "La soglia va indicata solo dai Comuni e solo se superiore al 20% (fino al 100%). "
        "Se il Comune non fissa una soglia più alta lasciare la cella vuota.",
        _V,
        only("g_soglia_indigenti"),
        lambda f, _s: all_of(
            valid(f),
            ReadsAsNumber(f.id),
            cmp(Read(f.id), "<>", 0),
            any_of(IsAler(), cmp(Read(f.id), "<=", 20)),
        ),
        fixed(
            "g) la soglia va indicata solo se superiore al 20% (massimo 100); "
            "altrimenti lasciare vuoto"
        ),
    ),
    Rule(
        "R4",
        E,
        "i) Quota Forze di Polizia non valida",
        "La quota per Forze di Polizia e Vigili del Fuoco è indicata solo dai Comuni "
        "ed è compresa tra 0 e 10 (per cento).",
        _V,
        only("i_forze_polizia"),
        lambda f, _s: all_of(
            valid(f),
            ReadsAsNumber(f.id),
            any_of(all_of(IsAler(), cmp(Read(f.id), "<>", 0)), cmp(Read(f.id), ">", 10)),
        ),
        fixed("i) la quota deve essere tra 0 e 10 (per cento)"),
    ),
    Rule(
        "R5",
        A,
        "j) Unità SAT oltre il 10%",
        "Verificare il numero di unità destinate ai servizi abitativi transitori.",
        _V,
        only("j_sat"),
        over_sat,
        _sat_text,
    ),
    Rule(
        "R6",
        E,
        "h) Categoria aggiuntiva senza motivazione",
        "Se si indica SI, descrivere la categoria e la motivazione nella cella 'Motivazione'.",
        _V,
        only("h_motivazione"),
        lambda f, _s: all_of(yes("h_categoria_aggiuntiva"), IsBlank(Cell(f.id))),
        fixed("h) con SI descrivere categoria e motivazione"),
        Applies.COMUNI,
    ),
    Rule(
        "R7",
        A,
        "b) Unità in carenza manutentiva oltre gli alloggi SAP",
        "Verificare: le unità in carenza manutentiva sono di norma parte degli alloggi "
        "SAP indicati in a).",
        _V,
        only("b_carenza_manutentiva"),
        over_sap,
        lambda f, _s: f"{_letter(f)}valore superiore agli alloggi SAP indicati in a): verificare",
    ),
    Rule(
        "R8",
        A,
        "d) Unità in turnover oltre gli alloggi SAP",
        "Verificare: le unità che si libereranno sono di norma parte degli alloggi SAP "
        "indicati in a).",
        _V,
        only("d_turnover"),
        over_sap,
        lambda f, _s: f"{_letter(f)}valore superiore agli alloggi SAP indicati in a): verificare",
    ),
    Rule(
        "R12",
        A,
        "k) Assegnazioni dell'anno precedente oltre gli alloggi SAP",
        "Verificare il numero di alloggi SAP assegnati nell'anno precedente.",
        _V,
        only("k_assegnate_anno_precedente"),
        over_sap,
        lambda f, _s: f"{_letter(f)}valore superiore agli alloggi SAP indicati in a): verificare",
    ),
    Rule(
        "R17",
        A,
        "b) + d) oltre gli alloggi SAP",
        "Verificare le lettere b) e d): le unità in carenza manutentiva e quelle che si "
        "libereranno sono alloggi SAP dell'ente, quindi insieme non superano di norma gli "
        "alloggi SAP indicati in a).",
        _V,
        only("d_turnover"),
        over_sap_sum,
        fixed("b) + d) superano gli alloggi SAP indicati in a): verificare"),
    ),
    Rule(
        "R18",
        A,
        "Valore molto superiore al patrimonio dell'ente",
        "Verificare il valore: supera di molto tutte le unità (SAP e SAS) indicate in a). "
        "Controllare che non sia stato scritto per errore un altro numero (es. un codice). "
        "Se il dato è corretto (es. nuove costruzioni, lettera c), ignorare l'avviso.",
        _V,
        only(*STOCK_BOUNDED),
        over_stock,
        lambda f, s: (
            f"{_letter(f)}valore oltre le unità indicate in a) più {s.margine_plausibilita:g}: "
            "verificare"
        ),
    ),
    Rule(
        "R11",
        A,
        "Solo alloggi SAS: le lettere b)–f) riguardano solo i SAP",
        "Verificare: l'ente dichiara unità assegnabili ma nessun alloggio SAP.",
        _V,
        only("f_totale_assegnabili"),
        lambda _f, _s: all_of(
            cmp(Read("a_sap"), "=", 0),
            cmp(Read("a_sas"), ">", 0),
            cmp(
                Add(
                    tuple(
                        Read(k)
                        for k in ("b_carenza_manutentiva", "d_turnover", "e_conferite_privati")
                    )
                ),
                ">",
                0,
            ),
        ),
        fixed("Solo alloggi SAS: le lettere b)–f) contano solo alloggi SAP, verificare"),
    ),
    Rule(
        "R16",
        E,
        "h) Categoria aggiuntiva indicata dall'ALER",
        "Lasciare la cella vuota: la lettera h) riguarda solo i Comuni.",
        _V,
        only("h_categoria_aggiuntiva"),
        lambda f, _s: yes(f.id),
        fixed("h) la categoria aggiuntiva è indicata solo dai Comuni"),
        Applies.ALER,
    ),
    Rule(
        "V01",
        A,
        "Referente non indicato",
        "Indicare nome e recapito (e-mail o telefono) della persona da contattare.",
        _V,
        only("referente_nome"),
        lambda _f, _s: any_of(
            IsBlank(Cell("referente_nome")),
            all_of(IsBlank(Cell("referente_email")), IsBlank(Cell("referente_telefono"))),
        ),
        fixed("Indicare il referente con e-mail o telefono"),
    ),
    Rule(
        "V02",
        A,
        "Indirizzo e-mail del referente non valido",
        "Scrivere un indirizzo nella forma nome@dominio.it.",
        _V,
        only("referente_email"),
        lambda f, _s: all_of(Not(IsBlank(Cell(f.id))), Not(email_ok(Trim(Cell(f.id))))),
        fixed("E-mail del referente non valida"),
    ),
    # --- against the previous year's raccolta ([confronto] precedente) ----------------
    Rule(
        "R13",
        A,
        "a) Alloggi SAP dimezzati o raddoppiati rispetto all'anno precedente",
        "Verificare gli alloggi SAP della lettera a): vanno indicati tutti e soli quelli "
        "di proprietà dell'ente. Se il dato è corretto (vendite, demolizioni, nuove "
        "costruzioni), ignorare l'avviso.",
        _P,
        only("a_sap"),
        stock_jump(),
        fixed(""),
    ),
    Rule(
        "R15",
        A,
        "a) Alloggi SAS dimezzati o raddoppiati rispetto all'anno precedente",
        "Verificare gli alloggi SAS della lettera a) (e che non siano stati scambiati con "
        "i SAP). Se il dato è corretto, ignorare l'avviso.",
        _P,
        only("a_sas"),
        stock_jump(),
        fixed(""),
    ),
    Rule(
        "R14",
        A,
        "f) Unità assegnabili oltre gli alloggi SAP dell'anno precedente",
        "Verificare le lettere b)–e): le unità assegnabili sono di norma una parte degli "
        "alloggi SAP dell'ente. Se il dato è corretto (es. nuove costruzioni, lettera c), "
        "ignorare l'avviso.",
        _P,
        only("f_totale_assegnabili"),
        lambda f, _s: all_of(
            IsWholeCount(Value(f.id)),
            IsWholeCount(Previous("a_sap")),
            cmp(Value(f.id), ">", Previous("a_sap")),
        ),
        fixed(""),
    ),
)

RULE_BY_CODE: dict[str, Rule] = {r.code: r for r in RULES}


@functools.lru_cache(maxsize=4096)
def condition_of(code: str, field_id: str, schema: Schema, settings: Settings) -> Expr:
    """The tree of a rule on a field, built once per schema and settings."""
    return RULE_BY_CODE[code].when(schema.field_by_id[field_id], Scope(schema, settings))


def depends_on(code: str, field_id: str, schema: Schema, settings: Settings) -> tuple[str, ...]:
    """The typed numbers a rule on a field reads besides the field itself (a computed
    total stands for its parts), in the schema's order."""
    read: set[str] = set()
    for k in condition_of(code, field_id, schema, settings).fields():
        f = schema.field_by_id.get(k)
        if f is not None and f.role is Role.FORMULA and f.sum_of:
            read |= set(f.sum_of)
        else:
            read.add(k)
    return tuple(f.id for f in numbers(schema) if f.id in read and f.id != field_id)


@functools.lru_cache(maxsize=4096)
def unverifiable_of(code: str, field_id: str, schema: Schema, settings: Settings) -> Expr | None:
    """When a validator's rule on a field cannot be verified: a number it reads besides
    the field cannot be read (L05 there). Written once: the validator skips the rule
    (one L08 avviso instead) and the template's row shows ? ("non verificabile"), so a
    D10 = "12 alloggi" does not fire the rules as if the alloggi SAP were 0. The field's
    own value is left out: L05 is reported on it, and the rules read it as 0 only in
    ways that do not fire."""
    if RULE_BY_CODE[code].stage is not Stage.VALIDATOR:
        return None
    deps = depends_on(code, field_id, schema, settings)
    if not deps:
        return None
    scope = Scope(schema, settings)
    return any_of(*(not_a_number(schema.field_by_id[d], scope) for d in deps))
