"""The Excel face: the xlwings entry points of the master workbook's buttons.

Each button runs ``RunPython "import piano_abitativo.excel as x; x.<button>()"``.
"""

from piano_abitativo.excel.buttons import (
    consolida,
    documento,
    genera_modelli,
    importa,
    solleciti,
    valida,
)

__all__ = ["consolida", "documento", "genera_modelli", "importa", "solleciti", "valida"]
