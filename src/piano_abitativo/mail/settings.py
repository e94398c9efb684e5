"""The [posta] settings of a raccolta: servers, mailbox, pauses and retries.

Defaults ← the ``[posta]`` section of ``raccolta.toml`` ← ``PIANO_ABITATIVO_*`` environment
variables (:data:`ENV_KEYS`). Every wrong value is a :class:`MailError` naming the file or the
variable to fix.

The password is never read from a file: environment variable ``PIANO_ABITATIVO_PASSWORD``,
else the system keyring (service ``piano-abitativo``, user = ``utente``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piano_abitativo.core.errors import MailError as MailError
from piano_abitativo.core.raccolta import CONFIG_NAME, Raccolta, password_key

ENV_PREFIX = "PIANO_ABITATIVO_"
PASSWORD_ENV = ENV_PREFIX + "PASSWORD"
KEYRING_SERVICE = "piano-abitativo"
SICUREZZE = ("ssl", "starttls", "nessuna")
#: settings that an environment variable PIANO_ABITATIVO_<KEY> overrides
ENV_KEYS = (
    "smtp_host",
    "smtp_port",
    "smtp_sicurezza",
    "imap_host",
    "imap_port",
    "imap_sicurezza",
    "utente",
    "mittente",
)
_SMTP_PORTS = {"ssl": 465, "starttls": 587, "nessuna": 25}
_IMAP_PORTS = {"ssl": 993, "starttls": 143, "nessuna": 143}


@dataclass(frozen=True)
class MailSettings:
    """The [posta] section of raccolta.toml, with the environment's overrides."""

    smtp_host: str = ""
    smtp_port: int = 465
    smtp_sicurezza: str = "ssl"
    imap_host: str = ""
    imap_port: int = 993
    imap_sicurezza: str = "ssl"
    utente: str = ""
    mittente: str = ""
    cartella: str = "INBOX"
    cartella_inviati: str = ""
    cartella_importati: str = ""
    #: seconds between two messages sent
    pausa: float = 2.0
    #: attempts per message when the server has a temporary problem
    tentativi: int = 3
    #: seconds before the second attempt; doubled for each further one
    attesa_tentativi: float = 5.0
    #: the trusted certificates of the gestori PEC (a PEM bundle or a folder), or None
    gestori_pec: Path | None = None

    # mittente, when not given, is `utente` if it is an address, else the capofila's
    # address from the registry

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def imap_configured(self) -> bool:
        return bool(self.imap_host)


_TEXT_KEYS = (
    "smtp_host",
    "imap_host",
    "utente",
    "mittente",
    "cartella",
    "cartella_inviati",
    "cartella_importati",
)
_ALL_KEYS = (
    *ENV_KEYS,
    "cartella",
    "cartella_inviati",
    "cartella_importati",
    "pausa",
    "tentativi",
    "attesa_tentativi",
    "gestori_pec",
)


def load_settings(r: Raccolta, env: Mapping[str, str] | None = None) -> MailSettings:
    """Defaults ← [posta] of raccolta.toml ← PIANO_ABITATIVO_* environment variables."""
    env = os.environ if env is None else env
    cfg = r.config_path
    secret = password_key(r.posta)
    if secret is not None:  # refused by raccolta.load too; a Raccolta made in code
        raise MailError(
            f"{cfg}: la sezione [posta] contiene «{secret}»: la password non va mai scritta "
            f"nel file. Usare la variabile d'ambiente {PASSWORD_ENV} oppure il portachiavi "
            f"di sistema (keyring set {KEYRING_SERVICE} UTENTE)."
        )
    for key in (*_TEXT_KEYS, "smtp_sicurezza", "imap_sicurezza"):
        value = r.posta.get(key)
        if value is not None and not isinstance(value, str):
            raise MailError(
                f"{cfg}, [posta] {key} = {value!r} non valido: serve un testo tra virgolette, "
                f'es. {key} = "…"'
            )
    unknown = sorted(k for k in r.posta if k not in _ALL_KEYS)
    if unknown:
        raise MailError(
            f"{cfg}: nella sezione [posta] chiavi sconosciute: "
            f"{', '.join(unknown)} (ammesse: {', '.join(_ALL_KEYS)})"
        )
    raw: dict[str, tuple[Any, str]] = {k: (v, f"{cfg}, [posta] {k}") for k, v in r.posta.items()}
    for key in ENV_KEYS:
        name = ENV_PREFIX + key.upper()
        if env.get(name, "").strip():
            raw[key] = (env[name].strip(), f"variabile d'ambiente {name}")
    values: dict[str, Any] = {}
    for key in _TEXT_KEYS:
        if key in raw:
            values[key] = str(raw[key][0]).strip()
    for key in ("smtp_sicurezza", "imap_sicurezza"):
        if key in raw:
            val = str(raw[key][0]).strip().lower()
            if val not in SICUREZZE:
                raise MailError(
                    f"{raw[key][1]}: «{raw[key][0]}» non valido (ammessi: {', '.join(SICUREZZE)})"
                )
            values[key] = val
    smtp_sec = values.get("smtp_sicurezza", "ssl")
    imap_sec = values.get("imap_sicurezza", "ssl")
    values["smtp_port"] = _int(raw, "smtp_port", _SMTP_PORTS[smtp_sec], 1, 65535)
    values["imap_port"] = _int(raw, "imap_port", _IMAP_PORTS[imap_sec], 1, 65535)
    values["tentativi"] = _int(raw, "tentativi", 3, 1, 10)
    values["pausa"] = _float(raw, "pausa", 2.0)
    values["attesa_tentativi"] = _float(raw, "attesa_tentativi", 5.0)
    if values.get("mittente") and not _looks_like_address(values["mittente"]):
        raise MailError(f"{raw['mittente'][1]}: «{values['mittente']}» non è un indirizzo di posta")
    values["gestori_pec"] = gestori_pec_path(r)
    if not values.get("cartella"):
        values.pop("cartella", None)
    if not values.get("mittente"):  # the mailbox's own address, else the capofila's
        capo = r.registry.capofila
        for candidate in (values.get("utente", ""), capo.indirizzo if capo else ""):
            if _looks_like_address(candidate):
                values["mittente"] = candidate
                break
    return MailSettings(**values)


def gestori_pec_path(r: Raccolta) -> Path | None:
    """``[posta] gestori_pec`` (relative to the raccolta folder), None when not given.

    Raises :class:`MailError` naming the file and the key when it is not a text or the file
    or folder does not exist."""
    value = r.posta.get("gestori_pec")
    where = f"{r.config_path}, [posta] gestori_pec"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise MailError(
            f"{where}: «{value}» non valido (indicare fra virgolette il file o la cartella dei "
            "certificati dei gestori PEC)"
        )
    path = r.path / value.strip()
    if not path.exists():
        raise MailError(
            f"{where}: «{value}» non trovato ({path}). Indicare il file PEM o la cartella con "
            "i certificati dei gestori PEC, relativo alla cartella della raccolta, oppure "
            "togliere la riga."
        )
    return path


def _int(raw: dict[str, tuple[Any, str]], key: str, default: int, lo: int, hi: int) -> int:
    if key not in raw:
        return default
    value, where = raw[key]
    try:
        number = int(str(value).strip())
    except ValueError:
        number = lo - 1
    if not lo <= number <= hi:
        raise MailError(f"{where}: «{value}» non valido (numero intero fra {lo} e {hi})")
    return number


def _float(raw: dict[str, tuple[Any, str]], key: str, default: float) -> float:
    if key not in raw:
        return default
    value, where = raw[key]
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        number = -1.0
    if not 0 <= number <= 3600:
        raise MailError(f"{where}: «{value}» non valido (secondi, fra 0 e 3600)")
    return number


def _looks_like_address(text: str) -> bool:
    return re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", text) is not None


def password(settings: MailSettings, env: Mapping[str, str] | None = None) -> str | None:
    """The mailbox password: PIANO_ABITATIVO_PASSWORD, else the system keyring, else None."""
    env = os.environ if env is None else env
    if env.get(PASSWORD_ENV):
        return env[PASSWORD_ENV]
    if not settings.utente:
        return None
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, settings.utente)
    except Exception:  # no keyring backend on this PC (e.g. a server without a desktop)
        return None


def require_password(settings: MailSettings, env: Mapping[str, str] | None) -> str:
    """The mailbox password, or a MailError saying in Italian where to put it."""
    pwd = password(settings, env)
    if not pwd:
        raise MailError(
            f"Manca la password della casella {settings.utente}: impostare la variabile "
            f"d'ambiente {PASSWORD_ENV} oppure salvarla nel portachiavi di sistema con il "
            f"comando «keyring set {KEYRING_SERVICE} {settings.utente}». La password non va "
            f"mai scritta in {CONFIG_NAME}."
        )
    return pwd
