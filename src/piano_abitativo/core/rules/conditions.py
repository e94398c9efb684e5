"""The conditions of the rule book's rules, as expression trees (`core.rules.expr`).

Each is written once: the validator evaluates it in Python, the template renders it as
the formula of its live check row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from piano_abitativo.core.rules.expr import (
    Cell,
    Expr,
    IfError,
    IsBlank,
    IsError,
    IsNumber,
    IsText,
    IsWholeCount,
    Not,
    Number,
    Param,
    Text,
    all_of,
    any_of,
    cmp,
)
from piano_abitativo.core.rules.functions import (
    Add,
    Find,
    Int,
    Len,
    Max,
    Mul,
    N,
    Right,
    RoundBySetting,
    Substitute,
    Trim,
    percent_of,
)
from piano_abitativo.core.rules.reads import (
    Previous,
    Read,
    ReadsAsNumber,
    ReadYesNo,
    TextValue,
    Value,
)
from piano_abitativo.core.schema import Field, Kind, Role, Schema
from piano_abitativo.core.settings import Settings


@dataclass(frozen=True)
class Scope:
    """What a condition is written for: the schema of the raccolta and its settings."""

    schema: Schema
    settings: Settings


Condition = Callable[[Field, Scope], Expr]


def out_of_bounds(f: Field) -> Expr:
    """R0: a count not an integer within its bounds, a percentage outside [0, 100]."""
    x = Read(f.id)
    if f.kind is Kind.PERCENT:
        return all_of(ReadsAsNumber(f.id), any_of(cmp(x, "<", 0), cmp(x, ">", 100)))
    top = f.maximum if f.maximum is not None else 1e300
    return all_of(
        ReadsAsNumber(f.id),
        any_of(cmp(x, "<", f.minimum or 0), cmp(x, ">", top), cmp(x, "<>", Int(x))),
    )


def valid(f: Field) -> Expr:
    """Not an R0 error (a computed total is never one)."""
    if f.role is Role.FORMULA or f.kind not in (Kind.COUNT, Kind.PERCENT):
        return Number(1)
    return Not(out_of_bounds(f))


def percent_interpreted(f: Field) -> Expr:
    """L03: a fraction (0,1 is 10%) or a text with its % sign, read as points."""
    x, t = Cell(f.id), Trim(Cell(f.id))
    return any_of(
        all_of(IsNumber(x), cmp(x, ">", 0), cmp(x, "<", 1)),
        all_of(
            IsText(x),
            ReadsAsNumber(f.id),
            IfError(
                any_of(
                    cmp(Right(t), "=", Text("%")),
                    all_of(cmp(TextValue(t), ">", 0), cmp(TextValue(t), "<", 1)),
                ),
                Number(0),
            ),
        ),
    )


def number_as_text(f: Field, _s: Scope) -> Expr:
    cond = all_of(IsText(Cell(f.id)), ReadsAsNumber(f.id))
    if f.kind is Kind.PERCENT:
        return all_of(cond, Not(percent_interpreted(f)))
    return cond


def not_a_number(f: Field, _s: Scope) -> Expr:
    return all_of(Not(IsBlank(Cell(f.id))), Not(ReadsAsNumber(f.id)))


def total_mismatch(f: Field, s: Scope) -> Expr:
    """R1, R2: a cached total that is neither the sum of the parts as read nor the
    spreadsheet's own sum (which skips numbers typed as text)."""
    x = Cell(f.id)
    return all_of(
        IsNumber(x),
        cmp(x, "<>", Add(tuple(Read(k) for k in f.sum_of))),
        cmp(x, "<>", Add(tuple(N(Cell(k)) for k in f.sum_of))),
    )


def sat_limit(s: Scope) -> Expr:
    """R5's limit: the settings' percentage of the base, rounded as the settings say."""
    base = Max((Number(0), Read(s.settings.sat_base)))
    return RoundBySetting(percent_of(base, Param("sat_percentuale")), "sat_arrotondamento")


def over_sat(f: Field, s: Scope) -> Expr:
    base = s.schema.field_by_id[s.settings.sat_base]
    return all_of(valid(f), valid(base), cmp(Read(f.id), ">", sat_limit(s)))


def over_sap(f: Field, _s: Scope) -> Expr:
    return all_of(valid(f), cmp(Read(f.id), ">", Read("a_sap")))


def email_ok(t: Expr) -> Expr:
    """One @ after at least one character, a dot at least two after it, no space, not
    ending with a dot."""
    at = Find("@", t)
    return IfError(
        all_of(
            IsError(Find(" ", t)),
            cmp(Add((Len(t), Mul(Len(Substitute(t, "@", "")), Number(-1)))), "=", 1),
            cmp(at, ">", 1),
            IsNumber(Find(".", t, Add((at, Number(2))))),
            cmp(Right(t), "<>", Text(".")),
        ),
        Number(0),
    )


def stock_jump() -> Condition:
    """R13, R15: the stock is at most (or at least) a percentage of last year's."""

    def when(f: Field, _s: Scope) -> Expr:
        cur, prev = Value(f.id), Previous(f.id)
        return all_of(
            IsWholeCount(cur),
            IsWholeCount(prev),
            cmp(cur, "<>", prev),
            cmp(Max((cur, prev)), ">=", Param("confronto_minimo_alloggi")),
            any_of(
                cmp(cur, "<=", percent_of(prev, Param("confronto_minimo_percentuale"))),
                cmp(cur, ">=", percent_of(prev, Param("confronto_massimo_percentuale"))),
            ),
        )

    return when


def yes(f: str) -> Expr:
    """The SI/NO field `f` answered SI."""
    return cmp(ReadYesNo(f), "=", Text("SI"))


# --- plausibility against the stock of a) ------------------------------------------

#: R17: the units of b) and d) are SAP units the ente already owns
SAP_SHARES = ("b_carenza_manutentiva", "d_turnover")
#: R18: the counts compared with the ente's whole stock of a) (SAP + SAS)
STOCK_BOUNDED = (
    "b_carenza_manutentiva",
    "c_nuova_edificazione",
    "d_turnover",
    "e_conferite_privati",
    "j_sat",
    "k_assegnate_anno_precedente",
)


def sap_shares(schema: Schema) -> tuple[str, ...]:
    return tuple(k for k in SAP_SHARES if k in schema.field_by_id)


def over_sap_sum(_f: Field, s: Scope) -> Expr:
    """R17: b) + d) beyond the SAP stock of a) while each alone is within it (else R7
    or R8 already says so)."""
    parts = sap_shares(s.schema)
    sap = Read("a_sap")
    return all_of(
        valid(s.schema.field_by_id["a_sap"]),
        *(valid(s.schema.field_by_id[k]) for k in parts),
        *(cmp(Read(k), "<=", sap) for k in parts),
        cmp(Add(tuple(Read(k) for k in parts)), ">", sap),
    )


def stock(s: Scope) -> Expr:
    """The ente's whole stock of a): the parts of a) Totale (SAP + SAS) as read."""
    return Add(tuple(Read(k) for k in s.schema.field_by_id["a_totale"].sum_of))


def over_stock(f: Field, s: Scope) -> Expr:
    """R18: a count beyond the whole stock of a) by more than the margin (c) new
    buildings and e) units given by privates may add a few units, not thousands)."""
    parts = s.schema.field_by_id["a_totale"].sum_of
    return all_of(
        valid(f),
        *(valid(s.schema.field_by_id[k]) for k in parts),
        cmp(Read(f.id), ">", Add((stock(s), Param("margine_plausibilita")))),
    )
