"""The built-in demo: the Ambito Cremasco 2025, from the published plan's figures.

`run_demo` plays the whole yearly cycle on a folder, with no network and nothing sent: the
raccolta and its 49 templates; the 26 returns of 2025 filled as the clerks did (Castelleone
first with a mistake, then corrected); each return delivered as a message file in
``posta_in_arrivo/`` — most by PEC through a simulated gestore, whose certified time is the
plan's time of reception, a few by ordinary e-mail, one signed as ``.p7m`` —; then the
import of that folder exactly as ``piano-abitativo importa RACCOLTA --da CARTELLA`` does it,
validation, the master workbook and the document.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
import shutil
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from piano_abitativo.app import commands as actions
from piano_abitativo.app.commands import crea
from piano_abitativo.archive.store import TZ, ImportResult, archive_dir
from piano_abitativo.consolidation.consolidate import Consolidation
from piano_abitativo.core import raccolta as rc
from piano_abitativo.core.atomic import atomic_write_bytes, atomic_write_text
from piano_abitativo.core.problems import Report
from piano_abitativo.core.registry import Ente, Registry
from piano_abitativo.core.schema import SCHEMA, Kind, Role, Schema
from piano_abitativo.simulation import gestore as posta
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import (
    TemplateFactory,
    context_for,
    generate_templates,
    template_filename,
)

if TYPE_CHECKING:
    from piano_abitativo.document.docx import DocumentResult

DEMO_MARK = ".demo-piano-abitativo"
#: where the demo's messages arrive (as a clerk saves them from the webmail)
POSTA_DIR = "posta_in_arrivo"

#: Cremosano answered (its figures are in the plan's tables) but its row of the annex has no
#: date: it is listed last, after Trescore Cremasco (18-12-2024 12:18:27), so the demo makes
#: it arrive that same afternoon, the day of the deadline.
CREMOSANO_RICEVUTO = dt.datetime(2024, 12, 18, 16, 47, 12, tzinfo=TZ)

#: the simulated PEC gestore of every ente that sends by PEC
GESTORE = "Gestore PEC dimostrativo S.p.A."
GESTORE_DOMAIN = "pec.gestore-dimostrativo.example"
#: the certificate of the demo gestore's CA, in the demo raccolta: ``[posta] gestori_pec``
GESTORE_CERT = "gestori_pec/gestore-simulato.pem"
#: the enti whose clerk sent the workbook by ordinary e-mail: the ALER and three comuni
#: (the time of reception is then the message's Date header, not certified)
EMAIL_ORDINARIA = frozenset({"ALER-BCM", "019035", "019059", "019105"})
#: the comune whose clerk signed the workbook (.xlsx.p7m) before sending it by PEC: Pandino
FIRMATO = "019067"
#: the comune that first sent a workbook with a mistake (i = 15%, over the 10% allowed),
#: a day before the corrected one: Castelleone
CON_ERRORE = "019025"

#: progress of a long step: (what, done, total)
Progress = Callable[[str, int, int], None]

#: the columns of the demo data CSV named otherwise than their field (field id -> column);
#: every other input field of the plan is read from the column named as its id, and a
#: count field with no column (added after 2025) is 0
_CSV_ALIASES = {
    "b_carenza_manutentiva": "b_carenza",
    "c_nuova_edificazione": "c_nuova_edif",
    "e_conferite_privati": "e_privati",
    "g_soglia_indigenti": "g_soglia_indigenti_pct",
    "i_forze_polizia": "i_fdp_pct",
    "k_assegnate_anno_precedente": "k_assegnate_2024",
}


def _csv_columns(schema: Schema) -> dict[str, str | None]:
    """Field id -> its column of the demo data CSV (None: not there), for the input fields
    of the plan's sections."""
    header = _demo_csv().partition("\n")[0].strip().split(",")
    out: dict[str, str | None] = {}
    for f in schema.plan_fields:
        if f.role is not Role.INPUT:
            continue
        col = _CSV_ALIASES.get(f.id, f.id)
        if col in header:
            out[f.id] = col
        elif f.kind is Kind.COUNT:
            out[f.id] = None
    return out


def _demo_csv() -> str:
    return (
        resources.files("piano_abitativo") / "data" / "cremasco_2025_dati_per_ente.csv"
    ).read_text(encoding="utf-8")


@dataclass(frozen=True)
class DemoReturn:
    codice: str
    nome: str
    values: dict[str, Any]
    ricevuto: dt.datetime | None


def cremasco_2025_returns(schema: Schema = SCHEMA) -> list[DemoReturn]:
    """The 26 returns of the 2025 plan (values of tables a)–k), reception date/time), with
    the input fields of `schema`."""
    columns = _csv_columns(schema)
    out = []
    for row in csv.DictReader(io.StringIO(_demo_csv())):
        codice = row["istat_code"] or "ALER-BCM"
        values: dict[str, Any] = {}
        for fid, col in columns.items():
            f = schema.field_by_id[fid]
            raw = row[col].strip() if col is not None else "0"
            if f.kind is Kind.YESNO:
                values[fid] = raw or "NO"
            elif raw:
                values[fid] = int(raw)
        if row["tipo_ente"] == "ALER":
            for f in schema.plan_fields:
                if f.comuni_only:
                    values.pop(f.id, None)
        slug = codice.lower().replace("-", "")
        values.update({"referente_nome": "Ufficio Casa", "referente_email": f"casa@{slug}.example"})
        when = None
        if row["data_ricezione"]:
            when = dt.datetime.fromisoformat(
                f"{row['data_ricezione']}T{row['ora_ricezione']}"
            ).replace(tzinfo=TZ)
        out.append(DemoReturn(codice, row["ente_normalizzato"], values, when))
    return out


def _returns_of(
    r: rc.Raccolta, only: Collection[str] | None = None
) -> Iterator[tuple[Ente, DemoReturn]]:
    for ret in cremasco_2025_returns(r.schema):
        ente = r.registry.find(codice=ret.codice, nome=ret.nome)
        if ente is None:  # pragma: no cover - the built-in data match the registry
            raise rc.RaccoltaError(f"ente {ret.nome} non nell'elenco")
        if only is None or ente.codice in only:
            yield ente, ret


def write_returns(
    r: rc.Raccolta,
    folder: Path,
    *,
    only: Collection[str] | None = None,
    changes: Mapping[str, Mapping[str, Any]] | None = None,
    prefix: str = "",
    delay: dt.timedelta = dt.timedelta(0),
) -> list[Path]:
    """Fill the 2025 returns into each ente's template of raccolta `r`, as the clerks did,
    in `folder`; each file's modification time is its reception time in the plan's annex
    (plus `delay`). `only` limits the enti (codici), `changes` alters their values."""
    factory = TemplateFactory(context_for(r))
    out: list[Path] = []
    for ente, ret in _returns_of(r, only):
        values = {**ret.values, **(changes or {}).get(ente.codice, {})}
        target = folder / f"{prefix}{template_filename(ente, r.anno)}"
        when = None if ret.ricevuto is None else (ret.ricevuto + delay).timestamp()
        atomic_write_bytes(target, fill_template(factory.render(ente), values), mtime=when)
        out.append(target)
    return out


# --------------------------------------------------------------------------- addresses


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]+", "-", text.replace("'", "").replace("’", "")).strip("-")


def demo_registry(registry: Registry) -> Registry:
    """The registry with the enti's demo addresses, all under ``.example`` so that nothing
    could ever reach a real office: ``casa@comune.<nome>.example`` (e-mail) and
    ``protocollo@pec.comune.<nome>.example`` (PEC); the capofila's PEC, where the returns
    arrive, is ``ufficiodipiano@pec.comune.<nome>.example``."""
    enti = []
    for e in registry:
        dom = _slug(e.denominazione) if e.tipo == "ALER" else f"comune.{_slug(e.denominazione)}"
        pec = f"{'ufficiodipiano' if e.capofila else 'protocollo'}@pec.{dom}.example"
        enti.append(
            dataclasses.replace(e, email=e.email or f"casa@{dom}.example", pec=e.pec or pec)
        )
    return Registry(enti, source=registry.source)


# --------------------------------------------------------------------------- mail


@dataclass(frozen=True)
class Delivery:
    """One return as it travels to the capofila."""

    ente: Ente
    #: when the capofila received it: PEC certified time, or the e-mail's Date
    ricevuto: dt.datetime
    workbook: bytes
    #: "PEC", "PEC, file firmato" or "e-mail"
    canale: str
    correzione: bool = False

    @property
    def filename(self) -> str:
        name = re.sub(
            r"[^A-Za-z0-9]+",
            "_",
            unicodedata.normalize("NFKD", self.ente.denominazione)
            .encode("ascii", "ignore")
            .decode(),
        ).strip("_")
        return f"{self.ricevuto:%Y-%m-%d_%H%M}_{name}.eml"


class _Gestore:
    """The simulated PEC gestore: certifies and signs each message it carries, with one
    signing certificate issued by its own CA for the whole run."""

    def __init__(self) -> None:
        since = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        self.ca = posta.make_signer(
            "CA del Gestore PEC dimostrativo",
            "00000000000",
            cf_prefix="VATIT-",
            organization=GESTORE,
            valid_from=since,
            valid_days=10 * 365,
        )
        self.signer = posta.make_signer(
            "Gestore PEC dimostrativo",
            "00000000000",
            cf_prefix="VATIT-",
            organization=GESTORE,
            valid_from=since,
            valid_days=3 * 365,
            issuer=self.ca,
        )
        self.count = 0

    def install(self, r: rc.Raccolta) -> rc.Raccolta:
        """Write the CA certificate into the raccolta (:data:`GESTORE_CERT`) and name it in
        ``[posta] gestori_pec``, as the capofila does with the real gestori's."""
        pem = self.ca[0].public_bytes(serialization.Encoding.PEM)
        atomic_write_bytes(r.path / GESTORE_CERT, pem)
        text = r.config_path.read_text(encoding="utf-8")
        section = (
            "\n[posta]\n# Scritto dalla demo: il certificato del gestore PEC simulato.\n"
            f'gestori_pec = "{GESTORE_CERT}"\n'
        )
        atomic_write_text(r.config_path, text.replace("\n# [posta]\n", section, 1))
        return rc.load(r.path)

    def deliver(self, original: bytes, *, when: dt.datetime, to: str) -> bytes:
        self.count += 1
        ident = (
            f"opec210312.{when.astimezone(dt.UTC):%Y%m%d%H%M%S}.{self.count:05d}.1.1"
            f"@{GESTORE_DOMAIN}"
        )
        return posta.make_pec_envelope(
            original,
            when=when,
            identificativo=ident,
            gestore=GESTORE,
            gestore_domain=GESTORE_DOMAIN,
            to=to,
            signer=self.signer,
        )


def plan_deliveries(
    r: rc.Raccolta, templates: Mapping[str, bytes], *, progress: Progress | None = None
) -> list[Delivery]:
    """The 2025 returns filled into the templates (by codice) as the clerks did, with their
    time and channel, in order of reception; Castelleone's first, wrong, version a day
    before the corrected one."""
    todo = [(ente, ret) for ente, ret in _returns_of(r)]
    total = len(todo) + 1
    out: list[Delivery] = []
    for ente, ret in todo:
        when = ret.ricevuto or CREMOSANO_RICEVUTO
        canale = (
            "e-mail"
            if ente.codice in EMAIL_ORDINARIA
            else "PEC, file firmato"
            if ente.codice == FIRMATO
            else "PEC"
        )
        template = templates[ente.codice]
        if ente.codice == CON_ERRORE:
            wrong = fill_template(template, {**ret.values, "i_forze_polizia": 15})
            out.append(Delivery(ente, when - dt.timedelta(days=1), wrong, canale))
            if progress is not None:
                progress("Compilazione delle risposte", len(out), total)
        out.append(
            Delivery(
                ente,
                when,
                fill_template(template, ret.values),
                canale,
                correzione=ente.codice == CON_ERRORE,
            )
        )
        if progress is not None:
            progress("Compilazione delle risposte", len(out), total)
    return sorted(out, key=lambda d: d.ricevuto)


def write_messages(
    r: rc.Raccolta,
    deliveries: list[Delivery],
    folder: Path,
    *,
    progress: Progress | None = None,
    gestore: _Gestore | None = None,
) -> list[Path]:
    """Each delivery as the message file the capofila saves from its mailbox, with the
    time of reception as its modification time: a PEC envelope of the demo gestore (a new
    one unless given), or an ordinary e-mail."""
    capofila = r.registry.capofila
    to_pec = capofila.pec if capofila else "ufficiodipiano@pec.capofila.example"
    to_email = f"ufficiodipiano@{to_pec.split('@pec.', 1)[-1]}"
    gestore = gestore or _Gestore()
    clerk: posta.Signer | None = None
    out: list[Path] = []
    for d in deliveries:
        e = d.ente
        attachment = template_filename(e, r.anno)
        data = d.workbook
        if d.canale == "PEC, file firmato":
            clerk = clerk or posta.make_signer(
                f"Referente Ufficio Casa {e.nome_completo}",
                "DMORFR80A01G306K",
                valid_from=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                valid_days=3 * 365,
            )
            attachment, data = attachment + ".p7m", posta.sign_p7m(data, clerk)
        subject = f"Piano annuale dell'offerta abitativa {r.anno} - {e.nome_completo}"
        if d.correzione:
            subject += " - scheda corretta"
        scheda = "la scheda corretta" if d.correzione else "la scheda compilata"
        body = (
            f"Buongiorno,\nsi trasmette in allegato {scheda} del {e.nome_completo} per il "
            f"Piano annuale dell'offerta abitativa {r.anno}.\n\nCordiali saluti\n"
            f"Ufficio Casa - {e.nome_completo}\n"
        )
        pec = d.canale.startswith("PEC")
        sender = e.pec if pec else e.email
        # the clerk's mail program stamps the message a few seconds before the gestore
        # certifies its sending
        sent = d.ricevuto - dt.timedelta(seconds=4) if pec else d.ricevuto
        raw = posta.make_plain(
            sender=sender,
            to=to_pec if pec else to_email,
            subject=subject,
            body=body,
            date=sent,
            message_id=f"<{sent:%Y%m%d%H%M%S}.{_slug(e.denominazione)}@{sender.split('@', 1)[1]}>",
            attachments=[(attachment, data)],
        )
        if pec:
            raw = gestore.deliver(raw, when=d.ricevuto, to=to_pec)
        target = folder / d.filename
        atomic_write_bytes(target, raw, mtime=d.ricevuto.timestamp())
        out.append(target)
        if progress is not None:
            progress("Scrittura dei messaggi", len(out), len(deliveries))
    return out


# --------------------------------------------------------------------------- the demo


@dataclass
class DemoResult:
    raccolta: rc.Raccolta
    modelli: list[Path]
    #: the message files in posta_in_arrivo/, in order of reception
    messaggi: list[Path]
    deliveries: list[Delivery]
    importazione: ImportResult
    reports: list[Report]
    totali: dict[str, int]
    consolidation: Consolidation
    master: Path
    #: the document of the plan (.docx, .pdf) and its notes; None until written
    documento: DocumentResult | None = None

    @property
    def posta_dir(self) -> Path:
        return self.raccolta.path / POSTA_DIR

    @property
    def archivio(self) -> Path:
        return archive_dir(self.raccolta.path)

    @property
    def capofila_pec(self) -> str:
        capofila = self.raccolta.registry.capofila
        return capofila.pec if capofila else ""


def _prepare_folder(path: Path) -> None:
    """Make `path` ready for the demo: a previous demo is removed, a real raccolta or any
    other non-empty folder is refused (never touched)."""
    if (path / DEMO_MARK).exists():
        shutil.rmtree(path)
    elif (path / rc.CONFIG_NAME).exists():
        raise rc.RaccoltaError(
            f"{path} contiene una raccolta vera: la demo non la tocca. Indicare un'altra cartella."
        )
    elif path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise rc.RaccoltaError(
            f"{path} non è una cartella vuota: la demo scrive solo in una "
            "cartella nuova, vuota o di una demo precedente. Indicare "
            "un'altra cartella."
        )
    path.mkdir(parents=True, exist_ok=True)
    (path / DEMO_MARK).write_text("cartella creata da «piano-abitativo demo»\n", encoding="utf-8")


def run_demo(
    path: Path, *, log: Callable[[str], None] = print, progress: Progress | None = None
) -> DemoResult:
    """Play the 2025 cycle of the Ambito Cremasco in folder `path` (new, empty, or a
    previous demo): raccolta and 49 templates, the 26 returns filled and delivered as mail
    files (Castelleone first with a mistake, then corrected), their import, validation,
    the master workbook and the document. No network, nothing sent."""
    path = Path(path).absolute()
    _prepare_folder(path)
    r = crea(
        path,
        anno=2025,
        scadenza=dt.date(2024, 12, 18),
        contatto="Ufficio di Piano, ufficiodipiano@comune.crema.example",
    )
    atomic_write_text(path / rc.REGISTRY_NAME, demo_registry(r.registry).to_csv())
    gestore = _Gestore()
    r = gestore.install(rc.load(path))
    log(f"Raccolta {r.anno} dell'Ambito {r.ambito} creata in {path}")

    n_enti = len(r.registry)
    done = iter(range(1, n_enti + 1))
    modelli = generate_templates(
        r,
        progress=None
        if progress is None
        else (lambda _e: progress("Generazione dei modelli", next(done), n_enti)),
    )
    log(f"Modelli personalizzati: {len(modelli)} in {r.modelli_dir}")

    templates = {
        e.codice: (r.modelli_dir / template_filename(e, r.anno)).read_bytes()
        for e, _ in _returns_of(r)
    }
    deliveries = plan_deliveries(r, templates, progress=progress)
    posta_dir = path / POSTA_DIR
    messaggi = write_messages(r, deliveries, posta_dir, progress=progress, gestore=gestore)
    n_pec = sum(1 for d in deliveries if d.canale.startswith("PEC"))
    log(
        f"Messaggi arrivati: {len(messaggi)} in {posta_dir} ({n_pec} PEC, "
        f"{len(messaggi) - n_pec} e-mail ordinarie)"
    )

    # the same import as «piano-abitativo importa RACCOLTA --da posta_in_arrivo»
    seen = iter(range(1, len(messaggi) + 1))
    imported = actions.importa(
        r,
        [posta_dir],
        progress=None
        if progress is None
        else (lambda _p: progress("Importazione", next(seen), len(messaggi))),
    )
    reports = [rc_.report for rc_ in imported.imported]
    log(
        f"Risposte importate nell'archivio: {len(reports)} "
        f"({sum(1 for rep in reports if not rep.valid)} con errori)"
    )

    res = actions.consolida(r)
    result = DemoResult(
        r,
        modelli,
        messaggi,
        deliveries,
        imported,
        reports,
        res.consolidation.totals,
        res.consolidation,
        res.master,
    )

    # the last step: the document of the plan (.docx, and .pdf when LibreOffice is there)
    result.documento = actions.documento(r)
    log(f"Documento del Piano scritto in {result.documento.docx.parent}")
    return result
