"""The IMAP mailbox of the [posta] settings: login, folder names, the Sent folder.

:func:`connect_imap` logs in (password from the environment or the keyring, see
:mod:`.settings`); :func:`imap_mailbox` writes a folder name as IMAP wants it; a
:class:`SentCopy` appends each message sent to the folder the server marks ``\\Sent``.
Failures of either server are described in Italian by :func:`describe_error`.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping

from piano_abitativo.mail.settings import ENV_PREFIX, MailError, MailSettings, require_password


def connect_imap(
    settings: MailSettings, env: Mapping[str, str] | None = None, *, timeout: float = 60.0
) -> imaplib.IMAP4:
    """A logged-in IMAP connection (capabilities refreshed after login)."""
    s = settings
    if not s.imap_configured:
        raise MailError(
            f"Casella IMAP non configurata: indicare imap_host nella sezione "
            f"[posta] della raccolta oppure la variabile {ENV_PREFIX}IMAP_HOST."
        )
    if not s.utente:
        raise MailError(
            f"Utente della casella non configurato: indicare utente nella sezione "
            f"[posta] della raccolta oppure la variabile {ENV_PREFIX}UTENTE."
        )
    pwd = require_password(s, env)
    try:
        conn: imaplib.IMAP4
        if s.imap_sicurezza == "ssl":
            conn = imaplib.IMAP4_SSL(
                s.imap_host, s.imap_port, ssl_context=ssl.create_default_context(), timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(s.imap_host, s.imap_port, timeout=timeout)
            if s.imap_sicurezza == "starttls":
                conn.starttls(ssl_context=ssl.create_default_context())
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailError(
            f"Impossibile collegarsi alla casella {s.imap_host}:{s.imap_port} "
            f"({describe_error(exc)})"
        ) from exc
    try:
        conn.login(s.utente, pwd)
    except imaplib.IMAP4.error as exc:
        with contextlib.suppress(Exception):
            conn.logout()
        raise MailError(
            f"La casella {s.imap_host} ha rifiutato utente o password ({s.utente})."
        ) from exc
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        # imaplib keeps the pre-login list; servers announce MOVE, UIDPLUS… after login
        typ, data = conn.capability()
        if typ == "OK" and data and isinstance(data[-1], bytes):
            conn.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())
    return conn


def imap_mailbox(name: str) -> str:
    """A mailbox name as an IMAP argument: modified UTF-7 (RFC 3501), quoted."""
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            data = "".join(buf).encode("utf-16-be")
            out.append(
                "&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-"
            )
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    text = "".join(out)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LIST_RE = re.compile(rb'^\((?P<flags>[^)]*)\)\s+(?:"[^"]*"|NIL)\s+(?P<name>.+)$')


def find_sent_folder(conn: imaplib.IMAP4) -> str | None:
    """The folder the server marks \\Sent (RFC 6154), as an IMAP argument, or None."""
    typ, data = conn.list()
    if typ != "OK":
        return None
    for item in data:
        if not isinstance(item, bytes):
            continue
        m = _LIST_RE.match(item)
        if m and b"\\sent" in m.group("flags").lower():
            name = m.group("name").decode("ascii", "replace").strip()
            return name if name.startswith('"') else '"' + name + '"'
    return None


class SentCopy:
    """Appends each message sent to the IMAP Sent folder, when IMAP is configured."""

    def __init__(
        self, settings: MailSettings, env: Mapping[str, str] | None, notes: list[str]
    ) -> None:
        self.settings = settings
        self.env = env
        self.notes = notes
        self.conn: imaplib.IMAP4 | None = None
        self.folder: str | None = None
        self.failed = not settings.imap_configured

    def append(self, raw: bytes) -> None:
        if self.failed:
            return
        try:
            if self.conn is None:
                self.conn = connect_imap(self.settings, self.env)
                self.folder = (
                    imap_mailbox(self.settings.cartella_inviati)
                    if self.settings.cartella_inviati
                    else find_sent_folder(self.conn)
                )
                if self.folder is None:
                    self.notes.append(
                        "nessuna cartella di posta inviata trovata nella casella: "
                        "indicare cartella_inviati nella sezione [posta]"
                    )
                    self.failed = True
                    return
            typ, data = self.conn.append(
                self.folder, r"(\Seen)", imaplib.Time2Internaldate(time.time()), raw
            )
            if typ != "OK":
                raise imaplib.IMAP4.error(decode_reply(data[0] if data else b""))
        except (MailError, imaplib.IMAP4.error, OSError) as exc:
            self.notes.append(f"copia nella posta inviata non riuscita: {exc}")
            self.failed = True

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.logout()
        self.conn = None


def decode_reply(text: bytes | str) -> str:
    """A server's reply text, bytes or not, as a string."""
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def describe_error(exc: BaseException) -> str:
    """A failure talking to a mail server (SMTP or IMAP) in plain Italian."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"errore temporaneo del server ({exc.smtp_code} {decode_reply(exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "il server ha chiuso la connessione"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "il server non risponde (tempo scaduto)"
    if isinstance(exc, ConnectionRefusedError):
        return "connessione rifiutata (server o porta errati?)"
    if isinstance(exc, socket.gaierror):
        return "nome del server sconosciuto"
    return f"{type(exc).__name__}: {exc}"
