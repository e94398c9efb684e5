"""The capofila's decisions on received files (accetta, scarta, ripristina) and its
corrections (rettifica), each an append-only ledger record with who, when and why.

A received file is named by its short identifier (`archive.decisions.short_id`, printed
by `importa` and `stato`) or by any longer prefix of its sha256 (12 digits or more).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from piano_abitativo.app.loading import RaccoltaLike, load_raccolta
from piano_abitativo.archive import store as archive
from piano_abitativo.archive.decisions import (
    ACCETTA,
    ID_LEN,
    ORIGINE_COMANDO,
    RIPRISTINA,
    SCARTA,
    Decision,
    Rettifica,
    short_id,
)
from piano_abitativo.consolidation.consolidate import Consolidation, EnteStatus
from piano_abitativo.consolidation.context import consolidate_raccolta, iter_receipts
from piano_abitativo.core.errors import RaccoltaError
from piano_abitativo.core.problems import Report
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.core.schema import Field, Kind, Role

__all__ = [
    "DecisionResult",
    "Modifica",
    "RettificaResult",
    "accetta",
    "campo_rettificabile",
    "registra_rettifiche",
    "rettifica",
    "ripristina",
    "scarta",
]

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class DecisionResult:
    """What a decision recorded, and the raccolta as consolidated after it."""

    decisions: tuple[Decision, ...]
    consolidation: Consolidation
    #: the files named, by short id → their name
    file: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RettificaResult:
    rettifiche: tuple[Rettifica, ...]
    consolidation: Consolidation
    #: the corrected versions' reports, after validation with the corrected values
    reports: tuple[Report, ...] = ()


@dataclass(frozen=True)
class Modifica:
    """A value of an ente changed by hand in the master's *Dati* sheet."""

    ente: str
    denominazione: str
    campo: str
    etichetta: str
    vecchio: Any
    nuovo: Any


def _motivo(motivo: str) -> str:
    text = " ".join(str(motivo or "").split())
    if not text:
        raise RaccoltaError("indicare il motivo della decisione: --motivo TESTO")
    return text


def _received(r: Raccolta) -> dict[str, str]:
    """sha256 → file name of every received file of the raccolta."""
    out: dict[str, str] = {}
    for rec in archive.iter_ledger(r.path):
        if rec.get("tipo") == "ricezione":
            out.setdefault(str(rec["sha256"]), str(rec["nome"]))
    return out


def resolve_id(r: Raccolta, ident: str, received: dict[str, str] | None = None) -> str:
    """The sha256 of the received file named by `ident` (short id or a sha256 prefix)."""
    key = str(ident).strip().lower()
    if len(key) < ID_LEN or not _HEX.fullmatch(key):
        raise RaccoltaError(
            f"«{ident}» non è l'identificativo di un file ricevuto: usare le {ID_LEN} cifre "
            "mostrate da «piano-abitativo stato» o da «importa» (o almeno 12 cifre "
            "dell'impronta sha256)."
        )
    files = received if received is not None else _received(r)
    found = [sha for sha in files if sha.startswith(key)]
    if not found:
        raise RaccoltaError(
            f"Nessun file ricevuto ha l'identificativo {ident}: controllare con "
            f"«piano-abitativo stato {r.path}»."
        )
    if len(found) > 1:
        raise RaccoltaError(
            f"L'identificativo {ident} vale per {len(found)} file: indicarne più cifre "
            f"(per esempio {found[0][:12]} o {found[1][:12]})."
        )
    return found[0]


def _append(r: Raccolta, records: Sequence[dict[str, Any]]) -> None:
    with archive.locked(r.path):
        archive.append_records(r.path, records)


def _new(azione: str, sha: str, ente: str | None, motivo: str) -> Decision:
    return Decision(azione, sha, ente, motivo, archive._who(), archive.now())


def accetta(
    raccolta: RaccoltaLike, ident: str, *, motivo: str, ente: str | None = None
) -> DecisionResult:
    """Use a held return (identity conflict) or a file attributed to no ente: for the ente
    it declares, or for `ente` (a codice of the registry)."""
    r = load_raccolta(raccolta)
    motivo = _motivo(motivo)
    received = _received(r)
    sha = resolve_id(r, ident, received)
    if ente is not None and ente not in r.registry:
        raise RaccoltaError(f"L'ente {ente} non è nell'elenco degli enti della raccolta.")
    cons = consolidate_raccolta(r)
    held = {h.receipt.sha256: h for h in cons.in_verifica}
    stray = {rc.sha256: rc for rc in cons.non_attribuiti}
    if sha in {rc.sha256 for rc, _ in cons.scartati}:
        raise RaccoltaError(
            f"Il file {short_id(sha)} è stato scartato: per usarlo di nuovo "
            f"«piano-abitativo ripristina {r.path} {short_id(sha)}»."
        )
    if sha not in held and sha not in stray:
        raise RaccoltaError(
            f"Il file {short_id(sha)} ({received[sha]}) non è in verifica né da attribuire: "
            "non c'è nulla da accettare."
        )
    declared = held[sha].ente if sha in held else stray[sha].report.ente
    target = ente or declared
    if target is None or target not in r.registry:
        raise RaccoltaError(
            f"Il file {short_id(sha)} non indica un ente dell'elenco: indicare a quale ente "
            "attribuirlo con --ente CODICE."
        )
    d = _new(ACCETTA, sha, target, motivo)
    _append(r, [d.to_record()])
    return DecisionResult((d,), consolidate_raccolta(r), {short_id(sha): received[sha]})


def scarta(raccolta: RaccoltaLike, idents: str | Iterable[str], *, motivo: str) -> DecisionResult:
    """Withdraw received files (one identifier, or several): they stay in the archive, out
    of the tables; their ente goes back to its previous version or to "non ricevuto"."""
    if isinstance(idents, str):
        idents = [idents]
    r = load_raccolta(raccolta)
    motivo = _motivo(motivo)
    received = _received(r)
    shas = list(dict.fromkeys(resolve_id(r, i, received) for i in idents))
    if not shas:
        raise RaccoltaError("indicare l'identificativo di almeno un file da scartare")
    cons = consolidate_raccolta(r)
    already = {rc.sha256 for rc, _ in cons.scartati}
    done = [_new(SCARTA, sha, None, motivo) for sha in shas if sha not in already]
    if not done:
        raise RaccoltaError("I file indicati sono già stati scartati: nulla da fare.")
    _append(r, [d.to_record() for d in done])
    names = {short_id(d.sha256): received[d.sha256] for d in done}
    return DecisionResult(tuple(done), consolidate_raccolta(r), names)


def ripristina(raccolta: RaccoltaLike, ident: str, *, motivo: str = "") -> DecisionResult:
    """Undo a `scarta`: the file counts again as received."""
    r = load_raccolta(raccolta)
    received = _received(r)
    sha = resolve_id(r, ident, received)
    cons = consolidate_raccolta(r)
    if sha not in {rc.sha256 for rc, _ in cons.scartati}:
        raise RaccoltaError(
            f"Il file {short_id(sha)} ({received[sha]}) non è stato scartato: non c'è nulla "
            "da ripristinare."
        )
    d = _new(RIPRISTINA, sha, None, " ".join(motivo.split()) or "ripristino")
    _append(r, [d.to_record()])
    return DecisionResult((d,), consolidate_raccolta(r), {short_id(sha): received[sha]})


# --------------------------------------------------------------------------- rettifiche


def campo_rettificabile(r: Raccolta, campo: str) -> Field:
    """The typed plan field named `campo` (its id, or the only id that starts with it)."""
    key = campo.strip()
    typed = [f for f in r.schema.plan_fields if f.role is not Role.FORMULA]
    exact = [f for f in typed if f.id == key]
    found = exact or [f for f in typed if f.id.startswith(key)] if key else []
    if len(found) == 1:
        return found[0]
    computed = [f for f in r.schema.plan_fields if f.role is Role.FORMULA and f.id == key]
    if computed:
        parts = ", ".join(computed[0].sum_of)
        raise RaccoltaError(
            f"Il campo {key} è calcolato (somma di {parts}): rettificare i campi di cui è la somma."
        )
    names = ", ".join(f.id for f in typed)
    raise RaccoltaError(f"Campo «{campo}» non riconosciuto. Campi rettificabili: {names}.")


def parse_valore(f: Field, valore: Any) -> Any:
    """A value given on the command line (or read from the master) as the field holds it."""
    if valore is None or (isinstance(valore, str) and not valore.strip()):
        return None
    if f.kind in (Kind.COUNT, Kind.PERCENT):
        if isinstance(valore, bool):
            raise RaccoltaError(f"Valore non valido per {f.id}: {valore!r}")
        if isinstance(valore, int | float):
            x = float(valore)
        else:
            text = str(valore).strip().rstrip("%").strip().replace(".", "").replace(",", ".")
            if f.kind is Kind.PERCENT:
                text = str(valore).strip().rstrip("%").strip().replace(",", ".")
            try:
                x = float(text)
            except ValueError:
                raise RaccoltaError(
                    f"Valore non valido per {f.id}: «{valore}» (atteso un numero)"
                ) from None
        if not math.isfinite(x):
            raise RaccoltaError(f"Valore non valido per {f.id}: «{valore}»")
        if f.kind is Kind.COUNT:
            if not x.is_integer() or x < 0:
                raise RaccoltaError(
                    f"Valore non valido per {f.id}: «{valore}» (atteso un numero intero ≥ 0)"
                )
            return int(x)
        return int(x) if x.is_integer() else x
    if f.kind is Kind.YESNO:
        text = str(valore).strip().upper()
        if text in ("SI", "SÌ", "S", "YES"):
            return "SI"
        if text in ("NO", "N"):
            return "NO"
        raise RaccoltaError(f"Valore non valido per {f.id}: «{valore}» (atteso SI o NO)")
    return str(valore).strip()


def _status(cons: Consolidation, codice: str) -> EnteStatus:
    return next(s for s in cons.enti if s.ente.codice == codice)


def _reports(r: Raccolta, shas: set[str]) -> tuple[Report, ...]:
    return tuple(rc.report for rc in iter_receipts(r) if rc.sha256 in shas)


def _target(r: Raccolta, cons: Consolidation, codice: str) -> tuple[EnteStatus, str]:
    if codice not in r.registry:
        raise RaccoltaError(f"L'ente {codice} non è nell'elenco degli enti della raccolta.")
    s = _status(cons, codice)
    version = s.used or s.latest
    if version is None:
        raise RaccoltaError(
            f"{s.ente.nome_completo} non ha inviato nessun file: non c'è nulla da rettificare."
        )
    return s, version.sha256


def rettifica(
    raccolta: RaccoltaLike, *, ente: str, campo: str, valore: Any, motivo: str
) -> RettificaResult:
    """Record the capofila's correction of one value of an ente, tied to the version it
    corrects (the one used, else the latest): validation runs on the corrected values."""
    r = load_raccolta(raccolta)
    motivo = _motivo(motivo)
    f = campo_rettificabile(r, campo)
    value = parse_valore(f, valore)
    cons = consolidate_raccolta(r)
    _, sha = _target(r, cons, ente)
    before = next((rc.report.values for rc in iter_receipts(r) if rc.sha256 == sha), {})
    old = before.get(f.id)
    rt = Rettifica(
        ente, f.id, value, old, sha, motivo, archive._who(), archive.now(), ORIGINE_COMANDO
    )
    _append(r, [rt.to_record()])
    return RettificaResult((rt,), consolidate_raccolta(r), _reports(r, {sha}))


def registra_rettifiche(
    raccolta: RaccoltaLike, modifiche: Sequence[Modifica], *, motivo: str, origine: str
) -> RettificaResult:
    """Record as rettifiche the values changed by hand in the master (`master_edits`)."""
    r = load_raccolta(raccolta)
    motivo = _motivo(motivo)
    cons = consolidate_raccolta(r)
    who, when = archive._who(), archive.now()
    out: list[Rettifica] = []
    for m in modifiche:
        f = campo_rettificabile(r, m.campo)
        _, sha = _target(r, cons, m.ente)
        value = parse_valore(f, m.nuovo)
        out.append(Rettifica(m.ente, f.id, value, m.vecchio, sha, motivo, who, when, origine))
    _append(r, [rt.to_record() for rt in out])
    return RettificaResult(
        tuple(out), consolidate_raccolta(r), _reports(r, {rt.versione for rt in out})
    )
