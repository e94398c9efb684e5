"""Validation of returned workbooks: rules R0–R12 of regole.md and the template checks.

`validate_file` returns a `Report`; it never raises for bad data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piano_abitativo.core.problems import Problem, Report, Severity, problem
from piano_abitativo.core.registry import Ente, Registry, normalise_name
from piano_abitativo.core.schema import (
    FIELD_BY_ID,
    FIELDS,
    SCHEMA,
    SHEET_SCHEDA,
    SUPPORTED_TEMPLATE_VERSIONS,
    TEMPLATE_VERSION,
    Kind,
    Role,
    Schema,
    Settings,
)
from piano_abitativo.reading.reader import Reading, read_bytes, read_workbook


@dataclass(frozen=True)
class ValidationContext:
    """What a return is checked against: its raccolta, when known."""

    anno: int | None = None
    raccolta_id: str | None = None
    registry: Registry | None = None
    settings: Settings = field(default_factory=Settings)
    #: when the caller knows which ente must have sent the file (e.g. its mail)
    ente_atteso: str | None = None
    #: last year's plan values by (current) codice, for R13–R15; None: no comparison
    previous: Mapping[str, Mapping[str, Any]] | None = None
    #: the year of the raccolta those values come from
    anno_precedente: int | None = None
    #: the fields of the plan
    schema: Schema = SCHEMA


def validate_file(
    path: Path | str, context: ValidationContext | None = None, *, display_name: str | None = None
) -> Report:
    """Read and validate one returned workbook."""
    return validate_reading(read_workbook(path, display_name=display_name), context)


def validate_bytes(data: bytes, name: str, context: ValidationContext | None = None) -> Report:
    return validate_reading(read_bytes(data, name), context)


def validate_reading(rd: Reading, context: ValidationContext | None = None) -> Report:
    ctx = context or ValidationContext()
    report = Report(file=rd.file, problems=list(rd.problems), metadata=dict(rd.metadata))
    if not rd.readable:
        report.ente = rd.metadata.get("ente_codice") or None
        return report
    v = rd.values
    ente = _identify(rd, ctx, report)
    report.ente = ente.codice if ente else (v.get("ente_codice") or None)
    report.ente_denominazione = (
        ente.denominazione if ente else (v.get("ente_denominazione") or None)
    )
    tipo = ente.tipo if ente else (rd.metadata.get("ente_tipo") or "")
    report.extend(check_values(v, rd, tipo=tipo, settings=ctx.settings))
    if ente is not None and ctx.previous is not None and ente.codice in ctx.previous:
        report.extend(
            check_previous(
                v,
                rd,
                ctx.previous[ente.codice],
                anno=ctx.anno,
                anno_precedente=ctx.anno_precedente,
                settings=ctx.settings,
            )
        )
    report.values = dict(rd.values)
    return report


def _p(
    rd: Reading,
    code: str,
    field_id: str | None,
    message: str | None = None,
    *,
    value: Any = None,
    severity: Severity | None = None,
    hint: str | None = None,
) -> Problem:
    cell = rd.cell_of(field_id) if field_id else None
    return problem(
        code,
        rd.file,
        message,
        sheet=SHEET_SCHEDA if cell else None,
        cell=cell,
        field=field_id,
        value=value,
        severity=severity,
        hint=hint,
    )


def _identify(rd: Reading, ctx: ValidationContext, report: Report) -> Ente | None:
    meta = rd.metadata
    v = rd.values
    version = meta.get("versione_modello", "")
    if meta:
        if version not in SUPPORTED_TEMPLATE_VERSIONS:
            report.add(
                _p(
                    rd,
                    "M10",
                    None,
                    f"Versione del modello «{version}» non riconosciuta "
                    f"(attuale: {TEMPLATE_VERSION})",
                    value=version,
                )
            )
        elif version != TEMPLATE_VERSION:
            report.add(
                _p(
                    rd,
                    "M09",
                    None,
                    f"Modello versione {version}, attuale {TEMPLATE_VERSION}",
                    value=version,
                )
            )
    # year
    anno_file = v.get("anno")
    anno_meta = meta.get("anno", "")
    if anno_meta and anno_file is not None and str(anno_file) != anno_meta:
        report.add(
            _p(
                rd,
                "M06",
                "anno",
                f"L'anno nella scheda ({anno_file}) non corrisponde "
                f"a quello del modello ({anno_meta})",
                value=anno_file,
            )
        )
    if ctx.anno is not None:
        anno = anno_meta or (str(anno_file) if anno_file is not None else "")
        if anno and anno != str(ctx.anno):
            report.add(
                _p(
                    rd,
                    "M06",
                    "anno",
                    f"Modello dell'anno {anno}, la raccolta è dell'anno {ctx.anno}",
                    value=anno,
                )
            )
    if ctx.raccolta_id and meta.get("raccolta_id") and meta["raccolta_id"] != ctx.raccolta_id:
        report.add(
            _p(
                rd,
                "M07",
                None,
                f"Il modello è stato generato per un'altra raccolta ({meta['raccolta_id']})",
                value=meta["raccolta_id"],
            )
        )
    # the ente
    codice_cell = str(v.get("ente_codice") or "").strip()
    codice_meta = meta.get("ente_codice", "")
    nome = str(v.get("ente_denominazione") or "").strip()
    if codice_meta and codice_cell and codice_meta != codice_cell:
        report.add(
            _p(
                rd,
                "M08",
                "ente_codice",
                f"Il codice nella scheda ({codice_cell}) non "
                f"corrisponde a quello del modello ({codice_meta})",
                value=codice_cell,
            )
        )
    codice = codice_meta or codice_cell
    if ctx.ente_atteso and codice and codice != ctx.ente_atteso:
        report.add(
            _p(
                rd,
                "M08",
                "ente_codice",
                f"Il modello è dell'ente {codice}, atteso {ctx.ente_atteso}",
                value=codice,
            )
        )
    if not codice and not nome:
        report.add(
            _p(
                rd,
                "M12",
                "ente_codice",
                "La scheda non indica l'ente (codice e denominazione vuoti)",
                hint="Indicare codice ISTAT e denominazione "
                "dell'ente nelle prime righe della scheda.",
            )
        )
        return None
    if ctx.registry is None:
        return None
    ente = ctx.registry.find(codice=codice) if codice else None
    if ente is None and nome:
        ente = ctx.registry.find(nome=nome)
        if ente is not None and codice:
            report.add(
                _p(
                    rd,
                    "M12",
                    "ente_codice",
                    f"Codice {codice} non presente nell'elenco "
                    f"dell'ambito (la denominazione corrisponde a {ente.denominazione})",
                    value=codice,
                )
            )
            return ente
        if ente is not None:
            report.add(
                _p(
                    rd,
                    "R10",
                    "ente_denominazione",
                    f"«{nome}» riconosciuto come {ente.nome_completo}",
                    value=nome,
                )
            )
    if ente is None:
        report.add(
            _p(
                rd,
                "M12",
                "ente_codice",
                f"L'ente {codice or nome} non è nell'elenco degli enti dell'ambito",
                value=codice or nome,
            )
        )
        return None
    if nome and normalise_name(nome) != normalise_name(ente.denominazione) and codice_meta:
        report.add(
            _p(
                rd,
                "M08",
                "ente_denominazione",
                f"La denominazione nella scheda "
                f"(«{nome}») non corrisponde all'ente {ente.nome_completo}",
                value=nome,
                severity=Severity.AVVISO,
            )
        )
    return ente


def _n(v: Mapping[str, Any], key: str) -> float:
    x = v.get(key)
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return 0.0


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.][^@\s]*$")


def check_values(
    v: Mapping[str, Any], rd: Reading, *, tipo: str, settings: Settings | None = None
) -> list[Problem]:
    """The rules R0–R12 on the typed values of one ente."""
    s = settings or Settings()
    out: list[Problem] = []
    comune = tipo != "ALER"
    # R0: counts are integers >= 0, percentages in [0, 100]
    bad: set[str] = set()
    for f in FIELDS:
        x = v.get(f.id)
        if f.role is Role.FORMULA:
            continue
        if f.kind is Kind.COUNT and isinstance(x, int | float):
            if x < 0 or not float(x).is_integer() or x > (f.maximum or math.inf):
                bad.add(f.id)
                why = (
                    "è negativo"
                    if x < 0
                    else "non è un numero intero"
                    if not float(x).is_integer()
                    else "è fuori misura"
                )
                out.append(_p(rd, "R0", f.id, f"{f.header}: {_fmt(x)} {why}", value=x))
        elif f.kind is Kind.PERCENT and isinstance(x, int | float) and not 0 <= x <= 100:
            bad.add(f.id)
            out.append(
                _p(
                    rd,
                    "R0",
                    f.id,
                    f"{f.header}: {_fmt(x)}% non è una percentuale tra 0 e 100",
                    value=x,
                )
            )
    # R1, R2: computed totals. The workbook's SUM ignores numbers typed as text, the
    # reader does not: a cached total is right if it matches either way of adding up.
    totals = check_totals(v, rd)
    out.extend(totals)
    sap = _n(v, "a_sap")
    # R3: soglia indigenti
    g = v.get("g_soglia_indigenti")
    if isinstance(g, int | float) and g != 0 and "g_soglia_indigenti" not in bad:
        if not comune:
            out.append(
                _p(
                    rd,
                    "R3",
                    "g_soglia_indigenti",
                    "g) La soglia per gli indigenti è indicata solo dai Comuni, non dall'ALER",
                    value=g,
                )
            )
        elif not 20 < g <= 100:
            out.append(
                _p(
                    rd,
                    "R3",
                    "g_soglia_indigenti",
                    f"g) Soglia {_fmt(g)}%: va indicata solo se eccede il 20% (fino al 100%)",
                    value=g,
                )
            )
    # R4: forze di polizia
    i = v.get("i_forze_polizia")
    if isinstance(i, int | float) and "i_forze_polizia" not in bad:
        if not comune and i != 0:
            out.append(
                _p(
                    rd,
                    "R4",
                    "i_forze_polizia",
                    "i) La quota per le Forze di Polizia è indicata solo dai Comuni, non dall'ALER",
                    value=i,
                )
            )
        elif not 0 <= i <= 10:
            out.append(
                _p(
                    rd,
                    "R4",
                    "i_forze_polizia",
                    f"i) Quota {_fmt(i)}%: il massimo consentito è 10%",
                    value=i,
                )
            )
    # R5: SAT
    base = max(0.0, _n(v, s.sat_base))
    limit_raw = base * s.sat_percentuale / 100
    if not math.isfinite(limit_raw):
        limit_raw = math.inf
        bad.add(s.sat_base)
    if math.isinf(limit_raw):
        limit: float = math.inf
    elif s.sat_arrotondamento == "eccesso":
        limit = math.ceil(limit_raw - 1e-9)
    else:
        limit = math.floor(limit_raw + 1e-9)
    j = _n(v, "j_sat")
    if j > limit and "j_sat" not in bad and s.sat_base not in bad:
        base_name = FIELD_BY_ID[s.sat_base].header
        out.append(
            _p(
                rd,
                "R5",
                "j_sat",
                f"j) {_fmt(j)} unità SAT oltre il "
                f"{_fmt(s.sat_percentuale)}% di {base_name} ({_fmt(base)}, limite "
                f"{limit})",
                value=j,
            )
        )
    # R6: categoria aggiuntiva needs a motivazione
    h = v.get("h_categoria_aggiuntiva")
    if h == "SI":
        if not comune:
            out.append(
                _p(
                    rd,
                    "R3",
                    "h_categoria_aggiuntiva",
                    "h) La categoria aggiuntiva è indicata solo dai Comuni, non dall'ALER",
                    value=h,
                    hint="Lasciare la cella vuota: la lettera h) riguarda solo i Comuni.",
                )
            )
        elif not str(v.get("h_motivazione") or "").strip():
            out.append(
                _p(
                    rd,
                    "R6",
                    "h_motivazione",
                    "h) È indicata una categoria aggiuntiva ma manca la motivazione",
                    value=None,
                )
            )
    # R7, R8, R12: against the SAP stock
    for code, fid in (
        ("R7", "b_carenza_manutentiva"),
        ("R8", "d_turnover"),
        ("R12", "k_assegnate_anno_precedente"),
    ):
        x = _n(v, fid)
        if x > sap and fid not in bad:
            out.append(
                _p(
                    rd,
                    code,
                    fid,
                    f"{FIELD_BY_ID[fid].header}: {_fmt(x)} supera gli "
                    f"alloggi SAP indicati in a) ({_fmt(sap)})",
                    value=x,
                )
            )
    # R11: SAS only, but units assignable
    bde = sum(_n(v, k) for k in ("b_carenza_manutentiva", "d_turnover", "e_conferite_privati"))
    if sap == 0 and _n(v, "a_sas") > 0 and bde > 0:
        out.append(
            _p(
                rd,
                "R11",
                "f_totale_assegnabili",
                "L'ente ha solo alloggi SAS ma indica unità SAP assegnabili in b), d) o e)",
                value=bde,
            )
        )
    # referente
    nome = str(v.get("referente_nome") or "").strip()
    mail = str(v.get("referente_email") or "").strip()
    tel = str(v.get("referente_telefono") or "").strip()
    if not nome or not (mail or tel):
        out.append(
            _p(
                rd,
                "V01",
                "referente_nome",
                "Referente per la compilazione non indicato o senza recapito",
            )
        )
    if mail and not _EMAIL.match(mail):
        out.append(
            _p(
                rd,
                "V02",
                "referente_email",
                f"«{mail}» non è un indirizzo e-mail valido",
                value=mail,
            )
        )
    return out


def check_totals(v: Mapping[str, Any], rd: Reading) -> list[Problem]:
    """R1 and R2. The totals in the values become the sums of the typed values."""
    out: list[Problem] = []
    values = v if isinstance(v, dict) else None
    for fid in ("a_totale", "f_totale_assegnabili"):
        f = FIELD_BY_ID[fid]
        parts = float(sum(_n(v, k) for k in f.sum_of))
        sheet_sum = 0.0
        for k in f.sum_of:
            raw = rd.cells[k].raw if k in rd.cells else None
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                sheet_sum += float(raw)
        x = v.get(fid)
        if (
            isinstance(x, int | float)
            and not isinstance(x, bool)
            and (abs(float(x) - parts) > 1e-9 and abs(float(x) - sheet_sum) > 1e-9)
        ):
            code = "R1" if fid == "a_totale" else "R2"
            names = " + ".join(FIELD_BY_ID[k].header for k in f.sum_of)
            out.append(
                _p(
                    rd,
                    code,
                    fid,
                    f"{f.header}: {_fmt(x)} invece di {_fmt(parts)} ({names})",
                    value=x,
                )
            )
        elif values is not None:
            if not math.isfinite(parts):
                values[fid] = None  # the parts are already R0 errors
            else:
                values[fid] = int(parts) if parts.is_integer() else parts
    return out


def _count(x: Any) -> int | None:
    """A valid count (an integer >= 0), else None: a wrong value is an error already."""
    if (
        isinstance(x, int | float)
        and not isinstance(x, bool)
        and math.isfinite(x)
        and x >= 0
        and float(x).is_integer()
    ):
        return int(x)
    return None


_STOCK_HINTS = {
    ("a_sap", "calo"): "Verificare che siano indicati tutti gli alloggi SAP di proprietà "
    "dell'ente. Se il dato è corretto (es. alloggi venduti, demoliti o destinati ad altro "
    "uso), ignorare l'avviso.",
    ("a_sap", "aumento"): "Verificare che siano indicati solo gli alloggi SAP di proprietà "
    "dell'ente, non quelli di altri proprietari presenti sul territorio. Se il dato è "
    "corretto (es. nuove costruzioni o acquisizioni), ignorare l'avviso.",
    ("a_sas", "calo"): "Verificare che siano indicati tutti gli alloggi SAS di proprietà "
    "dell'ente e che non siano stati scambiati con i SAP. Se il dato è corretto, ignorare "
    "l'avviso.",
    ("a_sas", "aumento"): "Verificare che siano indicati solo gli alloggi SAS di proprietà "
    "dell'ente e che non siano stati scambiati con i SAP. Se il dato è corretto, ignorare "
    "l'avviso.",
}


def check_previous(
    v: Mapping[str, Any],
    rd: Reading,
    previous: Mapping[str, Any],
    *,
    anno: int | None = None,
    anno_precedente: int | None = None,
    settings: Settings | None = None,
) -> list[Problem]:
    """R13–R15: implausible jumps against the same ente's plan values of last year.

    R13 (SAP) and R15 (SAS): the stock of a) is at most `confronto_minimo_percentuale` or
    at least `confronto_massimo_percentuale` of last year's, when the larger of the two is
    at least `confronto_minimo_alloggi`. R14: f) exceeds last year's SAP stock.
    """
    s = settings or Settings()
    now = f"nel {anno}" if anno is not None else "quest'anno"
    before = f"nel {anno_precedente}" if anno_precedente is not None else "l'anno precedente"
    out: list[Problem] = []
    for code, fid, other in (("R13", "a_sap", "a_sas"), ("R15", "a_sas", "a_sap")):
        cur, prev = _count(v.get(fid)), _count(previous.get(fid))
        if (
            cur is None
            or prev is None
            or cur == prev
            or max(cur, prev) < s.confronto_minimo_alloggi
        ):
            continue
        low, high = s.confronto_minimo_percentuale, s.confronto_massimo_percentuale
        if cur <= prev * low / 100:
            way = "calo"
            how = (
                "nessun alloggio"
                if cur == 0
                else "la metà o meno"
                if low == 50
                else f"il {_fmt(low)}% o meno"
            )
        elif cur >= prev * high / 100:
            way = "aumento"
            how = (
                "l'anno precedente nessuno"
                if prev == 0
                else "il doppio o più"
                if high == 200
                else f"il {_fmt(high)}% o più"
            )
        else:
            continue
        message = (
            f"a) {FIELD_BY_ID[fid].header}: {_fmt(cur)} {now} contro {_fmt(prev)} {before} ({how})"
        )
        cur_o, prev_o = _count(v.get(other)), _count(previous.get(other))
        if (
            cur_o is not None
            and prev_o is not None
            and ((way == "calo" and cur_o > prev_o) or (way == "aumento" and cur_o < prev_o))
        ):
            message += (
                f"; intanto {FIELD_BY_ID[other].header} sono passati da "
                f"{_fmt(prev_o)} a {_fmt(cur_o)}"
            )
        out.append(_p(rd, code, fid, message, value=cur, hint=_STOCK_HINTS[fid, way]))
    f, sap = _count(v.get("f_totale_assegnabili")), _count(previous.get("a_sap"))
    if f is not None and sap is not None and f > sap:
        out.append(
            _p(
                rd,
                "R14",
                "f_totale_assegnabili",
                f"f) Totale assegnabili: "
                f"{_fmt(f)} {now}, più degli alloggi SAP indicati in a) {before} "
                f"({_fmt(sap)})",
                value=f,
            )
        )
    return out


def _fmt(x: float) -> str:
    if not math.isfinite(x) or abs(x) >= 1e15:
        return f"{x:g}".replace(".", ",")
    if float(x).is_integer():
        return f"{int(x):,}".replace(",", ".")
    return f"{x:g}".replace(".", ",")


def coverage(registry: Registry, answered: Iterable[str], file: str = "") -> list[Problem]:
    """R9: one avviso for each ente of the registry that has not answered."""
    seen = set(answered)
    return [
        problem("R9", file, f"{e.nome_completo} non ha inviato i dati", value=e.codice)
        for e in registry
        if e.codice not in seen
    ]
