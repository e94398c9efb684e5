"""Arithmetic and text functions of the condition trees (Excel semantics in Python)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from piano_abitativo.core.rules.expr import (
    Env,
    Expr,
    Number,
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
