"""Many conditions evaluated together, each distinct sub-expression once.

The validator asks 44 conditions of every return (the rule book's conditions and their
"non verificabile" guards): 900 nodes, of which only about 230 are distinct, because the
conditions share how a cell is read, the totals, the bounds. `Program` evaluates each
distinct node once per return, in an order where its children come first, by calling the
node's own `py` (the one semantics of `core.rules.expr`) on a shadow copy whose children
are replaced by `Slot` leaves holding their values. Nothing of the meaning of a node is
written here: only the sharing.

A node that raises leaves its exception in its slot, raised again when (and only when) a
parent reads it: so a branch of IF that is not taken, evaluated here anyway, changes
nothing, and a verdict is exactly `truth(condition, env)`. Nodes that read nothing of the
return (numbers, texts, settings, the variant) are evaluated once when the program is
built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from piano_abitativo.core.rules.expr import (
    Env,
    Expr,
    IsAler,
    Number,
    Param,
    Text,
    XlCtx,
    XlError,
    to_bool,
)
from piano_abitativo.core.schema import Schema
from piano_abitativo.core.settings import Settings

#: leaves whose value depends only on the settings and the variant, not on the return
_CONSTANT_LEAVES = (Number, Text, Param, IsAler)


class _Raised:
    """What a slot holds when its node raised: the exception, raised again on reading."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


@dataclass(frozen=True, eq=False)
class Slot(Expr):
    """A child already evaluated: its value (or its exception) from the run's slots."""

    index: int

    def py(self, env: Env) -> Any:
        v = env.slots[self.index]  # type: ignore[attr-defined]
        if type(v) is _Raised:
            raise v.exc
        return v

    def xl(self, ctx: XlCtx) -> str:
        raise TypeError("a slot of a compiled program has no Excel rendering")


def _children(node: Expr) -> list[Expr]:
    out: list[Expr] = []
    for value in vars(node).values():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, Expr):
                out.append(item)
    return out


def _shadow(node: Expr, index_of: dict[str, int]) -> Expr:
    """The node with each child replaced by the slot of its value."""

    def slot(item: Any) -> Any:
        return Slot(index_of[repr(item)]) if isinstance(item, Expr) else item

    changes = {}
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            if any(isinstance(i, Expr) for i in value):
                changes[f.name] = tuple(slot(i) for i in value)
        elif isinstance(value, Expr):
            changes[f.name] = slot(value)
    return dataclasses.replace(node, **changes) if changes else node  # type: ignore[type-var]


@dataclass(frozen=True)
class _RunEnv(Env):
    """The return's env with the slots of one run."""

    slots: list[Any] = dataclasses.field(default_factory=list)


class Program:
    """`roots` compiled for one schema, settings and variant (ALER or not)."""

    def __init__(
        self, roots: Sequence[Expr], schema: Schema, settings: Settings, *, aler: bool
    ) -> None:
        self.schema, self.settings, self.aler = schema, settings, aler
        index_of: dict[str, int] = {}
        order: list[Expr] = []
        constant: list[bool] = []

        def visit(node: Expr) -> int:
            key = repr(node)  # structural, and literal types kept apart (1 and 1.0)
            found = index_of.get(key)
            if found is not None:
                return found
            kids = [visit(c) for c in _children(node)]
            index_of[key] = len(order)
            order.append(node)
            constant.append(
                all(constant[k] for k in kids) if kids else isinstance(node, _CONSTANT_LEAVES)
            )
            return index_of[key]

        self.roots = [visit(r) for r in roots]
        shadows = [_shadow(n, index_of) for n in order]
        self._initial: list[Any] = [None] * len(order)
        probe = _RunEnv(schema, {}, {}, settings, aler=aler, slots=self._initial)
        for i, (node, fixed) in enumerate(zip(shadows, constant, strict=True)):
            if fixed:
                self._initial[i] = _evaluate(node, probe)
        self._steps = [
            (i, n) for i, (n, fixed) in enumerate(zip(shadows, constant, strict=True)) if not fixed
        ]

    def values(self, env: Env) -> list[Any]:
        """The value of each root on `env` (an exception is held, as `_Raised`): read a
        root's verdict with `verdict`, exactly `truth(root, env)`."""
        self.check(env)
        slots = list(self._initial)
        run = _RunEnv(
            env.schema,
            env.raw,
            env.values,
            env.settings,
            aler=env.aler,
            previous=env.previous,
            anno=env.anno,
            anno_precedente=env.anno_precedente,
            cells=env.cells,
            slots=slots,
        )
        for i, node in self._steps:
            try:
                slots[i] = node.py(run)
            except Exception as exc:  # held: raised again only where it is read
                slots[i] = _Raised(exc)
        return [slots[r] for r in self.roots]

    def check(self, env: Env) -> None:
        """Refuse an env the program was not compiled for."""
        if env.settings != self.settings or env.aler != self.aler or env.schema is not self.schema:
            raise ValueError("program compiled for other settings, variant or schema")


def _evaluate(node: Expr, env: Env) -> Any:
    try:
        return node.py(env)
    except Exception as exc:
        return _Raised(exc)


def verdict(v: Any) -> bool:
    """As `truth`: an error is never a finding; any other exception propagates."""
    if type(v) is _Raised:
        if isinstance(v.exc, XlError):
            return False
        raise v.exc
    try:
        return to_bool(v)
    except XlError:
        return False
