"""The rule book: its two renderings, and LibreOffice and the validator agreeing on
every check row for random inputs, plus a schema with one more field end to end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from piano_abitativo.core.layout import BAD, NA, OK, WARN, layout_for
from piano_abitativo.core.registry import Registry, default_registry
from piano_abitativo.core.rules import CATALOGUE, RULE_BY_CODE, RULES, Scope, Stage
from piano_abitativo.core.rules.book import UNKNOWN
from piano_abitativo.core.rules.expr import Cell, Env, IsBlank, Param, XlCtx, cmp, truth
from piano_abitativo.core.rules.functions import RoundBySetting, percent_of
from piano_abitativo.core.rules.reads import Read, ReadYesNo
from piano_abitativo.core.schema import SCHEMA, Field, Kind, Role, Schema
from piano_abitativo.core.settings import Settings
from piano_abitativo.reading.reader import read_workbook
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateContext, TemplateFactory
from piano_abitativo.validation.validate import (
    ValidationContext,
    row_symbols,
    rule_env,
    validate_file,
)

from .lo_runner import require_libreoffice, run_batch

COMUNE, ALER = "019035", "ALER-BCM"
SETTINGS = (
    Settings(),
    Settings(sat_percentuale=12.5, sat_arrotondamento="difetto"),
    Settings(sat_percentuale=25, sat_base="f_totale_assegnabili", margine_plausibilita=0),
)
REGISTRY = default_registry()


def _sym(ref: str) -> str:
    return f"<{ref}>"


CTX = XlCtx(SCHEMA, _sym, Settings())


# --- the two renderings -----------------------------------------------------------


def test_a_count_reads_as_the_reader_in_excel() -> None:
    """Read() of a count is the number typed, or the digits typed as text, else 0."""
    assert Read("a_sap").xl(CTX) == (
        'IF(ISNUMBER(<a_sap>),<a_sap>,IF(ISERROR(FIND("%",<a_sap>)),'
        "IFERROR(VALUE(TRIM(<a_sap>)),0),0))"
    )


def test_a_computed_total_reads_as_the_sum_of_its_parts() -> None:
    """Read() of a) Totale renders as the sum of SAP and SAS as read, not the cell."""
    assert Read("a_totale").xl(CTX) == f"({Read('a_sap').xl(CTX)}+{Read('a_sas').xl(CTX)})"


def test_settings_enter_the_formula_as_values() -> None:
    """R5's limit takes percentage and rounding from the settings of the rendering."""
    limit = RoundBySetting(
        percent_of(Read("a_sap"), Param("sat_percentuale")), "sat_arrotondamento"
    )
    sap = Read("a_sap").xl(CTX)
    assert limit.xl(CTX) == f"ROUNDUP(({sap}*10)/(100),0)"
    down = XlCtx(SCHEMA, _sym, Settings(sat_percentuale=12.5, sat_arrotondamento="difetto"))
    assert limit.xl(down) == f"ROUNDDOWN(({sap}*12.5)/(100),0)"


def test_yes_no_and_blank_render_with_safe_functions() -> None:
    """SI/NO read with UPPER/TRIM over the reader's words; blank is LEN(TRIM())=0."""
    text = cmp(ReadYesNo("h_categoria_aggiuntiva"), "=", 0).xl(CTX)
    assert text.startswith('IF(OR(UPPER(TRIM(<h_categoria_aggiuntiva>))="SI",')
    assert '"VERO"' in text and '"FALSO"' in text
    assert IsBlank(Cell("note")).xl(CTX) == "LEN(TRIM(<note>))=0"


def _env(raw: dict[str, Any], values: dict[str, Any], **kw: Any) -> Env:
    return Env(SCHEMA, raw, values, **kw)


def test_python_verdicts_of_the_same_trees() -> None:
    """The same trees in Python: R5 with ceil and floor, R7 against the stock, R16 only
    for the ALER, R0 for a fraction typed as text."""
    scope = Scope(SCHEMA, Settings())
    r5 = RULE_BY_CODE["R5"].when(SCHEMA.field_by_id["j_sat"], scope)
    v = {"a_sap": 358, "j_sat": 36}
    assert not truth(r5, _env(v, v))
    v["j_sat"] = 37
    assert truth(r5, _env(v, v))
    floor = Settings(sat_arrotondamento="difetto")
    r5f = RULE_BY_CODE["R5"].when(SCHEMA.field_by_id["j_sat"], Scope(SCHEMA, floor))
    v = {"a_sap": 358, "j_sat": 36}
    assert truth(r5f, _env(v, v, settings=floor))  # floor(35.8) = 35
    r7 = RULE_BY_CODE["R7"].when(SCHEMA.field_by_id["b_carenza_manutentiva"], scope)
    v = {"a_sap": 3, "b_carenza_manutentiva": 4}
    assert truth(r7, _env(v, v)) and not truth(r7, _env(v, {**v, "a_sap": 4}))
    r16 = RULE_BY_CODE["R16"]
    assert r16.applies_to(aler=True) and not r16.applies_to(aler=False)
    r0 = RULE_BY_CODE["R0"].when(SCHEMA.field_by_id["a_sap"], scope)
    assert truth(r0, _env({"a_sap": "2,5"}, {"a_sap": 2.5}))
    assert not truth(r0, _env({"a_sap": "25"}, {"a_sap": 25}))


def test_plausibility_against_the_stock_in_python() -> None:
    """R17: b) + d) over the SAP stock, each alone within it; R18: a count over the whole
    stock of a) by more than the margin, for Comune and ALER alike."""
    scope = Scope(SCHEMA, Settings())
    r17 = RULE_BY_CODE["R17"].when(SCHEMA.field_by_id["d_turnover"], scope)
    v = {"a_sap": 40, "a_sas": 0, "b_carenza_manutentiva": 30, "d_turnover": 25}
    assert truth(r17, _env(v, v)) and truth(r17, _env(v, v, aler=True))
    assert not truth(r17, _env(v, {**v, "d_turnover": 10}))
    assert not truth(r17, _env(v, {**v, "b_carenza_manutentiva": 41}))  # R7 says it
    r18 = RULE_BY_CODE["R18"].when(SCHEMA.field_by_id["e_conferite_privati"], scope)
    v = {"a_sap": 40, "a_sas": 5, "e_conferite_privati": 19025}
    assert truth(r18, _env(v, v)) and truth(r18, _env(v, v, aler=True))
    assert not truth(r18, _env(v, {**v, "e_conferite_privati": 55}))  # 45 + 10
    assert truth(r18, _env(v, {**v, "e_conferite_privati": 56}))
    tight = Settings(margine_plausibilita=0)
    r18t = RULE_BY_CODE["R18"].when(
        SCHEMA.field_by_id["c_nuova_edificazione"], Scope(SCHEMA, tight)
    )
    v = {"a_sap": 40, "a_sas": 5, "c_nuova_edificazione": 46}
    assert truth(r18t, _env(v, v, settings=tight))
    targets = {f.id for f in RULE_BY_CODE["R18"].targets(SCHEMA)}
    assert targets == {
        "b_carenza_manutentiva",
        "c_nuova_edificazione",
        "d_turnover",
        "e_conferite_privati",
        "j_sat",
        "k_assegnate_anno_precedente",
    }


def test_the_code_typed_in_e_is_an_avviso_on_e_cell(tmp_path: Path) -> None:
    """e) = 19025 (AutoInput's completion) for an ente with 40 SAP: the validator names
    e)'s cell; b) + d) over the SAP stock names both cells."""
    lay = layout_for(SCHEMA)
    path = tmp_path / "r.xlsx"
    values = {"a_sap": 40, "a_sas": 0, "e_conferite_privati": 19025}
    path.write_bytes(fill_template(_template(COMUNE, 0), values))
    report = validate_file(path, _vctx(0))
    (r18,) = [p for p in report.problems if p.code == "R18"]
    assert r18.field == "e_conferite_privati" and r18.cell == lay.cell("e_conferite_privati")
    assert lay.cell("e_conferite_privati") in r18.message and "19.025" in r18.message
    values = {"a_sap": 40, "a_sas": 0, "b_carenza_manutentiva": 30, "d_turnover": 25}
    path.write_bytes(fill_template(_template(ALER, 0), values))
    report = validate_file(path, _vctx(0))
    (r17,) = [p for p in report.problems if p.code == "R17"]
    assert r17.cell == lay.cell("d_turnover")
    for fid in ("b_carenza_manutentiva", "d_turnover", "a_sap"):
        assert lay.cell(fid) in r17.message, r17.message
    assert row_symbols(report, aler=True)["R17"] == WARN


def test_the_catalogue_is_the_rule_book_and_the_plain_codes() -> None:
    """Every rule is in the catalogue with its own severity; the new codes exist and
    no old code changed severity."""
    for rule in RULES:
        assert CATALOGUE[rule.code] == rule.type
    assert CATALOGUE["R16"].severity.value == "errore"
    assert CATALOGUE["M14"].severity.value == "avviso"
    assert CATALOGUE["M15"].severity.value == "avviso"
    assert CATALOGUE["M08"].severity.value == "errore"
    assert CATALOGUE["M02"].severity.value == "errore"
    assert {r.code for r in RULES if r.stage is Stage.PREVIOUS} == {"R13", "R14", "R15"}


# --- random inputs ----------------------------------------------------------------

_COUNT = st.one_of(
    st.none(),
    st.integers(-3, 60),
    st.integers(99_995, 100_005),
    st.sampled_from([0.5, 2.5, 0.3, 7.0]),
    st.sampled_from([" 12 ", "7", "0", "-3", "2.5", "tre", "n.d.", "10%", "  "]),
)
_PERCENT = st.one_of(
    st.none(),
    st.integers(-2, 120),
    st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.5, 12.5]),
    st.sampled_from(["25%", "10 %", "15", "30", "abc", "5%", "  "]),
)
_YES_NO = st.one_of(
    st.none(), st.sampled_from(["SI", "NO", "si", "Sì", "no", "N", "S", "forse", "X", " SI "])
)
_TEXT = st.one_of(st.none(), st.sampled_from(["Mario Rossi", "  ", "Anziani soli"]))
_EMAIL = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "casa@comune.crema.example",
            "mario.rossi@comune",
            "a@b.c.",
            "a@@b.it",
            "@b.it",
            "a b@c.it",
            "x@.it",
            "x@y.it",
        ]
    ),
)


def _value(f: Field) -> st.SearchStrategy[Any]:
    if f.kind is Kind.COUNT:
        return _COUNT
    if f.kind is Kind.PERCENT:
        return _PERCENT
    if f.kind is Kind.YESNO:
        return _YES_NO
    if f.kind is Kind.EMAIL:
        return _EMAIL
    return _TEXT


@st.composite
def returns(draw: st.DrawFn, schema: Schema = SCHEMA) -> tuple[str, int, dict[str, Any]]:
    """(ente, settings index, values typed in the input cells)."""
    ente = draw(st.sampled_from([COMUNE, COMUNE, ALER]))
    values: dict[str, Any] = {}
    for f in schema.input_fields:
        if f.id == "note" or (ente == ALER and f.comuni_only):
            continue
        values[f.id] = draw(_value(f))
    return ente, draw(st.integers(0, len(SETTINGS) - 1)), values


_FACTORIES: dict[int, TemplateFactory] = {}


def _template(ente: str, settings_index: int) -> bytes:
    if settings_index not in _FACTORIES:
        ctx = TemplateContext(
            anno=2026, raccolta_id="2026-regole", settings=SETTINGS[settings_index]
        )
        _FACTORIES[settings_index] = TemplateFactory(ctx)
    found = REGISTRY.get(ente)
    assert found is not None
    return _FACTORIES[settings_index].render(found)


def _vctx(settings_index: int, schema: Schema = SCHEMA) -> ValidationContext:
    return ValidationContext(
        anno=2026,
        raccolta_id="2026-regole",
        registry=REGISTRY,
        settings=SETTINGS[settings_index],
        schema=schema,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=returns())
def test_rule_book_in_python_agrees_with_the_report(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, int, dict[str, Any]]
) -> None:
    """For random inputs (no spreadsheet involved), each row's verdict computed from the
    rule book's trees in Python is the one the reader's and validator's report gives."""
    ente, k, values = case
    path = tmp_path_factory.mktemp("py") / "r.xlsx"
    path.write_bytes(fill_template(_template(ente, k), values))
    ctx = _vctx(k)
    report = validate_file(path, ctx)
    rd = read_workbook(path)
    env = rule_env(rd, ctx, aler=ente == ALER)
    want = row_symbols(report, aler=ente == ALER, settings=ctx.settings)
    got = {chk.id: chk.verdict(env) for chk in layout_for(SCHEMA).checks}
    assert got == want, (values, [(p.code, p.field) for p in report.problems])


def _sets(values: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, v in values.items():
        if v is None:
            out.append({"name": k, "clear": True})
        elif isinstance(v, str):
            out.append({"name": k, "string": v})
        else:
            out.append({"name": k, "value": v})
    return out


#: in every batch, so each batch sees every symbol (hypothesis starts from the simplest)
FIXED: list[tuple[str, int, dict[str, Any]]] = [
    (COMUNE, 0, {"a_sap": -3, "j_sat": None, "g_soglia_indigenti": 0.3}),
    (ALER, 1, {"a_sap": 997, "a_sas": 11, "referente_nome": "Ufficio casa"}),
    (COMUNE, 0, {"a_sap": 358, "j_sat": 36}),  # ceil(35,8) = 36: within the limit
    (COMUNE, 1, {"a_sap": 7, "j_sat": 1}),  # floor(0,875) = 0: over the limit
    # R18: e) = 19025 (the code AutoInput typed) for an ente with 40 SAP; R17: b + d > SAP
    (COMUNE, 0, {"a_sap": 40, "a_sas": 0, "e_conferite_privati": 19025}),
    (ALER, 2, {"a_sap": 40, "a_sas": 2, "b_carenza_manutentiva": 30, "d_turnover": 25}),
    (COMUNE, 0, {"a_sap": 40, "a_sas": 0, "c_nuova_edificazione": 50}),  # within the margin
]


@pytest.mark.libreoffice
@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # each example is a LibreOffice batch
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(returns(), min_size=30, max_size=30))
def test_libreoffice_and_the_validator_agree_on_every_check_row(
    tmp_path_factory: pytest.TempPathFactory, batch: list[tuple[str, int, dict[str, Any]]]
) -> None:
    """Random returns typed in LibreOffice (numbers, blanks, text, out-of-range values,
    fractions and percentages, SI/NO variants, ALER and Comune, three settings): every
    check row's symbol after recalculation is what the validator says of the saved file."""
    require_libreoffice()
    tmp = tmp_path_factory.mktemp("lo-regole")
    checks = layout_for(SCHEMA).checks
    batch = FIXED + batch
    seen: set[str] = set()
    jobs = []
    for i, (ente, k, values) in enumerate(batch):
        src = tmp / f"m{i}.xlsx"
        src.write_bytes(_template(ente, k))
        jobs.append(
            {
                "input": str(src),
                "set": _sets(values),
                "respect_protection": True,
                "read_text": [f"controllo_{c.id}" for c in checks],
                "save": [{"path": str(tmp / f"r{i}.xlsx")}],
            }
        )
    results = run_batch(jobs)
    wrong = []
    for i, ((ente, k, values), res) in enumerate(zip(batch, results, strict=True)):
        assert res["error"] is None, res["error"]
        report = validate_file(tmp / f"r{i}.xlsx", _vctx(k))
        want = row_symbols(report, aler=ente == ALER, settings=_vctx(k).settings)
        for chk in checks:
            got = res["texts"][f"controllo_{chk.id}"]
            seen.add(got)
            if got != want[chk.id]:
                wrong.append((chk.id, got, want[chk.id], ente, k, values))
    assert not wrong, wrong[:5]
    assert {OK, BAD, WARN, NA} <= seen <= {OK, BAD, WARN, NA, UNKNOWN}


# --- a schema with one more field ---------------------------------------------------

NEW = Field("j_sat_nuove", "j", "di cui unità SAT di nuova destinazione", Kind.COUNT)


@pytest.fixture(scope="module")
def extended() -> Schema:
    return SCHEMA.with_field(NEW)


def test_a_new_count_field_gets_the_generic_rules(extended: Schema) -> None:
    """R0, L01, L04, L05 and a 'numero intero' row apply to a new count field unasked."""
    for code in ("R0", "L01", "L04", "L05"):
        assert NEW.id in {f.id for f in RULE_BY_CODE[code].targets(extended)}, code
    row = next(c for c in layout_for(extended).checks if c.id == f"num_{NEW.id}")
    assert row.errors == {"R0", "L05"} and row.warnings == {"L01", "L04"}
    assert NEW.role is Role.INPUT and NEW.maximum


@pytest.mark.libreoffice
def test_extended_schema_from_template_to_validation(
    tmp_path: Path, extended: Schema, crema_values: dict[str, Any], registry: Registry
) -> None:
    """With j_sat_nuove added: the template has its cell and workbook-level name, a return
    typed and saved by LibreOffice reads back exactly, and validates without errors."""
    require_libreoffice()
    import io

    import openpyxl

    ctx = TemplateContext(anno=2026, raccolta_id="2026-regole", schema=extended)
    ente = registry.get(COMUNE)
    assert ente is not None
    data = TemplateFactory(ctx).render(ente)
    lay = layout_for(extended)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    dests = list(wb.defined_names[NEW.id].destinations)
    assert dests == [("Scheda", lay.abs_ref(NEW.id))]
    assert wb["Scheda"][lay.cell(NEW.id)].protection.locked is False
    src = tmp_path / "modello.xlsx"
    src.write_bytes(data)
    values = {**crema_values, "j_sat": 3, NEW.id: 2}
    started = time.perf_counter()
    (res,) = run_batch(
        [
            {
                "input": str(src),
                "set": _sets(values),
                "respect_protection": True,
                "read": [f"controllo_num_{NEW.id}", "controllo_riepilogo"],
                "save": [{"path": str(tmp_path / "ritorno.xlsx")}],
            }
        ]
    )
    assert res["error"] is None and time.perf_counter() - started < 120
    assert res["reads"][f"controllo_num_{NEW.id}"]["string"] == OK
    report = validate_file(
        tmp_path / "ritorno.xlsx",
        ValidationContext(anno=2026, raccolta_id="2026-regole", registry=registry, schema=extended),
    )
    assert report.valid, [(p.code, p.message) for p in report.errors]
    assert report.values[NEW.id] == 2
    for k, v in values.items():
        assert report.values[k] == v, k
    assert NA not in row_symbols(report, extended, aler=False).values()
