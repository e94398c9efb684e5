"""The registry of the enti of an ambito: comuni (ISTAT code) and the ALER."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from piano_abitativo.core.errors import RegistryError as RegistryError
from piano_abitativo.core.errors import os_reason

TIPI = ("COMUNE", "ALER")
REQUIRED_COLUMNS = ("codice", "tipo", "denominazione", "provincia", "codice_catastale", "capofila")
OPTIONAL_COLUMNS = ("email", "pec")
_TRUE = {"si", "sì", "s", "x", "1", "true", "vero", "yes"}


@dataclass(frozen=True)
class Ente:
    codice: str
    tipo: str
    denominazione: str
    provincia: str = ""
    codice_catastale: str = ""
    capofila: bool = False
    email: str = ""
    pec: str = ""

    @property
    def is_comune(self) -> bool:
        return self.tipo == "COMUNE"

    @property
    def nome_completo(self) -> str:
        """'Comune di Crema' for a comune (also when the registry already calls it
        «Comune di Crema» or «COMUNE DI CREMA»), the denomination as it is otherwise."""
        if self.is_comune and not _COMUNE_PREFIX.match(self.denominazione):
            return f"Comune di {self.denominazione}"
        return self.denominazione

    @property
    def indirizzo(self) -> str:
        """Where mail goes: the PEC when known, else the ordinary e-mail."""
        return self.pec or self.email


_COMUNE_PREFIX = re.compile(r"^\s*comune\s+di\s+", re.IGNORECASE)


def normalise_name(name: str) -> str:
    """Key for matching names as R10 says: case, accents, hyphens, spaces, apostrophes,
    a leading "Comune di" do not matter ("RIVOLTA D'ADDA" == "Comune di Rivolta d’Adda")."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _COMUNE_PREFIX.sub("", text.strip())
    return "".join(ch for ch in text.casefold() if ch.isalnum())


class Registry:
    """The enti of one ambito, looked up by code or by normalised name."""

    def __init__(self, enti: list[Ente], *, source: str = "") -> None:
        self.enti = list(enti)
        self.source = source
        self._by_code = {e.codice: e for e in self.enti}
        self._by_name = {normalise_name(e.denominazione): e for e in self.enti}

    def __iter__(self) -> Iterator[Ente]:
        return iter(self.enti)

    def __len__(self) -> int:
        return len(self.enti)

    def __contains__(self, codice: object) -> bool:
        return codice in self._by_code

    def get(self, codice: str) -> Ente | None:
        return self._by_code.get(codice.strip()) if codice else None

    def find(self, *, codice: str | None = None, nome: str | None = None) -> Ente | None:
        """The ente with this code, else the one whose normalised name matches."""
        if codice:
            found = self.get(codice)
            if found is None and codice.strip().isdigit():
                found = self.get(codice.strip().zfill(6))
            if found:
                return found
        if nome:
            return self._by_name.get(normalise_name(nome))
        return None

    @property
    def capofila(self) -> Ente | None:
        return next((e for e in self.enti if e.capofila), None)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        for e in self.enti:
            writer.writerow(
                [
                    e.codice,
                    e.tipo,
                    e.denominazione,
                    e.provincia,
                    e.codice_catastale,
                    "SI" if e.capofila else "",
                    e.email,
                    e.pec,
                ]
            )
        return buf.getvalue()


def parse_registry(text: str, *, source: str = "elenco enti") -> Registry:
    """Parse a registry CSV (comma or semicolon separated, as Excel in Italy saves it)."""
    text = text.lstrip("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("codice", "tipo", "denominazione") if c not in header]
    if missing:
        raise RegistryError(
            f"{source}, riga 1: mancano le colonne {', '.join(missing)} "
            f"(attese: {','.join(REQUIRED_COLUMNS)}[,email,pec])"
        )
    enti: list[Ente] = []
    seen: dict[str, int] = {}
    for raw in _records(reader, source):
        # the line the record starts on (a quoted line break makes a record span lines)
        lineno = reader.line_num - sum(v.count("\n") for v in raw.values() if isinstance(v, str))
        row = {
            (k or "").strip().lower(): (v or "").strip()
            for k, v in raw.items()
            if isinstance(v, str | type(None))
        }
        if not any(row.values()):
            continue
        for column, value in row.items():
            if any(ch < " " for ch in value):  # a quoted line break (or a control character)
                raise RegistryError(
                    f"{source}, riga {lineno}: la colonna {column or '?'} contiene un a capo o "
                    "un carattere di controllo: ogni valore deve stare su una sola riga"
                )
        codice = row.get("codice", "")
        tipo = row.get("tipo", "").upper()
        nome = row.get("denominazione", "")
        if not codice:
            raise RegistryError(f"{source}, riga {lineno}: manca il codice dell'ente")
        if tipo not in TIPI:
            raise RegistryError(
                f"{source}, riga {lineno}: tipo '{row.get('tipo', '')}' sconosciuto "
                f"(ammessi: {', '.join(TIPI)})"
            )
        if not nome:
            raise RegistryError(f"{source}, riga {lineno}: manca la denominazione dell'ente")
        if tipo == "COMUNE" and codice.isdigit() and len(codice) < 6:
            # Excel drops the leading zeros of ISTAT codes: put them back.
            codice = codice.zfill(6)
        if codice in seen:
            raise RegistryError(
                f"{source}, riga {lineno}: codice {codice} già presente alla riga {seen[codice]}"
            )
        seen[codice] = lineno
        enti.append(
            Ente(
                codice=codice,
                tipo=tipo,
                denominazione=nome,
                provincia=row.get("provincia", ""),
                codice_catastale=row.get("codice_catastale", ""),
                capofila=row.get("capofila", "").casefold() in _TRUE,
                email=row.get("email", ""),
                pec=row.get("pec", ""),
            )
        )
    if not enti:
        raise RegistryError(f"{source}: nessun ente nell'elenco")
    return Registry(enti, source=source)


def _records(reader: csv.DictReader[str], source: str) -> Iterator[dict[str, Any]]:
    """The records of `reader`; a CSV it cannot read is a RegistryError with the line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RegistryError(
                f"{source}, riga {reader.line_num}: file CSV non leggibile ({exc})"
            ) from exc


def load_registry(path: Path | str) -> Registry:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: impossibile leggere il file ({os_reason(exc)})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252")  # CSV saved by Excel on Windows
    return parse_registry(text, source=str(path))


def default_registry() -> Registry:
    """The built-in registry of the Ambito Cremasco: 48 comuni and the ALER."""
    text = (resources.files("piano_abitativo") / "data" / "enti_ambito_cremasco.csv").read_text(
        encoding="utf-8"
    )
    return parse_registry(text, source="elenco enti dell'Ambito Cremasco (predefinito)")


def addresses_of(enti: Iterable[Ente]) -> dict[str, Ente]:
    """Every registered pec and email, lower case → its ente (the first one if shared)."""
    out: dict[str, Ente] = {}
    for e in enti:
        for addr in (e.pec, e.email):
            if addr:
                out.setdefault(addr.strip().lower(), e)
    return out
