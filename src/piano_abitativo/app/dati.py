"""The data of a raccolta as a `pandas.DataFrame` (`dati`, `storico`) and its export
(`esporta`, ``piano-abitativo esporta``) as CSV, xlsx or JSON.

One row per ente of the registry, in the plan's order (the rows of the master's *Dati*),
from the same consolidation the master is written from: the values of the used version
(the latest without errors) after the capofila's rettifiche. The columns:

* ``codice``, ``ente``, ``tipo``, ``stato``: who, and where its collection stands;
* one column per field of the plan's sections a)–k), named by the field's id and typed by
  its kind (`DTYPES`): a field added to the schema is a column with no code here;
* ``ricevuto_il`` (Europe/Rome), ``canale``, ``verifica_pec``, ``versione``, ``id`` of the
  used version; ``errori`` and ``avvisi`` of the latest one; ``rettifiche``, the fields the
  capofila corrected in the used version.

This is the only module of the package that imports pandas: `import piano_abitativo`,
``--help`` and ``valida`` never load it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from piano_abitativo.app.loading import PathLike, RaccoltaLike, load_raccolta
from piano_abitativo.archive.decisions import short_id
from piano_abitativo.archive.store import TZ
from piano_abitativo.consolidation.consolidate import (
    STATO_CON_AVVISI,
    STATO_CON_ERRORI,
    STATO_IN_VERIFICA,
    STATO_NON_RICEVUTO,
    STATO_VALIDO,
    Consolidation,
    EnteStatus,
)
from piano_abitativo.consolidation.context import consolidate_raccolta
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.errors import RaccoltaError
from piano_abitativo.core.schema import Kind, Schema

#: the dtype of a plan field's column, by the field's kind (codes stay text: 019036)
DTYPES: dict[Kind, str] = {
    Kind.CODE: "string",
    Kind.TEXT: "string",
    Kind.YEAR: "Int64",
    Kind.COUNT: "Int64",
    Kind.PERCENT: "Float64",
    Kind.YESNO: "string",
    Kind.EMAIL: "string",
    Kind.PHONE: "string",
}

#: the states of an ente, in the order of the Cruscotto's legend (the `stato` categories)
STATI: tuple[str, ...] = (
    STATO_NON_RICEVUTO,
    STATO_VALIDO,
    STATO_CON_AVVISI,
    STATO_CON_ERRORI,
    STATO_IN_VERIFICA,
)
TIPI: tuple[str, ...] = ("COMUNE", "ALER")

#: the columns before the plan's fields: name -> (dtype, meaning, in Italian for the README)
BEFORE: dict[str, tuple[Any, str]] = {
    "codice": ("string", "codice dell'ente (testo: gli zeri iniziali restano)"),
    "ente": ("string", "denominazione, come nel foglio Dati (es. «Comune di Crema»)"),
    "tipo": (pd.CategoricalDtype(list(TIPI)), "COMUNE o ALER"),
    "stato": (
        pd.CategoricalDtype(list(STATI)),
        "stato della raccolta per l'ente, come nel Cruscotto",
    ),
}
#: the columns after the plan's fields
AFTER: dict[str, tuple[Any, str]] = {
    "ricevuto_il": (
        pd.DatetimeTZDtype("us", TZ),
        "ricezione della versione usata, ora italiana (ora certificata PEC se c'è)",
    ),
    "canale": ("string", "come è arrivata la versione usata: PEC, e-mail, cartella"),
    "verifica_pec": ("string", "verifica della firma del gestore PEC della versione usata"),
    "versione": ("string", "nome del file della versione usata"),
    "id": ("string", "identificativo della versione usata (per accetta, scarta…)"),
    "errori": ("Int64", "errori dell'ultima versione ricevuta"),
    "avvisi": ("Int64", "avvisi dell'ultima versione ricevuta"),
    "rettifiche": ("string", "campi rettificati dal capofila nella versione usata, separati da ,"),
}

FORMATI: tuple[str, ...] = ("csv", "xlsx", "json")
SEPARATORI: tuple[str, ...] = (";", ",")
#: the default name of the export, in the raccolta folder (like the master's)
EXPORT_STEM = "Dati_piano_abitativo_{anno}"
SHEET = "Dati"


def columns(schema: Schema) -> dict[str, Any]:
    """Every column of `dati` for `schema`, in order, with its dtype."""
    plan = {f.id: DTYPES[f.kind] for f in schema.plan_fields}
    fixed = {k: v[0] for k, v in BEFORE.items()}
    after = {k: v[0] for k, v in AFTER.items()}
    return fixed | plan | after


def _row(s: EnteStatus, schema: Schema) -> dict[str, Any]:
    used, latest, values = s.used, s.latest, s.values
    corrected = s.rettificati
    row: dict[str, Any] = {
        "codice": s.ente.codice,
        "ente": s.ente.nome_completo,
        "tipo": s.ente.tipo,
        "stato": s.stato,
    }
    for f in schema.plan_fields:
        row[f.id] = values.get(f.id) if values else None
    row |= {
        "ricevuto_il": used.ricevuto_il if used else None,
        "canale": used.canale if used else None,
        "verifica_pec": used.extra.get("verifica_pec") if used else None,
        "versione": used.nome if used else None,
        "id": short_id(used.sha256) if used else None,
        "errori": s.errori if latest else None,
        "avvisi": s.avvisi if latest else None,
        "rettifiche": ", ".join(f.id for f in schema.plan_fields if f.id in corrected) or None,
    }
    return row


def frame(cons: Consolidation) -> pd.DataFrame:
    """The DataFrame of a consolidation (see the module's docstring)."""
    cols = columns(cons.schema)
    rows = [_row(s, cons.schema) for s in cons.enti]
    data: dict[str, Any] = {}
    for name, dtype in cols.items():
        raw = [r[name] for r in rows]
        if isinstance(dtype, pd.DatetimeTZDtype):
            data[name] = pd.Series(
                pd.to_datetime(raw, utc=True), dtype="datetime64[us, UTC]"
            ).dt.tz_convert(dtype.tz)
        else:
            data[name] = pd.Series(raw, dtype=dtype)
    return pd.DataFrame(data, columns=list(cols))


def dati(raccolta: RaccoltaLike) -> pd.DataFrame:
    """The data of the raccolta (loaded, or the path of its folder) as a DataFrame: one
    row per ente of the registry, every field of the plan with its dtype (``Int64`` counts,
    ``Float64`` percentages, ``string`` codes, ``category`` stato), the reception of the
    used version (Europe/Rome), channel, PEC verification, version, errors, avvisi and
    rettifiche. Writes nothing."""
    return frame(consolidate_raccolta(load_raccolta(raccolta)))


def storico(raccolte: Sequence[RaccoltaLike]) -> pd.DataFrame:
    """The `dati` of several years in one DataFrame, with a first column ``anno``; the
    raccolte in the order given. Two raccolte of the same year are refused."""
    if not raccolte:
        raise RaccoltaError("indicare almeno una raccolta per lo storico")
    loaded = [load_raccolta(x) for x in raccolte]
    seen: dict[int, Path] = {}
    for r in loaded:
        if r.anno in seen:
            raise RaccoltaError(
                f"Le raccolte {seen[r.anno]} e {r.path} sono dello stesso anno ({r.anno}): "
                "nello storico ogni anno va indicato una volta sola."
            )
        seen[r.anno] = r.path
    parts = []
    for r in loaded:
        df = dati(r)
        df.insert(0, "anno", pd.Series([r.anno] * len(df), dtype="Int64"))
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class EsportaResult:
    """What `esporta` wrote."""

    path: Path
    formato: str
    righe: int


def export_path(raccolta_path: Path, anno: int, formato: str) -> Path:
    """Where the export goes when no output is given: in the raccolta folder."""
    return Path(raccolta_path) / f"{EXPORT_STEM.format(anno=anno)}.{formato}"


def to_csv(df: pd.DataFrame, *, separatore: str = ";") -> bytes:
    """The CSV, UTF-8 with BOM: with ``;`` the decimal comma (what Italian Excel opens),
    with ``,`` the decimal point (the international form)."""
    decimal = "," if separatore == ";" else "."
    text = df.to_csv(
        index=False, sep=separatore, decimal=decimal, float_format="%.10g", lineterminator="\r\n"
    )
    return text.encode("utf-8-sig")


def to_xlsx(df: pd.DataFrame) -> bytes:
    """A plain table: the header row (frozen), the rows, an autofilter; times as Italian
    local time (Excel has no time zones), codes as text."""
    plain = df.copy()
    for name in plain.columns:
        if isinstance(plain[name].dtype, pd.DatetimeTZDtype):
            plain[name] = plain[name].dt.tz_localize(None)
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="xlsxwriter", datetime_format="dd/mm/yyyy hh:mm:ss") as writer:
        plain.to_excel(writer, index=False, sheet_name=SHEET)
        ws = writer.sheets[SHEET]
        ws.autofilter(0, 0, max(len(plain), 1), len(plain.columns) - 1)
        ws.freeze_panes(1, 0)
        for c, name in enumerate(plain.columns):
            longest = max((len(str(v)) for v in plain[name].dropna()), default=0)
            width = 19 if name == "ricevuto_il" else max(len(str(name)), longest)
            ws.set_column(c, c, min(width + 2, 60))
    return buf.getvalue()


def _plain(v: Any) -> Any:
    """A DataFrame value as JSON: missing as None, times ISO 8601 with the offset."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp | dt.datetime):
        return v.isoformat()
    if hasattr(v, "item"):  # a numpy scalar
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def to_json(df: pd.DataFrame) -> bytes:
    """The records (one object per ente), ISO dates, nulls as null."""
    records = [{k: _plain(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]
    return (json.dumps(records, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def esporta(
    raccolta: RaccoltaLike,
    *,
    formato: str = "csv",
    output: PathLike | None = None,
    separatore: str = ";",
) -> EsportaResult:
    """Write the raccolta's `dati` as ``csv`` (``;`` and the decimal comma, or ``,`` and
    the point with ``separatore=","``; UTF-8 with BOM), ``xlsx`` (a table with a header
    row and an autofilter) or ``json`` (records). `output` defaults to
    ``Dati_piano_abitativo_ANNO.<formato>`` in the raccolta folder; the file is replaced
    atomically."""
    if formato not in FORMATI:
        raise RaccoltaError(f"formato «{formato}» sconosciuto: usare {', '.join(FORMATI)}")
    if separatore not in SEPARATORI:
        raise RaccoltaError(
            f"separatore «{separatore}» non previsto: usare ; (predefinito) oppure ,"
        )
    if separatore != ";" and formato != "csv":
        raise RaccoltaError("il separatore (--separatore) vale solo per il formato csv")
    r = load_raccolta(raccolta)
    target = Path(output) if output is not None else export_path(r.path, r.anno, formato)
    if target.is_dir():
        raise RaccoltaError(f"{target} è una cartella: indicare il file da scrivere")
    df = dati(r)
    if formato == "csv":
        data = to_csv(df, separatore=separatore)
    elif formato == "xlsx":
        data = to_xlsx(df)
    else:
        data = to_json(df)
    atomic_write_bytes(target, data)
    return EsportaResult(target, formato, len(df))
