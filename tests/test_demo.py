"""The one-command demo, run as the README runs it: a subprocess through the CLI entry point
with the network cut off; its mail folder, its archive, its master recalculated by
LibreOffice and its closing summary against the published 2025 plan."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import os
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import openpyxl
import pytest

from piano_abitativo.app import commands as actions
from piano_abitativo.app.commands import crea
from piano_abitativo.archive import store as archive
from piano_abitativo.consolidation.context import receipts as validated_receipts
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.registry import normalise_name
from piano_abitativo.mail import ingest
from piano_abitativo.mail.parse import MessageKind, parse_message
from piano_abitativo.master.sheets import SHEET_CRUSCOTTO, SHEET_REPORT
from piano_abitativo.simulation import demo
from piano_abitativo.template.workbook import _without_cached_results

from .lo_runner import find_soffice, recalculate, require_libreoffice
from .workbook_values import named_values

#: the totals of the published plan (a) is not printed there: 1.697 / 1.680 / 17)
PLAN_TOTALS = {
    "a_totale": 1697,
    "a_sap": 1680,
    "a_sas": 17,
    "b_carenza_manutentiva": 22,
    "c_nuova_edificazione": 5,
    "d_turnover": 3,
    "e_conferite_privati": 0,
    "f_totale_assegnabili": 30,
    "j_sat": 8,
    "k_assegnate_anno_precedente": 59,
}
CASTELLEONE = "019025"

#: the entry point as installed by pip, called with every network connection refused
_RUN = """\
import socket, sys
def _no_network(*args, **kwargs):
    raise OSError("la demo ha tentato di usare la rete")
socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network
socket.create_connection = _no_network
from {module} import {func}
sys.exit({func}())
"""


@dataclass
class DemoRun:
    folder: Path
    stdout: str
    stderr: str
    returncode: int
    seconds: float

    @property
    def summary(self) -> str:
        """The output with lines joined (the console wraps long lines)."""
        return " ".join(self.stdout.split())


def _plan_times() -> dict[str, dt.datetime]:
    """codice -> time of reception in the plan's annex (Cremosano: the demo's choice)."""
    return {
        ret.codice: ret.ricevuto or demo.CREMOSANO_RICEVUTO for ret in demo.cremasco_2025_returns()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`piano-abitativo demo DIR`, once for the module."""
    base = tmp_path_factory.mktemp("demo")
    (ep,) = entry_points(group="console_scripts", name="piano-abitativo")
    module, func = ep.value.split(":")
    env = dict(os.environ, HOME=str(base / "home"), USERPROFILE=str(base / "home"))
    folder = base / "demo-piano-abitativo"
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _RUN.format(module=module, func=func), "demo", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return DemoRun(folder, proc.stdout, proc.stderr, proc.returncode, time.monotonic() - start)


def test_demo_runs_offline_in_well_under_two_minutes(run: DemoRun) -> None:
    """The README's first command ends with exit code 0, no traceback, no network, in
    less than two minutes."""
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert run.seconds < 120


def test_summary_prints_the_plans_totals_counts_and_where_each_file_is(run: DemoRun) -> None:
    """The closing summary has the totals a)–k) as the plan prints them, who answered,
    Castelleone's error, and an existing path for every output."""
    s = run.summary
    assert (
        "Totali del Piano 2025: a) 1.697 unità, 1.680 SAP, 17 SAS; b) 22; c) 5; d) 3; "
        "e) 0; f) 30; j) 8; k) 59."
    ) in s
    assert "i) Forze di Polizia: Castelleone 10%." in s
    assert "g) soglia indigenti: nessun Comune." in s
    assert "Enti che hanno risposto: 26 di 49; da correggere: 0; non ricevuti: 23." in s
    i_cell = LAYOUT.cell("i_forze_polizia")
    assert "Castelleone, ricevuto il 05/12/2024 12:33:59" in s and f"cella {i_cell}" in s
    assert "23 per PEC con data e ora certificate (di cui 1 firmato digitalmente" in s
    where = dict(re.findall(r"^  ([^:\n]+): (/\S+)$", run.stdout, re.MULTILINE))
    folder = run.folder
    assert where["Raccolta (configurazione, elenco enti)"] == str(folder)
    assert where["Modelli per gli enti (49)"] == str(folder / "modelli")
    assert where["Posta in arrivo (27 messaggi .eml)"] == str(folder / demo.POSTA_DIR)
    assert where["Archivio (file e messaggi ricevuti, registro)"] == str(folder / "archivio")
    assert Path(where["Cartella di lavoro riepilogativa"]).suffix == ".xlsm"
    assert Path(where["Documento del Piano (.docx)"]).suffix == ".docx"
    if find_soffice() is not None:
        assert Path(where["Documento del Piano (.pdf)"]).suffix == ".pdf"
    for path in where.values():
        assert Path(path).exists(), path
    assert len(list((folder / "modelli").glob("*.xlsx"))) == 49
    assert "ufficiodipiano@pec.comune.crema.example" in s


def test_summary_never_breaks_a_path_across_lines(run: DemoRun) -> None:
    """The progress lines and the notes name folders whole: a path longer than what is
    left of an 80-column line goes on as one line for the terminal to wrap, never cut by
    the console between "creata in" and the path (the demo folder here is long enough)."""
    folder = run.folder
    lines = run.stdout.splitlines()
    assert len(f"Raccolta 2025 dell'Ambito Cremasco creata in {folder}") > 80
    assert f"Raccolta 2025 dell'Ambito Cremasco creata in {folder}" in lines
    assert f"Modelli personalizzati: 49 in {folder / 'modelli'}" in lines
    assert f"Documento del Piano scritto in {folder / 'documento'}" in lines
    assert not [ln for ln in lines if ln.rstrip().endswith(" in")]


def test_mail_folder_holds_signed_pec_envelopes_and_plain_mail(run: DemoRun) -> None:
    """posta_in_arrivo/ has 23 PEC envelopes, signed by the demo gestore, certified at the
    plan's time, and 4 ordinary e-mails dated at it; every address is under .example."""
    files = sorted((run.folder / demo.POSTA_DIR).glob("*.eml"))
    assert len(files) == 27
    assert files[0].name == "2024-11-23_1006_Montodine.eml"
    assert (run.folder / demo.POSTA_DIR / "2024-12-05_0944_Crema.eml").exists()
    registry = rc.load(run.folder).registry
    plan = _plan_times()
    kinds: dict[MessageKind, int] = {}
    signed_files = 0
    for f in files:
        raw = f.read_bytes()
        parsed = parse_message(raw)
        kinds[parsed.kind] = kinds.get(parsed.kind, 0) + 1
        head = email.message_from_bytes(raw, policy=email.policy.default)
        addresses = re.findall(r"[\w.+-]+@[\w.-]+", f"{head['From']} {head['To']}")
        assert addresses and all(a.endswith(".example") for a in addresses), f.name
        ente = next(e for e in registry if parsed.sender in (e.pec, e.email))
        when = plan[ente.codice]
        if ente.codice == CASTELLEONE and f.name.startswith("2024-12-05"):
            when -= dt.timedelta(days=1)  # the first version, with the mistake
        (att,) = parsed.attachments
        signed_files += bool(att.signatures)
        if parsed.kind is MessageKind.PEC:
            assert parsed.certified_at == when, f.name
            assert parsed.pec_gestore == demo.GESTORE
            assert parsed.sender == ente.pec
            check = subprocess.run(
                ["openssl", "smime", "-verify", "-noverify", "-in", str(f), "-out", os.devnull],
                capture_output=True,
                check=False,
            )
            assert check.returncode == 0, (f.name, check.stderr)
        else:
            assert parsed.date_header == when, f.name
            assert parsed.sender == ente.email
    assert kinds == {MessageKind.PEC: 23, MessageKind.ORDINARIA: 4}
    assert signed_files == 1


def test_archive_records_certified_pec_times_and_email_dates(run: DemoRun) -> None:
    """Each receipt has the plan's time: certified (canale PEC) for a PEC, the Date
    header (canale e-mail, not certified) for ordinary mail; the sender is a known ente."""
    r = rc.load(run.folder)
    plan = _plan_times()
    receipts = validated_receipts(r)
    assert len(receipts) == 27
    by_channel: dict[str, int] = {}
    for receipt in receipts:
        codice = receipt.report.ente
        assert codice is not None and receipt.extra["ente_mittente"] == codice
        by_channel[receipt.canale] = by_channel.get(receipt.canale, 0) + 1
        if receipt.canale == ingest.CANALE_PEC:
            assert receipt.certificato and receipt.fonte_data == ingest.FONTE_PEC
            assert receipt.extra["gestore"] == demo.GESTORE
            # the demo raccolta trusts its gestore's CA ([posta] gestori_pec)
            assert receipt.extra["verifica_pec"] == "verificata"
        else:
            assert receipt.canale == ingest.CANALE_EMAIL
            assert not receipt.certificato and receipt.fonte_data == ingest.FONTE_DATE
        if codice != CASTELLEONE:
            assert receipt.ricevuto_il == plan[codice], codice
    assert by_channel == {ingest.CANALE_PEC: 23, ingest.CANALE_EMAIL: 4}
    assert r.posta == {"gestori_pec": demo.GESTORE_CERT}
    assert (r.path / demo.GESTORE_CERT).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    pandino = next(x for x in receipts if x.report.ente == demo.FIRMATO)
    assert pandino.extra["firma"]["valida"] is True


def test_castelleones_wrong_first_version_is_kept_and_the_correction_used(run: DemoRun) -> None:
    """Castelleone's message of 05/12 has i = 15% (error R4 in i)'s cell) and is kept; the one
    of 06/12 is valid and its 10% goes into the plan."""
    r = rc.load(run.folder)
    cons = actions.consolidation(r)
    status = next(s for s in cons.enti if s.ente.codice == CASTELLEONE)
    first, second = status.versions
    assert first.ricevuto_il == dt.datetime(2024, 12, 5, 12, 33, 59, tzinfo=archive.TZ)
    assert [(p.code, p.cell) for p in first.report.errors] == [
        ("R4", LAYOUT.cell("i_forze_polizia"))
    ]
    assert second.ricevuto_il == dt.datetime(2024, 12, 6, 12, 33, 59, tzinfo=archive.TZ)
    assert second.report.valid and status.used == second
    assert status.value("i_forze_polizia") == 10


def _docx_paragraphs(path: Path) -> list[str]:
    """The text of each paragraph (table cells included) of a .docx, in order."""
    with zipfile.ZipFile(path) as zf:
        xml = zf.read("word/document.xml").decode("utf-8")
    paras = (
        "".join(html.unescape(t) for t in re.findall(r"<w:t(?: [^>]*)?>([^<]*)</w:t>", p))
        for p in re.findall(r"<w:p[ >].*?</w:p>", xml, re.DOTALL)
    )
    return [p for p in paras if p.strip()]


def test_document_prints_every_number_of_the_2025_plan(run: DemoRun) -> None:
    """The demo's document has the plan's totals of a)–k) (1.697 / 1.680 / 17, 22, 5, 3,
    30, 8, 59), "nessuna"/"nessun Comune" for e), g), h), Castelleone 10 in i), and
    Crema's row of the annex at 05-12-2024 09:44:55."""
    (docx,) = (run.folder / "documento").glob("*.docx")
    paras = _docx_paragraphs(docx)
    totals = []
    for i, p in enumerate(paras):
        if p == "Totale":
            row = []
            for q in paras[i + 1 :]:
                if not re.fullmatch(r"[\d.]+", q):
                    break
                row.append(q)
            totals.append(row)
    assert totals == [["1.697", "1.680", "17"], ["22"], ["5"], ["3"], ["30"], ["8"], ["59"]]
    text = " | ".join(paras)
    assert re.search(r"\| e\) [^|]*: nessuna \| f\)", text)
    assert re.search(r"g\) [^|]*: nessun Comune \| h\) [^|]*: nessun Comune \|", text)
    assert "Comune di Castelleone | 10 | j)" in text
    assert "Comune di Crema | 05-12-2024 | 09:44:55 | 0 | 358 | 10 |" in text


@pytest.mark.libreoffice
def test_recalculated_master_has_the_plans_totals_and_times(run: DemoRun, tmp_path: Path) -> None:
    """The demo's .xlsm, without its cached results and recalculated by LibreOffice: every
    named total is the plan's; the Report lists the 26 enti at the plan's date and time
    (Crema 05-12-2024 09:44:55), certified where they came by PEC."""
    require_libreoffice()
    (master,) = run.folder.glob("Consolidato_piano_abitativo_2025.xlsm")
    (tmp_path / "in").mkdir()
    plain = tmp_path / "in" / "demo.xlsm"
    plain.write_bytes(_without_cached_results(master.read_bytes()))
    (out,) = recalculate([plain], tmp_path / "out")
    values = named_values(out)
    assert {k: values[f"totale_{k}"] for k in PLAN_TOTALS} == PLAN_TOTALS

    wb = openpyxl.load_workbook(out, data_only=True)
    counts = {
        r[3]: r[4] for r in wb[SHEET_CRUSCOTTO].iter_rows(min_row=2, max_row=7, values_only=True)
    }
    assert (counts["Hanno risposto"], counts["Non hanno risposto"], counts["Da correggere"]) == (
        26,
        23,
        0,
    )
    ws = wb[SHEET_REPORT]
    header = next(row for row in ws.iter_rows(values_only=True) if "Data Ricezione" in row)
    col = {h: i for i, h in enumerate(header)}
    rows = [r for r in ws.iter_rows(min_row=4, values_only=True) if r[0]]
    assert len(rows) == 26
    registry = rc.load(run.folder).registry
    by_name = {normalise_name(r[0]): r for r in rows}
    for codice, when in _plan_times().items():
        ente = registry.get(codice)
        assert ente is not None
        row = by_name[normalise_name(ente.nome_completo)]
        day, hour = row[col["Data Ricezione"]], row[col["Ora Ricezione"]]
        seconds = round(hour.hour * 3600 + hour.minute * 60 + hour.second + hour.microsecond / 1e6)
        got = dt.datetime.combine(day.date(), dt.time()) + dt.timedelta(seconds=seconds)
        assert got == when.replace(tzinfo=None), ente.nome_completo
        pec = codice not in demo.EMAIL_ORDINARIA
        assert row[col["Orario certificato"]] == ("Sì" if pec else "No"), ente.nome_completo
    crema = by_name["crema"]
    assert crema[col["Data Ricezione"]].strftime("%d-%m-%Y") == "05-12-2024"
    assert crema[col["Ora Ricezione"]].strftime("%H:%M:%S") == "09:44:55"


def test_demo_never_touches_a_real_raccolta_or_a_folder_in_use(tmp_path: Path) -> None:
    """A real raccolta and a non-empty folder are refused and left as they were; a previous
    demo folder is replaced."""
    real = tmp_path / "vera"
    crea(real, anno=2026)
    before = {p: p.read_bytes() for p in real.rglob("*") if p.is_file()}
    with pytest.raises(rc.RaccoltaError, match="raccolta vera"):
        demo.run_demo(real, log=lambda _m: None)
    assert {p: p.read_bytes() for p in real.rglob("*") if p.is_file()} == before

    busy = tmp_path / "documenti"
    busy.mkdir()
    (busy / "lettera.txt").write_text("da non perdere", encoding="utf-8")
    with pytest.raises(rc.RaccoltaError, match="non è una cartella vuota"):
        demo.run_demo(busy, log=lambda _m: None)
    assert [p.name for p in busy.iterdir()] == ["lettera.txt"]

    again = tmp_path / "demo"
    (again / "modelli").mkdir(parents=True)
    (again / demo.DEMO_MARK).write_text("", encoding="utf-8")
    (again / "modelli" / "vecchio.xlsx").write_bytes(b"old")
    steps: dict[str, int] = {}
    res = demo.run_demo(
        again,
        log=lambda _m: None,
        progress=lambda step, done, total: steps.__setitem__(step, total),
    )
    assert not (again / "modelli" / "vecchio.xlsx").exists()
    assert len(res.messaggi) == 27 and len(res.modelli) == 49
    assert {k: res.totali[k] for k in PLAN_TOTALS} == PLAN_TOTALS
    assert sum(1 for rep in res.reports if not rep.valid) == 1
    assert steps == {
        "Generazione dei modelli": 49,
        "Compilazione delle risposte": 27,
        "Scrittura dei messaggi": 27,
        "Importazione": 27,
    }
