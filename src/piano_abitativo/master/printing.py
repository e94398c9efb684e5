"""How the master's sheets are printed: how many A4 pages across a sheet needs to stay
readable, and the fixed scale of a sheet with page breaks (the charts)."""

from __future__ import annotations

import math

from piano_abitativo.master.model import SheetLayout

#: the printable width of an A4 page, in points, with the margins of `writer._finish_sheet`
#: (0.4" left and right)
_PRINTABLE_PT = {True: (11.69 - 0.8) * 72, False: (8.27 - 0.8) * 72}
#: the smallest scale at which a printed sheet stays readable: wider sheets are printed
#: on more than one page across (fit to that many pages wide, as tall as needed)
MIN_PRINT_SCALE = 0.7


def printed_width_pt(sh: SheetLayout, last_col: int) -> float:
    """The width of columns A..`last_col` on paper at 100%, in points (a column of width
    w is w * 7 + 5 pixels in Excel's default font; a pixel is 0.75 pt)."""
    return sum(int(sh.widths.get(c, 8.43) * 7 + 5) for c in range(last_col + 1)) * 0.75


def pages_across(sh: SheetLayout, last_col: int) -> int:
    """How many pages across the sheet is printed on: one, unless fitting its width to
    one page would shrink it below `MIN_PRINT_SCALE`."""
    page = _PRINTABLE_PT[sh.landscape] / MIN_PRINT_SCALE
    return max(1, math.ceil(printed_width_pt(sh, last_col) / page))


def fixed_print_scale(sh: SheetLayout, last_col: int) -> int:
    """The print scale (%) at which columns A..`last_col` fit one page across, with a
    margin for the programs' rounding: at most 100."""
    fit = 0.95 * _PRINTABLE_PT[sh.landscape] / printed_width_pt(sh, last_col)
    return max(10, min(100, int(100 * fit)))
