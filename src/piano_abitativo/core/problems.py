"""The validation report: one `Problem` record per finding, never an exception.

Every problem has a stable code (documented in ``docs/problemi.md``, generated from
`CATALOGUE`), a severity, its exact position (file, sheet, A1 cell, field id), the
value found, an Italian message and an Italian hint saying what to do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How serious a problem is: `errore` blocks the return, `avviso` only informs."""

    ERRORE = "errore"
    AVVISO = "avviso"


@dataclass(frozen=True)
class ProblemType:
    """One entry of the catalogue: the stable code and what it means."""

    code: str
    severity: Severity
    title: str
    hint: str


def _t(code: str, severity: Severity, title: str, hint: str) -> ProblemType:
    return ProblemType(code, severity, title, hint)


E, A = Severity.ERRORE, Severity.AVVISO

#: The catalogue of every problem the reader and the validator can report.
#: Codes are a public contract: never reuse or rename one.
CATALOGUE: dict[str, ProblemType] = {
    t.code: t
    for t in [
        # --- the file itself ---------------------------------------------------------
        _t(
            "F01",
            E,
            "File non trovato o non leggibile",
            "Controllare il percorso del file e i permessi di lettura.",
        ),
        _t(
            "F02",
            E,
            "Il file non è una cartella di lavoro Excel o LibreOffice",
            "Inviare il modello compilato in formato .xlsx (oppure .ods o .xls), "
            "non un PDF, un documento di testo o un'immagine.",
        ),
        _t(
            "F03",
            E,
            "File danneggiato o incompleto",
            "Il file è probabilmente troncato o corrotto: salvarlo di nuovo dal "
            "programma con cui è stato compilato e inviarlo ancora.",
        ),
        _t(
            "F04",
            E,
            "File protetto da password",
            "Salvare il file senza password di apertura (File > Info > Proteggi cartella "
            "di lavoro > Crittografa con password: cancellare la password) e inviarlo ancora.",
        ),
        _t(
            "F05",
            A,
            "Il file contiene macro",
            "Le macro non vengono mai eseguite. Salvare il modello come .xlsx "
            "(cartella di lavoro senza macro).",
        ),
        _t(
            "F06",
            E,
            "File troppo grande o sospetto (archivio compresso anomalo)",
            "Il modello compilato pesa pochi kilobyte: inviare il modello originale "
            "compilato, senza immagini o allegati incorporati.",
        ),
        _t("F07", E, "File vuoto", "Il file non contiene dati: inviare il modello compilato."),
        # --- the template -----------------------------------------------------------
        _t(
            "M01",
            E,
            "Non è il modello del Piano annuale",
            "Compilare il modello inviato dal Comune capofila, senza copiarne i dati "
            "in un altro file.",
        ),
        _t(
            "M02",
            E,
            "Foglio mancante",
            "Non rinominare né eliminare i fogli del modello: compilare di nuovo il "
            "modello originale.",
        ),
        _t(
            "M03",
            E,
            "Nome definito mancante o non valido",
            "Il modello è stato alterato: compilare di nuovo il modello originale.",
        ),
        _t(
            "M04",
            A,
            "Layout del modello modificato (righe o colonne inserite)",
            "I dati sono stati letti correttamente, ma per il prossimo invio non "
            "inserire né eliminare righe o colonne.",
        ),
        _t(
            "M05",
            E,
            "Layout del modello alterato: i dati non si possono leggere con certezza",
            "Righe o colonne sono state inserite o spostate: ricopiare i valori nel "
            "modello originale senza modificarne la struttura.",
        ),
        _t(
            "M06",
            E,
            "Modello di un altro anno",
            "Compilare il modello dell'anno in corso inviato dal Comune capofila.",
        ),
        _t(
            "M07",
            E,
            "Modello di un'altra raccolta",
            "Il file proviene da un'altra raccolta dati: compilare il modello di "
            "questa raccolta inviato dal Comune capofila.",
        ),
        _t(
            "M08",
            E,
            "Modello di un altro ente",
            "Ogni ente deve compilare il proprio modello personalizzato: usare il file "
            "ricevuto per il proprio ente.",
        ),
        _t(
            "M09",
            A,
            "Versione del modello superata",
            "Il file è stato letto, ma per il prossimo invio usare il modello più recente.",
        ),
        _t(
            "M10",
            E,
            "Versione del modello non riconosciuta",
            "Compilare il modello inviato dal Comune capofila per questa raccolta.",
        ),
        _t(
            "M11",
            E,
            "Formula inserita in una cella di input",
            "Nelle celle da compilare scrivere solo il valore (un numero o un testo), "
            "non una formula.",
        ),
        _t(
            "M12",
            E,
            "Ente non presente nell'elenco dell'ambito",
            "Verificare il codice e la denominazione dell'ente nel modello.",
        ),
        _t(
            "M13",
            E,
            "Campo calcolato modificato",
            "Le celle calcolate non vanno sovrascritte: ricompilare il modello originale.",
        ),
        # --- how values were read ---------------------------------------------------
        _t(
            "L01",
            A,
            "Numero scritto come testo",
            "Il valore è stato interpretato come numero: scrivere solo cifre, senza spazi.",
        ),
        _t(
            "L02",
            A,
            "Risposta SI/NO interpretata",
            "Scegliere SI o NO dall'elenco a tendina della cella.",
        ),
        _t(
            "L03",
            A,
            "Percentuale interpretata",
            "Scrivere il numero di punti percentuali senza simbolo, es. 10 per indicare 10%.",
        ),
        _t(
            "L04",
            A,
            "Cella vuota: considerata 0",
            "Se il valore è zero scrivere 0, così è chiaro che il dato è stato verificato.",
        ),
        _t(
            "L05",
            E,
            "Valore non numerico",
            "Scrivere solo cifre, es. 3. Se il dato è zero scrivere 0.",
        ),
        _t(
            "L06",
            E,
            "Risposta non valida: attesi SI o NO",
            "Scegliere SI o NO dall'elenco a tendina della cella.",
        ),
        _t(
            "L07",
            A,
            "Testo troppo lungo: troncato",
            "Riassumere il testo; eventuali dettagli possono essere inviati a parte.",
        ),
        # --- the rules of regole.md -------------------------------------------------
        _t(
            "R0",
            E,
            "Valore fuori dai limiti",
            "I conteggi sono numeri interi maggiori o uguali a 0; le percentuali sono "
            "comprese tra 0 e 100.",
        ),
        _t(
            "R1",
            E,
            "a) Totale unità diverso da SAP + SAS",
            "Il totale delle unità immobiliari è la somma di alloggi SAP e SAS.",
        ),
        _t(
            "R2",
            E,
            "f) Totale assegnabili diverso da b + c + d + e",
            "Il totale delle unità assegnabili è la somma delle lettere b, c, d ed e.",
        ),
        _t(
            "R3",
            E,
            "g) Soglia indigenti non valida",
            "La soglia va indicata solo dai Comuni e solo se superiore al 20% (fino al 100%). "
            "Se il Comune non fissa una soglia più alta lasciare la cella vuota.",
        ),
        _t(
            "R4",
            E,
            "i) Quota Forze di Polizia non valida",
            "La quota per Forze di Polizia e Vigili del Fuoco è indicata solo dai Comuni "
            "ed è compresa tra 0 e 10 (per cento).",
        ),
        _t(
            "R5",
            A,
            "j) Unità SAT oltre il 10%",
            "Verificare il numero di unità destinate ai servizi abitativi transitori.",
        ),
        _t(
            "R6",
            E,
            "h) Categoria aggiuntiva senza motivazione",
            "Se si indica SI, descrivere la categoria e la motivazione nella cella 'Motivazione'.",
        ),
        _t(
            "R7",
            A,
            "b) Unità in carenza manutentiva oltre gli alloggi SAP",
            "Verificare: le unità in carenza manutentiva sono di norma parte degli alloggi "
            "SAP indicati in a).",
        ),
        _t(
            "R8",
            A,
            "d) Unità in turnover oltre gli alloggi SAP",
            "Verificare: le unità che si libereranno sono di norma parte degli alloggi SAP "
            "indicati in a).",
        ),
        _t(
            "R9",
            A,
            "Ente che non ha risposto",
            "Sollecitare l'ente: anche chi non ha alloggi può inviare il modello con zeri.",
        ),
        _t(
            "R10",
            A,
            "Denominazione dell'ente riconosciuta con un'altra grafia",
            "Nessuna azione necessaria: il nome è stato ricondotto all'ente dell'elenco.",
        ),
        _t(
            "R11",
            A,
            "Solo alloggi SAS: le lettere b)–f) riguardano solo i SAP",
            "Verificare: l'ente dichiara unità assegnabili ma nessun alloggio SAP.",
        ),
        _t(
            "R12",
            A,
            "k) Assegnazioni dell'anno precedente oltre gli alloggi SAP",
            "Verificare il numero di alloggi SAP assegnati nell'anno precedente.",
        ),
        # --- against the previous year's raccolta ([confronto] precedente) ----------
        _t(
            "R13",
            A,
            "a) Alloggi SAP dimezzati o raddoppiati rispetto all'anno precedente",
            "Verificare gli alloggi SAP della lettera a): vanno indicati tutti e soli quelli "
            "di proprietà dell'ente. Se il dato è corretto (vendite, demolizioni, nuove "
            "costruzioni), ignorare l'avviso.",
        ),
        _t(
            "R14",
            A,
            "f) Unità assegnabili oltre gli alloggi SAP dell'anno precedente",
            "Verificare le lettere b)–e): le unità assegnabili sono di norma una parte degli "
            "alloggi SAP dell'ente. Se il dato è corretto (es. nuove costruzioni, lettera c), "
            "ignorare l'avviso.",
        ),
        _t(
            "R15",
            A,
            "a) Alloggi SAS dimezzati o raddoppiati rispetto all'anno precedente",
            "Verificare gli alloggi SAS della lettera a) (e che non siano stati scambiati con "
            "i SAP). Se il dato è corretto, ignorare l'avviso.",
        ),
        _t(
            "V01",
            A,
            "Referente non indicato",
            "Indicare nome e recapito (e-mail o telefono) della persona da contattare.",
        ),
        _t(
            "V02",
            A,
            "Indirizzo e-mail del referente non valido",
            "Scrivere un indirizzo nella forma nome@dominio.it.",
        ),
    ]
}


@dataclass(frozen=True)
class Problem:
    """One finding about one returned file, with its exact location."""

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
    def from_record(cls, rec: dict[str, Any]) -> Problem:
        return cls(
            code=rec["codice"],
            severity=Severity(rec["gravita"]),
            file=rec["file"],
            message=rec["messaggio"],
            hint=rec["suggerimento"],
            sheet=rec["foglio"],
            cell=rec["cella"],
            field=rec["campo"],
            value=rec["valore"],
        )


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
    return Problem(
        code=code,
        severity=severity or kind.severity,
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
    def from_record(cls, rec: dict[str, Any]) -> Report:
        return cls(
            file=rec["file"],
            ente=rec.get("ente"),
            ente_denominazione=rec.get("ente_denominazione"),
            problems=[Problem.from_record(p) for p in rec.get("problemi", [])],
            values=dict(rec.get("valori", {})),
            metadata=dict(rec.get("metadati", {})),
        )


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)
