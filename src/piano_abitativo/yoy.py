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

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from . import archive
from .consolidate import TOTAL_FIELDS, Consolidation, EnteStatus, consolidate
from .raccolta import Raccolta, RaccoltaError, load
from .registry import Ente, Registry
from .schema import PLAN_FIELDS, Field, Kind

#: The fields compared, in schema order: every count of the plan, and g) and i).
YOY_FIELDS: tuple[Field, ...] = tuple(
    f for f in PLAN_FIELDS if f in TOTAL_FIELDS or f.kind is Kind.PERCENT)

_RACCOLTA = "yoy.raccolta"
_CONSOLIDATION = "yoy.consolidation"
_VALUES = "yoy.values"
_FOR_VALIDATION = "yoy.for_validation"
_FINGERPRINT = "yoy.fingerprint"

#: folder of every previous raccolta loaded here, by raccolta id (for `compare`)
_LOADED_FROM: dict[str, Path] = {}


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
    #: field id -> (previous total, current total), for every `consolidate.TOTAL_FIELDS`;
    #: the previous totals are last year's plan totals, `solo_precedente` included
    totals: dict[str, tuple[int, int]]
    #: enti that answered last year and are not in this year's registry (matched neither
    #: by codice nor by name), last year's plan order; `answered_current` is False
    solo_precedente: tuple[EnteChange, ...] = ()

    def change(self, codice: str) -> EnteChange | None:
        """The change of the ente with this (current) codice, if it answered in a year."""
        return next((c for c in self.enti if c.ente.codice == codice), None)


# --------------------------------------------------------------------------- loading

def _load_previous(r: Raccolta) -> Raccolta:
    target = r.precedente_path or r.path
    where = f'{r.config_path.name}, [confronto] precedente = "{r.precedente}"'
    omitted = ("il confronto con l'anno precedente è omesso. Per ricollegarla: "
               f"piano-abitativo collega {r.path} --precedente CARTELLA")
    if not target.is_dir():
        raise RaccoltaError(f"La raccolta dell'anno precedente non si trova in {target} "
                            f"({where}): {omitted}")
    try:
        prev = load(target)
    except RaccoltaError as exc:
        raise RaccoltaError(f"La raccolta dell'anno precedente in {target} non si può "
                            f"leggere ({exc}): {omitted}") from exc
    if prev.anno >= r.anno or prev.id == r.id:
        raise RaccoltaError(f"La raccolta indicata come precedente ({where}) è dell'anno "
                            f"{prev.anno}, non di un anno prima del {r.anno}: {omitted}")
    # Last year's own comparison with the year before only adds avvisi, which never
    # change which version is used: it is not loaded (no chain of loads across years).
    prev.cache[_FOR_VALIDATION] = (None, None)
    return prev


def previous_raccolta(r: Raccolta) -> Raccolta | None:
    """Last year's raccolta; None when not configured. Raises `RaccoltaError` (Italian,
    naming raccolta.toml) when configured but missing, unreadable or not of an earlier
    year."""
    if not r.precedente:
        return None
    if _RACCOLTA not in r.cache:
        try:
            r.cache[_RACCOLTA] = _load_previous(r)
        except RaccoltaError as exc:
            r.cache[_RACCOLTA] = str(exc)
    got: Raccolta | str = r.cache[_RACCOLTA]
    if isinstance(got, str):
        raise RaccoltaError(got)
    return got


def previous_consolidation(r: Raccolta) -> Consolidation | None:
    """Last year's consolidation (its archived returns, revalidated if its settings
    changed); None when not configured, missing or unreadable."""
    if _CONSOLIDATION not in r.cache:
        cons: Consolidation | None = None
        try:
            prev = previous_raccolta(r)
            if prev is not None:
                cons = consolidate(prev, archive.receipts(prev))
                _LOADED_FROM[prev.id] = prev.path
        except (RaccoltaError, OSError):
            cons = None
        r.cache[_CONSOLIDATION] = cons
    got: Consolidation | None = r.cache[_CONSOLIDATION]
    return got


def _match(registry: Registry, previous: Consolidation
           ) -> tuple[dict[str, EnteStatus], list[EnteStatus]]:
    """Last year's enti with a valid return, by the codice of the same ente in `registry`
    (codice first, then normalised name); and those that match no ente."""
    matched: dict[str, EnteStatus] = {}
    left = [s for s in previous.enti if s.values]
    for by_codice in (True, False):  # codice first, then the normalised name
        rest: list[EnteStatus] = []
        for s in left:
            e = (registry.find(codice=s.ente.codice) if by_codice
                 else registry.find(nome=s.ente.denominazione))
            if e is not None and e.codice not in matched:
                matched[e.codice] = s
            else:
                rest.append(s)
        left = rest
    return matched, left


def previous_values(r: Raccolta) -> dict[str, dict[str, Any]]:
    """Current codice -> plan values (`consolidate.plan_values`) of last year's used
    version of the same ente; {} when there is no usable previous raccolta."""
    if _VALUES not in r.cache:
        cons = previous_consolidation(r)
        matched = _match(r.registry, cons)[0] if cons is not None else {}
        r.cache[_VALUES] = {codice: dict(s.values) for codice, s in matched.items()}
    got: dict[str, dict[str, Any]] = r.cache[_VALUES]
    return got


def previous_for_validation(r: Raccolta
                            ) -> tuple[int | None, Mapping[str, Mapping[str, Any]] | None]:
    """(last year, `previous_values`) for `Raccolta.validation_context`; (None, None)
    when there is nothing to compare with."""
    if _FOR_VALIDATION not in r.cache:
        cons = previous_consolidation(r) if r.precedente else None
        r.cache[_FOR_VALIDATION] = ((cons.anno, previous_values(r)) if cons is not None
                                    else (None, None))
    got: tuple[int | None, Mapping[str, Mapping[str, Any]] | None] = r.cache[_FOR_VALIDATION]
    return got


def previous_notice(r: Raccolta) -> str | None:
    """Why the configured previous raccolta cannot be used (Italian), else None."""
    if not r.precedente:
        return None
    try:
        prev = previous_raccolta(r)
    except RaccoltaError as exc:
        return str(exc)
    if previous_consolidation(r) is None and prev is not None:
        return (f"L'archivio della raccolta dell'anno precedente ({prev.path}) non si può "
                "leggere: il confronto con l'anno precedente è omesso.")
    return None


def link_fingerprint(r: Raccolta) -> str:
    """Part of `archive.context_fingerprint`: changes whenever the previous values may
    change (another previous raccolta, its registry, a new receipt in its ledger, the
    folder gone) without loading them. "" when not configured."""
    if not r.precedente:
        return ""
    if _FINGERPRINT not in r.cache:
        try:
            prev = previous_raccolta(r)
            if prev is None:  # pragma: no cover - r.precedente is set
                return ""
            try:
                ledger = (archive.archive_dir(prev.path) / archive.LEDGER_NAME).read_bytes()
            except FileNotFoundError:
                ledger = b""
        except (RaccoltaError, OSError):
            r.cache[_FINGERPRINT] = f"precedente assente: {r.precedente}"
        else:
            h = hashlib.sha256()
            for part in (prev.id, str(prev.anno), prev.registry.to_csv()):
                h.update(part.encode("utf-8") + b"\0")
            h.update(ledger)
            r.cache[_FINGERPRINT] = f"precedente {h.hexdigest()[:16]}"
    got: str = r.cache[_FINGERPRINT]
    return got


# --------------------------------------------------------------------------- comparison

def _change(ente: Ente, prev: Mapping[str, Any], cur: Mapping[str, Any]) -> EnteChange:
    return EnteChange(ente=ente, answered_previous=bool(prev), answered_current=bool(cur),
                      fields=tuple(FieldChange(f.id, prev.get(f.id), cur.get(f.id))
                                   for f in YOY_FIELDS))


def compare(current: Consolidation, previous: Consolidation, *,
            raccolta_precedente: Path | None = None) -> YearOverYear:
    """Each ente of `current` against the same ente of `previous` (codice, then name).

    `raccolta_precedente` defaults to the folder `previous_consolidation` loaded
    `previous` from (Path() if it did not).
    """
    registry = Registry([s.ente for s in current.enti])
    matched, unmatched = _match(registry, previous)
    enti = tuple(_change(s.ente, matched[s.ente.codice].values if s.ente.codice in matched
                         else {}, s.values)
                 for s in current.enti if s.values or s.ente.codice in matched)
    prev_totals, cur_totals = previous.totals, current.totals
    return YearOverYear(
        anno_precedente=previous.anno,
        raccolta_precedente=(raccolta_precedente if raccolta_precedente is not None
                             else _LOADED_FROM.get(previous.raccolta_id, Path())),
        enti=enti,
        totals={f.id: (prev_totals[f.id], cur_totals[f.id]) for f in TOTAL_FIELDS},
        solo_precedente=tuple(_change(s.ente, s.values, {}) for s in unmatched))


def year_over_year(r: Raccolta, current: Consolidation) -> YearOverYear | None:
    """`compare` with last year's consolidation of `r`; None when there is none (see
    `previous_notice` for why)."""
    prev = previous_consolidation(r)
    if prev is None:
        return None
    return compare(current, prev, raccolta_precedente=_LOADED_FROM.get(prev.raccolta_id))
