"""What a raccolta's returns are validated against, and its returns as validated.

* `validation_context`: the raccolta's year, id, registry and rules, and last year's plan
  values of each ente (R13–R15) when a previous raccolta is linked (``[confronto]``);
* `context_fingerprint`: changes whenever anything the validation depends on changes, so a
  stored report made under other settings is made again (`receipts`);
* loading last year's raccolta and its consolidation (kept in `Raccolta.cache`: last
  year's ledger is read once per raccolta object). It never raises for a missing or
  unreadable previous raccolta: the comparison is then absent and `previous_notice` says
  why in Italian.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from piano_abitativo.archive import quarantine
from piano_abitativo.archive import store as archive
from piano_abitativo.archive.decisions import (
    TIPO_DECISIONE,
    TIPO_GENERATO,
    TIPO_RETTIFICA,
    Decisions,
)
from piano_abitativo.archive.store import Receipt
from piano_abitativo.consolidation.checking import validation_context
from piano_abitativo.consolidation.consolidate import Consolidation, EnteStatus, consolidate
from piano_abitativo.core.raccolta import Raccolta, RaccoltaError, load
from piano_abitativo.core.registry import Registry
from piano_abitativo.core.schema import TEMPLATE_VERSION
from piano_abitativo.core.version import __version__

_RACCOLTA = "confronto.raccolta"
_CONSOLIDATION = "confronto.consolidation"
_VALUES = "confronto.values"
_FOR_VALIDATION = "confronto.for_validation"
_FINGERPRINT = "confronto.fingerprint"

#: folder of every previous raccolta loaded here, by raccolta id (for `compare`)
LOADED_FROM: dict[str, Path] = {}


def context_fingerprint(r: Raccolta) -> str:
    """Changes when anything the validation depends on changes (registry, rules, schema,
    version, last year's raccolta for R13–R15: linking it later makes the returns validated
    again)."""
    h = hashlib.sha256()
    for part in (
        __version__,
        TEMPLATE_VERSION,
        str(r.anno),
        r.id,
        r.registry.to_csv(),
        repr(r.settings),
        r.schema.digest,
        link_fingerprint(r),
    ):
        h.update(part.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


def load_decisions(r: Raccolta) -> Decisions:
    """The capofila's decisions and rettifiche recorded in the raccolta's ledger."""
    return Decisions.from_records(
        archive.iter_ledger_of(r.path, frozenset({TIPO_DECISIONE, TIPO_RETTIFICA, TIPO_GENERATO}))
    )


def corrections(decisions: Decisions) -> dict[str, dict[str, Any]]:
    """sha256 of a version → field → the value the capofila recorded (latest wins)."""
    out: dict[str, dict[str, Any]] = {}
    for rt in decisions.rettifiche:
        out.setdefault(rt.versione, {})[rt.campo] = rt.valore
    return out


def iter_receipts(
    r: Raccolta,
    *,
    revalidate: bool = True,
    decisions: Decisions | None = None,
    damage: list[archive.LedgerDamage] | None = None,
) -> Iterator[Receipt]:
    """Every receipt of the raccolta in ledger order, read as they are consumed; reports
    made under other settings are made again (see `archive.store.iter_receipts`), and so
    are those of the versions the capofila corrected (`decisions`, read from the ledger
    when not given), with its values. Damaged ledger lines go to `damage`."""
    dec = decisions if decisions is not None else load_decisions(r)
    fixed = corrections(dec)
    if not revalidate:
        return archive.iter_receipts(
            r, damage=damage, corrections=fixed, context=lambda: validation_context(r)
        )
    return archive.iter_receipts(
        r,
        fingerprint=context_fingerprint(r),
        context=lambda: validation_context(r),
        damage=damage,
        corrections=fixed,
    )


def consolidate_raccolta(
    r: Raccolta, *, revalidate: bool = True, generated_at: dt.datetime | None = None
) -> Consolidation:
    """The raccolta consolidated from its ledger: every receipt (validated again when its
    settings changed), the capofila's decisions and rettifiche applied, damaged ledger
    lines reported in `Consolidation.registro_danneggiato`."""
    dec = load_decisions(r)
    damage: list[archive.LedgerDamage] = []
    stream = iter_receipts(r, revalidate=revalidate, decisions=dec, damage=damage)
    cons = consolidate(r, stream, decisions=dec, damage=damage, generated_at=generated_at)
    cons.letture_non_riuscite = quarantine.failed_in_ledger(r.path)
    return cons


def receipts(r: Raccolta, *, revalidate: bool = True) -> list[Receipt]:
    """Every receipt of the raccolta in ledger order (see `iter_receipts`)."""
    return list(iter_receipts(r, revalidate=revalidate))


# --------------------------------------------------------------------------- loading


def _load_previous(r: Raccolta) -> Raccolta:
    target = r.precedente_path or r.path
    where = f'{r.config_path.name}, [confronto] precedente = "{r.precedente}"'
    omitted = (
        "il confronto con l'anno precedente è omesso. Per ricollegarla: "
        f"piano-abitativo collega {r.path} --precedente CARTELLA"
    )
    if not target.is_dir():
        raise RaccoltaError(
            f"La raccolta dell'anno precedente non si trova in {target} ({where}): {omitted}"
        )
    try:
        prev = load(target)
    except RaccoltaError as exc:
        raise RaccoltaError(
            f"La raccolta dell'anno precedente in {target} non si può leggere ({exc}): {omitted}"
        ) from exc
    if prev.anno >= r.anno or prev.id == r.id:
        raise RaccoltaError(
            f"La raccolta indicata come precedente ({where}) è dell'anno "
            f"{prev.anno}, non di un anno prima del {r.anno}: {omitted}"
        )
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
                cons = consolidate_raccolta(prev)
                LOADED_FROM[prev.id] = prev.path
        except (RaccoltaError, OSError):
            cons = None
        r.cache[_CONSOLIDATION] = cons
    got: Consolidation | None = r.cache[_CONSOLIDATION]
    return got


def match_previous(
    registry: Registry, previous: Consolidation
) -> tuple[dict[str, EnteStatus], list[EnteStatus]]:
    """Last year's enti with a valid return, by the codice of the same ente in `registry`
    (codice first, then normalised name); and those that match no ente."""
    matched: dict[str, EnteStatus] = {}
    left = [s for s in previous.enti if s.values]
    for by_codice in (True, False):  # codice first, then the normalised name
        rest: list[EnteStatus] = []
        for s in left:
            e = (
                registry.find(codice=s.ente.codice)
                if by_codice
                else registry.find(nome=s.ente.denominazione)
            )
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
        matched = match_previous(r.registry, cons)[0] if cons is not None else {}
        r.cache[_VALUES] = {codice: dict(s.values) for codice, s in matched.items()}
    got: dict[str, dict[str, Any]] = r.cache[_VALUES]
    return got


def previous_for_validation(
    r: Raccolta,
) -> tuple[int | None, Mapping[str, Mapping[str, Any]] | None]:
    """(last year, `previous_values`) for `Raccolta.validation_context`; (None, None)
    when there is nothing to compare with."""
    if _FOR_VALIDATION not in r.cache:
        cons = previous_consolidation(r) if r.precedente else None
        r.cache[_FOR_VALIDATION] = (
            (cons.anno, previous_values(r)) if cons is not None else (None, None)
        )
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
        return (
            f"L'archivio della raccolta dell'anno precedente ({prev.path}) non si può "
            "leggere: il confronto con l'anno precedente è omesso."
        )
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
