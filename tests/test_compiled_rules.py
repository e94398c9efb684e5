"""The rule book's conditions evaluated together (`core.rules.compiled.Program`), each
shared sub-expression once, give exactly the verdict of each tree on its own (`truth`),
on returns of every kind: numbers, numbers as text, junk, blanks, booleans, huge values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piano_abitativo.core.rules import RULES, Stage
from piano_abitativo.core.rules.book import condition_of, unverifiable_of
from piano_abitativo.core.rules.compiled import Program, verdict
from piano_abitativo.core.rules.expr import Env, Expr, truth
from piano_abitativo.core.schema import SCHEMA
from piano_abitativo.core.settings import Settings

_SETTINGS = [
    Settings(),
    Settings(sat_base="f_totale_assegnabili", sat_arrotondamento="difetto", sat_percentuale=7.5),
]


def _roots(stage: Stage, s: Settings) -> list[Expr]:
    out: list[Expr] = []
    for rule in RULES:
        if rule.stage is not stage:
            continue
        for f in rule.targets(SCHEMA):
            guard = unverifiable_of(rule.code, f.id, SCHEMA, s)
            if guard is not None:
                out.append(guard)
            out.append(condition_of(rule.code, f.id, SCHEMA, s))
    return out


_CELL = st.one_of(
    st.none(),
    st.integers(-5, 500),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 0.5, 12.5, 1e-9]),
    st.booleans(),
    st.sampled_from(["", " ", "12", "12,5", "1.008", "10%", "0,1", "tre", "SI", "no", "x@y.it"]),
    st.text(max_size=6),
)
_VALUE = st.one_of(
    st.none(),
    st.integers(-5, 500),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["SI", "NO", "", "tre"]),
)


@st.composite
def envs(draw: st.DrawFn) -> tuple[Env, int]:
    s_index = draw(st.integers(0, len(_SETTINGS) - 1))
    raw: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for f in SCHEMA.fields:
        raw[f.id] = draw(_CELL)
        values[f.id] = raw[f.id] if draw(st.booleans()) else draw(_VALUE)
    previous = {f.id: draw(_VALUE) for f in SCHEMA.fields} if draw(st.booleans()) else None
    env = Env(
        SCHEMA,
        raw,
        values,
        _SETTINGS[s_index],
        aler=draw(st.booleans()),
        previous=previous,
        anno=2026,
        anno_precedente=2025,
    )
    return env, s_index


_PROGRAMS: dict[tuple[Stage, int, bool], tuple[Program, list[Expr]]] = {}


def _program(stage: Stage, s_index: int, aler: bool) -> tuple[Program, list[Expr]]:
    key = (stage, s_index, aler)
    if key not in _PROGRAMS:
        roots = _roots(stage, _SETTINGS[s_index])
        _PROGRAMS[key] = (Program(roots, SCHEMA, _SETTINGS[s_index], aler=aler), roots)
    return _PROGRAMS[key]


@pytest.mark.parametrize("stage", [Stage.VALIDATOR, Stage.PREVIOUS])
@settings(max_examples=300, deadline=None)
@given(case=envs())
def test_every_verdict_together_is_the_verdict_of_its_tree_alone(
    stage: Stage, case: tuple[Env, int]
) -> None:
    env, s_index = case
    program, roots = _program(stage, s_index, env.aler)
    together = [verdict(v) for v in program.values(env)]
    alone = [truth(r, env) for r in roots]
    assert together == alone


def test_shared_sub_expressions_are_evaluated_once() -> None:
    """The validator's 44 trees have about 900 nodes: far fewer distinct ones are run."""
    roots = _roots(Stage.VALIDATOR, Settings())
    program = Program(roots, SCHEMA, Settings(), aler=False)

    def size(e: Expr) -> int:
        return 1 + sum(size(k) for k in e.children())

    assert 0 < program.steps < sum(size(r) for r in roots) / 3


def test_a_program_refuses_an_env_of_other_settings() -> None:
    program = Program(_roots(Stage.VALIDATOR, Settings()), SCHEMA, Settings(), aler=False)
    env = Env(SCHEMA, {}, {}, _SETTINGS[1])
    with pytest.raises(ValueError):
        program.values(env)


def test_a_run_that_meets_excel_errors_leaves_no_garbage_cycle() -> None:
    """Numbers as text make #VALUE! in many nodes: the errors held in the slots must not
    keep the run's frames alive (a cycle per return: a batch's memory grew with N)."""
    import gc

    program = _program(Stage.VALIDATOR, 0, False)[0]
    raw = {f.id: "tre" for f in SCHEMA.fields}
    env = Env(SCHEMA, raw, dict(raw), _SETTINGS[0], anno=2026, anno_precedente=2025)
    program.values(env)  # compiled code and caches in place
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        program.values(env)
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
