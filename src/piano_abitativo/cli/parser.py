"""The arguments of ``piano-abitativo``: an argparse parser that speaks only Italian.

argparse writes its own words in English ("usage:", "options:", "invalid choice", …)
through gettext; here the help formatter writes "uso:", the groups are "argomenti
posizionali" and "opzioni", and every error message argparse can produce is translated
(`translate`) before it is shown as ``Errore: …`` under the usage, with exit code 2.

Importing this module imports nothing heavy: the parser is built before the command's
modules are loaded.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from piano_abitativo.core.version import __version__

#: the defaults of master-vuoto and modello-vuoto (the names of `master.xlsm` and
#: `template.workbook`, which are not imported just to parse the arguments; a test checks
#: that they are the same)
BLANK_MASTER_NAME = "Consolidato_piano_abitativo_vuoto.xlsm"
STANDARD_TEMPLATE_NAME = "modello_piano_abitativo.xlsx"

HELP_TEXT = "mostra questo aiuto ed esce"

# argparse's messages (Python 3.11 to 3.14) and their Italian; {n} is the n-th field
_MESSAGES: list[tuple[str, str]] = [
    (r"argument (.+?): (.*)", "argomento {0}: {1}"),
    (r"the following arguments are required: (.*)", "mancano gli argomenti obbligatori: {0}"),
    (r"one of the arguments (.*) is required", "serve uno degli argomenti {0}"),
    (r"unrecognized arguments: (.*)", "argomenti non riconosciuti: {0}"),
    (r"not allowed with argument (.*)", "non si può usare insieme a {0}"),
    (r"ignored explicit argument (.*)", "non accetta un valore ({0})"),
    (r"expected one argument", "serve un valore"),
    (r"expected at most one argument", "si può indicare al massimo un valore"),
    (r"expected at least one argument", "serve almeno un valore"),
    (r"expected (\d+) arguments?", "servono {0} valori"),
    (r"ambiguous option: (.+?) could match (.*)", "opzione ambigua: {0} può indicare {1}"),
    (r"unexpected option string: (.*)", "opzione inattesa: {0}"),
    (r"invalid int value: (.*)", "numero intero non valido: {0}"),
    (r"invalid float value: (.*)", "numero non valido: {0}"),
    (r"invalid (.+?) value: (.*)", "valore non valido: {1}"),
    (
        r"invalid choice: (.+?) \(choose from (.*)\)",
        "scelta non valida: {0} (possibili: {1})",
    ),
    (r"can't open (.+?): (.*)", "impossibile aprire {0}: {1}"),
    (r"option (.+?) is deprecated", "l'opzione {0} è deprecata"),
]


@functools.cache
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    """`_MESSAGES` compiled, on the first error only (``--help`` and a right command
    line do not pay for it)."""
    return [(re.compile(rf"^{pattern}$", re.DOTALL), it) for pattern, it in _MESSAGES]


def translate(message: str) -> str:
    """argparse's error `message` in Italian (an unknown one becomes a generic sentence,
    never English)."""
    for pattern, italian in _compiled():
        m = pattern.match(message)
        if m is not None:
            groups = list(m.groups())
            if italian.startswith("argomento "):  # the message after the argument's name
                groups[1] = translate(groups[1])
            return italian.format(*groups)
    if re.search(r"[àèéìòù]|«", message) or not re.search(r"\b(the|is|are|of)\b", message):
        return message  # already Italian (an ArgumentTypeError of ours)
    return "argomenti non validi"


class ItalianHelpFormatter(argparse.HelpFormatter):
    """Help and usage with "uso:" instead of "usage:"."""

    def add_usage(
        self,
        usage: str | None,
        actions: Any,
        groups: Any,
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, actions, groups, "uso: " if prefix is None else prefix)


class ItalianParser(argparse.ArgumentParser):
    """An ArgumentParser whose every word is Italian: usage, group titles, -h, errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", ItalianHelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self._positionals.title = "argomenti posizionali"
        self._optionals.title = "opzioni"
        self.add_argument("-h", "--help", action="help", help=HELP_TEXT)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"Errore: {translate(message)}\n")


def integer(text: str) -> int:
    """An integer argument (``--anno``, ``--limite``), with the error in Italian."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"numero intero non valido: «{text}»") from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``piano-abitativo`` and its subcommands."""
    p = ItalianParser(
        prog="piano-abitativo",
        description="Raccolta dei dati del Piano annuale dell'offerta abitativa pubblica e "
        "sociale (L.R. 16/2016, R.R. 4/2017): modelli per gli enti, validazione "
        "dei file restituiti.",
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"piano-abitativo {__version__}",
        help="mostra la versione ed esce",
    )
    sub = p.add_subparsers(
        dest="comando", metavar="COMANDO", parser_class=ItalianParser, title="comandi"
    )
    sub.required = True

    def cmd(name: str, text: str) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        return c

    def cartella(c: argparse.ArgumentParser) -> None:
        c.add_argument("cartella", type=Path, help="cartella della raccolta")

    c = cmd("crea", "Crea la cartella di una nuova raccolta (configurazione ed elenco enti).")
    c.add_argument("cartella", type=Path, help="cartella della raccolta (nuova)")
    c.add_argument("--anno", type=integer, required=True, help="anno del Piano, es. 2026")
    c.add_argument(
        "--enti",
        type=Path,
        metavar="FILE.csv",
        help="elenco degli enti (CSV); se omesso, l'Ambito Cremasco",
    )
    c.add_argument("--scadenza", metavar="GG/MM/AAAA", help="termine per la risposta")
    c.add_argument("--ambito", help="nome dell'ambito territoriale")
    c.add_argument("--contatto", default="", help="chi contattare, per le istruzioni")
    c.add_argument(
        "--precedente",
        type=Path,
        metavar="CARTELLA",
        help="raccolta dell'anno precedente, per il confronto ente per ente",
    )

    c = cmd(
        "collega",
        "Collega la raccolta dell'anno precedente, per confrontare i dati di "
        "ogni ente con quelli dell'anno prima (avvisi R13-R15 e variazioni "
        "nel riepilogo); aggiorna raccolta.toml lasciando il resto com'è.",
    )
    cartella(c)
    c.add_argument(
        "--precedente",
        type=Path,
        required=True,
        metavar="CARTELLA",
        help="cartella della raccolta dell'anno precedente",
    )

    c = cmd("modelli", "Genera un modello personalizzato per ogni ente in CARTELLA/modelli/.")
    cartella(c)

    c = cmd("valida", "Valida i file restituiti dagli enti (file o cartelle).")
    c.add_argument(
        "percorsi",
        type=Path,
        nargs="+",
        metavar="PERCORSO",
        help="file .xlsx/.xlsm/.xls/.ods o cartelle che li contengono",
    )
    c.add_argument(
        "--raccolta",
        type=Path,
        metavar="CARTELLA",
        help="raccolta di riferimento (se omessa: quella che contiene i file)",
    )
    c.add_argument("--json", action="store_true", help="risultato in formato JSON")

    c = cmd(
        "importa",
        "Archivia e valida i file restituiti dagli enti (file o cartelle): "
        "ogni file è conservato nell'archivio della raccolta, l'ente è "
        "riconosciuto dal contenuto, non dal nome del file. Se arriva qualcosa di "
        "nuovo, le risposte agli enti sono preparate in CARTELLA/posta/uscita/ "
        "(partono solo con «esiti --davvero»).",
    )
    cartella(c)
    c.add_argument(
        "--da",
        type=Path,
        nargs="+",
        metavar="PERCORSO",
        help="file o cartelle da importare (anche messaggi .eml/.msg e file firmati .p7m)",
    )
    c.add_argument(
        "--imap",
        action="store_true",
        help="legge anche la casella di posta configurata in [posta], senza modificarla",
    )
    c.add_argument(
        "--sposta",
        action="store_true",
        help="con --imap: sposta i messaggi importati nella cartella "
        "cartella_importati (nessun messaggio viene cancellato)",
    )
    c.add_argument("--json", action="store_true", help="risultato in formato JSON")

    for name, text in (
        (
            "invia",
            "Invia a ogni ente il suo modello personalizzato, con le istruzioni "
            "(testo in CARTELLA/messaggi/invio.txt).",
        ),
        (
            "solleciti",
            "Sollecita gli enti che non hanno risposto o il cui ultimo file ha "
            "errori, elencandoli (al massimo un sollecito al giorno per ente).",
        ),
        (
            "esiti",
            "Comunica a ogni ente l'esito del suo ultimo file (accettato, o cosa "
            "correggere) e chiede il file a chi ha scritto senza allegarlo.",
        ),
    ):
        c = cmd(
            name,
            text + " Senza --davvero è una prova: i messaggi sono scritti in "
            "CARTELLA/posta/uscita/ e non inviati.",
        )
        cartella(c)
        c.add_argument(
            "--davvero", action="store_true", help="invia davvero (senza: solo prova, nulla parte)"
        )
        c.add_argument("--limite", type=integer, metavar="N", help="invia al massimo N messaggi")
        c.add_argument(
            "--ripeti",
            action="store_true",
            help="invia di nuovo anche i messaggi già inviati o il cui invio è stato interrotto",
        )
        if name != "esiti":
            c.add_argument(
                "--enti",
                nargs="+",
                metavar="CODICE",
                help="solo questi enti (codici dell'elenco enti)",
            )
        c.add_argument("--json", action="store_true", help="risultato in formato JSON")

    c = cmd(
        "stato",
        "Mostra per ogni ente se ha risposto, quando (ora certificata PEC se "
        "c'è), con quali errori, e i solleciti inviati.",
    )
    cartella(c)
    c.add_argument("--json", action="store_true", help='risultato in formato JSON: {"enti": [...]}')

    c = cmd(
        "consolida",
        "Scrive la cartella di lavoro riepilogativa (tabelle a)–k) con "
        "totali calcolati da formule, cruscotto, report programmazione).",
    )
    cartella(c)
    c.add_argument(
        "--json", action="store_true", help="stampa in JSON il percorso del file e i totali"
    )
    scelta = c.add_mutually_exclusive_group()
    scelta.add_argument(
        "--registra-rettifiche",
        action="store_true",
        help="i valori modificati a mano nel foglio Dati sono registrati come rettifiche "
        "(con --motivo), poi il consolidato è riscritto",
    )
    scelta.add_argument(
        "--scarta-modifiche",
        action="store_true",
        help="i valori modificati a mano nel foglio Dati sono scartati e riscritti con "
        "quelli degli enti",
    )
    c.add_argument("--motivo", metavar="TESTO", help="il motivo delle rettifiche registrate")

    c = cmd(
        "esporta",
        "Esporta i dati della raccolta, una riga per ente (valori della versione usata, "
        "con le rettifiche; stato, ricezione, canale, errori e avvisi), come CSV, xlsx o "
        "JSON.",
    )
    cartella(c)
    c.add_argument(
        "--formato",
        choices=("csv", "xlsx", "json"),
        default="csv",
        help="csv (predefinito), xlsx (tabella con filtro) o json (un oggetto per ente)",
    )
    c.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="file da scrivere (predefinito: Dati_piano_abitativo_ANNO.<formato> nella "
        "cartella della raccolta)",
    )
    c.add_argument(
        "--separatore",
        choices=(";", ","),
        default=";",
        metavar="SEPARATORE",
        help="solo csv: ; con la virgola decimale (predefinito, per Excel in italiano) "
        "oppure , con il punto decimale",
    )

    c = cmd(
        "accetta",
        "Usa un file in verifica (mittente o ente in conflitto) o non attribuito: i suoi "
        "dati entrano nel Piano per l'ente che dichiara, o per quello indicato con --ente. "
        "La decisione è registrata con chi, quando e perché.",
    )
    cartella(c)
    c.add_argument("id", metavar="ID", help="identificativo del file (mostrato da stato e importa)")
    c.add_argument("--motivo", metavar="TESTO", required=True, help="perché il file è accettato")
    c.add_argument("--ente", metavar="CODICE", help="l'ente a cui attribuire il file")

    c = cmd(
        "scarta",
        "Toglie dal Piano uno o più file ricevuti: restano nell'archivio, l'ente torna alla "
        "versione precedente o a «non ricevuto». Si annulla con ripristina.",
    )
    cartella(c)
    c.add_argument("id", metavar="ID", nargs="+", help="identificativi dei file da scartare")
    c.add_argument("--motivo", metavar="TESTO", required=True, help="perché i file sono scartati")

    c = cmd("ripristina", "Annulla lo scarto di un file: torna a contare come ricevuto.")
    cartella(c)
    c.add_argument("id", metavar="ID", help="identificativo del file scartato")
    c.add_argument("--motivo", metavar="TESTO", default="", help="perché il file è ripristinato")

    c = cmd(
        "rettifica",
        "Registra una correzione del Comune capofila a un valore di un ente (legata alla "
        "versione che corregge); la validazione si ripete con il valore corretto.",
    )
    cartella(c)
    c.add_argument("--ente", metavar="CODICE", required=True, help="codice dell'ente")
    c.add_argument(
        "--campo", metavar="CAMPO", required=True, help="il campo da correggere (es. a_sap)"
    )
    c.add_argument("--valore", metavar="VALORE", required=True, help="il valore corretto")
    c.add_argument("--motivo", metavar="TESTO", required=True, help="perché si corregge")

    c = cmd(
        "documento",
        "Scrive il documento del Piano annuale da approvare in Assemblea dei "
        "sindaci: CARTELLA/documento/Piano_annuale_offerta_abitativa_ANNO"
        ".docx e, se LibreOffice è installato, il .pdf. I testi delle "
        "sezioni descrittive sono in CARTELLA/testi/ e si possono "
        "modificare.",
    )
    cartella(c)
    c.add_argument(
        "--senza-pdf", action="store_true", help="scrive solo il .docx, senza la conversione in PDF"
    )
    c.add_argument(
        "--json",
        action="store_true",
        help='stampa in JSON {"docx": percorso, "pdf": percorso o null, "note": [...]}',
    )

    c = cmd(
        "master-vuoto",
        "Scrive la cartella di lavoro riepilogativa vuota con i pulsanti "
        "(quella in workbook/) e il testo delle sue macro "
        "(workbook/vba/).",
    )
    c.add_argument(
        "--output",
        type=Path,
        default=Path("workbook") / BLANK_MASTER_NAME,
        help=f"file da scrivere (predefinito: workbook/{BLANK_MASTER_NAME}); le "
        "macro vanno nella sottocartella vba/ della stessa cartella",
    )

    c = cmd("modello-vuoto", "Scrive il modello standard vuoto (quello in templates/).")
    c.add_argument(
        "--output",
        type=Path,
        default=Path("templates") / STANDARD_TEMPLATE_NAME,
        help=f"file da scrivere (predefinito: templates/{STANDARD_TEMPLATE_NAME})",
    )

    c = cmd(
        "demo",
        "Dimostrazione completa sui dati dell'Ambito Cremasco 2025, senza rete e "
        "senza inviare nulla: raccolta, modelli, risposte arrivate per PEC ed "
        "e-mail, importazione, validazione, cartella riepilogativa, documento.",
    )
    c.add_argument(
        "cartella",
        type=Path,
        nargs="?",
        default=Path("demo-piano-abitativo"),
        help="cartella della demo (predefinita: ./demo-piano-abitativo)",
    )
    return p


def subcommands(
    parser: argparse.ArgumentParser | None = None,
) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of `parser` (by default the CLI's), by name."""
    p = parser or build_parser()
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments of the command line; argparse exits (code 2) on an error."""
    return build_parser().parse_args(argv)
