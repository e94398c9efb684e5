"""A *raccolta*: the folder of one yearly collection (config, registry, templates)."""

from __future__ import annotations

import datetime as dt
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .registry import Ente, Registry, RegistryError, default_registry, load_registry
from .schema import Settings
from .template import TemplateContext, write_templates
from .validate import ValidationContext

CONFIG_NAME = "raccolta.toml"
REGISTRY_NAME = "enti.csv"
MODELLI_DIR = "modelli"
#: keys of [posta] that would hold a password: refused, the password never goes in a file
PASSWORD_KEYS = ("password", "passwd", "pass", "parola_chiave")


class RaccoltaError(Exception):
    """A raccolta cannot be created or used; the message says why, in Italian."""


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

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def modelli_dir(self) -> Path:
        return self.path / MODELLI_DIR

    def template_context(self) -> TemplateContext:
        return TemplateContext(anno=self.anno, raccolta_id=self.id, ambito=self.ambito,
                               scadenza=self.scadenza, capofila=self.capofila,
                               contatto=self.contatto, settings=self.settings)

    def validation_context(self, ente_atteso: str | None = None) -> ValidationContext:
        return ValidationContext(anno=self.anno, raccolta_id=self.id, registry=self.registry,
                                 settings=self.settings, ente_atteso=ente_atteso)


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
{POSTA_SECTION}"""


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
"""


def create(path: Path, *, anno: int, registry_csv: Path | None = None,
           scadenza: dt.date | None = None, ambito: str | None = None,
           contatto: str = "", now: dt.datetime | None = None) -> Raccolta:
    """Create a new raccolta folder; refuses to touch an existing one."""
    path = Path(path)
    if (path / CONFIG_NAME).exists():
        raise RaccoltaError(f"{path} contiene già una raccolta ({CONFIG_NAME}): non viene "
                            "sovrascritta. Scegliere un'altra cartella.")
    if path.exists() and not path.is_dir():
        raise RaccoltaError(f"{path} esiste e non è una cartella")
    if not 2000 <= anno <= 2100:
        raise RaccoltaError(f"Anno {anno} non valido")
    try:
        registry = load_registry(registry_csv) if registry_csv else default_registry()
    except RegistryError as exc:
        raise RaccoltaError(str(exc)) from exc
    capo = registry.capofila
    if ambito is None:
        ambito = "Cremasco" if registry_csv is None else (
            f"di {capo.denominazione}" if capo else "")
    r = Raccolta(path=path, id=f"{anno}-{uuid.uuid4().hex[:12]}", anno=anno, ambito=ambito,
                 capofila=capo.nome_completo if capo else "", scadenza=scadenza,
                 contatto=contatto, registry=registry)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / REGISTRY_NAME, registry.to_csv())
    atomic_write_text(path / CONFIG_NAME,
                      _config_text(r, now or dt.datetime.now(dt.UTC).astimezone()))
    from .mail import write_message_templates  # mail imports this module

    write_message_templates(path)
    return r


def load(path: Path) -> Raccolta:
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    try:
        cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RaccoltaError(f"{path} non è una raccolta: manca {CONFIG_NAME}. Crearla con "
                            f"«piano-abitativo crea {path} --anno AAAA»") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RaccoltaError(f"{cfg_path}: file di configurazione non valido ({exc})") from exc
    sec = cfg.get("raccolta", {})
    rules = cfg.get("regole", {})
    try:
        anno = int(sec["anno"])
        rid = str(sec["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RaccoltaError(f"{cfg_path}: mancano «id» o «anno» nella sezione [raccolta]"
                            ) from exc
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
        raise RaccoltaError(f"{cfg_path}: sat_base «{base}» non valida (a_sap oppure "
                            "f_totale_assegnabili)")
    rounding = str(rules.get("sat_arrotondamento", "eccesso"))
    if rounding not in ("eccesso", "difetto"):
        raise RaccoltaError(f"{cfg_path}: sat_arrotondamento «{rounding}» non valido "
                            "(eccesso oppure difetto)")
    settings = Settings(sat_percentuale=float(rules.get("sat_percentuale", 10)),
                        sat_base=base, sat_arrotondamento=rounding)
    posta = cfg.get("posta", {})
    if not isinstance(posta, dict):
        raise RaccoltaError(f"{cfg_path}: «posta» deve essere una sezione [posta]")
    for key in posta:
        if key.lower() in PASSWORD_KEYS:
            raise RaccoltaError(
                f"{cfg_path}: la sezione [posta] contiene «{key}»: la password non va mai "
                "scritta nel file. Cancellare quella riga e usare la variabile d'ambiente "
                "PIANO_ABITATIVO_PASSWORD oppure il portachiavi di sistema (keyring set "
                "piano-abitativo UTENTE).")
    return Raccolta(path=path, id=rid, anno=anno, ambito=str(sec.get("ambito", "")),
                    capofila=str(sec.get("capofila", "")), scadenza=scadenza,
                    contatto=str(sec.get("contatto", "")), registry=registry,
                    settings=settings, posta=dict(posta))


def find_raccolta(start: Path) -> Path | None:
    """The raccolta folder that contains `start` (itself or a parent), if any."""
    p = Path(start).resolve()
    for cand in [p, *p.parents]:
        if (cand / CONFIG_NAME).is_file():
            return cand
    return None


def generate_templates(r: Raccolta, *, progress: Callable[[Ente], None] | None = None
                       ) -> list[Path]:
    """One personalised template per ente of the registry into DIR/modelli/."""
    return write_templates(r.registry, r.modelli_dir, r.template_context(), progress=progress)
