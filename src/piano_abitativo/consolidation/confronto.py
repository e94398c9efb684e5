"""Year over year: a raccolta against last year's, named in its raccolta.toml::

    [confronto]
    precedente = "../raccolta-2025"   # relative to the raccolta folder, or absolute

Everything here is pure apart from loading last year's raccolta (config, registry, ledger)
and it never raises for a missing or unreadable previous raccolta: the comparison is then
simply absent, and `previous_notice` says why in Italian.

What last year's raccolta gives:

* `previous_values`: the plan values of each ente's used version last year, keyed by the
  ente's codice in *this* year's registry. Enti are matched by codice first, then by
  normalised name (R10), so a renamed or re-coded ente (e.g. the ALER) still matches.
  The validator checks them against this year's return (R13–R15, see
  `validate.check_previous`).
* `compare`: per ente and per field, last year's and this year's value and the change, and
  the plan totals of both years.

Enti that answered last year but are no longer in this year's registry (a merged comune, an
ente removed from enti.csv) are never dropped silently: `compare` lists them in
`YearOverYear.solo_precedente`, and the previous totals include them, as last year's plan
printed them.

Loads are kept in `Raccolta.cache`: last year's ledger is read once per raccolta object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.consolidation.context import (
    LOADED_FROM,
    match_previous,
    previous_consolidation,
)
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente, Registry
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Schema


def yoy_fields(schema: Schema) -> tuple[Field, ...]:
    """The fields compared, in schema order: every count of the plan, and the
    percentages (g) and i))."""
    return tuple(f for f in schema.plan_fields if f.kind in (Kind.COUNT, Kind.PERCENT))


#: The fields compared for the default schema.
YOY_FIELDS: tuple[Field, ...] = yoy_fields(SCHEMA)


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

    #: the current registry's ente (for `YearOverYear.solo_precedente`: last year's)
    ente: Ente
    #: it had a valid return last year
    answered_previous: bool
    #: it has a valid return this year
    answered_current: bool
    #: one per `YOY_FIELDS`, schema order
    fields: tuple[FieldChange, ...]

    def field(self, field_id: str) -> FieldChange:
        return next(fc for fc in self.fields if fc.field_id == field_id)


@dataclass(frozen=True)
class YearOverYear:
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


# --------------------------------------------------------------------------- comparison


def _change(
    ente: Ente, prev: Mapping[str, Any], cur: Mapping[str, Any], fields: tuple[Field, ...]
) -> EnteChange:
    return EnteChange(
        ente=ente,
        answered_previous=bool(prev),
        answered_current=bool(cur),
        fields=tuple(FieldChange(f.id, prev.get(f.id), cur.get(f.id)) for f in fields),
    )


def compare(
    current: Consolidation, previous: Consolidation, *, raccolta_precedente: Path | None = None
) -> YearOverYear:
    """Each ente of `current` against the same ente of `previous` (codice, then name).

    `raccolta_precedente` defaults to the folder `previous_consolidation` loaded
    `previous` from (Path() if it did not).
    """
    registry = Registry([s.ente for s in current.enti])
    matched, unmatched = match_previous(registry, previous)
    fields = yoy_fields(current.schema)
    enti = tuple(
        _change(
            s.ente,
            matched[s.ente.codice].values if s.ente.codice in matched else {},
            s.values,
            fields,
        )
        for s in current.enti
        if s.values or s.ente.codice in matched
    )
    prev_totals, cur_totals = previous.totals, current.totals
    return YearOverYear(
        anno_precedente=previous.anno,
        raccolta_precedente=(
            raccolta_precedente
            if raccolta_precedente is not None
            else LOADED_FROM.get(previous.raccolta_id, Path())
        ),
        enti=enti,
        totals={
            f.id: (prev_totals.get(f.id, 0), cur_totals[f.id]) for f in current.schema.total_fields
        },
        solo_precedente=tuple(_change(s.ente, s.values, {}, fields) for s in unmatched),
    )


def year_over_year(r: Raccolta, current: Consolidation) -> YearOverYear | None:
    """`compare` with last year's consolidation of `r`; None when there is none (see
    `previous_notice` for why)."""
    prev = previous_consolidation(r)
    if prev is None:
        return None
    return compare(current, prev, raccolta_precedente=LOADED_FROM.get(prev.raccolta_id))
