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

import dataclasses
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from piano_abitativo.core.schema import Schema
from piano_abitativo.core.settings import Settings


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
    #: field id -> the cell it was read from (for messages naming other cells)
    cells: Mapping[str, str] = field(default_factory=dict)


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


class Expr(ABC):
    """A node of a condition: every node is evaluated in Python and rendered to Excel."""

    @abstractmethod
    def py(self, env: Env) -> Any:
        """The node's value on the values read from a return (Excel's semantics)."""

    @abstractmethod
    def xl(self, ctx: XlCtx) -> str:
        """The node as an Excel formula fragment, cells from the schema's layout."""

    def children(self) -> tuple[Expr, ...]:
        """The node's sub-trees, in the order of its fields (a tuple field in order)."""
        out: list[Expr] = []
        for name in field_names(type(self)):
            v = getattr(self, name)
            if isinstance(v, tuple):
                out.extend(i for i in v if isinstance(i, Expr))
            elif isinstance(v, Expr):
                out.append(v)
        return tuple(out)

    def fields(self) -> set[str]:
        """The fields the tree reads."""
        out: set[str] = set()
        for child in self.children():
            out |= child.fields()
        return out


class Strict(Expr):
    """A node whose value is a function of its children's values (`apply`): each child
    is evaluated, in the order of `children`, and an error in one is the node's error,
    as a spreadsheet function's arguments. A compiled program (`core.rules.compiled`)
    calls `apply` on values it already has."""

    def py(self, env: Env) -> Any:
        return self.apply(env, *[c.py(env) for c in self.children()])

    @abstractmethod
    def apply(self, env: Env, *values: Any) -> Any:
        """The node's value given its children's values, in the order of `children`."""


@functools.cache
def field_names(cls: type[Expr]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


def truth(e: Expr, env: Env) -> bool:
    """A condition's verdict in Python (an error is never a finding)."""
    try:
        return to_bool(e.py(env))
    except XlError:
        return False


def formula(e: Expr, ctx: XlCtx) -> str:
    return "=" + e.xl(ctx)


def _nary(name: str, args: tuple[Expr, ...], ctx: XlCtx) -> str:
    return f"{name}({','.join(a.xl(ctx) for a in args)})"


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


# --- predicates and logic -----------------------------------------------------------


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


#: the types compared as numbers without ranking (not bool: its type is not int)
_PLAIN_NUMBERS = frozenset((float, int))


@dataclass(frozen=True)
class Compare(Strict):
    left: Expr
    op: str
    right: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        a, b = values
        if type(a) in _PLAIN_NUMBERS and type(b) in _PLAIN_NUMBERS:  # the common case
            a, b = float(a), float(b)  # as `_rank` would (a literal is often an int)
            if self.op in ("=", "<>"):
                same = math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
                return same if self.op == "=" else not same
            return _OPS[self.op](a, b)
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
class And(Strict):
    args: tuple[Expr, ...]

    def apply(self, env: Env, *values: Any) -> Any:
        return all([to_bool(v) for v in values])  # every argument, as AND()

    def xl(self, ctx: XlCtx) -> str:
        return _nary("AND", self.args, ctx)


@dataclass(frozen=True)
class Or(Strict):
    args: tuple[Expr, ...]

    def apply(self, env: Env, *values: Any) -> Any:
        return any([to_bool(v) for v in values])

    def xl(self, ctx: XlCtx) -> str:
        return _nary("OR", self.args, ctx)


@dataclass(frozen=True)
class Not(Strict):
    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return not to_bool(v)

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
class IsBlank(Strict):
    """Nothing but spaces in it (LEN(TRIM(x))=0)."""

    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return not to_text(v).strip(" ")

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
class IsWholeCount(Strict):
    """A number, integer and ≥ 0 (last year's values are checked with it)."""

    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (x,) = values
        v = _finite(x)
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
