"""Validation of returned workbooks: the rule book's rules (R0–R16, V01, V02) evaluated
on what the reader read.

`validate_file` returns a `Report`; it never raises for bad data. Each rule's condition
is the expression tree of `core.rules.book`, the same the template's check rows show.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from piano_abitativo.core.layout import BAD, NA, OK, WARN, layout_for
from piano_abitativo.core.problems import Problem, Report, problem
from piano_abitativo.core.registry import Ente, Registry, normalise_name
from piano_abitativo.core.rules import RULE_BY_CODE, RULES, Rule, Stage
from piano_abitativo.core.rules.book import (
    UNKNOWN,
    condition_of,
    depends_on,
    numbers,
    unverifiable_of,
)
from piano_abitativo.core.rules.compiled import Program, verdict
from piano_abitativo.core.rules.conditions import Scope, not_a_number
from piano_abitativo.core.rules.expr import Env, Expr, truth
from piano_abitativo.core.rules.messages import MESSAGES, hint_for
from piano_abitativo.core.schema import (
    SCHEMA,
    SHEET_SCHEDA,
    SUPPORTED_TEMPLATE_VERSIONS,
    TEMPLATE_VERSION,
    Field,
    Role,
    Schema,
)
from piano_abitativo.core.settings import Settings
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
    schema = context.schema if context else SCHEMA
    return validate_reading(read_workbook(path, display_name=display_name, schema=schema), context)


def validate_bytes(
    data: bytes,
    name: str,
    context: ValidationContext | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Report:
    """Read and validate one returned workbook given as bytes; `overrides` (field id →
    value, the capofila's rettifiche) replace what was typed before the checks run."""
    schema = context.schema if context else SCHEMA
    rd = read_bytes(data, name, schema)
    if overrides and rd.readable:
        rd.values.update(overrides)
    return validate_reading(rd, context)


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
    report.extend(check_values(v, rd, tipo=tipo, settings=ctx.settings, schema=ctx.schema))
    if ente is not None and ctx.previous is not None and ente.codice in ctx.previous:
        report.extend(
            check_previous(
                v,
                rd,
                ctx.previous[ente.codice],
                anno=ctx.anno,
                anno_precedente=ctx.anno_precedente,
                settings=ctx.settings,
                schema=ctx.schema,
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
                "M14",
                "ente_denominazione",
                f"La denominazione nella scheda "
                f"(«{nome}») non corrisponde all'ente {ente.nome_completo}",
                value=nome,
            )
        )
    return ente


def _env(
    v: Mapping[str, Any],
    rd: Reading,
    *,
    tipo: str,
    settings: Settings | None,
    schema: Schema,
    previous: Mapping[str, Any] | None = None,
    anno: int | None = None,
    anno_precedente: int | None = None,
) -> Env:
    raw = {k: c.raw for k, c in rd.cells.items()}
    return Env(
        schema,
        raw,
        v,
        settings or Settings(),
        aler=tipo == "ALER",
        previous=previous,
        anno=anno,
        anno_precedente=anno_precedente,
        cells={k: c.cell for k, c in rd.cells.items()},
    )


@functools.lru_cache(maxsize=256)
def _targets(code: str, schema: Schema) -> tuple[Field, ...]:
    return RULE_BY_CODE[code].targets(schema)


@functools.lru_cache(maxsize=64)
def _program(
    codes: tuple[str, ...], schema: Schema, settings: Settings, aler: bool
) -> tuple[Program, tuple[tuple[Rule, Field, int | None, int], ...]]:
    """The conditions (and "non verificabile" guards) of the rules `codes` that apply to
    the variant, compiled together; for each (rule, target field) the index of its guard
    (None: always verifiable) and of its condition among the program's roots."""
    roots: list[Expr] = []
    plan: list[tuple[Rule, Field, int | None, int]] = []
    for code in codes:
        rule = RULE_BY_CODE[code]
        if not rule.applies_to(aler):
            continue
        for f in _targets(code, schema):
            guard = unverifiable_of(code, f.id, schema, settings)
            at: int | None = None
            if guard is not None:
                at = len(roots)
                roots.append(guard)
            roots.append(condition_of(code, f.id, schema, settings))
            plan.append((rule, f, at, len(roots) - 1))
    return Program(roots, schema, settings, aler=aler), tuple(plan)


def _findings(
    rd: Reading, env: Env, rules: Iterable[Rule], unverified: list[str] | None = None
) -> list[Problem]:
    """The problems of the rules whose condition holds, in the rule book's order; a rule
    that cannot be verified (a number it reads cannot be read) is skipped, its code
    noted in `unverified`."""
    out: list[Problem] = []
    codes = tuple([r.code for r in rules])  # from a list: a generator's tuple is resized
    program, plan = _program(codes, env.schema, env.settings, env.aler)
    values = program.values(env)
    for rule, f, guard, condition in plan:
        if guard is not None and verdict(values[guard]):
            if unverified is not None and rule.code not in unverified:
                unverified.append(rule.code)
            continue
        if verdict(values[condition]):
            out.append(
                _p(
                    rd,
                    rule.code,
                    f.id,
                    MESSAGES[rule.code](f, env),
                    value=env.values.get(f.id),
                    hint=hint_for(rule.code, f, env),
                )
            )
    return out


def check_values(
    v: Mapping[str, Any],
    rd: Reading,
    *,
    tipo: str,
    settings: Settings | None = None,
    schema: Schema = SCHEMA,
) -> list[Problem]:
    """The validator's rules of the rule book (R0–R12, R16, V01, V02) on one return."""
    env = _env(v, rd, tipo=tipo, settings=settings, schema=schema)
    rules = [r for r in RULES if r.stage is Stage.VALIDATOR]
    totals = [r for r in rules if r.code in ("R1", "R2")]
    unverified: list[str] = []
    out = _findings(rd, env, [r for r in rules if r.code == "R0"], unverified)
    out += _findings(rd, env, totals, unverified)
    _settle_totals(v, env, {p.field for p in out if p.code in ("R1", "R2")})
    rest = [r for r in rules if r.code != "R0" and r not in totals]
    out += _findings(rd, env, rest, unverified)
    if unverified:
        out.append(_unverified(rd, env, unverified))
    return out


def _unverified(rd: Reading, env: Env, codes: list[str]) -> Problem:
    """L08: the one avviso for the rules a number that cannot be read kept unverified,
    on the first such cell (L05 is reported there)."""
    scope = Scope(env.schema, env.settings)
    bad = next(
        f for f in numbers(env.schema) if truth(not_a_number(f, scope), env)
    )  # a guard held, so one exists
    cell = rd.cell_of(bad.id) or bad.id
    what = "1 controllo che usa" if len(codes) == 1 else f"{len(codes)} controlli che usano"
    message = (
        f"{what} la cella {cell} "
        f"{'non è verificabile' if len(codes) == 1 else 'non sono verificabili'} finché "
        f"la cella non contiene un numero ({', '.join(codes)})"
    )
    return _p(rd, "L08", bad.id, message, value=env.values.get(bad.id))


def _settle_totals(v: Mapping[str, Any], env: Env, wrong: set[str | None]) -> None:
    """A total that is right becomes the sum of the typed values as read (the workbook's
    SUM skips numbers typed as text, the reader does not)."""
    if not isinstance(v, dict):
        return
    for f in env.schema.fields:
        if f.role is not Role.FORMULA or not f.sum_of or f.id in wrong:
            continue
        parts = 0.0
        for k in f.sum_of:
            x = v.get(k)
            if isinstance(x, int | float) and not isinstance(x, bool):
                parts += float(x)
        if not math.isfinite(parts):
            v[f.id] = None  # the parts are already R0 errors
        else:
            v[f.id] = int(parts) if parts.is_integer() else parts


def check_totals(v: Mapping[str, Any], rd: Reading, schema: Schema = SCHEMA) -> list[Problem]:
    """R1 and R2. The totals in the values become the sums of the typed values."""
    env = _env(v, rd, tipo="", settings=None, schema=schema)
    out = _findings(rd, env, [RULE_BY_CODE["R1"], RULE_BY_CODE["R2"]])
    _settle_totals(v, env, {p.field for p in out})
    return out


def check_previous(
    v: Mapping[str, Any],
    rd: Reading,
    previous: Mapping[str, Any],
    *,
    anno: int | None = None,
    anno_precedente: int | None = None,
    settings: Settings | None = None,
    schema: Schema = SCHEMA,
) -> list[Problem]:
    """R13–R15: implausible jumps against the same ente's plan values of last year
    (the thresholds are `Settings`; the conditions are in the rule book)."""
    env = _env(
        v,
        rd,
        tipo="",
        settings=settings,
        schema=schema,
        previous=previous,
        anno=anno,
        anno_precedente=anno_precedente,
    )
    return _findings(rd, env, [r for r in RULES if r.stage is Stage.PREVIOUS])


def rule_env(rd: Reading, context: ValidationContext | None = None, *, aler: bool) -> Env:
    """What the rule book's conditions see of a reading (its cells and values)."""
    ctx = context or ValidationContext()
    return _env(
        rd.values, rd, tipo="ALER" if aler else "", settings=ctx.settings, schema=ctx.schema
    )


def row_symbols(
    report: Report,
    schema: Schema = SCHEMA,
    *,
    aler: bool,
    settings: Settings | None = None,
) -> dict[str, str]:
    """The symbol each live check row of the template must show for this report: ✖ when
    one of the row's errori is reported on its field, ? when one of its cases reads a
    number the reader could not read (L05), ! for one of its avvisi, else ✔ (– for the
    Comuni's rows in the ALER's template)."""
    out: dict[str, str] = {}
    unread = {p.field for p in report.problems if p.code == "L05"}
    s = settings or Settings()
    for chk in layout_for(schema).checks:
        codes = {p.code for p in report.problems if p.field == chk.field}
        unknown = any(
            unverifiable_of(c.code, c.field, schema, s) is not None
            and unread & set(depends_on(c.code, c.field, schema, s))
            for c in chk.cases
        )
        if chk.comuni_only and aler:
            out[chk.id] = NA
        elif codes & chk.errors:
            out[chk.id] = BAD
        elif unknown:
            out[chk.id] = UNKNOWN
        elif codes & chk.warnings:
            out[chk.id] = WARN
        else:
            out[chk.id] = OK
    return out


def coverage(registry: Registry, answered: Iterable[str], file: str = "") -> list[Problem]:
    """R9: one avviso for each ente of the registry that has not answered."""
    seen = set(answered)
    return [
        problem("R9", file, f"{e.nome_completo} non ha inviato i dati", value=e.codice)
        for e in registry
        if e.codice not in seen
    ]
