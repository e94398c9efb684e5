"""Where everything sits on the template's *Scheda* sheet, derived from the schema.

The template writes its cells here, the reader looks for them here, `fill` fills them
here and the tests find their cells here: no cell address is written anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from xlsxwriter.utility import xl_rowcol_to_cell

from piano_abitativo.core.schema import SCHEMA, Kind, Role, Schema

# Columns of the "Scheda" sheet (0-based for XlsxWriter).
COL_KEY, COL_LETTER, COL_LABEL, COL_VALUE, COL_HELP = 0, 1, 2, 3, 4
KEY_HEADER = "#campo"
VALUE_HEADER = "Valore"
NOT_APPLICABLE = "non applicabile"

OK, WARN, BAD, NA = "✔", "!", "✖", "–"


@dataclass(frozen=True)
class Check:
    """One live self-check row of the template, mirrored by the Python validator.

    `errors`/`warnings` are the problem codes the validator reports (on `field`) in the
    cases where the row shows ✖ or ! respectively.
    """

    id: str
    field: str
    description: str
    errors: frozenset[str]
    warnings: frozenset[str]
    comuni_only: bool = False


@dataclass
class Layout:
    """Where each field and each check sits on the Scheda sheet (0-based rows)."""

    schema: Schema = SCHEMA
    checks: tuple[Check, ...] = ()
    field_rows: dict[str, int] = field(default_factory=dict)
    section_rows: dict[str, int] = field(default_factory=dict)
    check_rows: dict[str, int] = field(default_factory=dict)
    header_row: int = 3
    summary_row: int = 0
    last_row: int = 0

    def cell(self, field_id: str) -> str:
        """A1 address of a field's value cell, e.g. 'D10'."""
        return str(xl_rowcol_to_cell(self.field_rows[field_id], COL_VALUE))

    def abs_ref(self, field_id: str) -> str:
        return str(xl_rowcol_to_cell(self.field_rows[field_id], COL_VALUE, True, True))


def _checks(schema: Schema) -> tuple[Check, ...]:
    out: list[Check] = []
    for f in schema.fields:
        if f.role is Role.INPUT and f.kind is Kind.COUNT:
            out.append(
                Check(
                    f"num_{f.id}",
                    f.id,
                    f"{f.section}) {f.header}: numero intero ≥ 0",
                    frozenset({"R0", "L05"}),
                    frozenset({"L01", "L04"}),
                )
            )
    out += [
        Check("R1", "a_totale", "a) Totale = SAP + SAS", frozenset({"R1", "M13"}), frozenset()),
        Check(
            "R2",
            "f_totale_assegnabili",
            "f) Totale = b + c + d + e",
            frozenset({"R2", "M13"}),
            frozenset(),
        ),
        Check(
            "R3",
            "g_soglia_indigenti",
            "g) Soglia indigenti: vuota oppure oltre il 20%",
            frozenset({"R3", "R0", "L05"}),
            frozenset({"L01", "L03"}),
            comuni_only=True,
        ),
        Check(
            "h_valore",
            "h_categoria_aggiuntiva",
            "h) Categoria aggiuntiva: SI oppure NO",
            frozenset({"L06"}),
            frozenset({"L02"}),
            comuni_only=True,
        ),
        Check(
            "R6",
            "h_motivazione",
            "h) Con SI serve la motivazione",
            frozenset({"R6"}),
            frozenset(),
            comuni_only=True,
        ),
        Check(
            "R4",
            "i_forze_polizia",
            "i) Quota Forze di Polizia tra 0 e 10%",
            frozenset({"R4", "R0", "L05"}),
            frozenset({"L01", "L03"}),
            comuni_only=True,
        ),
        Check(
            "R5",
            "j_sat",
            "j) Unità SAT entro il 10% degli alloggi SAP",
            frozenset(),
            frozenset({"R5"}),
        ),
        Check(
            "R7",
            "b_carenza_manutentiva",
            "b) Non oltre gli alloggi SAP di a)",
            frozenset(),
            frozenset({"R7"}),
        ),
        Check(
            "R8", "d_turnover", "d) Non oltre gli alloggi SAP di a)", frozenset(), frozenset({"R8"})
        ),
        Check(
            "R12",
            "k_assegnate_anno_precedente",
            "k) Non oltre gli alloggi SAP di a)",
            frozenset(),
            frozenset({"R12"}),
        ),
        Check(
            "R11",
            "f_totale_assegnabili",
            "b)–f) contano solo alloggi SAP",
            frozenset(),
            frozenset({"R11"}),
        ),
        Check(
            "V01",
            "referente_nome",
            "Referente: nome e un recapito",
            frozenset(),
            frozenset({"V01"}),
        ),
        Check(
            "V02", "referente_email", "Referente: e-mail valida", frozenset(), frozenset({"V02"})
        ),
    ]
    return tuple(out)


def build_layout(schema: Schema) -> Layout:
    """The row of every field, section title and check, in the schema's order."""
    lay = Layout(schema=schema, checks=_checks(schema))
    row = lay.header_row + 1
    section_done: set[str] = set()
    for f in schema.fields:
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
