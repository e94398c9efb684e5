"""The capofila's decisions on received files and its corrections (rettifiche), as
append-only ledger records.

Nothing is ever overwritten: a file set aside (``scarta``) stays in the archive and can be
taken back (``ripristina``); a held return is used only after an explicit ``accetta``; a
value is corrected only by a ``rettifica`` record tied to the version it corrects. Each
record says who (the OS user), when and why. Later records win over earlier ones.

Records (one JSON line each in ``archivio/registro.jsonl``)::

    {"tipo": "decisione", "azione": "accetta"|"scarta"|"ripristina", "sha256": …,
     "ente": CODICE|null, "motivo": …, "utente": …, "il": ISO}
    {"tipo": "rettifica", "ente": CODICE, "campo": FIELD_ID, "valore": …,
     "valore_precedente": …, "versione": SHA256, "motivo": …, "utente": …, "il": ISO,
     "origine": "comando"|"cartella di lavoro"}
    {"tipo": "generato", "sha256": …, "nome": …, "motivo": …}   (own outputs, never a return)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TIPO_DECISIONE = "decisione"
TIPO_RETTIFICA = "rettifica"
TIPO_GENERATO = "generato"

ACCETTA = "accetta"
SCARTA = "scarta"
RIPRISTINA = "ripristina"
AZIONI = (ACCETTA, SCARTA, RIPRISTINA)

#: where a rettifica was made
ORIGINE_COMANDO = "comando"
ORIGINE_MASTER = "cartella di lavoro"

#: how many hex digits of the sha256 make the short identifier of a received file
ID_LEN = 8


def short_id(sha256: str) -> str:
    """The short identifier printed for every received file (its sha256's first digits)."""
    return sha256[:ID_LEN]


@dataclass(frozen=True, slots=True)
class Decision:
    azione: str
    sha256: str
    ente: str | None
    motivo: str
    utente: str
    il: dt.datetime
    seq: int = 0

    def to_record(self) -> dict[str, Any]:
        return {
            "tipo": TIPO_DECISIONE,
            "versione": 1,
            "azione": self.azione,
            "sha256": self.sha256,
            "ente": self.ente,
            "motivo": self.motivo,
            "utente": self.utente,
            "il": self.il.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Rettifica:
    ente: str
    campo: str
    valore: Any
    valore_precedente: Any
    versione: str
    motivo: str
    utente: str
    il: dt.datetime
    origine: str = ORIGINE_COMANDO
    seq: int = 0

    def to_record(self) -> dict[str, Any]:
        return {
            "tipo": TIPO_RETTIFICA,
            "versione_record": 1,
            "ente": self.ente,
            "campo": self.campo,
            "valore": self.valore,
            "valore_precedente": self.valore_precedente,
            "versione": self.versione,
            "motivo": self.motivo,
            "utente": self.utente,
            "il": self.il.isoformat(),
            "origine": self.origine,
        }


def _decision(rec: Mapping[str, Any], seq: int) -> Decision | None:
    try:
        azione = rec["azione"]
        sha = rec["sha256"]
        if azione not in AZIONI or not isinstance(sha, str) or len(sha) != 64:
            return None
        ente = rec.get("ente")
        return Decision(
            azione,
            sha,
            ente if isinstance(ente, str) and ente else None,
            str(rec.get("motivo") or ""),
            str(rec.get("utente") or ""),
            dt.datetime.fromisoformat(rec["il"]),
            seq,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _rettifica(rec: Mapping[str, Any], seq: int) -> Rettifica | None:
    try:
        ente, campo, versione = rec["ente"], rec["campo"], rec["versione"]
        if not all(isinstance(x, str) and x for x in (ente, campo, versione)):
            return None
        return Rettifica(
            ente,
            campo,
            rec.get("valore"),
            rec.get("valore_precedente"),
            versione,
            str(rec.get("motivo") or ""),
            str(rec.get("utente") or ""),
            dt.datetime.fromisoformat(rec["il"]),
            str(rec.get("origine") or ORIGINE_COMANDO),
            seq,
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class Decisions:
    """Every decision and rettifica of a raccolta, in ledger order."""

    decisions: list[Decision] = field(default_factory=list)
    rettifiche: list[Rettifica] = field(default_factory=list)
    #: sha256 of the raccolta's own outputs recorded by `importa` (never returns)
    generati: set[str] = field(default_factory=set)

    @classmethod
    def from_records(cls, records: Iterable[tuple[int, Mapping[str, Any]]]) -> Decisions:
        out = cls()
        for seq, rec in records:
            tipo = rec.get("tipo")
            if tipo == TIPO_DECISIONE:
                d = _decision(rec, seq)
                if d is not None:
                    out.decisions.append(d)
            elif tipo == TIPO_RETTIFICA:
                rt = _rettifica(rec, seq)
                if rt is not None:
                    out.rettifiche.append(rt)
            elif tipo == TIPO_GENERATO and isinstance(rec.get("sha256"), str):
                out.generati.add(rec["sha256"])
        return out

    def last(self, sha256: str, azioni: Iterable[str] = AZIONI) -> Decision | None:
        """The latest decision of one of `azioni` on a file."""
        wanted = set(azioni)
        found = None
        for d in self.decisions:
            if d.sha256 == sha256 and d.azione in wanted:
                found = d
        return found

    @property
    def scartati(self) -> dict[str, Decision]:
        """Files set aside now: their latest scarta/ripristina is a scarta."""
        state: dict[str, Decision] = {}
        for d in self.decisions:
            if d.azione == SCARTA:
                state[d.sha256] = d
            elif d.azione == RIPRISTINA:
                state.pop(d.sha256, None)
        return state

    @property
    def accettati(self) -> dict[str, Decision]:
        """Held files the capofila accepted (the latest accetta of each)."""
        return {d.sha256: d for d in self.decisions if d.azione == ACCETTA}

    def rettifiche_of(self, sha256: str) -> dict[str, Rettifica]:
        """The rettifiche that apply to one version: the latest per field."""
        return {rt.campo: rt for rt in self.rettifiche if rt.versione == sha256}

    @property
    def corrected_versions(self) -> set[str]:
        return {rt.versione for rt in self.rettifiche}

    @property
    def empty(self) -> bool:
        return not (self.decisions or self.rettifiche or self.generati)
