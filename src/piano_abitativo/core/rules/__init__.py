"""The rule book (`book`), its conditions (`expr`), the template's check rows (`rows`)
and the catalogue of every code, made from both the rule book and the plain codes."""

from __future__ import annotations

from piano_abitativo.core.rules.book import RULE_BY_CODE, RULES, Applies, Rule, Stage
from piano_abitativo.core.rules.codes import PLAIN_CODES, ProblemType, Severity
from piano_abitativo.core.rules.conditions import Scope
from piano_abitativo.core.rules.rows import Case, Check, check_rows


def _order(code: str) -> tuple[int, int]:
    return "FMLRVD".index(code[0]), int(code[1:])


#: Every problem the reader and the validator can report, in the order of the docs.
#: Codes are a public contract: never reuse or rename one.
CATALOGUE: dict[str, ProblemType] = {
    t.code: t
    for t in sorted((*PLAIN_CODES, *(r.type for r in RULES)), key=lambda t: _order(t.code))
}

__all__ = [
    "CATALOGUE",
    "RULES",
    "RULE_BY_CODE",
    "Applies",
    "Case",
    "Check",
    "ProblemType",
    "Rule",
    "Scope",
    "Severity",
    "Stage",
    "check_rows",
]
