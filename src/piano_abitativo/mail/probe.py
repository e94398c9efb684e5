"""A second look, in a child process, at a file or message a run did not survive reading.

A reading left open in the ledger (see `archive.quarantine`) means that the process died
while reading: because of the content (a parser that aborts), or for an unrelated reason
(the PC switched off, the window closed, a kill). Before it is read again in the main
process, the same reading is done in a child process: if the child dies too, the content
is the cause and it is marked «lettura non riuscita»; if the child ends (with or without
a Python error, which the main process handles as usual), the file is read normally, so
a run that was merely interrupted loses nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys

from piano_abitativo.core.raccolta import Raccolta

#: seconds a reading may take in the child before it counts as one that never ends
PROBE_TIMEOUT = 300.0

KIND_FILE = "file"
KIND_MESSAGE = "messaggio"
KIND_SIGNED = "p7m"

_CHILD = """
import os, sys
from pathlib import Path
from piano_abitativo.archive.quarantine import CRASH_ENV
data = sys.stdin.buffer.read()
folder, kind, nome = sys.argv[1:4]
if os.environ.get(CRASH_ENV) == nome:
    os._exit(134)
from piano_abitativo.consolidation.checking import validation_context
from piano_abitativo.core import raccolta as rc
from piano_abitativo.validation.validate import validate_bytes
ctx = validation_context(rc.load(Path(folder)))
if kind == "messaggio":
    from piano_abitativo.mail.parse import parse_message
    for att in parse_message(data).attachments:
        validate_bytes(att.data, att.filename, ctx)
elif kind == "p7m":
    from piano_abitativo.mail import p7m
    content, _ = p7m.unwrap(data)
    validate_bytes(content, p7m.strip_p7m_suffix(nome), ctx)
else:
    validate_bytes(data, nome, ctx)
"""


def survives(r: Raccolta, data: bytes, nome: str, kind: str = KIND_FILE) -> bool:
    """Whether a child process survives reading `data` as the import would (an exit
    with a Python error counts as survived: the import reports such errors itself)."""
    if getattr(sys, "frozen", False):  # pragma: no cover - no interpreter to start
        return False
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(r.path), kind, nome],
            input=data,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            env=dict(os.environ),
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    return done.returncode in (0, 1)


def kind_of(nome: str) -> str:
    low = nome.lower()
    if low.endswith(".p7m"):
        return KIND_SIGNED
    if low.endswith((".eml", ".msg")):
        return KIND_MESSAGE
    return KIND_FILE
