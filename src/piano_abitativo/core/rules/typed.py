"""How the text a clerk types is read: shared by the reader and the rule book, so the
template's formulas and the reader agree on what counts as SI, NO or a number."""

from __future__ import annotations

import math
import re
from typing import Any

from piano_abitativo.core.schema import Kind

INT_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+$")
NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")
#: answers read as SI / NO (upper-cased, trimmed); "SI" and "NO" exactly are silent
YES: tuple[str, ...] = ("SI", "SÌ", "SÍ", "S", "Y", "YES", "X", "VERO", "TRUE")
NO: tuple[str, ...] = ("NO", "N", "FALSO", "FALSE")


def as_text(v: Any) -> str:
    """A cell's content as text, as the reader keeps it (integral floats without '.0')."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def parse_number_text(text: str, *, kind: Kind) -> float | None:
    """The number a clerk meant by `text`, or None ('1.008' is 1008 in a count)."""
    t = text.replace("\u00a0", " ").strip().replace(" ", "")
    value: float | None = None
    if kind is Kind.COUNT and INT_THOUSANDS.match(t):
        value = float(t.replace(".", ""))
    elif NUMBER.match(t):
        value = float(t.replace(",", "."))
    return value if value is not None and math.isfinite(value) else None


def fmt(x: float) -> str:
    """A number the Italian way: 1.008, 2,5."""
    if not math.isfinite(x) or abs(x) >= 1e15:
        return f"{x:g}".replace(".", ",")
    if float(x).is_integer():
        return f"{int(x):,}".replace(",", ".")
    return f"{x:g}".replace(".", ",")
