"""XlsxWriter's worksheet, with its preparation of a formula made cheap for ours.

Before writing a formula XlsxWriter tries some 30 regular-expression substitutions on
it (the `_xlfn.` prefixes of dynamic-array functions; some 80 more for the "future"
functions in conditional formats and tables): about 0.1 ms a formula, with 33,000
formulas in the master of 1,500 enti a second and a half of `consolida`. Each
substitution is ``\\bNAME\\(`` (one is ``\\SINGLE\\(``), so a formula whose every
call is a function none of them names comes out as XlsxWriter would leave it: without
its braces and its ``=``. `PLAIN_FUNCTIONS` are those functions (the test checks each
against XlsxWriter itself); any other formula goes through XlsxWriter's own code.
"""

from __future__ import annotations

import re

import xlsxwriter.worksheet

#: the functions the master's formulas call, which XlsxWriter never rewrites ("" is a
#: parenthesis without a function)
PLAIN_FUNCTIONS = frozenset(
    {"", "IF", "INT", "SUM", "COUNTIF", "COUNTIFS", "COUNTA", "OR", "AND", "NOT", "ROUND"}
)
#: each call in a formula: the run of word characters before a parenthesis
_CALLED = re.compile(r"(\w*)\(")


class Worksheet(xlsxwriter.worksheet.Worksheet):  # type: ignore[misc]
    """A worksheet that prepares a formula of plain functions without the substitutions;
    for every other formula exactly XlsxWriter's."""

    def _prepare_formula(self, formula: str, expand_future_functions: bool = False) -> str:
        if "_xlfn." not in formula and all(
            name in PLAIN_FUNCTIONS for name in _CALLED.findall(formula)
        ):
            if formula.startswith("{"):
                formula = formula[1:]
            if formula.startswith("="):
                formula = formula[1:]
            if formula.endswith("}"):
                formula = formula[:-1]
            return formula
        prepared: str = super()._prepare_formula(formula, expand_future_functions)
        return prepared
