"""The master workbook with its buttons: an .xlsm whose macros call Python through xlwings.

Each button is bound to a one-line VBA ``Sub`` that runs
``RunPython "import piano_abitativo.excel as x; x.<action>()"``. ``RunPython`` comes from
the standalone xlwings VBA module embedded in the workbook, read at build time from the
installed xlwings (so VBA and Python always have the same version), with the class it needs
on the Mac. The VBA project is written by our own MS-OVBA/MS-CFB writer (`vba`).

`BUTTONS` is the single source of the buttons: the module text ``Pulsanti.bas`` is generated
from it (and committed in ``workbook/vba/`` for review; a test keeps it in step), the form
buttons on the Cruscotto are bound to its macros, and the Python side lives in `excel`.

Deterministic: the same consolidation and settings give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import ntpath
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piano_abitativo.consolidation.consolidate import Consolidation, consolidate
from piano_abitativo.core.atomic import atomic_write_bytes
from piano_abitativo.core.raccolta import Raccolta, RaccoltaError
from piano_abitativo.core.registry import Registry, default_registry
from piano_abitativo.master.sheets import (
    MasterButton,
    build_master,
    master_path,
    sheet_names,
    write_master,
)
from piano_abitativo.master.vba import (
    ModuleKind,
    VbaModule,
    build_vba_project,
    document_modules,
    module_from_file,
)

#: the VBA module with one macro per button
BUTTONS_MODULE = "Pulsanti"
#: sheet read by xlwings for its settings (keys in column A from A1 down, values in B)
CONF_SHEET = "xlwings.conf"
#: xlwings' RunPython (standalone module, Windows) runs the command in its COM server
#: (``XLPy.Exec``) when this is True, started once and reused by later clicks, instead of a
#: new pythonw.exe per click; ignored on the Mac
USE_UDF_SERVER = "USE UDF SERVER"
#: where IT is told to create the Python environment (see docs/installazione_windows.md)
DEFAULT_INTERPRETER_WIN = r"%LOCALAPPDATA%\piano-abitativo\venv\Scripts\pythonw.exe"
#: the committed blank master for the built-in Ambito Cremasco
BLANK_MASTER_NAME = "Consolidato_piano_abitativo_vuoto.xlsm"
BLANK_YEAR = 2026
BLANK_CREATED = dt.datetime(2026, 1, 1, 0, 0)  # noqa: DTZ001 - a fixed, zone-less stamp


@dataclass(frozen=True)
class Button:
    """One button of the master: its macro, caption, instruction and Python entry point."""

    macro: str
    caption: str
    function: str
    istruzione: str

    @property
    def command(self) -> str:
        """The Python code RunPython executes."""
        return f"import piano_abitativo.excel as x; x.{self.function}()"


BUTTONS: tuple[Button, ...] = (
    Button(
        "Importa",
        "Importa",
        "importa",
        "Archivia e valida i file messi nella cartella «arrivi», accanto a questo file.",
    ),
    Button(
        "Valida",
        "Valida",
        "valida",
        "Rivaluta le risposte con le regole in vigore: Stato e Anomalie.",
    ),
    Button(
        "Consolida",
        "Consolida",
        "consolida",
        "Aggiorna tabelle a)–k), totali, Report, Dati e grafici.",
    ),
    Button(
        "GeneraModelli",
        "Genera modelli",
        "genera_modelli",
        "Scrive un modello per ogni ente nella cartella «modelli».",
    ),
    Button(
        "Solleciti",
        "Solleciti",
        "solleciti",
        "Prepara i solleciti (non inviati): mancanti e da correggere.",
    ),
    Button(
        "Documento",
        "Documento",
        "documento",
        "Scrive il documento del Piano annuale (.docx e .pdf).",
    ),
)


def buttons_source(buttons: Sequence[Button] = BUTTONS) -> str:
    """The text of the VBA module ``Pulsanti``: one Sub per button, one line each."""
    lines = [
        f'Attribute VB_Name = "{BUTTONS_MODULE}"',
        "' Pulsanti della cartella di lavoro riepilogativa di piano-abitativo.",
        "' Ogni macro esegue una funzione Python con xlwings (RunPython, modulo xlwings).",
        "' File generato da piano-abitativo: non modificarlo a mano.",
        "Option Explicit",
    ]
    for b in buttons:
        lines += ["", f"Sub {b.macro}()", f'    RunPython "{b.command}"', "End Sub"]
    return "\r\n".join(lines) + "\r\n"


def _xlwings_dir() -> Path:
    """The installed xlwings package's folder, found without importing it (importing
    xlwings loads numpy and pandas: half a second and tens of MB for two text files)."""
    spec = importlib.util.find_spec("xlwings")
    if spec is None or not spec.submodule_search_locations:
        raise RaccoltaError(
            "Il pacchetto xlwings non è installato: reinstallare "
            "piano-abitativo (pip install piano-abitativo)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def xlwings_modules() -> list[VbaModule]:
    """The standalone xlwings VBA module and its Dictionary class, from installed xlwings."""
    base = _xlwings_dir()
    return [
        module_from_file(base / "xlwings.bas"),
        module_from_file(base / "addin" / "Dictionary.cls"),
    ]


#: a stand-in for xlwings' RunPython, for tests that click the buttons in LibreOffice:
#: it writes the Python command it receives into cell A1 of the Cruscotto
STUB_RUNPYTHON = (
    "\r\n".join(
        [
            'Attribute VB_Name = "xlwings"',
            "Option Explicit",
            "",
            "Function RunPython(PythonCommand As String)",
            '    ThisWorkbook.Worksheets(1).Range("A1").Value = PythonCommand',
            "End Function",
        ]
    )
    + "\r\n"
)


def vba_project(
    sheet_count: int, *, buttons: Sequence[Button] = BUTTONS, stub: bool = False
) -> bytes:
    """The vbaProject.bin of a master with `sheet_count` sheets (codeNames Sheet1..N)."""
    modules = document_modules([f"Sheet{i}" for i in range(1, sheet_count + 1)])
    modules.append(VbaModule(BUTTONS_MODULE, buttons_source(buttons), ModuleKind.PROCEDURAL))
    if stub:
        modules.append(VbaModule("xlwings", STUB_RUNPYTHON, ModuleKind.PROCEDURAL))
    else:
        modules += xlwings_modules()
    return build_vba_project(modules)


def default_conf(
    *, platform: str = sys.platform, executable: str = sys.executable
) -> dict[str, str]:
    """The xlwings settings written into the master: on Windows the interpreter that builds
    it (pythonw.exe, no console window); elsewhere the path the IT guide prescribes."""
    interpreter = DEFAULT_INTERPRETER_WIN
    if platform == "win32" and executable:
        folder, name = ntpath.split(executable)
        if name.lower() == "python.exe":
            name = "pythonw.exe"
        interpreter = ntpath.join(folder, name)
    return {
        "INTERPRETER_WIN": interpreter,
        "PYTHONPATH": "",
        "ADD_WORKBOOK_TO_PYTHONPATH": "False",
        USE_UDF_SERVER: "True",
    }


CONF_NOTES: dict[str, str] = {
    "INTERPRETER_WIN": "Percorso di pythonw.exe dell'ambiente dove è installato "
    "piano-abitativo (si possono usare variabili come %LOCALAPPDATA%).",
    "PYTHONPATH": "Cartelle aggiuntive per Python: di norma vuoto.",
    "ADD_WORKBOOK_TO_PYTHONPATH": "False: non eseguire file .py che si trovassero accanto "
    "a questa cartella di lavoro.",
    USE_UDF_SERVER: "True: Python resta avviato tra un clic e l'altro (clic successivi più "
    "rapidi); dopo un aggiornamento di piano-abitativo chiudere e riaprire Excel. False: un "
    "nuovo Python a ogni clic.",
}


def read_conf(path: Path) -> dict[str, str]:
    """The xlwings settings of an existing master (IT may have edited them), or {}."""
    try:
        import python_calamine as pc

        wb = pc.CalamineWorkbook.from_path(str(path))
        rows = wb.get_sheet_by_name(CONF_SHEET).to_python()
    except Exception:  # any unreadable, missing or old master: fall back to defaults
        return {}
    out: dict[str, str] = {}
    for row in rows:
        if not row or not isinstance(row[0], str) or not row[0].strip():
            break
        value = row[1] if len(row) > 1 else ""
        out[row[0].strip().upper()] = "" if value is None else str(value)
    return out


def master_buttons(buttons: Sequence[Button] = BUTTONS) -> list[MasterButton]:
    """The buttons as the Cruscotto's layout places them (caption, macro, instruction): the
    `excel` refresh lays the Cruscotto out with them too, so that rewriting its grid from
    A1 writes back the instructions beside the buttons instead of emptying them."""
    return [MasterButton(b.macro, b.caption, b.istruzione) for b in buttons]


def _xlsm_parts(
    cons: Consolidation, conf: Mapping[str, str] | None = None, stub: bool = False
) -> dict[str, Any]:
    """What makes the master of `cons` an .xlsm: the VBA project, the buttons, the
    xlwings.conf sheet (keyword arguments of `build_master` / `write_master`)."""
    settings = {**default_conf(), **(conf or {})}
    rows = [(k, v, CONF_NOTES.get(k, "")) for k, v in settings.items()]
    n_sheets = len(sheet_names(cons)) + 1  # + xlwings.conf
    return {
        "vba_project": vba_project(n_sheets, stub=stub),
        "buttons": master_buttons(),
        "conf_sheet": (CONF_SHEET, rows),
    }


def build_master_xlsm(
    cons: Consolidation, *, conf: Mapping[str, str] | None = None, stub: bool = False
) -> bytes:
    """The master .xlsm: the consolidation's sheets, an ``xlwings.conf`` sheet, the VBA
    project and one form button per entry of `BUTTONS` on the Cruscotto."""
    return build_master(cons, **_xlsm_parts(cons, conf, stub))


def write_master_xlsm(cons: Consolidation, raccolta_path: Path) -> Path:
    """Write (atomically, streaming) the raccolta's master .xlsm, keeping IT's xlwings
    settings."""
    target = master_path(raccolta_path, cons.anno, ".xlsm")
    return write_master(cons, target, **_xlsm_parts(cons, read_conf(target)))


def blank_consolidation(registry: Registry | None = None) -> Consolidation:
    """The consolidation of a raccolta of the built-in ambito that has received nothing."""
    reg = registry or default_registry()
    capofila = reg.capofila
    r = Raccolta(
        path=Path("."),
        id=f"{BLANK_YEAR}-modello",
        anno=BLANK_YEAR,
        ambito="Cremasco",
        capofila=capofila.nome_completo if capofila else "",
        scadenza=None,
        contatto="",
        registry=reg,
    )
    return consolidate(r, [], generated_at=BLANK_CREATED)


def build_blank_master() -> bytes:
    """The committed blank master (workbook/): built-in ambito, no returns, default
    settings for a Windows PC set up as the IT guide says."""
    conf = default_conf(platform="linux", executable="")
    return build_master_xlsm(blank_consolidation(), conf=conf)


@dataclass(frozen=True)
class BlankMaster:
    master: Path
    vba_dir: Path


def write_blank_master(output: Path) -> BlankMaster:
    """Write the blank master and, in ``vba/`` beside it, the text of its button macros."""
    output = Path(output)
    vba_dir = output.parent / "vba"
    atomic_write_bytes(output, build_blank_master())
    atomic_write_bytes(vba_dir / f"{BUTTONS_MODULE}.bas", buttons_source().encode("cp1252"))
    return BlankMaster(output, vba_dir)
