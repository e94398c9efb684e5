"""Real LibreOffice as the clerk's spreadsheet and as the formula oracle.

One LibreOffice batch per test session fills the generated templates through their
defined names as a clerk would (numbers typed as numbers, text as text), saves them as
.xlsx, .ods and .xls, and reads back the live self-check cells after recalculation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.core.layout import CHECKS, LAYOUT
from piano_abitativo.core.problems import Report, Severity
from piano_abitativo.core.registry import Registry, default_registry
from piano_abitativo.core.rules.book import depends_on
from piano_abitativo.core.schema import SCHEMA, Role
from piano_abitativo.core.settings import Settings
from piano_abitativo.simulation.demo import cremasco_2025_returns
from piano_abitativo.template.workbook import TemplateContext, TemplateFactory
from piano_abitativo.validation.validate import ValidationContext, validate_file

from .lo_runner import require_libreoffice, run_batch

pytestmark = pytest.mark.libreoffice

ANNO_2025 = TemplateContext(anno=2025, raccolta_id="2025-lo", ambito="Cremasco")


class Formula(str):
    """A formula the clerk types into a cell (LibreOffice syntax)."""


def _sets(values: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k, v in values.items():
        if isinstance(v, Formula):
            out.append({"name": k, "formula": str(v)})
        elif v is None:
            out.append({"name": k, "clear": True})
        elif isinstance(v, str):
            out.append({"name": k, "string": v})
        else:
            out.append({"name": k, "value": v})
    return out


@dataclass
class Case:
    """One filling of a template, through LibreOffice, with the files it saved."""

    id: str
    ente: str
    values: dict[str, Any]
    insert_rows: list[dict[str, Any]] | None = None
    reads: dict[str, Any] | None = None
    #: the texts of the check rows (the driver's "read_text")
    texts: dict[str, Any] | None = None
    saved: dict[str, Path] | None = None


def _agreement_cases(crema: Mapping[str, Any]) -> list[Case]:
    """Valid and invalid inputs covering every live check."""
    base = dict(crema)
    cases = {
        "pulito": {},
        "vuoti": {k: None for k in ("a_sas", "e_conferite_privati", "j_sat")},
        "negativo": {"a_sap": -3},
        "frazionario": {"b_carenza_manutentiva": 1.5},
        "testo_non_numero": {"c_nuova_edificazione": "tre"},
        "numero_come_testo": {"d_turnover": "1"},
        "g_bassa": {"g_soglia_indigenti": 15},
        "g_valida": {"g_soglia_indigenti": 25},
        "g_frazione": {"g_soglia_indigenti": 0.3},
        "g_oltre": {"g_soglia_indigenti": 120},
        "i_alta": {"i_forze_polizia": 12},
        "i_frazione": {"i_forze_polizia": 0.1},
        "i_testo_percento": {"i_forze_polizia": "10%"},
        "h_sbagliata": {"h_categoria_aggiuntiva": "forse"},
        "h_minuscolo": {"h_categoria_aggiuntiva": "si", "h_motivazione": "Anziani soli"},
        "h_senza_motivazione": {"h_categoria_aggiuntiva": "SI"},
        "sat_troppe": {"j_sat": 40},
        "oltre_stock": {
            "b_carenza_manutentiva": 400,
            "d_turnover": 400,
            "k_assegnate_anno_precedente": 400,
        },
        "solo_sas": {
            "a_sap": 0,
            "a_sas": 6,
            "b_carenza_manutentiva": 1,
            "j_sat": 0,
            "d_turnover": 0,
            "k_assegnate_anno_precedente": 0,
        },
        "senza_referente": {
            "referente_nome": None,
            "referente_email": None,
            "referente_telefono": None,
        },
        "email_sbagliata": {"referente_email": "mario.rossi@comune"},
    }
    out = [Case(k, "019035", {**base, **v}) for k, v in cases.items()]
    aler = {k: v for k, v in base.items() if k not in ("h_categoria_aggiuntiva", "i_forze_polizia")}
    out.append(Case("aler_pulito", "ALER-BCM", {**aler, "a_sap": 997, "a_sas": 11}))
    return out


@dataclass
class Session:
    registry: Registry
    returns_2025: list[Case]
    agreement: list[Case]
    inserted: Case
    typed: Case
    formula: Case
    #: what LibreOffice answered to typing in each computed cell (None: it took the value)
    locked: dict[str, str | None]


@pytest.fixture(scope="module")
def lo(tmp_path_factory: pytest.TempPathFactory, crema_reference: Mapping[str, Any]) -> Session:
    """Runs the single LibreOffice batch of this module."""
    require_libreoffice()
    tmp = tmp_path_factory.mktemp("lo")
    reg = default_registry()
    fac26 = TemplateFactory(TemplateContext(anno=2026, raccolta_id="2026-test", ambito="Cremasco"))
    fac25 = TemplateFactory(ANNO_2025)
    jobs: list[dict[str, Any]] = []
    cases: list[tuple[Case, TemplateFactory, tuple[str, ...]]] = []

    ret25 = []
    for i, r in enumerate(cremasco_2025_returns()):
        exts = ("xlsx", "ods", "xls") if i % 5 == 0 else ("xlsx", "ods")
        ret25.append(Case(f"2025_{r.codice}", r.codice, r.values))
        cases.append((ret25[-1], fac25, exts))
    agreement = _agreement_cases(crema_reference)
    cases += [(c, fac26, ("xlsx",)) for c in agreement]
    inserted = Case(
        "righe_inserite",
        "019035",
        dict(crema_reference),
        insert_rows=[{"sheet": "Scheda", "before_row": LAYOUT.field_rows["a_sap"] + 1, "count": 2}],
    )
    typed = Case(
        "digitazione",
        "019035",
        {
            **crema_reference,
            "a_sap": " 358 ",
            "h_categoria_aggiuntiva": "Sì",
            "h_motivazione": "Genitori soli",
            "i_forze_polizia": "10%",
        },
    )
    formula = Case("formula", "019035", {**crema_reference, "a_sap": Formula("=300+58")})
    cases += [
        (inserted, fac26, ("xlsx", "ods")),
        (typed, fac26, ("xlsx", "ods")),
        (formula, fac26, ("xlsx", "ods")),
    ]

    for case, fac, exts in cases:
        ente = reg.get(case.ente)
        assert ente is not None
        src = tmp / f"{case.id}_modello.xlsx"
        src.write_bytes(fac.render(ente))
        case.saved = {ext: tmp / f"{case.id}.{ext}" for ext in exts}
        job: dict[str, Any] = {
            "input": str(src),
            "set": _sets(case.values),
            "respect_protection": True,
            "read": ["a_totale", "f_totale_assegnabili"],
            "read_text": ["controllo_riepilogo"] + [f"controllo_{c.id}" for c in CHECKS],
            "save": [{"path": str(p)} for p in case.saved.values()],
        }
        if case.insert_rows:
            job["insert_rows"] = case.insert_rows
        jobs.append(job)
    # a clerk typing over each computed cell of a template, as LibreOffice lets them
    blank = tmp / "modello_vuoto.xlsx"
    ente = reg.get("019035")
    assert ente is not None
    blank.write_bytes(fac26.render(ente))
    computed = [f.id for f in SCHEMA.fields if f.role is Role.FORMULA]
    for name in computed:
        jobs.append(
            {"input": str(blank), "set": [{"name": name, "value": 7}], "respect_protection": True}
        )
    results = run_batch(jobs)
    for (case, _fac, _exts), res in zip(cases, results[: len(cases)], strict=True):
        assert res["error"] is None, (case.id, res["error"])
        case.reads, case.texts = res["reads"], res["texts"]
    locked = {n: r["error"] for n, r in zip(computed, results[len(cases) :], strict=True)}
    return Session(reg, ret25, agreement, inserted, typed, formula, locked)


def _ctx(reg: Registry, ctx: TemplateContext) -> ValidationContext:
    return ValidationContext(anno=ctx.anno, raccolta_id=ctx.raccolta_id, registry=reg)


def test_cremasco_2025_typed_in_libreoffice_reads_back_exactly(lo: Session) -> None:
    """The 26 returns of 2025, typed in LibreOffice and saved as .xlsx/.ods/.xls, read back
    exactly and validate without errors."""
    ctx = _ctx(lo.registry, ANNO_2025)
    n_files = 0
    for case in lo.returns_2025:
        assert case.saved
        for ext, path in case.saved.items():
            rep = validate_file(path, ctx)
            n_files += 1
            assert rep.valid, (case.id, ext, [(p.code, p.message) for p in rep.errors])
            assert rep.ente == case.ente
            for k, v in case.values.items():
                assert rep.values[k] == v, (case.id, ext, k)
            sap, sas = case.values["a_sap"], case.values["a_sas"]
            assert rep.values["a_totale"] == sap + sas
            assert not [p for p in rep.problems if p.code.startswith(("L", "M"))], (
                case.id,
                ext,
                rep.problems,
            )
    assert n_files >= 26 * 2


def test_libreoffice_totals_match_python(lo: Session) -> None:
    """LibreOffice's a) and f) totals equal the sums the validator computes."""
    for case in lo.returns_2025:
        assert case.reads
        v = case.values
        assert case.reads["a_totale"]["value"] == v["a_sap"] + v["a_sas"]
        f = sum(
            v.get(k, 0)
            for k in (
                "b_carenza_manutentiva",
                "c_nuova_edificazione",
                "d_turnover",
                "e_conferite_privati",
            )
        )
        assert case.reads["f_totale_assegnabili"]["value"] == f


def _expected_symbol(report: Report, check_id: str, aler: bool) -> str:
    chk = next(c for c in CHECKS if c.id == check_id)
    if chk.comuni_only and aler:
        return "–"
    errs = {
        p.code for p in report.problems if p.field == chk.field and p.severity is Severity.ERRORE
    }
    warns = {
        p.code for p in report.problems if p.field == chk.field and p.severity is Severity.AVVISO
    }
    if errs & chk.errors:
        return "✖"
    unread = {p.field for p in report.problems if p.code == "L05"}
    if any(unread & set(depends_on(c.code, c.field, SCHEMA, Settings())) for c in chk.cases):
        return "?"  # a number the row reads besides its own field cannot be read
    if warns & chk.warnings:
        return "!"
    return "✔"


def test_live_self_checks_agree_with_the_python_validator(lo: Session) -> None:
    """For every case and every check row, LibreOffice's ✔/!/✖ is what the validator
    says about the same saved file."""
    ctx = ValidationContext(anno=2026, raccolta_id="2026-test", registry=lo.registry)
    disagreements = []
    seen_symbols: set[str] = set()
    for case in lo.agreement:
        assert case.saved and case.texts
        rep = validate_file(case.saved["xlsx"], ctx)
        for chk in CHECKS:
            got = case.texts[f"controllo_{chk.id}"]
            seen_symbols.add(got)
            want = _expected_symbol(rep, chk.id, case.ente == "ALER-BCM")
            if got != want:
                disagreements.append(
                    (case.id, chk.id, got, want, [(p.code, p.field) for p in rep.problems])
                )
    assert not disagreements, disagreements
    assert seen_symbols == {"✔", "!", "✖", "–", "?"}


def test_a_clerk_cannot_type_over_a_computed_cell_in_libreoffice(lo: Session) -> None:
    """The totals (a, f) are locked on the protected Scheda: LibreOffice refuses typing
    there, as Excel does, while the input cells take what is typed (every other job)."""
    assert "a_totale" in lo.locked and "f_totale_assegnabili" in lo.locked
    for name, error in lo.locked.items():
        assert error is not None and "is a locked cell of protected sheet 'Scheda'" in error, (
            name,
            error,
        )


def test_summary_cell_says_whether_the_sheet_can_be_sent(lo: Session) -> None:
    """The summary shows ✔ for a clean sheet and ✖ when any check fails."""
    by_id = {c.id: c for c in lo.agreement}
    assert by_id["pulito"].texts and by_id["negativo"].texts
    assert by_id["pulito"].texts["controllo_riepilogo"] == "✔"
    assert by_id["negativo"].texts["controllo_riepilogo"] == "✖"


def test_rows_inserted_by_the_clerk_still_read_correctly(
    lo: Session, crema_values: dict[str, Any]
) -> None:
    """Two rows inserted above a) SAP: every value still comes from its own cell, with
    an avviso that the layout was changed."""
    ctx = ValidationContext(anno=2026, raccolta_id="2026-test", registry=lo.registry)
    assert lo.inserted.saved
    for path in lo.inserted.saved.values():
        rep = validate_file(path, ctx)
        assert rep.valid, rep.errors
        assert "M04" in rep.codes()
        for k, v in crema_values.items():
            assert rep.values[k] == v, (path.suffix, k)


def test_what_a_clerk_types_in_libreoffice_is_tolerated(lo: Session) -> None:
    """' 358 ' as text, 'Sì', '10%' typed in LibreOffice: read right, only avvisi."""
    ctx = ValidationContext(anno=2026, raccolta_id="2026-test", registry=lo.registry)
    assert lo.typed.saved
    for path in lo.typed.saved.values():
        rep = validate_file(path, ctx)
        assert rep.valid, (path.suffix, rep.errors)
        assert rep.values["a_sap"] == 358
        assert rep.values["h_categoria_aggiuntiva"] == "SI"
        assert rep.values["i_forze_polizia"] == 10
        assert {"L01", "L02", "L03"} <= rep.codes()


def test_formula_typed_into_an_input_cell_is_an_error_in_xlsx_and_ods(lo: Session) -> None:
    """'=300+58' typed into a) SAP in LibreOffice is refused (M11) on its cell."""
    ctx = ValidationContext(anno=2026, raccolta_id="2026-test", registry=lo.registry)
    assert lo.formula.saved
    for path in lo.formula.saved.values():
        rep = validate_file(path, ctx)
        hits = [p for p in rep.errors if p.code == "M11"]
        assert hits and hits[0].cell == LAYOUT.cell("a_sap"), (path.suffix, rep.problems)
