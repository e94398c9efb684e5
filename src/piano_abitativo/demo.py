"""The built-in demo: the Ambito Cremasco 2025, from the published plan's figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from . import actions
from . import raccolta as rc
from .archive import TZ
from .atomic import atomic_write_bytes
from .consolidate import Consolidation
from .fill import fill_template
from .problems import Report
from .template import TemplateFactory, template_filename

DEMO_MARK = ".demo-piano-abitativo"
RISPOSTE_DIR = "risposte"

_CSV_COLUMNS = {
    "a_sap": "a_sap", "a_sas": "a_sas", "b_carenza_manutentiva": "b_carenza",
    "c_nuova_edificazione": "c_nuova_edif", "d_turnover": "d_turnover",
    "e_conferite_privati": "e_privati", "g_soglia_indigenti": "g_soglia_indigenti_pct",
    "h_categoria_aggiuntiva": "h_categoria_aggiuntiva", "i_forze_polizia": "i_fdp_pct",
    "j_sat": "j_sat", "k_assegnate_anno_precedente": "k_assegnate_2024",
}


@dataclass(frozen=True)
class DemoReturn:
    codice: str
    nome: str
    values: dict[str, Any]
    ricevuto: dt.datetime | None


def cremasco_2025_returns() -> list[DemoReturn]:
    """The 26 returns of the 2025 plan (values of tables a)–k), reception date/time)."""
    text = (resources.files("piano_abitativo") / "data" / "cremasco_2025_dati_per_ente.csv"
            ).read_text(encoding="utf-8")
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        codice = row["istat_code"] or "ALER-BCM"
        values: dict[str, Any] = {}
        for fid, col in _CSV_COLUMNS.items():
            raw = row[col].strip()
            if fid == "h_categoria_aggiuntiva":
                values[fid] = raw or "NO"
            elif raw:
                values[fid] = int(raw)
        if row["tipo_ente"] == "ALER":
            for fid in ("g_soglia_indigenti", "h_categoria_aggiuntiva", "i_forze_polizia"):
                values.pop(fid, None)
        slug = codice.lower().replace("-", "")
        values.update({"referente_nome": "Ufficio Casa",
                       "referente_email": f"casa@{slug}.example"})
        when = None
        if row["data_ricezione"]:
            when = dt.datetime.fromisoformat(f"{row['data_ricezione']}T{row['ora_ricezione']}"
                                             ).replace(tzinfo=TZ)
        out.append(DemoReturn(codice, row["ente_normalizzato"], values, when))
    return out


@dataclass
class DemoResult:
    raccolta: rc.Raccolta
    modelli: list[Path]
    risposte: list[Path]
    reports: list[Report]
    totali: dict[str, int]
    consolidation: Consolidation
    master: Path


def write_returns(r: rc.Raccolta, folder: Path, *, only: Collection[str] | None = None,
                  changes: Mapping[str, Mapping[str, Any]] | None = None,
                  prefix: str = "", delay: dt.timedelta = dt.timedelta(0)) -> list[Path]:
    """Fill the 2025 returns into each ente's template of raccolta `r`, as the clerks did,
    in `folder`; each file's modification time is its reception time in the plan's annex
    (plus `delay`). `only` limits the enti (codici), `changes` alters their values."""
    factory = TemplateFactory(r.template_context())
    out: list[Path] = []
    for ret in cremasco_2025_returns():
        ente = r.registry.find(codice=ret.codice, nome=ret.nome)
        if ente is None:  # pragma: no cover - the built-in data match the registry
            raise rc.RaccoltaError(f"ente {ret.nome} non nell'elenco")
        if only is not None and ente.codice not in only:
            continue
        values = {**ret.values, **(changes or {}).get(ente.codice, {})}
        target = folder / f"{prefix}{template_filename(ente, r.anno)}"
        atomic_write_bytes(target, fill_template(factory.render(ente), values))
        if ret.ricevuto is not None:
            when = (ret.ricevuto + delay).timestamp()
            os.utime(target, (when, when))
        out.append(target)
    return out


def run_demo(path: Path, *, log: Callable[[str], None] = print) -> DemoResult:
    """Create the Cremasco 2025 raccolta and its 49 templates, fill the 26 returns (one
    first with a mistake, then corrected), import them into the archive, validate them and
    write the master workbook."""
    path = Path(path)
    if (path / rc.CONFIG_NAME).exists():
        if not (path / DEMO_MARK).exists():
            raise rc.RaccoltaError(f"{path} contiene una raccolta vera: la demo non la tocca. "
                                   "Indicare un'altra cartella.")
        shutil.rmtree(path)
    r = rc.create(path, anno=2025, scadenza=dt.date(2024, 12, 18),
                  contatto="Ufficio di Piano, casa@crema.example")
    (path / DEMO_MARK).write_text("cartella creata da «piano-abitativo demo»\n",
                                  encoding="utf-8")
    log(f"Raccolta {r.anno} dell'Ambito {r.ambito} creata in {path}")
    modelli = rc.generate_templates(r)
    log(f"Modelli personalizzati: {len(modelli)} in {r.modelli_dir}")
    outdir = path / RISPOSTE_DIR
    castelleone = {ret.codice for ret in cremasco_2025_returns() if ret.nome == "Castelleone"}
    # Castelleone's first return, a day earlier, has a mistake: 15% for the Forze di
    # Polizia (max 10%); the corrected one follows
    risposte = write_returns(r, outdir, only=castelleone, prefix="prima_versione_",
                             changes={c: {"i_forze_polizia": 15} for c in castelleone},
                             delay=-dt.timedelta(days=1))
    risposte += write_returns(r, outdir)
    log(f"Risposte compilate: {len(risposte)} in {outdir}")
    imported = actions.importa(r, [outdir])
    reports = [rc_.report for rc_ in imported.imported]
    log(f"Risposte importate nell'archivio: {len(reports)} "
        f"({sum(1 for rep in reports if not rep.valid)} con errori)")
    res = actions.consolida(r)
    return DemoResult(r, modelli, risposte, reports, res.consolidation.totals,
                      res.consolidation, res.master)
