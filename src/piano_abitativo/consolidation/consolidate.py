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

from piano_abitativo.archive.decisions import Decision, Decisions, Rettifica
from piano_abitativo.archive.store import CANALE_CARTELLA, TZ, LedgerDamage, Receipt, now
from piano_abitativo.core.problems import Problem, Report, Severity, problem
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.registry import Ente, addresses_of
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Role, Schema

if TYPE_CHECKING:
    from piano_abitativo.consolidation.changes import Confronto

#: Ente states shown on the Cruscotto
STATO_NON_RICEVUTO = "non ricevuto"
STATO_VALIDO = "ricevuto"
STATO_CON_AVVISI = "ricevuto con avvisi"
STATO_CON_ERRORI = "da correggere"
STATO_IN_VERIFICA = "in verifica"

#: who sent a version, compared with the registry (`sender_kind`)
MITTENTE_PROPRIO = "proprio"  # the ente's own registered address
MITTENTE_SCONOSCIUTO = "sconosciuto"  # an address not in the registry (or none)
MITTENTE_CARTELLA = "cartella"  # imported by the capofila from a folder: its own act
MITTENTE_ALTRO = "altro ente"  # another ente's registered address
#: a PEC envelope whose gestore signature is invalid or missing: whoever it names as the
#: sender is not verified (a hand-made .eml can claim any address)
MITTENTE_NON_VERIFICATO = "non verificato"
_PEC_FAILED = ("non_valida", "assente")

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
def plan_index(schema: Schema) -> dict[str, int]:
    """The position of each key of `plan_keys` in a plan tuple."""
    return {k: i for i, k in enumerate(plan_keys(schema))}


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


@dataclass(frozen=True, slots=True)
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
    #: returns held for review (identity conflicts), not used until accepted
    in_verifica: tuple[Held, ...] = ()
    #: the capofila's rettifiche applied to the used version (the latest per field)
    rettifiche: tuple[Rettifica, ...] = ()
    #: who sent the used version (`MITTENTE_*`), None when nothing is used
    mittente_usata: str | None = None

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
        return bool(self.versions or self.in_verifica)

    @property
    def mittente_sconosciuto(self) -> bool:
        """The used version came from an address that is not in the registry, or in a PEC
        envelope whose sender is not verified."""
        return self.mittente_usata in (MITTENTE_SCONOSCIUTO, MITTENTE_NON_VERIFICATO)

    @property
    def rettificati(self) -> dict[str, Rettifica]:
        """field id → the rettifica applied to it."""
        return {rt.campo: rt for rt in self.rettifiche}

    @property
    def stato(self) -> str:
        if self.in_verifica:
            return STATO_IN_VERIFICA
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
        """The plan value of one field (None without a valid version): without building
        `values`."""
        at = plan_index(self.schema).get(field_id)
        return None if self.plan is None or at is None else self.plan[at]


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
    if status.plan is None:
        return False
    for f in table_selectors(status.schema, letter):
        x = status.value(f.id)
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
    #: files the capofila set aside (`scarta`), with the decision
    scartati: list[tuple[Receipt, Decision]] = field(default_factory=list)
    #: rettifiche that no longer apply: the ente sent a newer version
    rettifiche_superate: list[Rettifica] = field(default_factory=list)
    #: damaged ledger lines and archived files that are gone
    registro_danneggiato: list[LedgerDamage] = field(default_factory=list)
    #: files and messages whose reading killed the program (ledger records, see
    #: `archive.quarantine`): never read again automatically
    letture_non_riuscite: list[dict[str, Any]] = field(default_factory=list)
    #: every decision and rettifica (the master's sheet "Decisioni e rettifiche")
    decisioni: Decisions = field(default_factory=Decisions)

    @property
    def in_verifica(self) -> list[Held]:
        """Every held return, oldest first."""
        held = [h for s in self.enti for h in s.in_verifica]
        return sorted(held, key=lambda h: _order(h.receipt))

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
        at = plan_index(self.schema)
        fields = [(f.id, at[f.id]) for f in self.schema.total_fields]
        sums = dict.fromkeys((fid for fid, _ in fields), 0)
        for s in self.enti:  # one pass: the master asks for them on every table
            plan = s.plan
            if plan is not None:
                for fid, i in fields:
                    sums[fid] += int(plan[i] or 0)
        return sums

    def count(self, stato: str) -> int:
        return sum(1 for s in self.enti if s.stato == stato)


def plan_order(enti: Sequence[Ente]) -> list[Ente]:
    """The plan lists the ALER first, then the Comuni in alphabetical order."""
    return sorted(enti, key=lambda e: (e.is_comune, e.denominazione.casefold()))


def _order(rc: Receipt) -> tuple[dt.datetime, int]:
    return (rc.ricevuto_il, rc.seq)


#: the mail facts every version keeps (shown for the used one): who sent it, the PEC level
_KEPT_EXTRA = ("mittente", "verifica_pec")


#: the metadata kept of a version, one dict for each distinct content; like every part
#: of a kept version, read and never changed (shared by all the versions that have it)
_METADATA: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
#: the empty values and mail facts of a kept version (shared, never changed)
_NO_VALUES: dict[str, Any] = {}
_NO_EXTRA: dict[str, Any] = {}


def _metadata(rep: Report) -> dict[str, str]:
    key = tuple((k, v) for k, v in rep.metadata.items() if k == "ente_tipo")
    found = _METADATA.get(key)
    if found is None:
        found = _METADATA.setdefault(key, {sys.intern(k): sys.intern(v) for k, v in key})
    return found


def _same(text: str | None, known: str | None) -> str | None:
    """`known` (a string kept anyway, the registry's) when `text` says the same."""
    return known if text == known else text


def _kept(rc: Receipt, ente: Ente | None, *, problems: bool) -> Receipt:
    """What consolidation keeps of a version (see `EnteStatus`): when, how, whether it has
    errors; its problems and mail facts too when `problems`. Its values go in `plan`.
    What every version says alike (the ente's code and name, the ente's kind, the
    channel, no values) is one object shared by all: a few hundred bytes per ente.
    Not kept: where the file came from, who imported it, the validation context and the
    archive path (a seventh of what a version kept): nothing shown of a consolidation
    reads them, and the ledger has them all (`archive.iter_receipts`)."""
    rep = rc.report
    report = Report(
        rc.nome if rep.file == rc.nome else rep.file,
        _same(rep.ente, ente.codice if ente else None),
        _same(rep.ente_denominazione, ente.denominazione if ente else None),
        problems=list(rep.problems) if problems else rep.errors[:1],
        values=_NO_VALUES,
        metadata=_metadata(rep),
    )
    extra = rc.extra if problems else {k: rc.extra[k] for k in _KEPT_EXTRA if k in rc.extra}
    when = rc.ricevuto_il.astimezone(TZ)  # one time zone object, not one per time
    return dataclasses.replace(
        rc,
        ricevuto_il=when,
        importato_il=when,
        blob="",
        origine="",
        utente="",
        contesto="",
        canale=sys.intern(rc.canale),
        fonte_data=sys.intern(rc.fonte_data),
        report=report,
        extra=extra or _NO_EXTRA,
    )


@dataclass(frozen=True)
class Held:
    """A return held for review: archived and validated, not used in the tables until
    the capofila decides (`accetta` or `scarta`)."""

    receipt: Receipt
    #: the codice the file declares (template metadata or typed)
    ente: str | None
    motivo: str
    mittente: str | None = None
    #: codice of the ente whose registered address sent it, if any
    mittente_ente: str | None = None


def sender_kind(rc: Receipt, codice: str | None, addresses: dict[str, Ente]) -> str:
    """Who sent a version, compared with the ente it is attributed to."""
    if rc.canale == CANALE_CARTELLA and "mittente" not in rc.extra:
        return MITTENTE_CARTELLA
    mittente = str(rc.extra.get("mittente") or "").strip().lower()
    sender = addresses.get(mittente) if mittente else None
    if sender is None:
        return MITTENTE_SCONOSCIUTO
    if sender.codice != codice:
        return MITTENTE_ALTRO
    if rc.extra.get("verifica_pec") in _PEC_FAILED:
        return MITTENTE_NON_VERIFICATO
    return MITTENTE_PROPRIO


def _intrinsic_hold(rc: Receipt, ente: Ente, kind: str, addresses: dict[str, Ente]) -> Held | None:
    """Why `rc` must be held whatever else the ente sent: sent from another ente's
    registered address, or the typed identity disagrees with the template's."""
    mittente = str(rc.extra.get("mittente") or "") or None
    if kind == MITTENTE_ALTRO and mittente:
        other = addresses[mittente.strip().lower()]
        return Held(
            rc,
            ente.codice,
            f"il file dichiara {ente.nome_completo} ma è stato inviato dall'indirizzo "
            f"registrato di {other.nome_completo} ({mittente})",
            mittente,
            other.codice,
        )
    m14 = next((p for p in rc.report.problems if p.code == "M14"), None)
    if m14 is not None:
        return Held(
            rc,
            ente.codice,
            f"l'ente scritto nella scheda («{m14.value}») non è quello del modello "
            f"({ente.nome_completo})",
            mittente,
            None,
        )
    return None


@dataclass(slots=True)
class _Version:
    """One version while the receipts stream by: what is kept of it, who sent it
    (`MITTENTE_*`), whether the capofila accepted it, its plan values when valid."""

    receipt: Receipt
    sender: str
    accepted: bool
    plan: tuple[Any, ...] | None


def _version_order(v: _Version) -> tuple[dt.datetime, int]:
    return _order(v.receipt)


@dataclass(slots=True)
class _Versions:
    """The versions of one ente while the receipts stream by (one small record each: a
    consolidation holds all the enti's at once)."""

    ente: Ente
    schema: Schema
    versions: list[_Version] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)

    def add(self, rc: Receipt, kind: str, *, accepted: bool, hold: Held | None) -> None:
        """Insert `rc` in reception order (or among the held ones). Only the latest
        version keeps its problems and mail facts; the plan values of each valid version
        are kept compactly, so the used one can be chosen once all have arrived."""
        kept = _kept(rc, self.ente, problems=True)
        if hold is not None and not accepted:
            self.held.append(dataclasses.replace(hold, receipt=kept))
            return
        plan = plan_tuple(rc.report.values, self.ente, self.schema) if rc.report.valid else None
        bisect.insort(self.versions, _Version(kept, kind, accepted, plan), key=_version_order)

    def status(self, rettifiche: Decisions) -> EnteStatus:
        """The ente as consolidated. A version from an address not in the registry that
        would replace one sent from the ente's own registered address is held."""
        versions: list[_Version] = []
        own_seen = False
        unsure = (MITTENTE_SCONOSCIUTO, MITTENTE_NON_VERIFICATO)
        for v in self.versions:
            kind, rc = v.sender, v.receipt
            if kind in unsure and own_seen and not v.accepted:
                mittente = str(rc.extra.get("mittente") or "") or None
                who = (
                    f"busta PEC senza una firma valida del gestore (mittente dichiarato "
                    f"{mittente}, non verificato)"
                    if kind == MITTENTE_NON_VERIFICATO
                    else f"inviato da un indirizzo non registrato ({mittente or 'sconosciuto'})"
                )
                self.held.append(
                    Held(
                        rc,
                        self.ente.codice,
                        f"{who} e sostituirebbe la versione inviata dall'indirizzo "
                        f"registrato di {self.ente.nome_completo}",
                        mittente,
                        None,
                    )
                )
                continue
            if kind == MITTENTE_PROPRIO and rc.report.valid:
                own_seen = True
            versions.append(v)
        latest = versions[-1] if versions else None
        trimmed = tuple(
            v.receipt if v is latest else _kept(v.receipt, self.ente, problems=False)
            for v in versions
        )
        used = next((v for v in reversed(versions) if v.receipt.report.valid), None)
        applied = tuple(rettifiche.rettifiche_of(used.receipt.sha256).values()) if used else ()
        return EnteStatus(
            self.ente,
            trimmed,
            plan=used.plan if used else None,
            schema=self.schema,
            in_verifica=tuple(sorted(self.held, key=lambda h: _order(h.receipt))),
            rettifiche=applied,
            mittente_usata=used.sender if used else None,
        )


def consolidate(
    r: Raccolta,
    all_receipts: Iterable[Receipt],
    *,
    generated_at: dt.datetime | None = None,
    decisions: Decisions | None = None,
    damage: list[LedgerDamage] | None = None,
) -> Consolidation:
    """Group receipts by ente (latest reception last) and set apart the unattributed, the
    held (identity conflicts) and the files the capofila set aside, applying its
    `decisions`. `all_receipts` is consumed once, so an `archive.iter_receipts` stream
    keeps memory flat: of each receipt only what the master shows is kept (see
    `EnteStatus`). `damage` is the list the stream fills with damaged ledger lines."""
    dec = decisions if decisions is not None else Decisions()
    scartati, accettati = dec.scartati, dec.accettati
    addresses = addresses_of(r.registry)
    by_ente = {e.codice: _Versions(e, r.schema) for e in r.registry}
    stray: list[Receipt] = []
    set_aside: list[tuple[Receipt, Decision]] = []
    for rc in all_receipts:
        if rc.sha256 in dec.generati:
            continue
        if rc.sha256 in scartati:
            set_aside.append((_kept(rc, None, problems=True), scartati[rc.sha256]))
            continue
        acc = accettati.get(rc.sha256)
        codice = acc.ente if acc is not None and acc.ente else rc.report.ente
        group = by_ente.get(codice) if codice is not None else None
        if group is None:
            stray.append(_kept(rc, None, problems=True))
            continue
        kind = sender_kind(rc, codice, addresses)
        hold = _intrinsic_hold(rc, group.ente, kind, addresses)
        group.add(rc, kind, accepted=acc is not None, hold=hold)
    enti = [by_ente.pop(e.codice).status(dec) for e in plan_order(list(r.registry))]
    used = {s.ente.codice: s.used.sha256 for s in enti if s.used is not None}
    superate = [rt for rt in dec.rettifiche if used.get(rt.ente) != rt.versione]
    latest: dict[tuple[str, str, str], Rettifica] = {}
    for rt in superate:
        latest[(rt.ente, rt.campo, rt.versione)] = rt
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
        scartati=sorted(set_aside, key=lambda x: _order(x[0])),
        rettifiche_superate=list(latest.values()),
        registro_danneggiato=damage if damage is not None else [],
        decisioni=dec,
    )


#: The fields of the Dati sheet for the default schema, in order (`Schema.plan_fields`)
DATA_FIELDS: tuple[Field, ...] = SCHEMA.plan_fields
