"""piano-abitativo: raccolta dei dati del Piano annuale dell'offerta abitativa pubblica
e sociale (L.R. Lombardia 16/2016, R.R. 4/2017 art. 4).

The library face: one function per command of the CLI, with the same behaviour::

    import piano_abitativo as pa

    r = pa.crea("raccolta-2026", anno=2026, scadenza="15/12/2025")
    pa.modelli(r)
    pa.importa(r, ["risposte"])
    print(pa.consolida(r).master)

Each function takes the raccolta (loaded, or the path of its folder) and keyword-only
options; errors are `PianoError` with one Italian sentence for the user. The functions are
loaded on first use (PEP 562), so ``import piano_abitativo`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from piano_abitativo.core.version import __version__ as __version__

if TYPE_CHECKING:
    from piano_abitativo.app.commands import collega as collega
    from piano_abitativo.app.commands import consolida as consolida
    from piano_abitativo.app.commands import crea as crea
    from piano_abitativo.app.commands import documento as documento
    from piano_abitativo.app.commands import master_vuoto as master_vuoto
    from piano_abitativo.app.commands import modelli as modelli
    from piano_abitativo.app.commands import modello_vuoto as modello_vuoto
    from piano_abitativo.app.commands import valida as valida
    from piano_abitativo.app.dati import dati as dati
    from piano_abitativo.app.dati import esporta as esporta
    from piano_abitativo.app.dati import storico as storico
    from piano_abitativo.app.decisioni import accetta as accetta
    from piano_abitativo.app.decisioni import rettifica as rettifica
    from piano_abitativo.app.decisioni import ripristina as ripristina
    from piano_abitativo.app.decisioni import scarta as scarta
    from piano_abitativo.app.importing import importa as importa
    from piano_abitativo.app.posta import esiti as esiti
    from piano_abitativo.app.posta import invia as invia
    from piano_abitativo.app.posta import solleciti as solleciti
    from piano_abitativo.app.stato import stato as stato
    from piano_abitativo.core.errors import PianoError as PianoError
    from piano_abitativo.simulation.demo import run_demo as demo

#: public name -> (module, attribute); none of the names is a subpackage's, so importing
#: a subpackage never shadows a function (the demo's package is `simulation`)
_LAZY = {
    "crea": ("piano_abitativo.app.commands", "crea"),
    "collega": ("piano_abitativo.app.commands", "collega"),
    "modelli": ("piano_abitativo.app.commands", "modelli"),
    "valida": ("piano_abitativo.app.commands", "valida"),
    "importa": ("piano_abitativo.app.importing", "importa"),
    "invia": ("piano_abitativo.app.posta", "invia"),
    "solleciti": ("piano_abitativo.app.posta", "solleciti"),
    "esiti": ("piano_abitativo.app.posta", "esiti"),
    "stato": ("piano_abitativo.app.stato", "stato"),
    "consolida": ("piano_abitativo.app.commands", "consolida"),
    "documento": ("piano_abitativo.app.commands", "documento"),
    "dati": ("piano_abitativo.app.dati", "dati"),
    "storico": ("piano_abitativo.app.dati", "storico"),
    "esporta": ("piano_abitativo.app.dati", "esporta"),
    "master_vuoto": ("piano_abitativo.app.commands", "master_vuoto"),
    "modello_vuoto": ("piano_abitativo.app.commands", "modello_vuoto"),
    "accetta": ("piano_abitativo.app.decisioni", "accetta"),
    "scarta": ("piano_abitativo.app.decisioni", "scarta"),
    "ripristina": ("piano_abitativo.app.decisioni", "ripristina"),
    "rettifica": ("piano_abitativo.app.decisioni", "rettifica"),
    "demo": ("piano_abitativo.simulation.demo", "run_demo"),
    "PianoError": ("piano_abitativo.core.errors", "PianoError"),
}

__all__ = [
    "PianoError",
    "accetta",
    "collega",
    "consolida",
    "crea",
    "dati",
    "demo",
    "documento",
    "esiti",
    "esporta",
    "importa",
    "invia",
    "master_vuoto",
    "modelli",
    "modello_vuoto",
    "rettifica",
    "ripristina",
    "scarta",
    "solleciti",
    "stato",
    "storico",
    "valida",
]


def __getattr__(name: str) -> Any:
    """The public functions, imported on first use (PEP 562)."""
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'piano_abitativo' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
