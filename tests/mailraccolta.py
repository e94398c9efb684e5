"""A raccolta for the mail tests: five enti with addresses, [posta] settings, workbooks.

Kept apart from ``mailservers`` (loaded as a pytest plugin by the test modules) so that
importing these helpers does not import the plugin before pytest can rewrite its asserts.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from piano_abitativo.app.commands import crea
from piano_abitativo.core import raccolta as rc
from piano_abitativo.template.fill import fill_template
from piano_abitativo.template.workbook import TemplateFactory, context_for

from .sample_returns import CREMA

#: five enti with their addresses: two PEC comuni, one comune by e-mail, one silent, the ALER
ENTI_CSV = """\
codice,tipo,denominazione,provincia,codice_catastale,capofila,email,pec
019035,COMUNE,Crema,CR,D142,SI,,protocollo@pec.comune.crema.example
019002,COMUNE,Agnadello,CR,A076,,ufficio@comune.agnadello.example,
019010,COMUNE,Camisano,CR,B484,,,comune.camisano@pec.example
019005,COMUNE,Bagnolo Cremasco,CR,A570,,,protocollo@pec.comune.bagnolo.example
ALER-BCM,ALER,ALER Brescia-Cremona-Mantova,,,,,aler@pec.aler.example
"""


def make_raccolta(folder: Path, *, enti_csv: str = ENTI_CSV, **posta: Any) -> rc.Raccolta:
    """A raccolta 2026 of the enti above, with these [posta] keys set."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "enti.csv").write_text(enti_csv, encoding="utf-8")
    r = crea(
        folder / "raccolta",
        anno=2026,
        registry_csv=folder / "enti.csv",
        scadenza=dt.date(2025, 12, 15),
        contatto="Ufficio Casa, tel. 0373 000000",
    )
    return configure(r, **posta)


def configure(r: rc.Raccolta, **posta: Any) -> rc.Raccolta:
    """Set keys of [posta] (the last section of raccolta.toml, commented out by `crea`) and
    reload the raccolta."""
    text = r.config_path.read_text(encoding="utf-8")
    with open(r.config_path, "a", encoding="utf-8") as fh:
        if posta and "\n[posta]\n" not in text:
            fh.write("\n[posta]\n")
        for key, value in posta.items():
            fh.write(f"{key} = {json.dumps(value)}\n")
    return rc.load(r.path)


def workbook_of(r: rc.Raccolta, codice: str, **values: Any) -> bytes:
    """The ente's template of this raccolta, filled with Crema's figures and `values`."""
    ente = r.registry.get(codice)
    assert ente is not None
    return fill_template(TemplateFactory(context_for(r)).render(ente), CREMA | values)
