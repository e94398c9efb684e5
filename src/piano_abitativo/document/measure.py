"""The values as the plan prints them and the widths of the document's tables,
computed from their columns (Arial advance widths for the annex)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from piano_abitativo.consolidation.consolidate import EnteStatus
from piano_abitativo.core.formatting import it_number
from piano_abitativo.core.schema import Schema
from piano_abitativo.document.base import (
    ANNEX_WIDTH_CM,
    TEXT_WIDTH_CM,
)

if TYPE_CHECKING:
    pass

#: what the plan prints in place of a number that is not finite (NaN, infinity)
NOT_FINITE = "n.d. (valore non valido)"


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
    if isinstance(v, float) and not math.isfinite(v):
        return NOT_FINITE
    if isinstance(v, int | float):
        return it_number(v)
    return str(v)


def number_text(n: float) -> str:
    """A number as the plan prints it; one that is not finite is said to be invalid."""
    return it_number(n) if math.isfinite(n) else NOT_FINITE


def _signed(n: float) -> str:
    if not math.isfinite(n):
        return NOT_FINITE
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
