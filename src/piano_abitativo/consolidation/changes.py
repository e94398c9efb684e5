"""What the comparison with last year gives, as data: per ente and per field, last
year's and this year's value (`consolidation.confronto` computes it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from piano_abitativo.core.registry import Ente


def _num(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class FieldChange:
    """One field of one ente in the two years; None where the ente did not answer (or,
    for g) and i), gave no percentage)."""

    field_id: str
    previous: int | float | str | None
    current: int | float | str | None

    @property
    def delta(self) -> int | float | None:
        """current - previous when both are numbers, else None."""
        a, b = self.previous, self.current
        if not (_num(a) and _num(b)):
            return None
        d = b - a
        return round(d, 6) if isinstance(d, float) else d


@dataclass(frozen=True)
class EnteChange:
    """One ente in the two years."""

    #: the current registry's ente (for `Confronto.solo_precedente`: last year's)
    ente: Ente
    #: it had a valid return last year
    answered_previous: bool
    #: it has a valid return this year
    answered_current: bool
    #: one per `FIELDS_CONFRONTATI`, schema order
    fields: tuple[FieldChange, ...]

    def field(self, field_id: str) -> FieldChange:
        return next(fc for fc in self.fields if fc.field_id == field_id)


@dataclass(frozen=True)
class Confronto:
    """This year's consolidation against last year's."""

    anno_precedente: int
    #: the folder of last year's raccolta (as loaded)
    raccolta_precedente: Path
    #: current plan order (`Consolidation.enti`); only enti that answered in at least one
    #: of the two years
    enti: tuple[EnteChange, ...]
    #: field id -> (previous total, current total), for every `Schema.total_fields`;
    #: the previous totals are last year's plan totals, `solo_precedente` included
    totals: dict[str, tuple[int, int]]
    #: enti that answered last year and are not in this year's registry (matched neither
    #: by codice nor by name), last year's plan order; `answered_current` is False
    solo_precedente: tuple[EnteChange, ...] = ()

    def change(self, codice: str) -> EnteChange | None:
        """The change of the ente with this (current) codice, if it answered in a year."""
        return next((c for c in self.enti if c.ente.codice == codice), None)
