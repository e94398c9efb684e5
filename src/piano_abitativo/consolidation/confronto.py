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
`Confronto.solo_precedente`, and the previous totals include them, as last year's plan
printed them.

Loads are kept in `Raccolta.cache`: last year's ledger is read once per raccolta object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piano_abitativo.consolidation.changes import Confronto, EnteChange, FieldChange, _num
from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.consolidation.context import (
    LOADED_FROM,
    match_previous,
    previous_consolidation,
)
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente, Registry
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Schema


def fields_confrontati(schema: Schema) -> tuple[Field, ...]:
    """The fields compared, in schema order: every count of the plan, and the
    percentages (g) and i))."""
    return tuple(f for f in schema.plan_fields if f.kind in (Kind.COUNT, Kind.PERCENT))


#: The fields compared for the default schema.
FIELDS_CONFRONTATI: tuple[Field, ...] = fields_confrontati(SCHEMA)


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
) -> Confronto:
    """Each ente of `current` against the same ente of `previous` (codice, then name).

    `raccolta_precedente` defaults to the folder `previous_consolidation` loaded
    `previous` from (Path() if it did not).
    """
    registry = Registry([s.ente for s in current.enti])
    matched, unmatched = match_previous(registry, previous)
    fields = fields_confrontati(current.schema)
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
    return Confronto(
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


@dataclass(frozen=True)
class LikeForLike:
    """The totals of the enti with a valid return in both years: the only ones whose
    change means something while the raccolta is still open (26 enti last year against
    the 6 that have answered so far is not a drop)."""

    #: enti of this year's registry with a valid return in both years
    both: int
    #: enti of this year's registry that answered last year and not (yet) this year
    waiting: int
    #: enti that answered this year only
    new: int
    #: field id -> (previous, current) summed over the `both` enti, for every total field
    totals: dict[str, tuple[int | float, int | float]]


def like_for_like(confronto: Confronto) -> LikeForLike:
    """`confronto`'s totals restricted to the enti present in both years."""
    both = [e for e in confronto.enti if e.answered_previous and e.answered_current]

    def total(fid: str, year: str) -> int | float:
        values = (getattr(fc, year) for e in both for fc in e.fields if fc.field_id == fid)
        return sum(v for v in values if _num(v))

    return LikeForLike(
        both=len(both),
        waiting=sum(1 for e in confronto.enti if e.answered_previous and not e.answered_current),
        new=sum(1 for e in confronto.enti if e.answered_current and not e.answered_previous),
        totals={fid: (total(fid, "previous"), total(fid, "current")) for fid in confronto.totals},
    )


def confronta(r: Raccolta, current: Consolidation) -> Confronto | None:
    """`compare` with last year's consolidation of `r`; None when there is none (see
    `previous_notice` for why)."""
    prev = previous_consolidation(r)
    if prev is None:
        return None
    return compare(current, prev, raccolta_precedente=LOADED_FROM.get(prev.raccolta_id))
