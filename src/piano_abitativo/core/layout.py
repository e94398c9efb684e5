"""Where everything sits on the template's *Scheda* sheet, derived from the schema.

The template writes its cells here, the reader looks for them here, `fill` fills them
here and the tests find their cells here: no cell address is written anywhere else.
The check rows themselves (`Check`) come from the rule book (`core.rules.rows`).

The identification (codice, denominazione, anno) sits in a box above the table, its
values in the column of the indications: the column of the values, where numbers are
typed, holds no text at all, because LibreOffice's AutoInput completes what is typed
from the text of the same column (typing 0 under the code "019025" stored 19025).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from piano_abitativo.core.rules.book import BAD, NA, OK, WARN
from piano_abitativo.core.rules.rows import Check, check_rows
from piano_abitativo.core.schema import SCHEMA, Role, Schema

# Columns of the "Scheda" sheet (0-based for XlsxWriter).
COL_KEY, COL_LETTER, COL_LABEL, COL_VALUE, COL_HELP = 0, 1, 2, 3, 4
#: the column of the identification's values (the box above the table)
COL_IDENT = COL_HELP
#: the first row of the identification box (under the title lines)
IDENT_FIRST_ROW = 3
KEY_HEADER = "#campo"
VALUE_HEADER = "Valore"
NOT_APPLICABLE = "non applicabile"


def xl_rowcol_to_cell(row: int, col: int, row_abs: bool = False, col_abs: bool = False) -> str:
    """The A1 address of a 0-based (row, col), ``$`` before an absolute part: what
    `xlsxwriter.utility.xl_rowcol_to_cell` gives (a test checks it), without importing
    XlsxWriter, which reading and validating a file do not need (tests/test_imports.py)."""
    letters = ""
    n = col + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{'$' if col_abs else ''}{letters}{'$' if row_abs else ''}{row + 1}"


__all__ = [
    "BAD",
    "CHECKS",
    "COL_IDENT",
    "LAYOUT",
    "NA",
    "OK",
    "WARN",
    "Check",
    "Layout",
    "layout_for",
]


@dataclass
class Layout:
    """Where each field and each check sits on the Scheda sheet (0-based rows)."""

    schema: Schema = SCHEMA
    checks: tuple[Check, ...] = ()
    field_rows: dict[str, int] = field(default_factory=dict)
    #: the column of each field's value (COL_VALUE, or COL_IDENT for the identification)
    field_cols: dict[str, int] = field(default_factory=dict)
    section_rows: dict[str, int] = field(default_factory=dict)
    check_rows: dict[str, int] = field(default_factory=dict)
    header_row: int = 3
    summary_row: int = 0
    last_row: int = 0

    def col(self, field_id: str) -> int:
        """0-based column of a field's value cell."""
        return self.field_cols.get(field_id, COL_VALUE)

    def cell(self, field_id: str) -> str:
        """A1 address of a field's value cell, e.g. 'D10'."""
        return str(xl_rowcol_to_cell(self.field_rows[field_id], self.col(field_id)))

    def abs_ref(self, field_id: str) -> str:
        return str(xl_rowcol_to_cell(self.field_rows[field_id], self.col(field_id), True, True))

    def ident_fields(self) -> tuple[str, ...]:
        """The fields of the identification box, top to bottom."""
        return tuple(f for f, c in self.field_cols.items() if c == COL_IDENT)

    def symbol_ref(self, check_id: str) -> str:
        """Absolute A1 address of a check row's symbol cell."""
        return str(xl_rowcol_to_cell(self.check_rows[check_id], COL_LETTER, True, True))


def build_layout(schema: Schema) -> Layout:
    """The row of every field, section title and check, in the schema's order."""
    lay = Layout(schema=schema, checks=check_rows(schema))
    idents = [f for f in schema.fields if f.role is Role.IDENT]
    for i, f in enumerate(idents):
        lay.field_rows[f.id] = IDENT_FIRST_ROW + i
        lay.field_cols[f.id] = COL_IDENT
    # a blank row between the box and the table's header
    lay.header_row = IDENT_FIRST_ROW + len(idents) + (1 if idents else 0)
    row = lay.header_row + 1
    section_done: set[str] = set()
    for f in schema.fields:
        if f.role is Role.IDENT:
            continue
        lay.field_cols[f.id] = COL_VALUE
        if f.section and f.section not in section_done:
            section_done.add(f.section)
            single = len(schema.fields_of_section(f.section)) == 1
            lay.section_rows[f.section] = row
            if single:
                # one-field sections: the title is the label of the value row
                lay.field_rows[f.id] = row
                row += 1
                continue
            row += 1
        elif f.id == "referente_nome":
            lay.section_rows["referente"] = row
            row += 1
        lay.field_rows[f.id] = row
        row += 1
    row += 1
    lay.section_rows["controlli"] = row
    row += 1
    lay.summary_row = row
    row += 1
    for chk in lay.checks:
        lay.check_rows[chk.id] = row
        row += 1
    lay.last_row = row - 1
    return lay


@cache
def layout_for(schema: Schema) -> Layout:
    """The layout of a schema (made once per schema)."""
    return build_layout(schema)


#: the layout of the default schema
LAYOUT = layout_for(SCHEMA)
CHECKS: tuple[Check, ...] = LAYOUT.checks
