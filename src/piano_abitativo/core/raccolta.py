"""A *raccolta*: the folder of one yearly collection (config, registry, templates)."""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piano_abitativo.core.atomic import atomic_write_text
from piano_abitativo.core.errors import RaccoltaError as RaccoltaError
from piano_abitativo.core.errors import RegistryError
from piano_abitativo.core.registry import Registry, default_registry, load_registry
from piano_abitativo.core.schema import SCHEMA, Schema
from piano_abitativo.core.settings import Settings

CONFIG_NAME = "raccolta.toml"
REGISTRY_NAME = "enti.csv"
MODELLI_DIR = "modelli"
#: keys that would hold a password: refused anywhere in raccolta.toml, the password never
#: goes in a file
PASSWORD_KEYS = ("password", "passwd", "pass", "pwd", "parola_chiave")
#: a key that contains one of these words is taken for a password too (smtp_password...)
PASSWORD_WORDS = ("password", "passwd", "parola_chiave", "segreto", "secret")
#: the years a raccolta can be for
ANNI = (2000, 2100)


@dataclass
class Raccolta:
    path: Path
    id: str
    anno: int
    ambito: str
    capofila: str
    scadenza: dt.date | None
    contatto: str
    registry: Registry
    settings: Settings = field(default_factory=Settings)
    #: the [posta] section as written (see `mail.load_settings` for its meaning)
    posta: dict[str, Any] = field(default_factory=dict)
    #: [confronto] precedente: last year's raccolta folder as written (relative to `path`
    #: or absolute); "" when not linked
    precedente: str = ""
    #: the fields collected (not stored in raccolta.toml: the program's own schema unless
    #: a caller, e.g. a test, gives another)
    schema: Schema = field(default=SCHEMA, compare=False, repr=False)
    #: what `consolidation.context` loaded from the previous raccolta, kept for the life of
    #: this object
    cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def modelli_dir(self) -> Path:
        return self.path / MODELLI_DIR

    @property
    def precedente_path(self) -> Path | None:
        """The previous year's raccolta folder (resolved against this one), if linked."""
        if not self.precedente:
            return None
        return Path(os.path.normpath(self.path / self.precedente))


def parse_date(text: str) -> dt.date:
    """GG/MM/AAAA (also with - or .) or ISO AAAA-MM-GG."""
    t = text.strip()
    for fmt in ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(t, fmt).replace(tzinfo=dt.UTC).date()
        except ValueError:
            continue
    raise RaccoltaError(f"Data «{text}» non valida: usare il formato GG/MM/AAAA, es. 15/12/2026")


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _config_text(r: Raccolta, created: dt.datetime) -> str:
    scad = r.scadenza.strftime("%d/%m/%Y") if r.scadenza else ""
    s = r.settings
    return f"""\
# Raccolta dei dati del Piano annuale dell'offerta abitativa pubblica e sociale
# (L.R. Lombardia 16/2016, R.R. 4/2017 art. 4).
# Creata da piano-abitativo il {created:%d/%m/%Y alle %H:%M}.
# Il file si può modificare con un editor di testo: le righe che iniziano con #
# sono commenti. Dopo una modifica rigenerare i modelli con
#   piano-abitativo modelli <cartella>

[raccolta]
# Identificativo univoco della raccolta: è scritto, nascosto, in ogni modello
# inviato agli enti e serve a riconoscere i file restituiti. Non modificarlo.
id = {_toml_str(r.id)}
# Anno del Piano (l'anno in cui le unità saranno assegnate).
anno = {r.anno}
# Nome dell'ambito territoriale, come compare nei modelli e nel Piano.
ambito = {_toml_str(r.ambito)}
# Ente capofila che conduce la raccolta.
capofila = {_toml_str(r.capofila)}
# Termine per la risposta degli enti, nella forma GG/MM/AAAA (vuoto = non indicato).
scadenza = {_toml_str(scad)}
# Chi contattare per informazioni (compare nelle istruzioni del modello),
# es. "Ufficio Casa, tel. 0373 000000, casa@comune.example".
contatto = {_toml_str(r.contatto)}
# Elenco degli enti dell'ambito (CSV: codice,tipo,denominazione,provincia,
# codice_catastale,capofila[,email,pec]), nella stessa cartella.
enti = {_toml_str(REGISTRY_NAME)}

[regole]
# R5: si segnala (avviso) quando le unità SAT (lettera j) superano questa
# percentuale della base indicata sotto.
sat_percentuale = {s.sat_percentuale:g}
# Base della percentuale: "a_sap" (alloggi SAP della lettera a) oppure
# "f_totale_assegnabili" (unità assegnabili nell'anno, lettera f).
sat_base = {_toml_str(s.sat_base)}
# Arrotondamento del limite: "eccesso" oppure "difetto".
sat_arrotondamento = {_toml_str(s.sat_arrotondamento)}
# R13, R15 (confronto con la raccolta dell'anno precedente): si segnala (avviso)
# quando gli alloggi SAP (R13) o SAS (R15) della lettera a) sono al massimo questa
# percentuale di quelli dell'anno precedente (50 = dimezzati o meno)...
confronto_minimo_percentuale = {s.confronto_minimo_percentuale:g}
# ...oppure almeno questa percentuale (200 = raddoppiati o più)...
confronto_massimo_percentuale = {s.confronto_massimo_percentuale:g}
# ...purché almeno in uno dei due anni l'ente abbia questo numero di alloggi o più
# (così il passaggio da 1 a 3 alloggi non è segnalato).
confronto_minimo_alloggi = {s.confronto_minimo_alloggi}
# R18: si segnala (avviso) quando un numero delle lettere b), c), d), e), j), k) supera
# il totale delle unità della lettera a) (SAP + SAS) di più di queste unità.
margine_plausibilita = {s.margine_plausibilita}
{_confronto_section(r)}{POSTA_SECTION}"""


def _confronto_section(r: Raccolta) -> str:
    key = (
        f"precedente = {_toml_str(r.precedente)}"
        if r.precedente
        else f'# precedente = "../raccolta-{r.anno - 1}"'
    )
    return f"""
[confronto]
# Raccolta dell'anno precedente, per confrontare i dati di ogni ente con quelli
# dell'anno prima (variazioni nel riepilogo e nel documento, avvisi R13-R15 sui salti
# non plausibili). Cartella della raccolta, relativa a questa cartella oppure completa;
# togliere il # davanti alla riga per usarla. Si imposta anche con il comando
#   piano-abitativo collega CARTELLA --precedente CARTELLA_ANNO_PRECEDENTE
{key}
"""


POSTA_SECTION = """
# [posta]
# Posta per inviare i modelli e ricevere le risposte (comandi invia, solleciti,
# esiti, importa --imap). Togliere il # davanti alla riga [posta] qui sopra e
# davanti alle righe da usare.
# Ogni valore si può dare anche con una variabile d'ambiente, che prevale sul file:
# PIANO_ABITATIVO_SMTP_HOST, _SMTP_PORT, _SMTP_SICUREZZA, _IMAP_HOST, _IMAP_PORT,
# _IMAP_SICUREZZA, _UTENTE, _MITTENTE (tutte con il prefisso PIANO_ABITATIVO).
# La password NON va scritta qui: si legge dalla variabile PIANO_ABITATIVO_PASSWORD
# oppure dal portachiavi di sistema (comando: keyring set piano-abitativo UTENTE).
# I testi dei messaggi sono nella cartella messaggi/ e si possono modificare.
#
# Server di invio (SMTP); sicurezza "ssl" (porta 465), "starttls" (587) o "nessuna".
# smtp_host = "smtps.pec.example.it"
# smtp_port = 465
# smtp_sicurezza = "ssl"
# Casella da cui leggere le risposte (IMAP); sicurezza "ssl" (993), "starttls" (143)
# o "nessuna". La casella è letta senza modificare nulla.
# imap_host = "imaps.pec.example.it"
# imap_port = 993
# imap_sicurezza = "ssl"
# Nome utente della casella (spesso l'indirizzo stesso) e indirizzo del mittente.
# utente = "piano.abitativo@pec.comune.example.it"
# mittente = "piano.abitativo@pec.comune.example.it"
# Cartella IMAP da leggere; cartella in cui copiare i messaggi inviati (vuota: quella
# che il server indica come posta inviata); cartella in cui spostare i messaggi
# importati, solo con «importa --imap --sposta».
# cartella = "INBOX"
# cartella_inviati = ""
# cartella_importati = ""
# Pausa fra due invii (secondi); tentativi per ogni messaggio quando il server ha un
# problema temporaneo, con attesa crescente fra un tentativo e l'altro (secondi).
# pausa = 2
# tentativi = 3
# attesa_tentativi = 5
# Certificati dei gestori PEC di cui fidarsi: un file PEM oppure una cartella di file
# .pem/.crt/.cer, relativi a questa cartella. Con questa riga una PEC conta come
# certificata solo se la firma del gestore è valida e il suo certificato è fra questi;
# senza, basta che la firma sia valida. L'AgID pubblica l'elenco dei gestori PEC
# accreditati; il certificato di ciascun gestore si può salvare da una PEC ricevuta
# tramite quel gestore (la firma smime.p7s della busta) oppure chiedere al gestore.
# gestori_pec = "gestori_pec"
"""


def create(
    path: Path,
    *,
    anno: int,
    registry_csv: Path | None = None,
    scadenza: dt.date | None = None,
    ambito: str | None = None,
    contatto: str = "",
    now: dt.datetime | None = None,
    precedente: Path | None = None,
) -> Raccolta:
    """Create a new raccolta folder; refuses to touch an existing one. `precedente` (a
    folder, relative to the working directory) links last year's raccolta."""
    path = Path(path)
    if (path / CONFIG_NAME).exists():
        raise RaccoltaError(
            f"{path} contiene già una raccolta ({CONFIG_NAME}): non viene "
            "sovrascritta. Scegliere un'altra cartella."
        )
    if path.exists() and not path.is_dir():
        raise RaccoltaError(f"{path} esiste e non è una cartella")
    if not ANNI[0] <= anno <= ANNI[1]:
        raise RaccoltaError(
            f"Anno {anno} non valido: serve un anno tra {ANNI[0]} e {ANNI[1]} (es. --anno 2026)"
        )
    link = previous_link(path, anno, precedente) if precedente is not None else ""
    try:
        registry = load_registry(registry_csv) if registry_csv else default_registry()
    except RegistryError as exc:
        raise RaccoltaError(str(exc)) from exc
    capo = registry.capofila
    if ambito is None:
        ambito = (
            "Cremasco" if registry_csv is None else (f"di {capo.denominazione}" if capo else "")
        )
    import uuid  # (and platform, which it imports): only for a new raccolta

    r = Raccolta(
        path=path,
        id=f"{anno}-{uuid.uuid4().hex[:12]}",
        anno=anno,
        ambito=ambito,
        capofila=capo.nome_completo if capo else "",
        scadenza=scadenza,
        contatto=contatto,
        registry=registry,
        precedente=link,
    )
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / REGISTRY_NAME, registry.to_csv())
    atomic_write_text(
        path / CONFIG_NAME, _config_text(r, now or dt.datetime.now(dt.UTC).astimezone())
    )
    return r


def load(path: Path) -> Raccolta:
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    try:
        cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RaccoltaError(
            f"{path} non è una raccolta: manca {CONFIG_NAME}. Crearla con "
            f"«piano-abitativo crea {path} --anno AAAA»"
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RaccoltaError(f"{cfg_path}: file di configurazione non valido ({exc})") from exc
    secret = password_key(cfg)
    if secret is not None:
        raise RaccoltaError(
            f"{cfg_path}: la chiave «{secret}» contiene una password: la password non va mai "
            "scritta nel file. Cancellare quella riga e usare la variabile d'ambiente "
            "PIANO_ABITATIVO_PASSWORD oppure il portachiavi di sistema (keyring set "
            "piano-abitativo UTENTE)."
        )
    sec = _section(cfg, "raccolta", cfg_path)
    rules = _section(cfg, "regole", cfg_path)
    if "id" not in sec or "anno" not in sec:
        raise RaccoltaError(f"{cfg_path}: mancano «id» o «anno» nella sezione [raccolta]")
    rid = _text(sec, "raccolta", "id", cfg_path)
    anno = _anno(sec["anno"], cfg_path)
    for key in ("ambito", "capofila", "contatto", "enti"):
        _text(sec, "raccolta", key, cfg_path)
    if not isinstance(sec.get("scadenza", ""), dt.date):  # a TOML date is a date too
        _text(sec, "raccolta", "scadenza", cfg_path)
    for key in ("sat_base", "sat_arrotondamento"):
        _text(rules, "regole", key, cfg_path)
    scad_text = str(sec.get("scadenza", "") or "")
    try:
        scadenza = parse_date(scad_text) if scad_text else None
    except RaccoltaError as exc:
        raise RaccoltaError(f"{cfg_path}: scadenza: {exc}") from exc
    try:
        registry = load_registry(path / str(sec.get("enti", REGISTRY_NAME)))
    except RegistryError as exc:
        raise RaccoltaError(str(exc)) from exc
    base = str(rules.get("sat_base", "a_sap"))
    if base not in ("a_sap", "f_totale_assegnabili"):
        raise RaccoltaError(
            f"{cfg_path}: sat_base «{base}» non valida (a_sap oppure f_totale_assegnabili)"
        )
    rounding = str(rules.get("sat_arrotondamento", "eccesso"))
    if rounding not in ("eccesso", "difetto"):
        raise RaccoltaError(
            f"{cfg_path}: sat_arrotondamento «{rounding}» non valido (eccesso oppure difetto)"
        )
    d = Settings()
    settings = Settings(
        sat_percentuale=_rule_number(rules, "sat_percentuale", d.sat_percentuale, cfg_path, 0, 100),
        sat_base=base,
        sat_arrotondamento=rounding,
        confronto_minimo_percentuale=_rule_number(
            rules, "confronto_minimo_percentuale", d.confronto_minimo_percentuale, cfg_path, 0, 100
        ),
        confronto_massimo_percentuale=_rule_number(
            rules,
            "confronto_massimo_percentuale",
            d.confronto_massimo_percentuale,
            cfg_path,
            100,
            100_000,
        ),
        confronto_minimo_alloggi=int(
            _rule_number(
                rules,
                "confronto_minimo_alloggi",
                d.confronto_minimo_alloggi,
                cfg_path,
                0,
                100_000,
                integer=True,
            )
        ),
        margine_plausibilita=int(
            _rule_number(
                rules,
                "margine_plausibilita",
                d.margine_plausibilita,
                cfg_path,
                0,
                100_000,
                integer=True,
            )
        ),
    )
    confronto = cfg.get("confronto", {})
    if not isinstance(confronto, dict) or not isinstance(confronto.get("precedente", ""), str):
        raise RaccoltaError(
            f"{cfg_path}: nella sezione [confronto] «precedente» deve essere "
            "il percorso di una cartella tra virgolette, es. "
            'precedente = "../raccolta-2025"'
        )
    posta = _section(cfg, "posta", cfg_path)
    return Raccolta(
        path=path,
        id=rid,
        anno=anno,
        ambito=str(sec.get("ambito", "")),
        capofila=str(sec.get("capofila", "")),
        scadenza=scadenza,
        contatto=str(sec.get("contatto", "")),
        registry=registry,
        settings=settings,
        posta=dict(posta),
        precedente=str(confronto.get("precedente", "")).strip(),
    )


def password_key(cfg: Any, where: str = "") -> str | None:
    """The first key of the parsed raccolta.toml (as ``section.key``) that names a
    password (`PASSWORD_KEYS`, or containing one of `PASSWORD_WORDS`), None when none."""
    items: list[tuple[str, Any]] = []
    if isinstance(cfg, dict):
        items = [(f"{where}.{k}" if where else str(k), v) for k, v in cfg.items()]
        for name, _ in items:
            key = name.rsplit(".", 1)[-1].strip().lower()
            if key in PASSWORD_KEYS or any(w in key for w in PASSWORD_WORDS):
                return name
    elif isinstance(cfg, list):
        items = [(where, v) for v in cfg]
    for name, value in items:
        found = password_key(value, name)
        if found is not None:
            return found
    return None


def _section(cfg: dict[str, Any], name: str, cfg_path: Path) -> dict[str, Any]:
    """The section [name] of the file ({} when absent), else an error naming it."""
    sec = cfg.get(name, {})
    if not isinstance(sec, dict):
        raise RaccoltaError(
            f"{cfg_path}: «{name}» deve essere una sezione [{name}], non un valore "
            f"({name} = {sec!r}). Scrivere [{name}] su una riga e sotto le sue chiavi."
        )
    return sec


def _text(sec: dict[str, Any], section: str, key: str, cfg_path: Path) -> str:
    """The text at `key` of [section] ("" when absent), else an error naming it."""
    value = sec.get(key, "")
    if not isinstance(value, str):
        raise RaccoltaError(
            f"{cfg_path}: [{section}] {key} = {value!r} non valido: serve un testo tra "
            f'virgolette, es. {key} = "…"'
        )
    return value


def _anno(value: Any, cfg_path: Path) -> int:
    """[raccolta] anno: an integer between the years of `ANNI`."""
    low, high = ANNI
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())  # anno = "2026" was always read
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RaccoltaError(
            f"{cfg_path}: [raccolta] anno = {value!r} non valido: serve un numero intero tra "
            f"{low} e {high}, l'anno del Piano (es. anno = 2026)"
        )
    return value


def _rule_number(
    rules: dict[str, Any],
    key: str,
    default: float,
    cfg_path: Path,
    low: float,
    high: float,
    *,
    integer: bool = False,
) -> float:
    """A number of [regole] within [low, high], else an error naming file and key."""
    x = rules.get(key, default)
    ok = (
        isinstance(x, int | float)
        and not isinstance(x, bool)
        and low <= x <= high
        and (not integer or float(x).is_integer())
    )
    if not ok:
        kind = "un numero intero" if integer else "un numero"
        raise RaccoltaError(
            f"{cfg_path}: [regole] {key} = {x!r} non valido: serve {kind} tra {low:g} e {high:g}"
        )
    return float(x)


def previous_link(path: Path, anno: int, precedente: Path | str) -> str:
    """Check that `precedente` (relative to the working directory) is the raccolta of a
    year before `anno`; returns what [confronto] precedente says for the raccolta at
    `path`: the folder relative to it (absolute when on another drive), with forward
    slashes, which Windows reads too."""
    target = Path(precedente)
    if not target.exists():
        raise RaccoltaError(
            f"La cartella {precedente} non esiste: indicare la cartella della "
            "raccolta dell'anno precedente"
        )
    if not (target / CONFIG_NAME).is_file():
        raise RaccoltaError(
            f"{precedente} non è una raccolta (manca {CONFIG_NAME}): indicare "
            "la cartella creata con «piano-abitativo crea» per l'anno "
            "precedente"
        )
    if target.resolve() == Path(path).resolve():
        raise RaccoltaError(
            f"{precedente} è la raccolta stessa: indicare quella dell'anno precedente"
        )
    prev = load(target)
    if prev.anno >= anno:
        raise RaccoltaError(
            f"La raccolta in {precedente} è dell'anno {prev.anno}: come "
            f"raccolta precedente serve una raccolta di un anno prima del "
            f"{anno}"
        )
    try:
        rel = os.path.relpath(target.resolve(), Path(path).resolve())
    except ValueError:  # another drive (Windows): no relative path exists
        rel = str(target.resolve())
    return Path(rel).as_posix()


_TABLE = re.compile(r"^\s*\[")
_CONFRONTO = re.compile(r"^\s*\[\s*confronto\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*precedente\s*=")
_KEY_COMMENTED = re.compile(r"^\s*#\s*precedente\s*=")


def _with_precedente(text: str, link: str) -> str:
    """`text` of raccolta.toml with [confronto] precedente = `link`, all else as it was."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    line = f"precedente = {_toml_str(link)}"
    start = next((i for i, ln in enumerate(lines) if _CONFRONTO.match(ln)), None)
    if start is None:
        lines += [
            "",
            "[confronto]",
            "# Raccolta dell'anno precedente, per il confronto dei dati (piano-abitativo collega).",
            line,
        ]
    else:
        end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])), len(lines))
        idx = next((i for i in range(start + 1, end) if _KEY.match(lines[i])), None)
        if idx is None:
            idx = next((i for i in range(start + 1, end) if _KEY_COMMENTED.match(lines[i])), None)
        if idx is None:
            lines.insert(start + 1, line)
        else:
            lines[idx] = line
    return newline.join(lines) + newline


def collega(path: Path, precedente: Path | str) -> Raccolta:
    """Link the raccolta at `path` to last year's (`precedente`, relative to the working
    directory): [confronto] precedente is rewritten in raccolta.toml, atomically, keeping
    every other line (comments included) as it was."""
    r = load(path)
    link = previous_link(r.path, r.anno, precedente)
    raw = r.config_path.read_bytes().decode("utf-8")
    text = _with_precedente(raw, link)
    before = tomllib.loads(raw)
    try:
        after = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        after = {}
    expected = {**before, "confronto": {**before.get("confronto", {}), "precedente": link}}
    if after != expected:
        raise RaccoltaError(
            f"{r.config_path}: impossibile aggiornare il file in automatico. "
            "Aggiungere a mano, in fondo al file, le righe:\n[confronto]\n"
            f"precedente = {_toml_str(link)}"
        )
    atomic_write_text(r.config_path, text)
    return load(r.path)


def find_raccolta(start: Path) -> Path | None:
    """The raccolta folder that contains `start` (itself or a parent), if any."""
    p = Path(start).resolve()
    for cand in [p, *p.parents]:
        if (cand / CONFIG_NAME).is_file():
            return cand
    return None
