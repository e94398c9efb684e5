"""The editable text blocks of the document (``<raccolta>/testi/``) and their
placeholders."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from piano_abitativo.archive.store import TZ
from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.errors import os_reason
from piano_abitativo.core.raccolta import Raccolta
from piano_abitativo.document.base import (
    TESTI_DIR,
)

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------- text blocks


@dataclass(frozen=True)
class TextBlock:
    """One editable narrative block: ``testi/<file>``, the section it fills, its default."""

    key: str
    file: str
    section: str
    default: str


_PLACEHOLDER_HELP = {
    "anno": "anno del Piano, es. 2025",
    "anno_precedente": "anno precedente, es. 2024",
    "ambito": "nome dell'ambito territoriale",
    "capofila": "ente capofila, es. Comune di Crema",
    "dal_capofila": "ente capofila con la preposizione, es. dal Comune di Crema",
    "data_dati": "data e ora dei dati consolidati (ultima ricezione), es. 20/12/2024 09:30",
    "data_documento": "data e ora in cui il documento è stato prodotto",
    "scadenza": "termine per la risposta degli enti (GG/MM/AAAA)",
    "n_comuni": "numero dei Comuni dell'ambito",
    "n_enti": "numero degli enti dell'elenco (Comuni e ALER)",
    "enti_risposto": "numero degli enti che hanno trasmesso dati validi",
    "aler": "denominazione dell'ALER territorialmente competente",
}

BLOCKS: tuple[TextBlock, ...] = (
    TextBlock(
        "premessa",
        "01_premessa.txt",
        "1. PREMESSA",
        """\
Con la Legge Regionale 8 luglio 2016, n. 16 «Disciplina regionale dei servizi abitativi» \
e il Regolamento Regionale 4 agosto 2017, n. 4 «Disciplina della programmazione \
dell'offerta abitativa pubblica e sociale e dell'accesso e della permanenza nei servizi \
abitativi pubblici», e successive modifiche e integrazioni, Regione Lombardia ha integrato \
le politiche abitative con le politiche sociali, al fine di soddisfare il fabbisogno \
abitativo primario e di ridurre il disagio abitativo dei nuclei familiari e di particolari \
categorie sociali in condizioni di svantaggio.

Si passa così dall'«edilizia residenziale pubblica» al «servizio abitativo»: l'offerta \
abitativa pubblica e sociale è programmata in modo coordinato e integrato con la rete dei \
servizi alla persona, su scala sovracomunale (l'ambito territoriale del Piano di Zona), \
con un ruolo significativo dei Comuni e degli enti proprietari.
""",
    ),
    TextBlock(
        "piano_annuale_triennale",
        "02_piano_annuale_e_triennale.txt",
        "1.1 - PIANO ANNUALE E PIANO TRIENNALE",
        """\
La norma regionale prevede due strumenti per la programmazione dell'offerta abitativa: il \
Piano triennale e il Piano annuale.

Il Piano triennale integra le politiche abitative con quelle territoriali, sociali, \
dell'istruzione e del lavoro attraverso:

- le strategie e gli obiettivi di sviluppo dell'offerta abitativa;
- le linee d'azione per il contrasto del disagio abitativo e dell'emergenza abitativa;
- le linee d'azione per l'accesso e il mantenimento dell'abitazione principale.

Il Piano annuale aggiorna il Piano triennale per l'anno di riferimento: in particolare \
effettua la ricognizione delle unità abitative destinate ai servizi abitativi pubblici e \
sociali che si prevede di assegnare nel corso dell'anno {anno}.

Entrambi i Piani sono predisposti dall'ente capofila, {capofila}, e approvati \
dall'Assemblea dei sindaci dell'Ambito territoriale {ambito}.
""",
    ),
    TextBlock(
        "ambito",
        "03_ambito_territoriale.txt",
        "1.2 - L'AMBITO TERRITORIALE",
        """\
# Descrivere qui l'ambito: Piano di Zona in vigore, tavoli e coordinamenti sulle
# politiche abitative, iniziative in corso e previste per l'anno.
L'Ambito territoriale {ambito} comprende {n_comuni} Comuni. La programmazione \
dell'offerta abitativa è coordinata con il Piano di Zona e con la rete dei servizi \
sociali dell'ambito, con l'obiettivo di un sistema territoriale dei servizi abitativi \
coordinato, efficiente ed efficace.

L'ente capofila, {capofila}, cura la ricognizione annuale presso i Comuni dell'ambito e \
l'ALER territorialmente competente e predispone il Piano annuale.
""",
    ),
    TextBlock(
        "contenuti",
        "04_contenuti_del_piano.txt",
        "2. I CONTENUTI DEL PIANO",
        """\
All'ente capofila per la programmazione dell'offerta dei servizi abitativi dell'Ambito \
territoriale {ambito}, {capofila}, è affidata la redazione del Piano annuale dell'offerta \
abitativa per l'anno {anno}, attraverso la ricognizione, presso i Comuni dell'ambito e \
l'ALER territorialmente competente, delle unità abitative destinate ai servizi abitativi \
pubblici che si prevede di assegnare entro il 31 dicembre {anno}, e lo svolgimento delle \
altre attività previste dal piano (art. 4 R.R. 4/2017 e s.m.i.).
""",
    ),
    TextBlock(
        "servizi_abitativi",
        "05_servizi_abitativi.txt",
        "2.1 - I SERVIZI ABITATIVI",
        """\
La ricognizione ha riguardato complessivamente {n_comuni} Comuni e {aler}, ALER \
territorialmente competente, che partecipa come ente proprietario di patrimonio abitativo \
pubblico.

I dati trasmessi dagli enti, ai fini della redazione del Piano annuale, sono illustrati \
di seguito.
""",
    ),
    TextBlock(
        "misure",
        "06_misure_accesso_abitazione.txt",
        "MISURE PER SOSTENERE L'ACCESSO E IL MANTENIMENTO DELL'ABITAZIONE",
        """\
# Indicare le misure effettivamente attive nell'ambito per l'anno, con le risorse e i
# tempi (art. 4 R.R. 4/2017: misure per sostenere l'accesso e il mantenimento
# dell'abitazione).
Oltre all'offerta di servizi abitativi pubblici e sociali, nell'anno {anno} l'Ambito \
territoriale {ambito} sostiene l'accesso e il mantenimento dell'abitazione principale con \
le misure previste dal Piano triennale e finanziate dalle risorse regionali e locali \
disponibili, quali:

- contributi per il sostegno al pagamento del canone di locazione sul mercato privato;
- interventi per la prevenzione degli sfratti e il contrasto della morosità incolpevole;
- servizi di informazione, accompagnamento e mediazione abitativa.
""",
    ),
    TextBlock(
        "conclusioni",
        "07_conclusioni.txt",
        "3. CONCLUSIONI",
        """\
Il presente Piano annuale è predisposto {dal_capofila}, ente capofila, sulla base dei dati \
trasmessi dai Comuni e dall'ALER e consolidati al {data_dati}, ed è sottoposto \
all'approvazione dell'Assemblea dei sindaci dell'Ambito territoriale {ambito}.

Dopo l'approvazione il Piano è pubblicato e trasmesso a Regione Lombardia secondo le \
modalità previste dalla normativa regionale.
""",
    ),
)
BLOCK_BY_KEY: dict[str, TextBlock] = {b.key: b for b in BLOCKS}


def _block_file_text(block: TextBlock) -> str:
    names = "\n".join(f"#   {{{k}}}  {v}" for k, v in _PLACEHOLDER_HELP.items())
    return (
        f"# Testo della sezione «{block.section}» del Piano annuale (comando «documento»).\n"
        "# Si può modificare liberamente: il programma non lo sovrascrive mai. Cancellando\n"
        "# il file, al prossimo documento si torna al testo predefinito.\n"
        "# Una riga vuota separa i paragrafi; una riga che inizia con «- » è una voce di\n"
        "# elenco puntato; le righe che iniziano con # sono commenti (non vanno nel\n"
        "# documento). Segnaposto sostituiti con i dati della raccolta:\n"
        f"{names}\n\n{block.default}"
    )


def write_text_blocks(raccolta_path: Path) -> list[Path]:
    """Write the text blocks that do not exist yet in ``<raccolta>/testi/`` (never
    overwrites an existing one); the paths written."""
    written = []
    for block in BLOCKS:
        path = Path(raccolta_path) / TESTI_DIR / block.file
        if path.exists():
            continue
        atomic_write_bytes(path, _block_file_text(block).encode("utf-8"))
        written.append(path)
    return written


def read_text_blocks(raccolta_path: Path, notes: list[str] | None = None) -> dict[str, str]:
    """The text of each block (key → text) from ``<raccolta>/testi/``; a missing file gives
    the default, a file that is not UTF-8 is read as Windows-1252 (with a note)."""
    out: dict[str, str] = {}
    for block in BLOCKS:
        path = Path(raccolta_path) / TESTI_DIR / block.file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            out[block.key] = block.default
            continue
        except OSError as exc:
            if notes is not None:
                notes.append(
                    f"{TESTI_DIR}/{block.file}: impossibile leggerlo "
                    f"({os_reason(exc)}); usato il testo predefinito."
                )
            out[block.key] = block.default
            continue
        try:
            out[block.key] = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            out[block.key] = data.decode("cp1252", "replace")
            if notes is not None:
                notes.append(
                    f"{TESTI_DIR}/{block.file}: il file non è in UTF-8, letto come "
                    "Windows-1252. Salvarlo in UTF-8 per essere certi delle lettere "
                    "accentate."
                )
    return out


@dataclass(frozen=True)
class TextParagraph:
    """A paragraph of a text block: plain or a bullet item."""

    text: str
    bullet: bool = False


_BULLET = re.compile(r"^\s*[-•*]\s+")


def parse_block(text: str) -> list[TextParagraph]:
    """Paragraphs of a block: blank line = new paragraph, ``- `` = bullet item (lines
    below it continue the item), ``#`` at the start of a line = comment."""
    paras: list[TextParagraph] = []
    words: list[str] = []
    bullet = False

    def flush() -> None:
        nonlocal words, bullet
        if words:
            paras.append(TextParagraph(" ".join(words), bullet))
        words, bullet = [], False

    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw.lstrip().startswith("#"):
            continue
        line = raw.strip()
        if not line:
            flush()
            continue
        m = _BULLET.match(raw)
        if m:
            flush()
            bullet = True
            line = raw[m.end() :].strip()
        words.append(line)
    flush()
    return paras


_DA_CAPOFILA = re.compile(r"\bda \{capofila\}")

#: the visible note under a section whose text is still the default one
DEFAULT_NOTE = "testo predefinito da adattare"


def is_default(block: TextBlock, text: str) -> bool:
    """Whether `text` is still the default wording of `block`: the same paragraphs once
    comments and line breaks are set aside (editing only the comments does not count)."""

    def content(s: str) -> list[TextParagraph]:
        return parse_block(_DA_CAPOFILA.sub("{dal_capofila}", s))

    return content(text) == content(block.default)


_TOKEN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_placeholders(text: str, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace each known ``{name}``; unknown ones stay as written. (text, unknown names)."""
    unknown: list[str] = []
    if "dal_capofila" in values:  # "da {capofila}" written by hand: the article too
        text = _DA_CAPOFILA.sub("{dal_capofila}", text)

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values:
            return values[name]
        if name not in unknown:
            unknown.append(name)
        return m.group(0)

    return _TOKEN.sub(sub, text), unknown


def _local(t: dt.datetime) -> dt.datetime:
    return t.astimezone(TZ) if t.tzinfo is not None else t


def data_as_of(cons: Consolidation) -> dt.datetime:
    """The time of the consolidated data: the latest reception among the versions used
    (Italian time); before any return, when the consolidation was made."""
    received = [_local(s.used.ricevuto_il) for s in cons.answered if s.used is not None]
    return max(received) if received else _local(cons.generated_at)


#: first words of an institution's name, after "da": feminine ones, the others
_FEMININE = ("unione", "comunità", "azienda", "provincia", "città", "società", "agenzia")
_MASCULINE = ("comune", "consorzio", "ente", "ambito", "ufficio", "servizio", "distretto")
_ARTICLES = {"il": "dal", "lo": "dallo", "la": "dalla", "i": "dai", "gli": "dagli", "le": "dalle"}
_LO = re.compile(r"^(s[bcdfgklmnpqrstvz]|z|x|gn|ps|pn|y)")


def with_da(name: str) -> str:
    """`name` after the preposition "da", with its article: «Comune di Crema» → «dal Comune
    di Crema», «ALER …» → «dall'ALER …», «Unione dei Comuni …» → «dall'Unione …»;
    a name that is not an institution's («Crema») keeps the bare «da»."""
    name = name.strip()
    if not name:
        return "da"
    word, _, rest = name.partition(" ")
    low = word.lower()
    if low.startswith("l'"):
        return f"dal{name}"
    if low in _ARTICLES and rest:
        return f"{_ARTICLES[low]} {rest}"
    acronym = len(word) > 1 and word.isupper()
    if not (acronym or low in _FEMININE or low in _MASCULINE):
        return f"da {name}"
    if low[0] in "aeiouàèéìòù":
        return f"dall'{name}"
    if low in _FEMININE:
        return f"dalla {name}"
    return f"dallo {name}" if _LO.match(low) else f"dal {name}"


def placeholder_values(r: Raccolta, cons: Consolidation) -> dict[str, str]:
    """The values of the placeholders of the text blocks."""
    enti = [s.ente for s in cons.enti]
    aler = [e.denominazione for e in enti if not e.is_comune]
    return {
        "anno": str(cons.anno),
        "anno_precedente": str(cons.anno - 1),
        "ambito": cons.ambito,
        "capofila": cons.capofila or "l'ente capofila",
        "dal_capofila": with_da(cons.capofila) if cons.capofila else "dall'ente capofila",
        "data_dati": f"{data_as_of(cons):%d/%m/%Y %H:%M}",
        "data_documento": f"{_local(cons.generated_at):%d/%m/%Y %H:%M}",
        "scadenza": f"{cons.scadenza:%d/%m/%Y}" if cons.scadenza else "",
        "n_comuni": str(sum(1 for e in enti if e.is_comune)),
        "n_enti": str(len(enti)),
        "enti_risposto": str(len(cons.answered)),
        "aler": " e ".join(aler) or "l'ALER territorialmente competente",
    }
