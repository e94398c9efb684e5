"""The validation report: one `Problem` record per finding, never an exception.

Every problem has a stable code (documented in ``docs/problemi.md``, generated from
`CATALOGUE`, which `core.rules` makes from the rule book and the plain codes), a
severity, its exact position (file, sheet, A1 cell, field id), the value found, an
Italian message and an Italian hint saying what to do.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from piano_abitativo.core.rules import CATALOGUE, ProblemType, Severity

__all__ = ["CATALOGUE", "Problem", "ProblemType", "Report", "Severity", "problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about one returned file, with its exact location (slots: a
    consolidation keeps the open problems of every ente)."""

    code: str
    severity: Severity
    file: str
    message: str
    hint: str
    sheet: str | None = None
    cell: str | None = None
    field: str | None = None
    value: Any = None

    @property
    def title(self) -> str:
        return CATALOGUE[self.code].title

    def where(self) -> str:
        """`file, foglio "Scheda", cella D14` — the location as a clerk reads it."""
        parts = [self.file]
        if self.sheet:
            parts.append(f'foglio "{self.sheet}"')
        if self.cell:
            parts.append(f"cella {self.cell}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        value = self.value
        if value is not None and not isinstance(value, str | int | float | bool):
            value = str(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # JSON has no NaN/Infinity
        return {
            "codice": self.code,
            "gravita": self.severity.value,
            "foglio": self.sheet,
            "cella": self.cell,
            "campo": self.field,
            "valore": value,
            "messaggio": self.message,
            "suggerimento": self.hint,
        }

    def to_record(self) -> dict[str, Any]:
        """Everything, for the archive's ledger (`from_record` gives it back)."""
        return {"file": self.file, **self.to_json()}

    @classmethod
    def from_record(cls, rec: dict[str, Any], file: str | None = None) -> Problem:
        """The problem of a ledger record; its file name is `file` (the report's, one
        string for all its problems) when the record says the same."""
        name = rec["file"]
        return cls(
            code=_shared(rec["codice"]),
            severity=Severity(rec["gravita"]),
            file=file if file is not None and file == name else name,
            message=rec["messaggio"],
            hint=_shared(rec["suggerimento"]),
            sheet=_shared(rec["foglio"]),
            cell=_shared(rec["cella"]),
            field=_shared(rec["campo"]),
            value=rec["valore"],
        )


def _shared(text: Any) -> Any:
    """One string object for each of the few texts that recur in every problem read from
    the ledger (codes, cells, fields, hints): a consolidation keeps them all. Not a
    file's name: one per file, they would only grow the interpreter's table of shared
    strings."""
    return sys.intern(text) if type(text) is str else text


def problem(
    code: str,
    file: str,
    message: str | None = None,
    *,
    sheet: str | None = None,
    cell: str | None = None,
    field: str | None = None,
    value: Any = None,
    hint: str | None = None,
    severity: Severity | None = None,
) -> Problem:
    """Build a `Problem` from the catalogue; message and hint default to the catalogue's."""
    kind = CATALOGUE[code]
    if severity is not None and severity is not kind.severity:
        # a code's severity is part of its contract: another severity is another code
        raise ValueError(f"{code} è {kind.severity.value}, non {severity.value}")
    return Problem(
        code=code,
        severity=kind.severity,
        file=file,
        message=message or kind.title,
        hint=hint or kind.hint,
        sheet=sheet,
        cell=cell,
        field=field,
        value=value,
    )


@dataclass(slots=True)
class Report:
    """The outcome of reading and validating one file."""

    file: str
    ente: str | None = None
    ente_denominazione: str | None = None
    problems: list[Problem] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def add(self, item: Problem) -> None:
        self.problems.append(item)

    def extend(self, items: Iterable[Problem]) -> None:
        self.problems.extend(items)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERRORE]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.AVVISO]

    @property
    def valid(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "ente": self.ente,
            "valido": self.valid,
            "problemi": [p.to_json() for p in self.problems],
        }

    def to_record(self) -> dict[str, Any]:
        """The whole report as JSON-safe data, for the archive's ledger."""
        return {
            "file": self.file,
            "ente": self.ente,
            "ente_denominazione": self.ente_denominazione,
            "problemi": [p.to_record() for p in self.problems],
            "valori": {k: _json_value(v) for k, v in self.values.items()},
            "metadati": dict(self.metadata),
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], file: str | None = None) -> Report:
        """The report of a ledger record; its file name (and its problems') is the string
        `file` (the receipt's name) when the record says the same."""
        name = rec["file"]
        file = file if file is not None and file == name else name
        return cls(
            file=file,
            ente=rec.get("ente"),
            ente_denominazione=rec.get("ente_denominazione"),
            problems=[Problem.from_record(p, file) for p in rec.get("problemi", [])],
            values=dict(rec.get("valori", {})),
            metadata=dict(rec.get("metadati", {})),
        )


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)
