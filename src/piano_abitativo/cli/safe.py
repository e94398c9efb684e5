"""Printing text that comes from outside (cell values, file names, headers, senders) as it
is: never read as rich markup, and with the characters that drive a terminal shown escaped.

A return or a message is written by someone else: ``_x001B_`` in a cell is an ESC once
read, so a cell could move the cursor, erase the line that says "NON VALIDO", write the
clipboard (OSC 52) or plant a hyperlink; a cell ``[/x]`` would be a rich markup error.
`safe` turns every control character (C0 but newline and tab, DEL, C1), every invisible
format character (bidi overrides and isolates, zero-width characters, BOM), the line and
paragraph separators and the lone surrogates of a file name that is not UTF-8 into a
visible escape such as ``\\x1b`` or ``\\u202e``. The consoles of `console` never read
markup, so ``[link=…]`` is printed as written.
"""

from __future__ import annotations

import unicodedata

from rich.console import Console
from rich.text import Text

#: the categories of unicode shown escaped: control, format, surrogate, line and
#: paragraph separators
_ESCAPED = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def _escape(ch: str, keep: str) -> str:
    if ch in keep or unicodedata.category(ch) not in _ESCAPED:
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object, *, newlines: bool = True) -> str:
    """`text` (any value, as ``str()`` gives it; ``None`` is empty) with every character
    that could drive the terminal escaped. Newline and tab are kept, newline only when
    `newlines` (a value on one line: a file name, a header)."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # the common case: nothing to escape (space is printable)
        return s
    keep = "\n\t" if newlines else "\t"
    return "".join(_escape(ch, keep) for ch in s)


def plain(text: object, style: str = "", *, newlines: bool = True) -> Text:
    """`text` made `safe`, as a rich Text (never read as markup), in `style`."""
    return Text(safe(text, newlines=newlines), style=style)


def console(*, stderr: bool = False) -> Console:
    """A console that prints strings as written: no markup, no highlighting of numbers
    or paths."""
    return Console(stderr=stderr, markup=False, highlight=False)


def quanti(n: int, one: str, many: str) -> str:
    """`n` with the Italian noun in the right number: ``quanti(1, "errore", "errori")`` is
    "1 errore", ``quanti(3, …)`` "3 errori" (never "1 errori")."""
    return f"{n} {one if n == 1 else many}"
