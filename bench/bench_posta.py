"""Benchmark: ingesting a mailbox of N messages from a real Dovecot in one run.

The box (a Dovecot Maildir written directly, INTERNALDATE = file time) holds, for every ten
messages: three PEC envelopes with a workbook (one signed .p7m), two PEC receipts, an
anomalia with a workbook, a message without attachment, a zip, a PEC forwarded as an
attachment, and a workbook from an unknown sender. Every workbook has distinct bytes, so
each one is validated and recorded.

Measured: the wall time of `imap.import_imap` (archive raw bytes with fsync, parse, unwrap
.p7m, validate, one ledger append per message), then in a second fresh raccolta the peak of
Python memory (tracemalloc) of the same import, then the time of the second run over the box
(nothing new: UIDs skipped).

Run: ``python bench/bench_posta.py [--n 2000]`` (needs ``dovecot-imapd``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import struct
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from piano_abitativo.app.commands import crea

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import mailfactory as mf  # noqa: E402
from tests.mailraccolta import configure, workbook_of  # noqa: E402
from tests.mailservers import PASSWORD, Mailbox, dovecot_server, find_dovecot  # noqa: E402

from piano_abitativo.core import raccolta as rc  # noqa: E402
from piano_abitativo.core.registry import default_registry  # noqa: E402
from piano_abitativo.mail import imap  # noqa: E402
from piano_abitativo.mail.settings import PASSWORD_ENV  # noqa: E402

T0 = dt.datetime(2025, 12, 1, 8, 0, tzinfo=mf.CET)


def registry_csv() -> str:
    """The 49 enti of the Ambito Cremasco, each with a PEC address."""
    lines = ["codice,tipo,denominazione,provincia,codice_catastale,capofila,email,pec"]
    for e in default_registry():
        lines.append(
            f"{e.codice},{e.tipo},{e.denominazione},{e.provincia},"
            f"{e.codice_catastale},{'SI' if e.capofila else ''},,"
            f"protocollo@pec.{e.codice.lower()}.example"
        )
    return "\n".join(lines) + "\n"


def _variant(workbook: bytes, n: int) -> bytes:
    """The same workbook with a zip comment: other bytes, same content."""
    eocd = workbook.rfind(b"PK\x05\x06")
    comment = f"copia {n}".encode()
    return workbook[: eocd + 20] + struct.pack("<H", len(comment)) + comment


def build_messages(r: rc.Raccolta, n: int) -> tuple[list[tuple[bytes, dt.datetime]], int]:
    """N messages of every kind, and how many workbooks they carry."""
    enti = list(r.registry)
    books = {e.codice: workbook_of(r, e.codice) for e in enti}
    out: list[tuple[bytes, dt.datetime]] = []
    carried = 0
    for i in range(n):
        e = enti[i % len(enti)]
        when = T0 + dt.timedelta(minutes=7 * i)
        book = _variant(books[e.codice], i)
        sender = e.pec
        kind = i % 10
        ident = f"msg{i}"
        if kind in (0, 1, 2, 8):
            att = ("scheda.xlsx.p7m", mf.make_p7m(book)) if kind == 0 else ("scheda.xlsx", book)
            original = mf.make_plain(
                sender=sender, attachments=[att], date=when, message_id=f"<{ident}@x>"
            )
            raw = mf.make_pec_envelope(
                original, when=when, identificativo=f"{ident}@gestore.example"
            )
            if kind == 8:
                raw = mf.make_forwarded(raw, forwarder=f"inoltro{i}@posta.example")
            carried += 1
        elif kind in (3, 4):
            raw = mf.make_ricevuta(
                "accettazione" if kind == 3 else "avvenuta-consegna",
                when=when,
                riferimento=f"<rich{i}@capofila.example>",
            )
        elif kind == 5:
            raw = mf.make_anomalia(
                mf.make_plain(
                    sender=sender,
                    date=when,
                    attachments=[("scheda.xlsx", book)],
                    message_id=f"<{ident}@x>",
                ),
                when=when,
            )
            carried += 1
        elif kind == 6:
            raw = mf.make_plain(
                sender=sender,
                date=when,
                message_id=f"<{ident}@x>",
                body=f"Domanda numero {i}: quando scade il termine?",
            )
        elif kind == 7:
            raw = mf.make_plain(
                sender=sender,
                date=when,
                message_id=f"<{ident}@x>",
                attachments=[("dati.zip", mf.make_zip([("s.xlsx", book)]))],
            )
            carried += 1
        else:
            raw = mf.make_plain(
                sender=f"impiegato{i}@posta.example",
                date=when,
                message_id=f"<{ident}@x>",
                attachments=[("s.xlsx", book)],
            )
            carried += 1
        out.append((raw, when))
    return out, carried


def fill_box(r: rc.Raccolta, box: Mailbox, n: int) -> int:
    """Write N messages into the box's Maildir; returns the workbooks they carry."""
    messages, carried = build_messages(r, n)
    box.fill(messages)
    return carried


def measure(r: rc.Raccolta, *, memory: bool = True) -> tuple[float, int, imap.IngestResult]:
    """(seconds, peak Python bytes or 0, result) of one import of the configured box."""
    if memory:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        res = imap.import_imap(r)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] if memory else 0
    finally:
        if memory:
            tracemalloc.stop()
    return seconds, peak, res


def _raccolta(folder: Path, settings: dict[str, object]) -> rc.Raccolta:
    folder.mkdir(parents=True)
    (folder / "enti.csv").write_text(registry_csv(), encoding="utf-8")
    r = crea(folder / "raccolta", anno=2026, registry_csv=folder / "enti.csv")
    return configure(r, **settings)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    if find_dovecot() is None:
        print("dovecot non installato (apt-get install dovecot-imapd)", file=sys.stderr)
        return 2
    os.environ[PASSWORD_ENV] = PASSWORD
    with (
        tempfile.TemporaryDirectory(prefix="bench-posta-") as tmp,
        dovecot_server(Path(tmp) / "dovecot") as server,
    ):
        box = server.new_mailbox()
        r = _raccolta(Path(tmp) / "a", server.settings(box))
        t = time.perf_counter()
        carried = fill_box(r, box, args.n)
        print(f"casella riempita con {args.n} messaggi in {time.perf_counter() - t:.1f} s")
        seconds, _, res = measure(r, memory=False)
        assert len(res.messages) == args.n and len(res.receipts) == carried
        print(
            f"importa --imap: {args.n} messaggi, {carried} file in {seconds:.1f} s "
            f"({args.n / seconds:.0f} messaggi/s)"
        )
        again, _, res2 = measure(r, memory=False)
        assert res2.gia_visti == args.n and not res2.messages
        print(f"seconda esecuzione (nulla di nuovo): {again:.2f} s")
        r2 = _raccolta(Path(tmp) / "b", server.settings(box))
        seconds2, peak, _ = measure(r2)
        print(
            f"picco di memoria Python (tracemalloc): {peak / 2**20:.1f} MB "
            f"(importazione con tracemalloc: {seconds2:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
