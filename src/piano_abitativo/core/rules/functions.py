"""Arithmetic and text functions of the condition trees (Excel semantics in Python)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from piano_abitativo.core.rules.expr import (
    Env,
    Expr,
    Number,
    Strict,
    XlCtx,
    XlError,
    _checked,
    _is_num,
    _nary,
    q,
    to_num,
    to_text,
)
from piano_abitativo.core.settings import Settings

# --- functions --------------------------------------------------------------------


@dataclass(frozen=True)
class Add(Strict):
    args: tuple[Expr, ...]

    def apply(self, env: Env, *values: Any) -> Any:
        return _checked(sum(to_num(v) for v in values))

    def xl(self, ctx: XlCtx) -> str:
        return "(" + "+".join(a.xl(ctx) for a in self.args) + ")"


@dataclass(frozen=True)
class Mul(Strict):
    left: Expr
    right: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        a, b = values
        return _checked(to_num(a) * to_num(b))

    def xl(self, ctx: XlCtx) -> str:
        return f"{self.left.xl(ctx)}*{self.right.xl(ctx)}"


@dataclass(frozen=True)
class Div(Strict):
    left: Expr
    right: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        a, b = values
        n = to_num(a)
        d = to_num(b)
        if d == 0:
            raise XlError("#DIV/0!")
        return _checked(n / d)

    def xl(self, ctx: XlCtx) -> str:
        return f"({self.left.xl(ctx)})/({self.right.xl(ctx)})"


def percent_of(base: Expr, pct: Expr) -> Expr:
    """`pct` per cent of `base`."""
    return Div(Mul(base, pct), Number(100))


@dataclass(frozen=True)
class Max(Strict):
    args: tuple[Expr, ...]

    def apply(self, env: Env, *values: Any) -> Any:
        return max(to_num(v) for v in values)

    def xl(self, ctx: XlCtx) -> str:
        return _nary("MAX", self.args, ctx)


@dataclass(frozen=True)
class Int(Strict):
    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return float(math.floor(_checked(to_num(v))))

    def xl(self, ctx: XlCtx) -> str:
        return f"INT({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class RoundUp(Strict):
    """To the next integer away from zero (ROUNDUP(x,0))."""

    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        x = _checked(to_num(v))
        return float(math.copysign(math.ceil(abs(x) - 1e-9), x))

    def xl(self, ctx: XlCtx) -> str:
        return f"ROUNDUP({self.arg.xl(ctx)},0)"


@dataclass(frozen=True)
class RoundDown(Strict):
    """To the integer towards zero (ROUNDDOWN(x,0))."""

    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        x = _checked(to_num(v))
        return float(math.copysign(math.floor(abs(x) + 1e-9), x))

    def xl(self, ctx: XlCtx) -> str:
        return f"ROUNDDOWN({self.arg.xl(ctx)},0)"


@dataclass(frozen=True)
class RoundBySetting(Strict):
    """Rounded up ("eccesso") or down ("difetto") as the setting `name` says."""

    arg: Expr
    name: str

    def _node(self, settings: Settings) -> Strict:
        up = getattr(settings, self.name) == "eccesso"
        return RoundUp(self.arg) if up else RoundDown(self.arg)

    def apply(self, env: Env, *values: Any) -> Any:
        return self._node(env.settings).apply(env, *values)

    def xl(self, ctx: XlCtx) -> str:
        return self._node(ctx.settings).xl(ctx)


@dataclass(frozen=True)
class N(Strict):
    """The number in a cell, 0 for text or blank (N())."""

    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return float(v) if _is_num(v) else (1.0 if v is True else 0.0)

    def xl(self, ctx: XlCtx) -> str:
        return f"N({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class Trim(Strict):
    """TRIM: spaces removed at both ends, runs of inner spaces made single."""

    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return " ".join(p for p in to_text(v).split(" ") if p)

    def xl(self, ctx: XlCtx) -> str:
        return f"TRIM({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class Len(Strict):
    arg: Expr

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return float(len(to_text(v)))

    def xl(self, ctx: XlCtx) -> str:
        return f"LEN({self.arg.xl(ctx)})"


@dataclass(frozen=True)
class Right(Strict):
    arg: Expr
    count: int = 1

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        t = to_text(v)
        return t[-self.count :] if self.count else ""

    def xl(self, ctx: XlCtx) -> str:
        return f"RIGHT({self.arg.xl(ctx)},{self.count})"


@dataclass(frozen=True)
class Substitute(Strict):
    arg: Expr
    old: str
    new: str

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return to_text(v).replace(self.old, self.new)

    def xl(self, ctx: XlCtx) -> str:
        return f"SUBSTITUTE({self.arg.xl(ctx)},{q(self.old)},{q(self.new)})"


@dataclass(frozen=True)
class Find(Strict):
    """1-based position of `needle` in `arg` from `start` (an error when absent)."""

    needle: str
    arg: Expr
    start: Expr | None = None

    def apply(self, env: Env, *values: Any) -> Any:
        t = to_text(values[0])
        s = 1 if self.start is None else int(to_num(values[1]))
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
class Exact(Strict):
    arg: Expr
    text: str

    def apply(self, env: Env, *values: Any) -> Any:
        (v,) = values
        return to_text(v) == self.text

    def xl(self, ctx: XlCtx) -> str:
        return f"EXACT({self.arg.xl(ctx)},{q(self.text)})"
