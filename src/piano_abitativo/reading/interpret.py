"""Tolerant interpretation of what clerks type: every guess is an avviso on its cell
(L01–L04), what cannot be read is an errore (L05, L06). The meaning of SI/NO and of a
number typed as text is shared with the rule book (`core.rules.typed`), so the
template's check rows read the cells the same way."""

from __future__ import annotations

import math
from typing import Any

from piano_abitativo.core.layout import NOT_APPLICABLE
from piano_abitativo.core.rules.typed import NO, YES, as_text, parse_number_text
from piano_abitativo.core.rules.typed import fmt as _fmt
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Role, Schema
from piano_abitativo.reading.cells import RawCell, Reading


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def interpret(rd: Reading, schema: Schema = SCHEMA) -> None:
    """The typed value of every located field, each interpretation said as an avviso."""
    tipo = rd.metadata.get("ente_tipo", "")
    for f in schema.fields:
        rc = rd.cells.get(f.id)
        if rc is None:
            continue
        rd.values[f.id] = _interpret_one(rd, f, rc, tipo)


def _interpret_one(rd: Reading, f: Field, rc: RawCell, tipo: str) -> Any:
    raw = rc.raw
    where = {"sheet": rc.sheet, "cell": rc.cell, "field": f.id}
    if isinstance(raw, str):
        raw_s = raw.strip()
        if raw_s == "":
            raw = None
        elif f.comuni_only and raw_s.casefold() == NOT_APPLICABLE and tipo == "ALER":
            return None
    if raw is None or raw == "":
        if f.role is Role.INPUT and f.kind is Kind.COUNT:
            rd.add("L04", f"{f.header}: cella vuota, considerata 0", value=None, **where)
            return 0
        return None
    if f.kind in (Kind.COUNT, Kind.PERCENT, Kind.YEAR):
        return _interpret_number(rd, f, raw, where)
    if f.kind is Kind.YESNO:
        text = as_text(raw).upper() if not isinstance(raw, bool) else ("SI" if raw else "NO")
        if isinstance(raw, str) and raw.strip() in ("SI", "NO"):
            return raw.strip()
        if text in YES or text in NO:
            value = "SI" if text in YES else "NO"
            rd.add("L02", f"{f.header}: «{as_text(raw)}» letto come {value}", value=raw, **where)
            return value
        rd.add(
            "L06",
            f"{f.header}: «{as_text(raw)}» non è una risposta valida (attesi SI o NO)",
            value=raw,
            **where,
        )
        return None
    if f.kind is Kind.CODE:
        text = as_text(raw)
        if text.isdigit() and len(text) < 6 and tipo != "ALER":
            text = text.zfill(6)
        return text
    text = as_text(raw)
    if f.max_length and len(text) > f.max_length:
        rd.add(
            "L07",
            f"{f.header}: testo di {len(text)} caratteri, troncato a {f.max_length}",
            value=text[:50] + "…",
            **where,
        )
        text = text[: f.max_length]
    return text


def _interpret_number(rd: Reading, f: Field, raw: Any, where: dict[str, Any]) -> Any:
    if isinstance(raw, bool):
        rd.add(
            "L05",
            f"{f.header}: valore logico ({'VERO' if raw else 'FALSO'}) invece di un numero",
            value=raw,
            **where,
        )
        return None
    if isinstance(raw, int | float):
        value = float(raw)
        if math.isnan(value) or math.isinf(value):
            rd.add("L05", f"{f.header}: valore non numerico", value=str(raw), **where)
            return None
        if f.kind is Kind.PERCENT and 0 < value < 1:
            rd.add(
                "L03",
                f"{f.header}: {_fmt(value)} letto come frazione, cioè {_fmt(value * 100)}%",
                value=raw,
                **where,
            )
            return _num(round(value * 100, 6))
        return _num(value)
    if not isinstance(raw, str):
        # dates, times, durations typed in a number cell
        rd.add("L05", f"{f.header}: «{raw}» non è un numero", value=str(raw), **where)
        return None
    text = raw.strip()
    if f.kind is Kind.PERCENT and text.endswith("%"):
        parsed = parse_number_text(text[:-1], kind=f.kind)
        if parsed is not None:
            rd.add("L03", f"{f.header}: «{text}» letto come {_fmt(parsed)}%", value=raw, **where)
            return _num(parsed)
    parsed = parse_number_text(text, kind=f.kind)
    if parsed is None:
        rd.add("L05", f"{f.header}: «{_short(text)}» non è un numero", value=raw, **where)
        return None
    if f.kind is Kind.PERCENT and 0 < parsed < 1:
        rd.add(
            "L03",
            f"{f.header}: «{text}» letto come frazione, cioè {_fmt(parsed * 100)}%",
            value=raw,
            **where,
        )
        return _num(round(parsed * 100, 6))
    rd.add(
        "L01",
        f"{f.header}: «{_short(text)}» scritto come testo, letto come il numero {_fmt(parsed)}",
        value=raw,
        **where,
    )
    return _num(parsed)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
