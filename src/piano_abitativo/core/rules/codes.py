"""The codes that are not rules of the rule book: what the reader finds wrong with the
file and the template, and the findings about the ambito (coverage, names).

`core.rules.CATALOGUE` joins these with the rule book's codes: each code's severity,
title and hint are written once, here or in `core.rules.book`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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

#: Codes are a public contract: never reuse or rename one.
PLAIN_CODES: tuple[ProblemType, ...] = (
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
    _t(
        "M01",
        E,
        "Non è il modello del Piano annuale",
        "Compilare il modello inviato dal Comune capofila, senza copiarne i dati in un altro file.",
    ),
    _t(
        "M02",
        E,
        "Foglio mancante",
        "Non rinominare né eliminare i fogli del modello: compilare di nuovo il modello originale.",
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
        "Nelle celle da compilare scrivere solo il valore (un numero o un testo), non una formula.",
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
    _t(
        "L07",
        A,
        "Testo troppo lungo: troncato",
        "Riassumere il testo; eventuali dettagli possono essere inviati a parte.",
    ),
    _t(
        "L08",
        A,
        "Controlli non verificabili",
        "Correggere prima le celle segnalate come non numeriche: i controlli che ne "
        "dipendono saranno verificati sul file corretto.",
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
        "M14",
        A,
        "Denominazione dell'ente diversa da quella dell'elenco",
        "L'ente è riconosciuto dal codice del modello: verificare di aver compilato il "
        "modello ricevuto per il proprio ente.",
    ),
    _t(
        "M15",
        A,
        "Foglio nascosto del modello mancante",
        "Compilare il modello originale senza copiarne i dati in un altro file.",
    ),
    # the capofila's review of what arrived (consolidation): never about the file's content
    _t(
        "D01",
        A,
        "File in verifica: mittente o ente in conflitto",
        "Verificare con l'ente chi ha inviato il file, poi decidere con «piano-abitativo "
        "accetta» (i dati entrano nel Piano) o «piano-abitativo scarta».",
    ),
    _t(
        "D02",
        A,
        "Rettifica non più applicata: l'ente ha inviato una versione più recente",
        "Controllare la nuova versione; se la correzione serve ancora registrarla di nuovo "
        "con «piano-abitativo rettifica».",
    ),
    _t(
        "D03",
        E,
        "Registro dell'archivio danneggiato",
        "I file ricevuti restano nell'archivio: eseguire «piano-abitativo importa RACCOLTA "
        "--da CARTELLA» (anche una cartella vuota) per recuperare quelli la cui riga è "
        "illeggibile, e segnalare il problema al supporto informatico.",
    ),
    _t(
        "D04",
        A,
        "Versione usata inviata da un indirizzo non registrato",
        "Verificare che il mittente sia dell'ente; se è un suo indirizzo, aggiungerlo "
        "nell'elenco degli enti (colonne email o pec).",
    ),
    _t(
        "D06",
        A,
        "Busta PEC senza firma valida del gestore: data e ora non certificate",
        "Il file è stato accettato con l'orario di arrivo nella casella, non con quello "
        "certificato: chiedere all'ente di inviarlo di nuovo per PEC se l'orario conta.",
    ),
    _t(
        "D07",
        A,
        "Firma dei gestori PEC valida ma gestori non verificati",
        "Salvare i certificati dei gestori PEC (elenco dei gestori accreditati pubblicato "
        "da AgID) in un file o in una cartella della raccolta e indicarlo in raccolta.toml: "
        '[posta] gestori_pec = "gestori_pec".',
    ),
    _t(
        "D05",
        A,
        "Rettifica del Comune capofila applicata",
        "Il valore del Piano è quello corretto dal Comune capofila (vedere il foglio "
        "Decisioni e rettifiche).",
    ),
    _t(
        "D08",
        A,
        "Lettura non riuscita (il programma si è interrotto leggendo questo file)",
        "Il file resta nell'archivio e non viene più letto automaticamente: aprirlo a mano "
        "con cautela e chiedere all'ente di inviarlo di nuovo (salvato di nuovo dal foglio "
        "di calcolo).",
    ),
    _t(
        "D09",
        A,
        "Valore non valido (non è un numero finito): escluso dal Piano",
        "Il file contiene un numero non valido (NaN o infinito): chiedere all'ente di "
        "correggere il valore e inviare di nuovo il modello.",
    ),
)
