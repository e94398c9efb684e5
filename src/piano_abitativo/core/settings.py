"""The settings of the rules (regole.md), configurable per raccolta in `[regole]`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """The *settings* of regole.md, configurable per raccolta."""

    #: R5: SAT units warned above this percentage of the base
    sat_percentuale: float = 10.0
    #: R5: the base of the percentage: "a_sap" (SAP stock) or "f_totale_assegnabili"
    sat_base: str = "a_sap"
    #: R5: rounding of the limit: "eccesso" (ceil) or "difetto" (floor)
    sat_arrotondamento: str = "eccesso"
    #: R13, R15 (year over year): avviso when the SAP (SAS) stock of a) is at most this
    #: percentage of last year's (50: halved or less) ...
    confronto_minimo_percentuale: float = 50.0
    #: ... or at least this percentage of last year's (200: doubled or more) ...
    confronto_massimo_percentuale: float = 200.0
    #: ... and the larger of the two stocks is at least this many units (1 → 3 is no news)
    confronto_minimo_alloggi: int = 10
    #: R18: avviso when a count of b)-e), j), k) exceeds the ente's whole stock of a)
    #: (SAP + SAS) by more than this many units
    margine_plausibilita: int = 10
