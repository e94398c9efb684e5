"""Rules R0–R12 and the tolerant reading of what clerks really type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from piano_abitativo.core.layout import LAYOUT
from piano_abitativo.core.problems import CATALOGUE, Severity
from piano_abitativo.validation.validate import Settings, ValidationContext, validate_file

MakeReturn = Callable[..., Path]


def _codes(report: Any, severity: Severity | None = None) -> set[str]:
    return {p.code for p in report.problems if severity is None or p.severity is severity}


def test_complete_return_is_valid_without_warnings(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """Crema's 2025 figures, fully typed, give a valid report with no problem at all."""
    rep = validate_file(make_return(crema_values), vctx)
    assert rep.problems == []
    assert rep.valid and rep.ente == "019035"
    assert rep.values["f_totale_assegnabili"] == 10
    assert rep.values["a_totale"] == 358


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"a_sap": -1}, "R0", "a_sap"),
        ({"j_sat": 2.5}, "R0", "j_sat"),
        ({"g_soglia_indigenti": 15}, "R3", "g_soglia_indigenti"),
        ({"g_soglia_indigenti": 101}, "R0", "g_soglia_indigenti"),
        ({"i_forze_polizia": 12}, "R4", "i_forze_polizia"),
        ({"h_categoria_aggiuntiva": "SI"}, "R6", "h_motivazione"),
        ({"a_sap": "tre"}, "L05", "a_sap"),
        ({"h_categoria_aggiuntiva": "forse"}, "L06", "h_categoria_aggiuntiva"),
    ],
)
def test_each_error_rule_is_reported_on_its_field_and_cell(
    make_return: MakeReturn,
    vctx: ValidationContext,
    changes: dict[str, Any],
    code: str,
    field: str,
    crema_values: dict[str, Any],
) -> None:
    """A broken rule is an errore located on the field's cell."""
    rep = validate_file(make_return({**crema_values, **changes}), vctx)
    hits = [p for p in rep.problems if p.code == code]
    assert hits, rep.problems
    assert hits[0].severity is Severity.ERRORE
    assert hits[0].field == field
    assert hits[0].cell == LAYOUT.cell(field)
    assert hits[0].sheet == "Scheda"
    assert not rep.valid


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"j_sat": 40}, "R5"),  # > ceil(10% of 358) = 36
        ({"b_carenza_manutentiva": 400}, "R7"),
        ({"d_turnover": 400}, "R8"),
        ({"k_assegnate_anno_precedente": 400}, "R12"),
        ({"a_sap": 0, "a_sas": 6, "b_carenza_manutentiva": 1}, "R11"),
        ({"referente_nome": None}, "V01"),
        ({"referente_email": "mario.rossi"}, "V02"),
    ],
)
def test_plausibility_rules_are_warnings_only(
    make_return: MakeReturn,
    vctx: ValidationContext,
    changes: dict[str, Any],
    code: str,
    crema_values: dict[str, Any],
) -> None:
    """Implausible but lawful data give an avviso and the return stays valid."""
    values = {k: v for k, v in {**crema_values, **changes}.items() if v is not None}
    rep = validate_file(make_return(values), vctx)
    assert code in _codes(rep, Severity.AVVISO)
    assert rep.valid, rep.errors


def test_sat_limit_is_a_setting(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """With base f (10 units) and floor rounding, 2 SAT units exceed the limit of 1."""
    path = make_return({**crema_values, "j_sat": 2})
    assert "R5" not in _codes(validate_file(path, vctx))
    strict = ValidationContext(
        anno=2026,
        raccolta_id="2026-test",
        registry=vctx.registry,
        settings=Settings(sat_base="f_totale_assegnabili", sat_arrotondamento="difetto"),
    )
    assert "R5" in _codes(validate_file(path, strict))


def test_crema_2025_exception_sat_with_no_assignable_units_is_fine(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """Casale Cremasco 2025: 8 SAP, f = 0, 1 SAT unit: no warning (base is not f)."""
    values = {
        **crema_values,
        "a_sap": 8,
        "b_carenza_manutentiva": 0,
        "c_nuova_edificazione": 0,
        "d_turnover": 0,
        "j_sat": 1,
        "k_assegnate_anno_precedente": 1,
    }
    rep = validate_file(make_return(values, ente="019017"), vctx)
    assert rep.problems == []


def test_aler_sending_comuni_only_choices_is_an_error(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """g) and i) typed over 'non applicabile' in the ALER's file are errors R3/R4."""
    values = {k: v for k, v in crema_values.items() if k != "h_categoria_aggiuntiva"}
    rep = validate_file(
        make_return({**values, "g_soglia_indigenti": 30, "i_forze_polizia": 5}, ente="ALER-BCM"),
        vctx,
    )
    assert {"R3", "R4"} <= _codes(rep, Severity.ERRORE)


def test_aler_not_applicable_cells_are_read_as_empty(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """The ALER's untouched 'non applicabile' cells give no problem."""
    values = {
        k: v
        for k, v in crema_values.items()
        if k not in ("h_categoria_aggiuntiva", "i_forze_polizia")
    }
    rep = validate_file(make_return(values, ente="ALER-BCM"), vctx)
    assert rep.problems == []
    assert rep.values["g_soglia_indigenti"] is None


@pytest.mark.parametrize(
    ("field", "typed", "read", "code"),
    [
        ("a_sap", "5", 5, "L01"),
        ("a_sap", " 5 ", 5, "L01"),
        ("a_sap", "1.008", 1008, "L01"),
        ("h_categoria_aggiuntiva", "Sì", "SI", "L02"),
        ("h_categoria_aggiuntiva", "si", "SI", "L02"),
        ("h_categoria_aggiuntiva", "no", "NO", "L02"),
        ("i_forze_polizia", "10", 10, "L01"),
        ("i_forze_polizia", "10%", 10, "L03"),
        ("i_forze_polizia", "0,1", 10, "L03"),
        ("i_forze_polizia", 0.1, 10, "L03"),
    ],
)
def test_what_clerks_type_is_read_with_an_avviso_saying_how(
    make_return: MakeReturn,
    vctx: ValidationContext,
    field: str,
    typed: Any,
    read: Any,
    code: str,
    crema_values: dict[str, Any],
) -> None:
    """Tolerant reading never guesses silently: each interpretation is an avviso."""
    values = {**crema_values, field: typed, "h_motivazione": "Nuclei monogenitoriali"}
    rep = validate_file(make_return(values), vctx)
    assert rep.values[field] == read
    hits = [p for p in rep.problems if p.code == code]
    assert hits and hits[0].severity is Severity.AVVISO and hits[0].field == field
    assert hits[0].cell == LAYOUT.cell(field)
    assert rep.valid, rep.errors


def test_exact_si_is_accepted_silently(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """SI chosen from the list with its motivazione gives no problem."""
    rep = validate_file(
        make_return(
            {
                **crema_values,
                "h_categoria_aggiuntiva": "SI",
                "h_motivazione": "Genitori soli con minori",
            }
        ),
        vctx,
    )
    assert rep.problems == []


def test_empty_count_is_read_as_zero_with_an_avviso(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """A blank count cell is 0, said so on the cell."""
    values = {k: v for k, v in crema_values.items() if k != "e_conferite_privati"}
    rep = validate_file(make_return(values), vctx)
    assert rep.values["e_conferite_privati"] == 0
    assert [p.cell for p in rep.problems if p.code == "L04"] == [LAYOUT.cell("e_conferite_privati")]


def test_stale_total_overwritten_is_r2(
    make_return: MakeReturn, vctx: ValidationContext, tmp_path: Any, crema_values: dict[str, Any]
) -> None:
    """A cached f) that does not equal b+c+d+e (a total typed over) is an errore R2."""
    import io
    import zipfile

    path = make_return(crema_values)
    data = path.read_bytes()
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info)
            if info.filename == "xl/worksheets/sheet2.xml":
                cell = LAYOUT.cell("f_totale_assegnabili")
                text = body.decode()
                start = text.index(f'<c r="{cell}"')
                end = text.index("</c>", start) + 4
                body = (text[:start] + f'<c r="{cell}"><v>99</v></c>' + text[end:]).encode()
            zout.writestr(info, body)
    path.write_bytes(out.getvalue())
    rep = validate_file(path, vctx)
    assert {"R2", "M13"} <= _codes(rep, Severity.ERRORE)


def test_every_code_has_an_italian_message_and_hint() -> None:
    """The catalogue is complete: a title and a hint for every code."""
    for code, kind in CATALOGUE.items():
        assert kind.title and kind.hint, code


def test_aler_choosing_a_categoria_aggiuntiva_is_r16(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """h) = SI typed over the ALER's 'non applicabile' is the errore R16 on its cell, not R3."""
    values = {
        k: v
        for k, v in crema_values.items()
        if k not in ("h_categoria_aggiuntiva", "i_forze_polizia")
    }
    rep = validate_file(
        make_return({**values, "h_categoria_aggiuntiva": "SI"}, ente="ALER-BCM"), vctx
    )
    hits = [p for p in rep.problems if p.code == "R16"]
    assert hits and hits[0].severity is Severity.ERRORE
    assert hits[0].cell == LAYOUT.cell("h_categoria_aggiuntiva")
    assert "R3" not in _codes(rep) and not rep.valid


def test_another_name_in_the_sheet_is_the_avviso_m14(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """A denominazione that is not the ente's of the template's code is the avviso M14,
    never an M08 with a lowered severity."""
    rep = validate_file(make_return({**crema_values, "ente_denominazione": "Cremona"}), vctx)
    hits = [p for p in rep.problems if p.code == "M14"]
    assert hits and hits[0].severity is Severity.AVVISO
    assert hits[0].cell == LAYOUT.cell("ente_denominazione")
    assert "M08" not in _codes(rep) and rep.valid


def test_a_number_typed_as_text_is_said_in_the_plans_number_format(
    make_return: MakeReturn, vctx: ValidationContext, crema_values: dict[str, Any]
) -> None:
    """«1.008» typed as text in a count is read as 1008 and the message writes it as
    the plan and the Valore column do (1.008), not as 1008 or 1,008."""
    values = {**crema_values, "a_sap": "1.008", "a_totale": 1008 + crema_values["a_sas"]}
    rep = validate_file(make_return(values), vctx)
    assert rep.values["a_sap"] == 1008
    (hit,) = [p for p in rep.problems if p.code == "L01"]
    assert hit.message.endswith("«1.008» scritto come testo, letto come il numero 1.008")
