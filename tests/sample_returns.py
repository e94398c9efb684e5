"""Values of returns shared by the tests (a plain module: test files never import each other)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: a complete, valid return of a comune (Crema 2025's figures)
CREMA: dict[str, Any] = {
    "a_sap": 358,
    "a_sas": 0,
    "b_carenza_manutentiva": 7,
    "c_nuova_edificazione": 2,
    "d_turnover": 1,
    "e_conferite_privati": 0,
    "h_categoria_aggiuntiva": "NO",
    "i_forze_polizia": 0,
    "j_sat": 0,
    "k_assegnate_anno_precedente": 15,
    "referente_nome": "Mario Rossi",
    "referente_email": "casa@comune.crema.example",
    "referente_telefono": "0373 000000",
}


#: the type of the `make_return` fixture: values (and ente=, name=) -> path of a return
MakeReturn = Callable[..., Path]
