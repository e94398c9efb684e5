"""The template's live check rows, made of the rule book's conditions.

Each row tests its cases in order (a case is a rule on a field) and shows the symbol of
the first that holds (✖ for an errore, ! for an avviso), else ✔; the rows of the
Comuni show – in the ALER's template. The validator mirrors each row: the row is ✖ (!)
exactly when the validator reports one of the row's errori (avvisi) on the row's field.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

from piano_abitativo.core.rules.book import (
    BAD,
    NA,
    OK,
    RULE_BY_CODE,
    UNKNOWN,
    WARN,
    Rule,
    condition_of,
    unverifiable_of,
)
from piano_abitativo.core.rules.codes import Severity
from piano_abitativo.core.rules.conditions import Scope
from piano_abitativo.core.rules.expr import Env, Expr, truth
from piano_abitativo.core.schema import Field, Kind, Role, Schema


@dataclass(frozen=True)
class Case:
    """One rule tested by a row, on one field."""

    code: str
    field: str

    @property
    def rule(self) -> Rule:
        return RULE_BY_CODE[self.code]

    def condition(self, scope: Scope) -> Expr:
        return condition_of(self.code, self.field, scope.schema, scope.settings)

    def unverifiable(self, scope: Scope) -> Expr | None:
        """When the case cannot be verified (a number it reads is not a number)."""
        return unverifiable_of(self.code, self.field, scope.schema, scope.settings)

    def symbol(self) -> str:
        return BAD if self.rule.severity is Severity.ERRORE else WARN


@dataclass(frozen=True)
class Check:
    """One live self-check row of the template, mirrored by the Python validator.

    `errors`/`warnings` are the problem codes the validator reports (on `field`) in the
    cases where the row shows ✖ or ! respectively."""

    id: str
    field: str
    description: str
    cases: tuple[Case, ...] = ()
    #: codes the row answers for that no formula can see (a total typed over: M13)
    also_errors: frozenset[str] = frozenset()
    comuni_only: bool = False
    ok_text: str = ""
    errors: frozenset[str] = dc_field(init=False)
    warnings: frozenset[str] = dc_field(init=False)

    def __post_init__(self) -> None:
        errs = {c.code for c in self.cases if c.symbol() == BAD} | set(self.also_errors)
        warns = {c.code for c in self.cases if c.symbol() == WARN}
        object.__setattr__(self, "errors", frozenset(errs))
        object.__setattr__(self, "warnings", frozenset(warns))

    @property
    def ok_message(self) -> str:
        return self.ok_text or f"{self.description}: corretto"

    def verdict(self, env: Env) -> str:
        """The row's symbol, computed in Python from the same conditions."""
        if self.comuni_only and env.aler:
            return NA
        scope = Scope(env.schema, env.settings)
        for case in self.cases:
            guard = case.unverifiable(scope)
            if guard is not None and truth(guard, env):
                return UNKNOWN
            if truth(case.condition(scope), env):
                return case.symbol()
        return OK


def _cases(f: Field, *codes: str) -> tuple[Case, ...]:
    return tuple(Case(c, f.id) for c in codes)


def check_rows(schema: Schema) -> tuple[Check, ...]:
    """The rows of a schema: one per typed count (generic), then the rules' rows."""
    by_id = schema.field_by_id
    out: list[Check] = []
    for f in schema.fields:
        if f.role is Role.INPUT and f.kind is Kind.COUNT:
            letter = f"{f.section}) " if f.section else ""
            out.append(
                Check(
                    f"num_{f.id}",
                    f.id,
                    f"{letter}{f.header}: numero intero ≥ 0",
                    _cases(f, "R0", "L05", "L04", "L01"),
                    ok_text=f"{f.header}: corretto",
                )
            )
    fixed: list[tuple[str, str, str, tuple[str, ...], frozenset[str], bool]] = [
        ("R1", "a_totale", "a) Totale = SAP + SAS", ("R1",), frozenset({"M13"}), False),
        (
            "R2",
            "f_totale_assegnabili",
            "f) Totale = b + c + d + e",
            ("R2",),
            frozenset({"M13"}),
            False,
        ),
        (
            "R3",
            "g_soglia_indigenti",
            "g) Soglia indigenti: vuota oppure oltre il 20%",
            ("R0", "R3", "L05", "L03", "L01"),
            frozenset(),
            True,
        ),
        (
            "h_valore",
            "h_categoria_aggiuntiva",
            "h) Categoria aggiuntiva: SI oppure NO",
            ("L06", "L02"),
            frozenset(),
            True,
        ),
        ("R6", "h_motivazione", "h) Con SI serve la motivazione", ("R6",), frozenset(), True),
        (
            "R4",
            "i_forze_polizia",
            "i) Quota Forze di Polizia tra 0 e 10%",
            ("R0", "R4", "L05", "L03", "L01"),
            frozenset(),
            True,
        ),
        (
            "R5",
            "j_sat",
            "j) Unità SAT entro il 10% degli alloggi SAP",
            ("R18", "R5"),
            frozenset(),
            False,
        ),
        (
            "R7",
            "b_carenza_manutentiva",
            "b) Non oltre gli alloggi SAP di a)",
            ("R18", "R7"),
            frozenset(),
            False,
        ),
        (
            "R18_c",
            "c_nuova_edificazione",
            "c) Non molto oltre le unità di a)",
            ("R18",),
            frozenset(),
            False,
        ),
        (
            "R8",
            "d_turnover",
            "d) Non oltre gli alloggi SAP di a)",
            ("R18", "R8"),
            frozenset(),
            False,
        ),
        (
            "R17",
            "d_turnover",
            "b) + d) non oltre gli alloggi SAP di a)",
            ("R17",),
            frozenset(),
            False,
        ),
        (
            "R18_e",
            "e_conferite_privati",
            "e) Non molto oltre le unità di a)",
            ("R18",),
            frozenset(),
            False,
        ),
        (
            "R12",
            "k_assegnate_anno_precedente",
            "k) Non oltre gli alloggi SAP di a)",
            ("R18", "R12"),
            frozenset(),
            False,
        ),
        (
            "R11",
            "f_totale_assegnabili",
            "b)–f) contano solo alloggi SAP",
            ("R11",),
            frozenset(),
            False,
        ),
        ("V01", "referente_nome", "Referente: nome e un recapito", ("V01",), frozenset(), False),
        ("V02", "referente_email", "Referente: e-mail valida", ("V02",), frozenset(), False),
    ]
    for cid, fid, text, codes, also, comuni in fixed:
        if fid in by_id:
            out.append(Check(cid, fid, text, _cases(by_id[fid], *codes), also, comuni))
    return tuple(out)
