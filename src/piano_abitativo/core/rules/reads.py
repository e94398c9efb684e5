"""Nodes that read a field the way the reader does: in Python they take the reader's
values, in Excel they become the formula that reads the cell the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from piano_abitativo.core.rules.expr import (
    Env,
    Expr,
    Strict,
    XlCtx,
    XlError,
    _finite,
    _is_num,
    q,
    to_text,
)
from piano_abitativo.core.rules.typed import NO, YES, parse_number_text
from piano_abitativo.core.schema import Kind, Role


def _pct_text(t: str) -> str:
    """A percentage typed as text without its % sign (Excel)."""
    return f'IF(RIGHT({t},1)="%",LEFT({t},LEN({t})-1),{t})'


@dataclass(frozen=True)
class Read(Expr):
    """A field's number as the reader reads it; 0 when it is not a number.

    Counts: numbers as typed, digits typed as text. Percentages: also '10%' and
    fractions (0,1 is 10). A computed total is the sum of its parts as read."""

    field: str

    def py(self, env: Env) -> Any:
        v = _finite(env.values.get(self.field))
        return 0.0 if v is None else v

    def xl(self, ctx: XlCtx) -> str:
        f = ctx.schema.field_by_id[self.field]
        if f.role is Role.FORMULA and f.sum_of:
            return "(" + "+".join(Read(k).xl(ctx) for k in f.sum_of) + ")"
        x = ctx.ref(self.field)
        t = f"TRIM({x})"
        if f.kind is Kind.PERCENT:
            frac = "IF(AND({v}>0,{v}<1),ROUND({v}*100,6),{v})"
            return (
                f'IF(ISNUMBER({x}),{frac.format(v=x)},IF(RIGHT({t},1)="%",'
                f"IFERROR(VALUE(LEFT({t},LEN({t})-1)),0),"
                f"IFERROR({frac.format(v=f'VALUE({t})')},0)))"
            )
        return f'IF(ISNUMBER({x}),{x},IF(ISERROR(FIND("%",{x})),IFERROR(VALUE({t}),0),0))'

    def fields(self) -> set[str]:
        return {self.field}


@dataclass(frozen=True)
class ReadsAsNumber(Expr):
    """The cell is not blank and the reader reads a number in it."""

    field: str

    def py(self, env: Env) -> Any:
        raw = env.raw.get(self.field)
        blank = raw is None or (isinstance(raw, str) and not raw.strip())
        return not blank and _finite(env.values.get(self.field)) is not None

    def xl(self, ctx: XlCtx) -> str:
        f = ctx.schema.field_by_id[self.field]
        x = ctx.ref(self.field)
        t = f"TRIM({x})"
        if f.kind is Kind.PERCENT:
            return f"OR(ISNUMBER({x}),ISNUMBER(VALUE({_pct_text(t)})))"
        return f'OR(ISNUMBER({x}),AND(ISERROR(FIND("%",{x})),ISNUMBER(VALUE({t}))))'

    def fields(self) -> set[str]:
        return {self.field}


@dataclass(frozen=True)
class ReadYesNo(Expr):
    """'SI', 'NO' or '' (blank or not an answer), as the reader reads a SI/NO cell."""

    field: str

    def py(self, env: Env) -> Any:
        v = env.values.get(self.field)
        return v if v in ("SI", "NO") else ""

    def xl(self, ctx: XlCtx) -> str:
        u = f"UPPER(TRIM({ctx.ref(self.field)}))"
        yes = ",".join(f"{u}={q(w)}" for w in YES)
        no = ",".join(f"{u}={q(w)}" for w in NO)
        return f'IF(OR({yes}),"SI",IF(OR({no}),"NO",""))'

    def fields(self) -> set[str]:
        return {self.field}


@dataclass(frozen=True)
class Value(Expr):
    """A field's value exactly as read (Python only: validator rules without a row)."""

    field: str

    def py(self, env: Env) -> Any:
        return env.values.get(self.field)

    def xl(self, ctx: XlCtx) -> str:
        raise ValueError(f"{self.field}: read values have no Excel rendering, use Read")

    def fields(self) -> set[str]:
        return {self.field}


@dataclass(frozen=True)
class TextValue(Strict):
    """VALUE(): the number written in a text (an error when there is none). Python reads
    it as the reader reads a percentage typed as text (decimal comma or point)."""

    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        if _is_num(v):
            return float(v)
        parsed = parse_number_text(to_text(v), kind=Kind.PERCENT)
        if parsed is None:
            raise XlError("#VALUE!")
        return parsed

    def xl(self, ctx: XlCtx) -> str:
        return f"VALUE({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class Previous(Expr):
    """Last year's value of a field for the same ente (Python only: no template row)."""

    field: str

    def py(self, env: Env) -> Any:
        v = (env.previous or {}).get(self.field)
        return v if _is_num(v) or isinstance(v, str) else None

    def xl(self, ctx: XlCtx) -> str:
        raise ValueError(f"{self.field}: last year's values have no Excel rendering")
