"""Consolidation: from the receipts of a raccolta to the data of the Piano annuale.

For each ente of the registry: its versions in order of reception, the version whose
values go into the plan (the latest one without errors) and the problems still open (those
of the latest version). Returns that cannot be attributed to an ente of the registry are
kept apart and reported, never added silently.

This module is pure: no file is written here (see `master` for the workbook).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, TypeGuard

from piano_abitativo.archive.store import TZ, Receipt, now
from piano_abitativo.core.problems import Problem, Report, Severity, problem
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Role, Schema

if TYPE_CHECKING:
    from piano_abitativo.consolidation.changes import Confronto

#: Ente states shown on the Cruscotto
STATO_NON_RICEVUTO = "non ricevuto"
STATO_VALIDO = "ricevuto"
STATO_CON_AVVISI = "ricevuto con avvisi"
STATO_CON_ERRORI = "da correggere"

#: Fields whose totals the plan prints (and the master names `totale_<id>`), default schema
TOTAL_FIELDS: tuple[Field, ...] = SCHEMA.total_fields


@cache
def plan_keys(schema: Schema) -> tuple[str, ...]:
    """The keys of `plan_values` for `schema`, in its order (typed fields, then sums)."""
    plan = schema.plan_fields
    return (
        *(f.id for f in plan if f.role is not Role.FORMULA),
        *(f.id for f in plan if f.role is Role.FORMULA),
    )


@cache
def table_selectors(schema: Schema, letter: str) -> tuple[Field, ...]:
    """The fields whose value puts an ente in the plan's table `letter`: the section's
    `selector`, else every column of the table."""
    rule = schema.table(letter)
    if rule.selector is not None:
        return (schema.field_by_id[rule.selector],)
    return schema.table_fields(letter)


#: the keys of `plan_values` for the default schema
PLAN_KEYS: tuple[str, ...] = plan_keys(SCHEMA)


@dataclass(frozen=True)
class EnteStatus:
    """One ente of the registry and what it sent.

    `consolidate` keeps of each version only what is shown, so that memory does not grow
    with the returns: every version says when and how it came and whether it has errors;
    the latest also keeps its problems and mail facts; the values of the used one are kept
    compactly in `plan` (read them as `values`). The archive keeps everything else."""

    ente: Ente
    #: every receipt attributed to it, oldest first
    versions: tuple[Receipt, ...] = ()
    #: the plan values of the used version, in `PLAN_KEYS` order (computed from the used
    #: version's report when not given)
    plan: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    #: the schema of the raccolta: what `plan` holds
    schema: Schema = field(default=SCHEMA, repr=False, compare=False)

    def __post_init__(self) -> None:
        used = self.used
        if self.plan is None and used is not None:
            plan = plan_tuple(used.report.values, self.ente, self.schema)
            object.__setattr__(self, "plan", plan)

    @property
    def latest(self) -> Receipt | None:
        return self.versions[-1] if self.versions else None

    @property
    def used(self) -> Receipt | None:
        """The receipt whose values go into the plan: the latest one without errors."""
        for rc in reversed(self.versions):
            if rc.report.valid:
                return rc
        return None

    @property
    def received(self) -> bool:
        return bool(self.versions)

    @property
    def stato(self) -> str:
        last = self.latest
        if last is None:
            return STATO_NON_RICEVUTO
        if last.report.errors:
            return STATO_CON_ERRORI
        return STATO_CON_AVVISI if last.report.warnings else STATO_VALIDO

    @property
    def errori(self) -> int:
        return len(self.latest.report.errors) if self.latest else 0

    @property
    def avvisi(self) -> int:
        return len(self.latest.report.warnings) if self.latest else 0

    @property
    def open_problems(self) -> list[Problem]:
        return list(self.latest.report.problems) if self.latest else []

    @property
    def values(self) -> dict[str, Any]:
        """Plan values of the used version, typed (counts int, f and a) totals computed);
        empty when no valid version exists."""
        if self.plan is None:
            return {}
        return dict(zip(plan_keys(self.schema), self.plan, strict=True))

    def value(self, field_id: str) -> Any:
        return self.values.get(field_id)


def plan_values(raw: dict[str, Any], ente: Ente, schema: Schema = SCHEMA) -> dict[str, Any]:
    """The plan fields of one valid return, typed as the plan prints them."""
    out: dict[str, Any] = {}
    plan_fields = schema.plan_fields
    for f in plan_fields:
        if f.role is Role.FORMULA:
            continue
        x = raw.get(f.id)
        if f.comuni_only and not ente.is_comune:
            out[f.id] = None
        elif f.kind is Kind.COUNT:
            out[f.id] = int(x) if _num(x) else 0
        elif f.kind is Kind.PERCENT:
            out[f.id] = (int(x) if float(x).is_integer() else float(x)) if _num(x) else None
        elif f.kind is Kind.YESNO:
            out[f.id] = "SI" if str(x or "").strip().upper() in ("SI", "SÌ") else "NO"
        else:
            out[f.id] = None if x is None or str(x).strip() == "" else str(x).strip()
    for f in plan_fields:
        if f.role is Role.FORMULA:
            out[f.id] = sum(out[p] or 0 for p in f.sum_of)
    return out


def plan_tuple(raw: dict[str, Any], ente: Ente, schema: Schema = SCHEMA) -> tuple[Any, ...]:
    """`plan_values` as a tuple in `plan_keys(schema)` order."""
    plan = plan_values(raw, ente, schema)
    return tuple(plan[k] for k in plan_keys(schema))


def _num(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def in_table(status: EnteStatus, letter: str) -> bool:
    """Whether the plan's table `letter` lists this ente: a selecting field (see
    `table_selectors`) is non-zero, non-empty, or SI."""
    v = status.values
    if not v:
        return False
    for f in table_selectors(status.schema, letter):
        x = v.get(f.id)
        if x == "SI" if f.kind is Kind.YESNO else bool(x):
            return True
    return False


@dataclass
class Consolidation:
    """Everything the master workbook, the document and `stato` show."""

    anno: int
    raccolta_id: str
    ambito: str
    capofila: str
    scadenza: dt.date | None
    generated_at: dt.datetime
    #: every ente of the registry, registry order (the plan's order: ALER first, then A→Z)
    enti: list[EnteStatus]
    #: returns that name no ente of the registry
    non_attribuiti: list[Receipt] = field(default_factory=list)
    #: R9: one avviso per ente that has not answered, by codice
    coverage: dict[str, Problem] = field(default_factory=dict)
    #: the comparison with last year's raccolta, when the raccolta is linked to one (set
    #: by `actions.consolidation`; the master and the document show it)
    confronto: Confronto | None = None
    #: the raccolta's schema: its fields, tables and totals
    schema: Schema = SCHEMA

    @property
    def answered(self) -> list[EnteStatus]:
        """Enti with a valid version, in order of reception of that version (the annex)."""
        rows = [(s, s.used) for s in self.enti]
        ordered = sorted(
            ((rc.ricevuto_il, rc.seq, s.ente.denominazione), s) for s, rc in rows if rc is not None
        )
        return [s for _, s in ordered]

    def table(self, letter: str) -> list[EnteStatus]:
        """The rows of the plan's table `letter`, in plan order."""
        return [s for s in self.enti if in_table(s, letter)]

    @property
    def totals(self) -> dict[str, int]:
        """Python's sums of every count field over the valid versions."""
        return {
            f.id: sum(int(s.values.get(f.id) or 0) for s in self.enti if s.values)
            for f in self.schema.total_fields
        }

    def count(self, stato: str) -> int:
        return sum(1 for s in self.enti if s.stato == stato)


def plan_order(enti: Sequence[Ente]) -> list[Ente]:
    """The plan lists the ALER first, then the Comuni in alphabetical order."""
    return sorted(enti, key=lambda e: (e.is_comune, e.denominazione.casefold()))


def _order(rc: Receipt) -> tuple[dt.datetime, int]:
    return (rc.ricevuto_il, rc.seq)


def _kept(rc: Receipt, *, problems: bool) -> Receipt:
    """What consolidation keeps of a version (see `EnteStatus`): when, how, whether it has
    errors; its problems and mail facts too when `problems`. Its values go in `plan`."""
    rep = rc.report
    report = Report(
        rc.nome if rep.file == rc.nome else rep.file,
        rep.ente,
        rep.ente_denominazione,
        problems=list(rep.problems) if problems else rep.errors[:1],
        metadata={k: sys.intern(v) for k, v in rep.metadata.items() if k == "ente_tipo"},
    )
    when = rc.ricevuto_il.astimezone(TZ)  # one time zone object, not one per time
    return dataclasses.replace(
        rc,
        ricevuto_il=when,
        importato_il=when,
        origine="",
        utente="",
        contesto="",
        canale=sys.intern(rc.canale),
        fonte_data=sys.intern(rc.fonte_data),
        report=report,
        extra=rc.extra if problems else {},
    )


@dataclass
class _Versions:
    """The versions of one ente while the receipts stream by."""

    ente: Ente
    schema: Schema
    versions: list[Receipt] = field(default_factory=list)
    plan: tuple[Any, ...] | None = None

    def add(self, rc: Receipt) -> None:
        """Insert `rc` in reception order. Only the latest version keeps its problems and
        only the latest valid one gives the values; the used version changes only to a
        newly arrived one, so its values are taken from the full report now."""
        kept = _kept(rc, problems=True)
        bisect.insort(self.versions, kept, key=_order)
        latest = self.versions[-1]
        used = next((v for v in reversed(self.versions) if v.report.valid), None)
        if used is kept:
            self.plan = plan_tuple(rc.report.values, self.ente, self.schema)
        for i, v in enumerate(self.versions):
            if v is not latest and (v.extra or v.report.problems != v.report.errors[:1]):
                self.versions[i] = _kept(v, problems=False)

    def status(self) -> EnteStatus:
        return EnteStatus(self.ente, tuple(self.versions), plan=self.plan, schema=self.schema)


def consolidate(
    r: Raccolta, all_receipts: Iterable[Receipt], *, generated_at: dt.datetime | None = None
) -> Consolidation:
    """Group receipts by ente (latest reception last) and set apart the unattributed.
    `all_receipts` is consumed once, so an `archive.iter_receipts` stream keeps memory
    flat: of each receipt only what the master shows is kept (see `EnteStatus`)."""
    by_ente = {e.codice: _Versions(e, r.schema) for e in r.registry}
    stray: list[Receipt] = []
    for rc in all_receipts:
        codice = rc.report.ente
        if codice is not None and codice in by_ente:
            by_ente[codice].add(rc)
        else:
            stray.append(_kept(rc, problems=True))
    enti = [by_ente.pop(e.codice).status() for e in plan_order(list(r.registry))]
    coverage = {
        s.ente.codice: problem(
            "R9", "", f"{s.ente.nome_completo} non ha inviato i dati", severity=Severity.AVVISO
        )
        for s in enti
        if not s.received
    }
    return Consolidation(
        anno=r.anno,
        raccolta_id=r.id,
        ambito=r.ambito,
        capofila=r.capofila,
        scadenza=r.scadenza,
        generated_at=generated_at or now(),
        enti=enti,
        non_attribuiti=sorted(stray, key=_order),
        coverage=coverage,
        schema=r.schema,
    )


#: The fields of the Dati sheet for the default schema, in order (`Schema.plan_fields`)
DATA_FIELDS: tuple[Field, ...] = SCHEMA.plan_fields
