"""Many conditions evaluated together, each distinct sub-expression once.

The validator asks 44 conditions of every return (the rule book's conditions and their
"non verificabile" guards): 900 nodes, of which only about 230 are distinct, because the
conditions share how a cell is read, the totals, the bounds. `Program` evaluates each
distinct node once per return, in an order where its children come first, as one
generated straight-line function: a `Strict` node is its own `apply` called on its
children's values; a leaf is its own `py`; a node that decides which child counts (IF,
IFERROR, ISERROR...) is its own `py` on a shadow copy whose children are `Slot` leaves
holding their values. Nothing of the meaning of a node is written here: only the
sharing and the order.

A node that raises leaves its exception in its slot: a `Strict` parent takes it as its
own value (the first of its children's, in order), a shadow reads it again from its
slot (and only where it reads it): so a branch of IF that is not taken, evaluated here
anyway, changes nothing, and a verdict is exactly `truth(condition, env)`. Nodes that
read nothing of the return (numbers, texts, settings, the variant) are evaluated once
when the program is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from piano_abitativo.core.cache import compiled
from piano_abitativo.core.rules.expr import (
    Env,
    Expr,
    IsAler,
    Number,
    Param,
    Strict,
    Text,
    XlCtx,
    XlError,
    field_names,
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


def _fields(node: Expr, child: Callable[[Expr], Any], literal: Callable[[Any], Any]) -> list[Any]:
    """The node's field values in order, each sub-tree (also inside a tuple field) given
    to `child` and any other value to `literal`."""
    out: list[Any] = []
    for name in field_names(type(node)):
        v = getattr(node, name)
        if isinstance(v, tuple):
            out.append(tuple(child(i) if isinstance(i, Expr) else literal(i) for i in v))
        else:
            out.append(child(v) if isinstance(v, Expr) else literal(v))
    return out


def _shadow(node: Expr, index_of: dict[int, int]) -> Expr:
    """The node with each child replaced by the slot of its value (`index_of`: by id)."""
    if not node.children():
        return node
    values = _fields(node, lambda e: Slot(index_of[id(e)]), lambda v: v)
    changes = dict(zip(field_names(type(node)), values, strict=True))
    return dataclasses.replace(node, **changes)  # type: ignore[type-var]


def _key(node: Expr, kids: Sequence[int]) -> tuple[Any, ...]:
    """What makes two nodes the same: their type, their literal fields by `repr` (1 and
    1.0 kept apart) and the distinct nodes of their children, in order."""
    return (type(node), tuple(_fields(node, lambda e: None, repr)), tuple(kids))


@dataclass(frozen=True)
class _RunEnv(Env):
    """The return's env with the slots of one run."""

    slots: list[Any] = dataclasses.field(default_factory=list)


_ENV_FIELDS = tuple(f.name for f in dataclasses.fields(Env))


class Program:
    """`roots` compiled for one schema, settings and variant (ALER or not)."""

    def __init__(
        self, roots: Sequence[Expr], schema: Schema, settings: Settings, *, aler: bool
    ) -> None:
        self.schema, self.settings, self.aler = schema, settings, aler
        by_key: dict[tuple[Any, ...], int] = {}
        by_id: dict[int, int] = {}  # the same object met again (the nodes stay alive)
        order: list[Expr] = []
        kids_of: list[list[int]] = []
        constant: list[bool] = []

        def visit(node: Expr) -> int:
            found = by_id.get(id(node))
            if found is not None:
                return found
            kids = [visit(c) for c in node.children()]
            key = _key(node, kids)
            found = by_key.get(key)
            if found is None:
                found = by_key[key] = len(order)
                order.append(node)
                kids_of.append(kids)
                constant.append(
                    all(constant[k] for k in kids) if kids else isinstance(node, _CONSTANT_LEAVES)
                )
            by_id[id(node)] = found
            return found

        self.roots = [visit(r) for r in roots]
        shadows = [_shadow(n, by_id) for n in order]
        self._initial: list[Any] = [None] * len(order)
        probe = _RunEnv(schema, {}, {}, settings, aler=aler, slots=self._initial)
        for i, (node, fixed) in enumerate(zip(shadows, constant, strict=True)):
            if fixed:
                self._initial[i] = _evaluate(node, probe)
        never_raised = {
            i for i, fixed in enumerate(constant) if fixed and type(self._initial[i]) is not _Raised
        }
        #: the nodes evaluated per return (the distinct ones that read it)
        self.steps = constant.count(False)
        self._run = _generate(order, shadows, kids_of, constant, never_raised)

    def values(self, env: Env) -> list[Any]:
        """The value of each root on `env` (an exception is held, as `_Raised`): read a
        root's verdict with `verdict`, exactly `truth(root, env)`."""
        self.check(env)
        slots = list(self._initial)
        run = _RunEnv(**{name: getattr(env, name) for name in _ENV_FIELDS}, slots=slots)
        self._run(run, slots)
        for v in slots:
            # an Excel error is expected (read as "no finding"); its traceback holds the
            # frames that hold the slots that hold it: a cycle per return, left to the
            # garbage collector (memory grew with the batch). Other exceptions keep it.
            if type(v) is _Raised and isinstance(v.exc, XlError):
                v.exc.__traceback__ = None
        return [slots[r] for r in self.roots]

    def check(self, env: Env) -> None:
        """Refuse an env the program was not compiled for."""
        if env.settings != self.settings or env.aler != self.aler or env.schema is not self.schema:
            raise ValueError("program compiled for other settings, variant or schema")


def _generate(
    order: Sequence[Expr],
    shadows: Sequence[Expr],
    kids_of: Sequence[Sequence[int]],
    constant: Sequence[bool],
    never_raised: set[int],
) -> Callable[[Env, list[Any]], None]:
    """The function that fills a run's slots, one statement per node not constant:
    ``s[i] = A_i(env, s[a], s[b])`` for a `Strict` node (its first child that raised
    instead, when one did), ``s[i] = P_i(env)`` for any other (its own `py`, or its
    shadow's); an exception is held in the slot as `_Raised`."""
    names: dict[str, Any] = {"R": _Raised}
    lines = ["def run(env, s):"]
    for i, node in enumerate(order):
        if constant[i]:
            continue
        if isinstance(node, Strict):
            names[f"A{i}"] = node.apply
            checks = [k for k in dict.fromkeys(kids_of[i]) if k not in never_raised]
            for n, k in enumerate(checks):
                lines.append(f"    {'if' if n == 0 else 'elif'} type(s[{k}]) is R: s[{i}] = s[{k}]")
            args = "".join(f", s[{k}]" for k in kids_of[i])
            call = f"s[{i}] = A{i}(env{args})"
        else:
            names[f"P{i}"] = shadows[i].py
            call = f"s[{i}] = P{i}(env)"
        pad = "        " if isinstance(node, Strict) and checks else "    "
        if pad != "    ":
            lines.append("    else:")
        lines += [
            f"{pad}try:",
            f"{pad}    {call}",
            f"{pad}except Exception as e:",  # held: raised again only where it is read
            f"{pad}    s[{i}] = R(e)",
        ]
    lines.append("    return None")
    exec(compiled("\n".join(lines), "<compiled rules>"), names)  # noqa: S102
    run: Callable[[Env, list[Any]], None] = names["run"]
    return run


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
