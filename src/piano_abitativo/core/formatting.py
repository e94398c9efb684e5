"""Numbers and dates as an Italian reader expects them."""

from __future__ import annotations


def it_number(n: int | float) -> str:
    """1008 → '1.008', as the plan prints numbers."""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}".replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{int(n):,}".replace(",", ".")
