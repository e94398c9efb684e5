"""Real mail servers on 127.0.0.1 for the tests: Dovecot (IMAP) and aiosmtpd (SMTP).

Both are started once per test session. Each test gets its own Dovecot user (its own
Maildir), added to the passwd-file while the server runs, and a cleared list of the messages
the SMTP server received.

Dovecot is Debian's ``dovecot-imapd`` run as a throwaway server (``dovecot -F -c conf``):
:func:`require_dovecot` skips a test without it, or fails it when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import email.utils
import imaplib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

PASSWORD = "segreta-di-prova"  # noqa: S105 - the test servers' only password
#: mailboxes available to one session (one per test that asks)
USERS = 300
_DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")


def find_dovecot() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    return next((c for c in _DOVECOT_CANDIDATES if os.access(c, os.X_OK)), None)


def require_dovecot() -> str:
    """The dovecot binary; skip the calling test without it, fail instead on CI."""
    found = find_dovecot()
    if found is not None:
        return found
    reason = "dovecot (Debian package dovecot-imapd) is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"Dovecot is required on CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- Dovecot


@dataclass
class Mailbox:
    """One Dovecot user: its credentials, its Maildir, and helpers to fill and inspect it."""

    server: Dovecot
    user: str
    password: str = PASSWORD

    @property
    def maildir(self) -> Path:
        return self.server.mail_root / self.user

    def connect(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.server.port)
        conn.login(self.user, self.password)
        return conn

    def append(self, raw: bytes, *, when: dt.datetime | None = None, folder: str = "INBOX") -> None:
        """APPEND one message; ``when`` becomes its INTERNALDATE."""
        conn = self.connect()
        try:
            stamp = imaplib.Time2Internaldate((when or dt.datetime.now(dt.UTC)).timestamp())
            typ, data = conn.append(folder, None, stamp, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def fill(self, messages: Iterable[tuple[bytes, dt.datetime]]) -> int:
        """Write messages straight into the Maildir (fast, for big boxes); the file time is
        the INTERNALDATE Dovecot reports."""
        cur = self.maildir / "cur"
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        n = 0
        for raw, when in messages:
            name = f"{int(when.timestamp())}.M{n}P{os.getpid()}.{uuid.uuid4().hex[:8]}:2,"
            path = cur / name
            path.write_bytes(raw)
            os.utime(path, (when.timestamp(), when.timestamp()))
            n += 1
        self.server.own(self.maildir)
        return n

    def snapshot(self, folder: str = "INBOX") -> list[tuple[int, str, bytes]]:
        """(UID, flags, raw bytes) of every message of a folder, read without changing it."""
        conn = self.connect()
        try:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            assert typ == "OK", folder
            typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            out = []
            for item in data:
                if isinstance(item, tuple):
                    meta = item[0].decode()
                    uid = int(meta.split("UID ", 1)[1].split()[0])
                    flags = meta.split("FLAGS (", 1)[1].split(")", 1)[0]
                    out.append((uid, flags, bytes(item[1])))
            return sorted(out)
        finally:
            conn.logout()

    def folders(self) -> list[str]:
        conn = self.connect()
        try:
            _, data = conn.list()
            return sorted(
                d.decode().rsplit(" ", 1)[-1].strip('"') for d in data if isinstance(d, bytes)
            )
        finally:
            conn.logout()


@dataclass
class Dovecot:
    """A running Dovecot on 127.0.0.1 with USERS users, each with an empty Maildir."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    uid: int
    gid: int
    #: user names of this server only (another test run may have its own Dovecot)
    tag: str
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def mail_root(self) -> Path:
        return self.root / "mail"

    def own(self, path: Path) -> None:
        if os.geteuid() == 0:
            for p in [path, *path.rglob("*")]:
                os.chown(p, self.uid, self.gid)

    def new_mailbox(self) -> Mailbox:
        n = next(self.counter)
        assert n <= USERS, "more mailboxes than users written at start"
        return Mailbox(self, f"{self.tag}{n}")

    def settings(self, box: Mailbox) -> dict[str, Any]:
        """The [posta] keys that point the raccolta at this mailbox."""
        return {
            "imap_host": "127.0.0.1",
            "imap_port": self.port,
            "imap_sicurezza": "nessuna",
            "utente": box.user,
        }


def _dovecot_conf(root: Path, port: int, uid: int, gid: int) -> str:
    me = pwd.getpwuid(os.geteuid()).pw_name
    as_user = (
        ""
        if os.geteuid() == 0
        else f"""
default_internal_user = {me}
default_internal_group = {me}
default_login_user = {me}
"""
    )
    return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%n
{as_user}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%n
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@contextlib.contextmanager
def dovecot_server(root: Path) -> Iterator[Dovecot]:
    binary = find_dovecot()
    assert binary is not None
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        for p in [root, *root.parents]:  # dovecot's user (nobody) must reach the Maildirs
            mode = os.stat(p).st_mode
            if mode & 0o005 != 0o005:
                os.chmod(p, mode | 0o005)
    else:
        uid, gid = os.getuid(), os.getgid()
    (root / "mail").mkdir(parents=True, exist_ok=True)
    # all users up front: Dovecot may not notice a passwd-file changed within a second
    tag = f"utente{uuid.uuid4().hex[:6]}x"
    (root / "users").write_text(
        "".join(f"{tag}{n}:{{PLAIN}}{PASSWORD}\n" for n in range(1, USERS + 1)), encoding="utf-8"
    )
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(_dovecot_conf(root, port, uid, gid), encoding="utf-8")
    if os.geteuid() == 0:
        os.chown(root / "mail", uid, gid)
    proc = subprocess.Popen(
        [binary, "-F", "-c", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_greeting(port, proc, root)
        server = Dovecot(root, port, proc, uid, gid, tag)
        # the greeting could come from another server that took the port first: ours knows
        # our users
        Mailbox(server, f"{tag}{USERS}").connect().logout()
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_greeting(port: int, proc: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            log = (
                (root / "dovecot.log").read_text(errors="replace")
                if (root / "dovecot.log").exists()
                else ""
            )
            raise RuntimeError(f"dovecot exited: {out}\n{log}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as s,
        ):
            if s.recv(100).startswith(b"* OK"):
                return
        time.sleep(0.05)
    raise RuntimeError("dovecot did not greet within 15 s")


# --------------------------------------------------------------------------- SMTP


@dataclass
class Received:
    """One message the SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None

    @property
    def message(self) -> Any:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _Handler:
    def __init__(self) -> None:
        self.received: list[Received] = []
        #: SMTP replies to give to the next DATA commands instead of accepting
        self.failures: list[str] = []
        #: SMTP replies to give to the next DATA commands after keeping the message
        self.after_receiving: list[str] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.failures:
            return self.failures.pop(0)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.received.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or b""),
                login,
            )
        )
        if self.after_receiving:
            return self.after_receiving.pop(0)
        return "250 OK"


def _authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
    # handled=False: aiosmtpd itself answers "535" to a wrong password
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: _Handler

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def fail_next(self, *replies: str) -> None:
        """The next DATA commands get these replies (e.g. "451 busy") instead of 250."""
        self.handler.failures.extend(replies)

    def receive_then_reply(self, *replies: str) -> None:
        """The next DATA commands are received (the message is kept) but get these replies
        instead of 250: the message went through and the sender cannot know it."""
        self.handler.after_receiving.extend(replies)

    def reset(self) -> None:
        self.handler.received.clear()
        self.handler.failures.clear()
        self.handler.after_receiving.clear()

    def settings(self) -> dict[str, Any]:
        return {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_sicurezza": "nessuna",
            "mittente": "piano.abitativo@pec.comune.crema.example",
        }


@contextlib.contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    handler = _Handler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


# --------------------------------------------------------------------------- fixtures
# Dovecot is started once per session even when several test modules use it (the cache is
# global: each module that lists this file in ``pytest_plugins`` shares it); the SMTP
# server, a thread of this process, once per module.

_STARTED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def dovecot(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Dovecot:
    """One Dovecot for the whole session."""
    require_dovecot()
    if "dovecot" not in _STARTED:
        stack = contextlib.ExitStack()
        _STARTED["dovecot"] = stack.enter_context(
            dovecot_server(tmp_path_factory.mktemp("dovecot"))
        )
        request.addfinalizer(stack.close)
    server: Dovecot = _STARTED["dovecot"]
    return server


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Mailbox:
    """A new, empty mailbox of its own for each test."""
    return dovecot.new_mailbox()


@pytest.fixture(scope="module")
def smtp_session() -> Iterator[SmtpServer]:
    """One SMTP server per test module, stopped (its thread joined) when the module ends:
    a thread left running would keep later tests' processes from forking (see
    `validation.batch.can_fork`)."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def smtp(smtp_session: SmtpServer) -> SmtpServer:
    """The session's SMTP server with no message received yet."""
    smtp_session.reset()
    return smtp_session
