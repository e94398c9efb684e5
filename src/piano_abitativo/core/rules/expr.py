"""Conditions as small expression trees, with two renderings.

A tree is evaluated in Python (`Expr.py`, with the spreadsheet's semantics: blank is 0
or "", text compares above numbers, errors propagate through AND/OR as in Excel) on the
cells and the values of one return, and rendered as an Excel formula (`Expr.xl`) for
the template's live check rows, with only functions safe in Excel 2010+ and
LibreOffice 7.4. Two nodes read a field the way the reader does (`Read`,
`ReadsAsNumber`, `ReadYesNo`): in Python they take the reader's values, in Excel they
become the formula that reads the cell the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from piano_abitativo.core.rules.typed import NO, YES, parse_number_text
from piano_abitativo.core.schema import Kind, Role, Schema, Settings


class XlError(Exception):
    """A spreadsheet error value (#VALUE!) while evaluating a tree in Python."""


@dataclass(frozen=True)
class Env:
    """What a tree is evaluated on in Python: one return as read."""

    schema: Schema
    raw: Mapping[str, Any]
    values: Mapping[str, Any]
    settings: Settings = field(default_factory=Settings)
    aler: bool = False
    previous: Mapping[str, Any] | None = None
    anno: int | None = None
    anno_precedente: int | None = None


@dataclass(frozen=True)
class XlCtx:
    """What a tree is rendered with: where each field's cell is, and the variant."""

    schema: Schema
    ref: Callable[[str], str]
    settings: Settings = field(default_factory=Settings)
    aler: bool = False


def q(text: str) -> str:
    """An Excel string literal."""
    return '"' + text.replace('"', '""') + '"'


def _lit(x: float) -> str:
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _finite(v: Any) -> float | None:
    """The value as a finite number, or None."""
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def to_num(v: Any) -> float:
    if v is None or v == "":
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if _is_num(v):
        return float(v)
    raise XlError(f"not a number: {v!r}")


def _checked(x: float) -> float:
    """A result the spreadsheet can hold (overflow is #NUM!)."""
    if not math.isfinite(x):
        raise XlError("#NUM!")
    return x


def to_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if _is_num(v):
        return str(int(v)) if float(v).is_integer() else f"{float(v):.15g}"
    return str(v)


def to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v is None:
        return False
    if _is_num(v):
        return bool(v != 0)
    raise XlError(f"not a logical value: {v!r}")


def _rank(v: Any) -> tuple[int, Any]:
    """Excel's ordering: numbers < text (case-insensitive) < logical values."""
    if isinstance(v, bool):
        return 2, v
    if isinstance(v, str):
        return 1, v.casefold()
    return 0, float(v)


class Expr:
    """A node of a condition."""

    def py(self, env: Env) -> Any:
        raise NotImplementedError

    def xl(self, ctx: XlCtx) -> str:
        raise NotImplementedError

    def fields(self) -> set[str]:
        """The fields the tree reads."""
        out: set[str] = set()
        for v in vars(self).values():
            items = v if isinstance(v, tuple) else (v,)
            for item in items:
                if isinstance(item, Expr):
                    out |= item.fields()
        return out


def truth(e: Expr, env: Env) -> bool:
    """A condition's verdict in Python (an error is never a finding)."""
    try:
        return to_bool(e.py(env))
    except XlError:
        return False


def formula(e: Expr, ctx: XlCtx) -> str:
    return "=" + e.xl(ctx)


# --- leaves -----------------------------------------------------------------------


@dataclass(frozen=True)
class Number(Expr):
    value: float

    def py(self, env: Env) -> Any:
        return self.value

    def xl(self, ctx: XlCtx) -> str:
        return _lit(self.value)


@dataclass(frozen=True)
class Text(Expr):
    value: str

    def py(self, env: Env) -> Any:
        return self.value

    def xl(self, ctx: XlCtx) -> str:
        return q(self.value)


@dataclass(frozen=True)
class Param(Expr):
    """A numeric setting of the raccolta (`Settings`), e.g. the SAT percentage."""

    name: str

    def py(self, env: Env) -> Any:
        return float(getattr(env.settings, self.name))

    def xl(self, ctx: XlCtx) -> str:
        return _lit(float(getattr(ctx.settings, self.name)))


@dataclass(frozen=True)
class IsAler(Expr):
    """Whether the return is the ALER's (a constant of each template variant)."""

    def py(self, env: Env) -> Any:
        return env.aler

    def xl(self, ctx: XlCtx) -> str:
        return "TRUE" if ctx.aler else "FALSE"


@dataclass(frozen=True)
class Cell(Expr):
    """A field's cell as typed (number, text or blank)."""

    field: str

    def py(self, env: Env) -> Any:
        v = env.raw.get(self.field)
        return None if v == "" else v

    def xl(self, ctx: XlCtx) -> str:
        return ctx.ref(self.field)

    def fields(self) -> set[str]:
        return {self.field}


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
class TextValue(Expr):
    """VALUE(): the number written in a text (an error when there is none). Python reads
    it as the reader reads a percentage typed as text (decimal comma or point)."""

    arg: Expr

    def py(self, env: Env) -> Any:
        v = self.arg.py(env)
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


# --- functions --------------------------------------------------------------------


def _nary(name: str, args: tuple[Expr, ...], ctx: XlCtx) -> str:
    return f"{name}({','.join(a.xl(ctx) for a in args)})"


@dataclass(frozen=True)
class Add(Expr):
    args: tuple[Expr, ...]

    def py(self, env: Env) -> Any:
        return _checked(sum(to_num(a.py(env)) for a in self.args))

    def xl(self, ctx: XlCtx) -> str:
        return "(" + "+".join(a.xl(ctx) for a in self.args) + ")"


@dataclass(frozen=True)
class Mul(Expr):
    left: Expr
    right: Expr

    def py(self, env: Env) -> Any:
        return _checked(to_num(self.left.py(env)) * to_num(self.right.py(env)))

    def xl(self, ctx: XlCtx) -> str:
        return f"{self.left.xl(ctx)}*{self.right.xl(ctx)}"


@dataclass(frozen=True)
class Div(Expr):
    left: Expr
    right: Expr

    def py(self, env: Env) -> Any:
        d = to_num(self.right.py(env))
        if d == 0:
            raise XlError("#DIV/0!")
        return _checked(to_num(self.left.py(env)) / d)

    def xl(self, ctx: XlCtx) -> str:
        return f"({self.left.xl(ctx)})/({self.right.xl(ctx)})"


def percent_of(base: Expr, pct: Expr) -> Expr:
    """`pct` per cent of `base`."""
    return Div(Mul(base, pct), Number(100))


@dataclass(frozen=True)
class Max(Expr):
    args: tuple[Expr, ...]

    def py(self, env: Env) -> Any:
        return max(to_num(a.py(env)) for a in self.args)

    def xl(self, ctx: XlCtx) -> str:
        return _nary("MAX", self.args, ctx)


@dataclass(frozen=True)
class Int(Expr):
    arg: Expr

    def py(self, env: Env) -> Any:
        return float(math.floor(_checked(to_num(self.arg.py(env)))))

    def xl(self, ctx: XlCtx) -> str:
        return f"INT({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class RoundUp(Expr):
    """To the next integer away from zero (ROUNDUP(x,0))."""

    arg: Expr

    def py(self, env: Env) -> Any:
        x = _checked(to_num(self.arg.py(env)))
        return float(math.copysign(math.ceil(abs(x) - 1e-9), x))

    def xl(self, ctx: XlCtx) -> str:
        return f"ROUNDUP({self.arg.xl(ctx)},0)"


@dataclass(frozen=True)
class RoundDown(Expr):
    """To the integer towards zero (ROUNDDOWN(x,0))."""

    arg: Expr

    def py(self, env: Env) -> Any:
        x = _checked(to_num(self.arg.py(env)))
        return float(math.copysign(math.floor(abs(x) + 1e-9), x))

    def xl(self, ctx: XlCtx) -> str:
        return f"ROUNDDOWN({self.arg.xl(ctx)},0)"


@dataclass(frozen=True)
class RoundBySetting(Expr):
    """Rounded up ("eccesso") or down ("difetto") as the setting `name` says."""

    arg: Expr
    name: str

    def _node(self, settings: Settings) -> Expr:
        up = getattr(settings, self.name) == "eccesso"
        return RoundUp(self.arg) if up else RoundDown(self.arg)

    def py(self, env: Env) -> Any:
        return self._node(env.settings).py(env)

    def xl(self, ctx: XlCtx) -> str:
        return self._node(ctx.settings).xl(ctx)


@dataclass(frozen=True)
class N(Expr):
    """The number in a cell, 0 for text or blank (N())."""

    arg: Expr

    def py(self, env: Env) -> Any:
        v = self.arg.py(env)
        return float(v) if _is_num(v) else (1.0 if v is True else 0.0)

    def xl(self, ctx: XlCtx) -> str:
        return f"N({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class Trim(Expr):
    """TRIM: spaces removed at both ends, runs of inner spaces made single."""

    arg: Expr

    def py(self, env: Env) -> Any:
        return " ".join(p for p in to_text(self.arg.py(env)).split(" ") if p)

    def xl(self, ctx: XlCtx) -> str:
        return f"TRIM({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class Len(Expr):
    arg: Expr

    def py(self, env: Env) -> Any:
        return float(len(to_text(self.arg.py(env))))

    def xl(self, ctx: XlCtx) -> str:
        return f"LEN({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class Right(Expr):
    arg: Expr
    count: int = 1

    def py(self, env: Env) -> Any:
        t = to_text(self.arg.py(env))
        return t[-self.count :] if self.count else ""

    def xl(self, ctx: XlCtx) -> str:
        return f"RIGHT({self.arg.xl(ctx)},{self.count})"


@dataclass(frozen=True)
class Substitute(Expr):
    arg: Expr
    old: str
    new: str

    def py(self, env: Env) -> Any:
        return to_text(self.arg.py(env)).replace(self.old, self.new)

    def xl(self, ctx: XlCtx) -> str:
        return f"SUBSTITUTE({self.arg.xl(ctx)},{q(self.old)},{q(self.new)})"


@dataclass(frozen=True)
class Find(Expr):
    """1-based position of `needle` in `arg` from `start` (an error when absent)."""

    needle: str
    arg: Expr
    start: Expr | None = None

    def py(self, env: Env) -> Any:
        t = to_text(self.arg.py(env))
        s = 1 if self.start is None else int(to_num(self.start.py(env)))
        if s < 1 or s > len(t) + 1:
            raise XlError("#VALUE!")
        pos = t.find(self.needle, s - 1)
        if pos < 0:
            raise XlError("#VALUE!")
        return float(pos + 1)

    def xl(self, ctx: XlCtx) -> str:
        start = "" if self.start is None else f",{self.start.xl(ctx)}"
        return f"FIND({q(self.needle)},{self.arg.xl(ctx)}{start})"


@dataclass(frozen=True)
class Exact(Expr):
    arg: Expr
    text: str

    def py(self, env: Env) -> Any:
        return to_text(self.arg.py(env)) == self.text

    def xl(self, ctx: XlCtx) -> str:
        return f"EXACT({self.arg.xl(ctx)},{q(self.text)})"


# --- predicates and logic -----------------------------------------------------------


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Compare(Expr):
    left: Expr
    op: str
    right: Expr

    def py(self, env: Env) -> Any:
        a, b = self.left.py(env), self.right.py(env)
        if a is None:
            a = "" if isinstance(b, str) else False if isinstance(b, bool) else 0.0
        if b is None:
            b = "" if isinstance(a, str) else False if isinstance(a, bool) else 0.0
        ra, rb = _rank(a), _rank(b)
        if ra[0] == rb[0] == 0 and self.op in ("=", "<>"):
            same = math.isclose(ra[1], rb[1], rel_tol=1e-12, abs_tol=1e-9)
            return same if self.op == "=" else not same
        return _OPS[self.op](ra, rb)

    def xl(self, ctx: XlCtx) -> str:
        return f"{self.left.xl(ctx)}{self.op}{self.right.xl(ctx)}"


@dataclass(frozen=True)
class And(Expr):
    args: tuple[Expr, ...]

    def py(self, env: Env) -> Any:
        return all([to_bool(a.py(env)) for a in self.args])  # every argument, as AND()

    def xl(self, ctx: XlCtx) -> str:
        return _nary("AND", self.args, ctx)


@dataclass(frozen=True)
class Or(Expr):
    args: tuple[Expr, ...]

    def py(self, env: Env) -> Any:
        return any([to_bool(a.py(env)) for a in self.args])

    def xl(self, ctx: XlCtx) -> str:
        return _nary("OR", self.args, ctx)


@dataclass(frozen=True)
class Not(Expr):
    arg: Expr

    def py(self, env: Env) -> Any:
        return not to_bool(self.arg.py(env))

    def xl(self, ctx: XlCtx) -> str:
        return f"NOT({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class If(Expr):
    cond: Expr
    then: Expr
    other: Expr

    def py(self, env: Env) -> Any:
        return self.then.py(env) if to_bool(self.cond.py(env)) else self.other.py(env)

    def xl(self, ctx: XlCtx) -> str:
        return f"IF({self.cond.xl(ctx)},{self.then.xl(ctx)},{self.other.xl(ctx)})"


@dataclass(frozen=True)
class IfError(Expr):
    arg: Expr
    fallback: Expr

    def py(self, env: Env) -> Any:
        try:
            return self.arg.py(env)
        except XlError:
            return self.fallback.py(env)

    def xl(self, ctx: XlCtx) -> str:
        return f"IFERROR({self.arg.xl(ctx)},{self.fallback.xl(ctx)})"


@dataclass(frozen=True)
class IsBlank(Expr):
    """Nothing but spaces in it (LEN(TRIM(x))=0)."""

    arg: Expr

    def py(self, env: Env) -> Any:
        return Trim(self.arg).py(env) == ""

    def xl(self, ctx: XlCtx) -> str:
        return f"LEN(TRIM({self.arg.xl(ctx)}))=0"


@dataclass(frozen=True)
class IsNumber(Expr):
    arg: Expr

    def py(self, env: Env) -> Any:
        try:
            return _is_num(self.arg.py(env))
        except XlError:
            return False

    def xl(self, ctx: XlCtx) -> str:
        return f"ISNUMBER({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class IsText(Expr):
    arg: Expr

    def py(self, env: Env) -> Any:
        try:
            return isinstance(self.arg.py(env), str)
        except XlError:
            return False

    def xl(self, ctx: XlCtx) -> str:
        return f"ISTEXT({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class IsError(Expr):
    arg: Expr

    def py(self, env: Env) -> Any:
        try:
            self.arg.py(env)
        except XlError:
            return True
        return False

    def xl(self, ctx: XlCtx) -> str:
        return f"ISERROR({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class IsWholeCount(Expr):
    """A number, integer and ≥ 0 (last year's values are checked with it)."""

    arg: Expr

    def py(self, env: Env) -> Any:
        v = _finite(self.arg.py(env))
        return v is not None and v >= 0 and v.is_integer()

    def xl(self, ctx: XlCtx) -> str:
        x = self.arg.xl(ctx)
        return f"IF(ISNUMBER({x}),AND({x}>=0,{x}=INT({x})),FALSE)"


# --- sugar ------------------------------------------------------------------------


def all_of(*args: Expr) -> Expr:
    return args[0] if len(args) == 1 else And(tuple(args))


def any_of(*args: Expr) -> Expr:
    return args[0] if len(args) == 1 else Or(tuple(args))


def cmp(left: Expr | float, op: str, right: Expr | float) -> Compare:
    lhs = left if isinstance(left, Expr) else Number(left)
    rhs = right if isinstance(right, Expr) else Number(right)
    return Compare(lhs, op, rhs)
