"""Hostile mail never amplifies: caps per message, replies only to registry addresses.

A message past a cap (workbooks, bytes extracted, zip or message nesting, zip members) is
archived as received and reported with an Italian note, never expanded: no receipts, no
reply drafts. Reply drafts go only to addresses of the registry. Generated MIME trees
(nesting, odd encodings and charsets, zips, truncation) never raise and stay within time and
memory limits set with ``resource`` in a forked child.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import multiprocessing
import os
import quopri
import random
import resource
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from piano_abitativo.app import stato as status
from piano_abitativo.archive import store as archive
from piano_abitativo.cli.commands import main
from piano_abitativo.consolidation.context import receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.mail import attachments, ingest, outbox
from piano_abitativo.mail.folder import import_files
from piano_abitativo.mail.parse import MessageKind, ParsedMessage, parse_message

from . import mailfactory as mf
from .mailraccolta import make_raccolta, workbook_of
from .real_mail import real_mail_dir

CREMA = "019035"
CREMA_PEC = "protocollo@pec.comune.crema.example"
STRANGER = "chiunque@posta.example.org"
NOTE_5000 = "messaggio con 5.000 file: oltre il limite di 50, non aperto; verificare a mano"
MB = 2**20


@pytest.fixture
def racc(tmp_path: Path) -> rc.Raccolta:
    return make_raccolta(tmp_path)


def _zip(members: list[tuple[str, bytes]], *, stored: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def _tiny_xlsx(n: int) -> bytes:
    """A few bytes that only look like a workbook by name (each one different)."""
    return b"PK\x03\x04" + n.to_bytes(4, "big")


def _messages(r: rc.Raccolta) -> list[dict[str, Any]]:
    return [x for x in archive.read_ledger(r.path).records if x.get("tipo") == "messaggio"]


# --------------------------------------------------------------------------------------------
# bounded child: time and memory limits with `resource`


def _child(conn: Any, limit_bytes: int, fn: Callable[[], object]) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    try:
        start = time.perf_counter()
        result = fn()
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        conn.send(("ok", result, time.perf_counter() - start, peak_kb))
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}", 0.0, 0))


def bounded(fn: Callable[[], object], *, extra_mb: int = 600, seconds: float = 20.0) -> Any:
    """Run ``fn`` in a forked child whose address space may grow by ``extra_mb`` at most;
    fail when it raises, dies or takes longer than ``seconds``. Returns (result, seconds)."""
    with open("/proc/self/statm") as f:
        vm_now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, vm_now + extra_mb * MB, fn))
    proc.start()
    child.close()
    if not parent.poll(seconds):
        proc.kill()
        proc.join()
        pytest.fail(f"took more than {seconds} s")
    status, result, took, _ = parent.recv()
    proc.join()
    assert status == "ok", result
    return result, took


# --------------------------------------------------------------------------------------------
# caps per message


def test_a_zip_of_5000_workbooks_gives_one_reported_message_no_receipts_no_drafts(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The amplification case: one e-mail, even from a registry address, with a zip of 5,000
    tiny .xlsx is archived as received, recorded once with the Italian note, and opens
    nothing: no receipt, no 'non attribuito', no reply draft."""
    bomb = _zip([(f"scheda_{n:04}.xlsx", _tiny_xlsx(n)) for n in range(5000)])
    raw = mf.make_plain(sender=CREMA_PEC, message_id="<tanti@x>", attachments=[("t.zip", bomb)])
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "tanti.eml").write_bytes(raw)
    start = time.perf_counter()
    code = main(["importa", str(racc.path), "--da", str(inbox)])
    took = time.perf_counter() - start
    out = capsys.readouterr().out
    assert code in (0, 1, 2)
    assert "oltre il limite di 50" in " ".join(out.split())
    assert receipts(racc) == []
    records = archive.read_ledger(racc.path).records
    assert [x["tipo"] for x in records] == ["messaggio"]
    (msg,) = records
    assert msg["esito"] == ingest.NON_APERTO
    assert msg["limite"] == NOTE_5000 and NOTE_5000 in msg["note"]
    assert msg["allegati"] == []
    assert (racc.path / msg["blob"]).read_bytes() == raw  # the original is kept
    assert outbox.plan_esiti(racc).messages == []
    assert not list(outbox.outbox_dir(racc.path).glob("*.eml"))
    assert took < 15, f"{took:.1f} s for a {len(raw) // 1024} KB message"


def test_the_5000_zip_is_refused_from_its_directory_in_bounded_time_and_memory() -> None:
    """parse_message refuses the 5,000-member zip before inflating it: under 2 s and within
    200 MB more address space."""
    bomb = _zip([(f"s{n}.xlsx", _tiny_xlsx(n)) for n in range(5000)])
    raw = mf.make_plain(attachments=[("t.zip", bomb)])
    parsed, took = bounded(lambda: parse_message(raw), extra_mb=200, seconds=10)
    assert parsed.attachments == () and parsed.limite == NOTE_5000
    assert took < 2


def test_fifty_workbooks_are_opened_fifty_one_are_not() -> None:
    """The cap is exactly 50 workbooks per message, counted across zips and parts."""
    fifty = [(f"a{n}.xlsx", _tiny_xlsx(n)) for n in range(40)]
    ten = _zip([(f"b{n}.xlsx", _tiny_xlsx(100 + n)) for n in range(10)])
    ok = parse_message(mf.make_plain(attachments=[*fifty, ("b.zip", ten)]))
    assert len(ok.attachments) == 50 and ok.limite is None
    eleven = _zip([(f"b{n}.xlsx", _tiny_xlsx(100 + n)) for n in range(11)])
    over = parse_message(mf.make_plain(attachments=[*fifty, ("b.zip", eleven)]))
    assert over.attachments == ()
    assert over.limite == (
        "messaggio con 51 file: oltre il limite di 50, non aperto; verificare a mano"
    )


def _nested_zip(levels: int) -> bytes:
    data = _zip([("Crema.xlsx", mf.workbook("Crema"))])
    for n in range(levels - 1):
        data = _zip([(f"livello{n}.zip", data)])
    return data


def test_zips_are_opened_three_deep_and_a_fourth_level_is_reported() -> None:
    """A zip in a zip in a zip still gives its workbook; one more level keeps the whole
    message closed with a note naming the limit."""
    three = parse_message(mf.make_plain(attachments=[("r.zip", _nested_zip(3))]))
    assert [a.filename for a in three.attachments] == ["Crema.xlsx"]
    four = parse_message(
        mf.make_plain(attachments=[("r.zip", _nested_zip(4)), ("Lodi.xlsx", mf.workbook("L"))])
    )
    assert four.attachments == ()
    assert four.limite is not None and "oltre il limite di 3 livelli" in four.limite
    assert four.limite in four.notes


def _nested_message(levels: int) -> bytes:
    raw = mf.make_plain(attachments=[("Crema.xlsx", mf.workbook("Crema"))])
    for n in range(levels):
        raw = mf.make_plain(message_id=f"<n{n}@x>", attachments=[(f"m{n}.eml", raw)])
    return raw


def test_messages_nested_too_deep_are_reported_not_expanded() -> None:
    """Messages attached inside messages beyond the limit keep the message closed."""
    ok = parse_message(_nested_message(4))
    assert [a.filename for a in ok.attachments] == ["Crema.xlsx"] and ok.limite is None
    deep = parse_message(_nested_message(12))
    assert deep.attachments == ()
    assert deep.limite is not None and "messaggi allegati uno dentro l'altro" in deep.limite


def test_a_message_that_would_extract_over_100_mb_is_not_expanded() -> None:
    """Three zips of 2 x 18 MB (each zip within its own 50 MB) pass the 100 MB per message."""
    rnd = random.Random(7)
    block = bytearray(18 * MB)
    for i in range(0, len(block), 128):  # compresses about 50 times: not a bomb by ratio
        block[i] = rnd.randrange(1, 256)
    zips = [(f"z{k}.zip", _zip([(f"{k}{n}.xlsx", bytes(block)) for n in range(2)])) for k in "abc"]
    raw = mf.make_plain(attachments=zips)
    parsed, _ = bounded(lambda: parse_message(raw), extra_mb=900, seconds=30)
    assert parsed.attachments == ()
    assert parsed.limite is not None and "più di 100 MB" in parsed.limite


def test_a_zip_bomb_member_is_skipped_by_the_readers_ratio() -> None:
    """A member inflating more than the reader allows (5 MB of zeros) is not read; the real
    workbook beside it is."""
    archive_ = _zip([("bomba.xlsx", b"\0" * (5 * MB)), ("Crema.xlsx", mf.workbook("Crema"))])
    parsed = parse_message(mf.make_plain(attachments=[("r.zip", archive_)]))
    assert [a.filename for a in parsed.attachments] == ["Crema.xlsx"]
    assert any("bomba.xlsx" in n and "zip bomb" in n for n in parsed.notes)


def test_a_zip_with_more_members_than_the_reader_allows_is_not_expanded() -> None:
    """2,500 members that are not workbooks are over the reader's 2,000-member limit."""
    many = _zip([(f"n{n}.txt", b"x") for n in range(2500)])
    parsed = parse_message(mf.make_plain(attachments=[("n.zip", many)]))
    assert parsed.limite is not None and "2.500 file" in parsed.limite
    assert parsed.attachments == ()


# --------------------------------------------------------------------------------------------
# replies only to registry addresses


def _mail(folder: Path, name: str, sender: str, data: bytes, **kw: Any) -> None:
    folder.mkdir(exist_ok=True)
    raw = mf.make_plain(
        sender=sender, message_id=f"<{name}@x>", attachments=[(f"{name}.xlsx", data)], **kw
    )
    (folder / f"{name}.eml").write_bytes(raw)


def test_no_reply_draft_goes_to_an_address_outside_the_registry(
    racc: rc.Raccolta, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Crema answers from its PEC; then a stranger sends Crema's template (held in verifica)
    and a message without file: only Crema's registered address gets a draft, the stranger
    is listed once as 'non inviata: mittente non nell'elenco' (also by `esiti`)."""
    inbox = tmp_path / "in"
    t0 = dt.datetime(2025, 11, 20, 10, tzinfo=dt.UTC)
    _mail(inbox, "crema", CREMA_PEC, workbook_of(racc, CREMA), date=t0)
    _mail(inbox, "falso", STRANGER, workbook_of(racc, CREMA, a_sap=9), date=t0 + dt.timedelta(1))
    (inbox / "vuoto.eml").write_bytes(mf.make_plain(sender=STRANGER, message_id="<v@x>"))
    import_files(racc, [inbox])
    (held,) = status.stato(racc).in_verifica
    assert held["mittente"] == STRANGER  # the held path, not only the latest file
    plan = outbox.plan_esiti(racc)
    assert {m.destinatario for m in plan.messages} == {CREMA_PEC}
    assert plan.esclusi == [(STRANGER, outbox.NON_NELL_ELENCO)]
    capsys.readouterr()
    assert main(["esiti", str(racc.path)]) in (0, 1)
    out = " ".join(capsys.readouterr().out.split())
    assert f"{STRANGER}: non inviata: mittente non nell'elenco" in out


# --------------------------------------------------------------------------------------------
# generated MIME trees

_CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "gbk", "ks_c_5601-1987", "utf-7", "x-boh", ""]
_CTES = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus", ""]
_NAMES = [
    "Crema.xlsx",
    "r.zip",
    "a.xlsx.p7m",
    "m.eml",
    "winmail.dat",
    "C:\\dir\\x.ods",
    "=?x-boh?B?w6AueGxzeA==?=",
    "=?utf-8?Q?=C3=A0.xls?=",
    "..",
    "a" * 300 + ".xlsm",
    "",
]


@st.composite
def _payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "zip", "zipzip", "workbook"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "workbook":
        return mf.workbook("Crema")
    members = draw(st.lists(st.tuples(st.sampled_from(_NAMES), st.binary(max_size=50)), max_size=5))
    data = _zip([(f"{i}{n}", d) for i, (n, d) in enumerate(members)])
    return _zip([("dentro.zip", data)]) if kind == "zipzip" else data


def _encode(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(body)
    if cte == "quoted-printable":
        return quopri.encodestring(body)
    return body


_leaves = st.builds(
    lambda name, charset, cte, body, ctype: ("leaf", name, charset, cte, body, ctype),
    st.sampled_from(_NAMES),
    st.sampled_from(_CHARSETS),
    st.sampled_from(_CTES),
    _payloads(),
    st.sampled_from(
        ["application/octet-stream", "text/plain", "application/zip", "application/vnd.ms-excel"]
    ),
)


def _tree(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            lambda sub, kids, close: ("multi", sub, kids, close),
            st.sampled_from(["mixed", "alternative", "related", "signed", "weird"]),
            st.lists(children, max_size=4),
            st.booleans(),
        ),
        st.builds(lambda inner, cte: ("msg", inner, cte), children, st.sampled_from(_CTES)),
    )


_trees = st.recursive(_leaves, _tree, max_leaves=12)


def _render(node: Any, level: int = 0) -> bytes:
    if node[0] == "leaf":
        _, name, charset, cte, body, ctype = node
        head = f"Content-Type: {ctype}" + (f'; charset="{charset}"' if charset else "")
        if name:
            head += f'\r\nContent-Disposition: attachment; filename="{name}"'
        return (
            head.encode("utf-8", "surrogateescape")
            + f"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode()
            + _encode(body, cte)
        )
    if node[0] == "msg":
        _, inner, cte = node
        inner_raw = b"From: =?x-boh?B?w6A=?= <a@b.example>\r\nSubject: inner\r\n" + _render(
            inner, level + 1
        )
        return (
            f"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode()
            + _encode(inner_raw, cte)
        )
    _, sub, kids, close = node
    boundary = f"b{level}"
    out = f'Content-Type: multipart/{sub}; boundary="{boundary}"\r\n\r\n'.encode()
    for kid in kids:
        out += f"--{boundary}\r\n".encode() + _render(kid, level + 1) + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def _message(tree: Any, transport: str) -> bytes:
    head = "From: =?utf-8?B?w6A=?= <ente@comune.example>\r\nSubject: =?gbk?B?1tA=?=\r\n"
    head += "MIME-Version: 1.0\r\n" + transport
    return head.encode() + _render(tree)


_transports = st.sampled_from(
    ["", "X-Trasporto: posta-certificata\r\n", "X-Trasporto: errore\r\n", "X-Ricevuta: x\r\n"]
)


def _damage(raw: bytes, data: st.DataObject) -> bytes:
    cut = bytearray(raw[: data.draw(st.integers(0, len(raw)), label="cut")])
    if cut and data.draw(st.booleans(), label="flip"):
        cut[data.draw(st.integers(0, len(cut) - 1))] = data.draw(st.integers(0, 255))
    return bytes(cut)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees, _transports, st.data())
def test_generated_mime_trees_never_raise_and_stay_bounded(
    tree: Any, transport: str, data: st.DataObject
) -> None:
    """Nested parts and messages, odd charsets and encodings, zips in zips, truncation and a
    changed byte: parse_message returns, within 5 s and 300 MB more address space."""
    raw = _damage(_message(tree, transport), data)
    parsed, took = bounded(lambda: parse_message(raw), extra_mb=300, seconds=5)
    assert isinstance(parsed, ParsedMessage) and parsed.kind in set(MessageKind)
    assert len(parsed.attachments) <= attachments.MAX_WORKBOOKS
    assert took < 5


@pytest.fixture(scope="module")
def shared_state(tmp_path_factory: pytest.TempPathFactory) -> ingest.IngestState:
    r = make_raccolta(tmp_path_factory.mktemp("ostile"))
    return ingest.IngestState.from_ledger(r)


def _real_seeds() -> list[bytes]:
    folder = real_mail_dir()
    return [p.read_bytes()[:200_000] for p in sorted((folder / "eml").glob("*.eml"))[:12]]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(_trees.map(lambda t: _message(t, "")), st.just(b"")), st.data())
def test_generated_and_real_mail_goes_through_ingest_without_exception(
    shared_state: ingest.IngestState, generated: bytes, data: st.DataObject
) -> None:
    """A generated tree, or a real message of ../shared/real_mail damaged, through
    ingest_message (archive, classify, validate, record): an outcome, never an exception."""
    seeds = _real_seeds()
    if not generated:
        generated = seeds[data.draw(st.integers(0, len(seeds) - 1), label="seed")]
    raw = _damage(generated, data)
    start = time.perf_counter()
    out = ingest.ingest_message(shared_state, raw, ingest.Provenance("generato"))
    assert out.esito in {
        ingest.IMPORTATO,
        ingest.GIA_IMPORTATO,
        ingest.GIA_RICEVUTO,
        ingest.RICEVUTA,
        ingest.SENZA_ALLEGATI,
        ingest.NON_APERTO,
    }
    assert len(out.receipts) <= attachments.MAX_WORKBOOKS
    assert time.perf_counter() - start < 10


def test_the_names_of_other_files_are_kept_up_to_two_hundred_and_counted() -> None:
    """250 files that are not workbooks: 200 names in the record, the rest counted."""
    many = _zip([(f"n{n:03}.txt", b"x") for n in range(250)])
    parsed = parse_message(mf.make_plain(attachments=[("n.zip", many)]))
    assert parsed.limite is None
    assert len(parsed.other_attachments) == 201
    assert parsed.other_attachments[-1] == "… e altri 50 file"
